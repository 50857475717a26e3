"""Text generation results: per-configuration prefill, TTFT, TPOT and tokens/s; the KV cache against its estimate;
and speed-ups between platforms or precisions from the rounds both were measured in.

The figures come from `extra["generation"]` of records measured in the generation mode (kit.runners.generation):
per-call prefill, TTFT and TPOT lists aligned with the record's samples, so each call keeps its round.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kit.records import Record
from kit.stats import paired_ratio, round_quantiles

GENERATION_COLUMNS = ["model", "platform", "precision", "batch_size", "prompt_len", "new_tokens", "kv_cache",
                      "prefill_ms", "ttft_ms", "ttft_ci_ms", "tpot_ms", "itl_p90_ms", "itl_p99_ms",
                      "decode_tokens_per_s", "e2e_ms", "kv_cache_mb", "peak_memory_mb", "n_calls"]
KV_COLUMNS = ["model", "precision", "batch_size", "prompt_len", "new_tokens", "kv_after_prompt_bytes",
              "kv_after_run_bytes", "growth_bytes_per_token", "estimate_bytes_per_token", "estimate_error_pct"]
GENERATION_SPEEDUP_COLUMNS = ["model", "batch_size", "prompt_len", "metric", "baseline", "candidate", "speedup",
                              "ci_low", "ci_high", "rounds"]
METRICS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": None}  # per-call lists; e2e is the record's samples


def generation_records(records: list[Record]) -> list[Record]:
    """The ok records measured in the generation mode."""
    return [r for r in records if r.mode == "generation" and r.status == "ok" and "generation" in r.extra]


def _ms(seconds: float | None) -> float:
    return round(seconds * 1e3, 3) if seconds is not None else np.nan


def generation_table(records: list[Record]) -> pd.DataFrame:
    """One line per generation configuration: prefill, TTFT (median and its 95 % CI), TPOT, the inter-token
    latency's tail, decode tokens/s, end-to-end latency, KV-cache and peak memory."""
    rows = []
    for r in generation_records(records):
        g = r.extra["generation"]
        rows.append({
            "model": r.model, "platform": r.platform, "precision": r.precision, "batch_size": r.batch_size,
            "prompt_len": g.get("prompt_len") or r.seq_len, "new_tokens": g["new_tokens"], "kv_cache": g["kv_cache"],
            "prefill_ms": _ms(g["prefill"]["p50_s"]), "ttft_ms": _ms(g["ttft"]["p50_s"]),
            "ttft_ci_ms": f"{_ms(g['ttft']['ci_low_s'])}-{_ms(g['ttft']['ci_high_s'])}",
            "tpot_ms": _ms(g["tpot"]["p50_s"]), "itl_p90_ms": _ms(g["itl"]["p90_s"]),
            "itl_p99_ms": _ms(g["itl"]["p99_s"]), "decode_tokens_per_s": round(g["decode_tokens_per_s"], 1),
            "e2e_ms": _ms(r.latency_p50_s), "kv_cache_mb": round(g["kv_cache_bytes"] / 2**20, 3),
            "peak_memory_mb": round(r.peak_memory_bytes / 2**20, 1) if r.peak_memory_bytes else np.nan,
            "n_calls": r.n_samples})
    table = pd.DataFrame(rows, columns=GENERATION_COLUMNS)
    order = ["model", "platform", "precision", "kv_cache", "new_tokens", "prompt_len", "batch_size"]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def kv_cache_table(records: list[Record]) -> pd.DataFrame:
    """The KV cache measured on the cache object generate returned (after the prompt, after the run, growth per new
    token) against the estimate 2 x layers x kv_heads x head_dim x batch x dtype bytes, for dynamic caches."""
    rows = []
    for r in generation_records(records):
        g = r.extra["generation"]
        if g["kv_cache"] != "dynamic":
            continue
        growth, estimate = g["kv_growth_bytes_per_token"], g["kv_estimate_bytes_per_token"]
        rows.append({"model": r.model, "precision": r.precision, "batch_size": r.batch_size,
                     "prompt_len": g.get("prompt_len") or r.seq_len, "new_tokens": g["new_tokens"],
                     "kv_after_prompt_bytes": g["kv_cache_bytes_after_prompt"],
                     "kv_after_run_bytes": g["kv_cache_bytes"],
                     "growth_bytes_per_token": growth, "estimate_bytes_per_token": estimate,
                     "estimate_error_pct": round(100 * (estimate - growth) / growth, 2) if growth else np.nan})
    return pd.DataFrame(rows, columns=KV_COLUMNS)


def per_round(record: Record, metric: str) -> dict[int, float]:
    """The metric's median per round of one generation record (ttft, tpot, or e2e from the samples)."""
    key = METRICS[metric]
    values = record.samples_s if key is None else record.extra["generation"][key]
    return round_quantiles(values, record.sample_rounds, 0.5)


def generation_speedups(records: list[Record], axis: str = "precision", baseline: str = "fp32") -> pd.DataFrame:
    """Speed-ups of every value of `axis` (precision or platform) against `baseline`, for TTFT, TPOT and e2e, from the
    per-round medians of configurations measured in the same rounds (a trimmed paired ratio with its 95 % CI);
    configurations measured without rounds get none."""
    if axis not in ("precision", "platform"):
        raise ValueError(f"axis must be precision or platform, not {axis!r}")
    kept = [r for r in generation_records(records) if r.sample_rounds]
    other = "platform" if axis == "precision" else "precision"
    rows = []
    for base in (r for r in kept if getattr(r, axis) == baseline):
        peers = [r for r in kept if getattr(r, axis) != baseline and r.model == base.model
                 and r.batch_size == base.batch_size and r.seq_len == base.seq_len
                 and getattr(r, other) == getattr(base, other) and r.run_id == base.run_id]
        for peer in peers:
            for metric in METRICS:
                b, c = per_round(base, metric), per_round(peer, metric)
                common = set(b) & set(c)
                if len(common) < 3:
                    continue
                est = paired_ratio(b, c)  # baseline time / candidate time: above 1 the candidate is faster
                rows.append({"model": base.model, "batch_size": base.batch_size,
                             "prompt_len": base.extra["generation"].get("prompt_len") or base.seq_len,
                             "metric": metric, "baseline": baseline, "candidate": getattr(peer, axis),
                             "speedup": round(est.ratio, 3), "ci_low": round(est.ci_low, 3),
                             "ci_high": round(est.ci_high, 3), "rounds": len(common)})
    return pd.DataFrame(rows, columns=GENERATION_SPEEDUP_COLUMNS)
