"""Speed-ups of every platform/precision over a baseline one, and rankings by throughput and latency.

A speed-up is computed from rounds, never from pooled samples: two configurations measured in the same group of
interleaved rounds are paired round by round (kit.stats.paired_ratio); two measured in different groups or runs are
compared through their per-round latency relative to the machine reference (kit.stats.unpaired_ratio). Without rounds
only the ratio of medians is given, with no interval or test. Holm's correction runs across the table.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kit.analysis.frames import (
    IDENTITY,
    WORKLOAD,
    Source,
    _identity,
    _median_s,
    latest_ok,
    results_with_samples,
)
from kit.analysis.stability import rounds_info
from kit.stats import STATISTIC, STATISTICS, RatioEstimate, holm, paired_ratio, round_quantiles, unpaired_ratio

SPEEDUP_COLUMNS = [*IDENTITY, "baseline", "speedup", "speedup_ci_low", "speedup_ci_high", "p_value", "p_holm",
                   "significant", "method", "baseline_p50_s", "candidate_p50_s", "baseline_throughput_items_per_s",
                   "candidate_throughput_items_per_s", "n_baseline", "n_candidate", "baseline_run_id",
                   "candidate_run_id", "note"]


def speedup_table(con_or_records: Source, run_id: str | None = None, baseline_platform: str = "cpu",
                  baseline_precision: str = "fp32", alpha: float = 0.05) -> pd.DataFrame:
    """Speed-up of every platform/precision over the baseline one for the same model, size, mode, batch and seq_len.

    speedup = baseline latency / candidate latency (>1 is faster), from rounds (see the module doc) with a 95% CI and
    a p-value, Holm-corrected across the table; `method` says how (paired rounds, normalised rounds, medians).
    Configurations without a baseline are kept with a NaN speed-up and a note; the baseline rows themselves appear
    with speedup 1.
    """
    every = results_with_samples(con_or_records, run_id)
    ok = every[every["status"] == "ok"].sort_values("_order", kind="stable", na_position="first")
    is_base = (ok["platform"] == baseline_platform) & (ok["precision"] == baseline_precision)
    baselines = dict(list(ok[is_base].groupby(WORKLOAD, sort=False)))
    rows = []
    for _, cand in latest_ok(every).sort_values(WORKLOAD + ["platform", "precision"]).iterrows():
        rows.append(_speedup_row(cand, _baseline_for(cand, baselines), baseline_platform, baseline_precision))
    table = pd.DataFrame(rows, columns=SPEEDUP_COLUMNS)
    return holm(table, alpha)[SPEEDUP_COLUMNS].reset_index(drop=True)


def _baseline_for(cand: pd.Series, baselines: dict[tuple, pd.DataFrame]) -> pd.Series | None:
    """The baseline measured in the candidate's own run (same conditions), else the latest one from any run."""
    group = baselines.get(tuple(cand[k] for k in WORKLOAD))
    if group is None:
        return None
    same_run = group[group["run_id"] == cand["run_id"]]
    return (same_run if len(same_run) else group).iloc[-1]


def _speedup_row(cand: pd.Series, base: pd.Series | None, platform: str, precision: str) -> dict[str, Any]:
    row = {**_identity(cand), "baseline": f"{platform}/{precision}", "candidate_p50_s": _median_s(cand),
           "candidate_throughput_items_per_s": cand["throughput_items_per_s"], "candidate_run_id": cand["run_id"],
           "n_candidate": 0 if cand["samples"] is None else len(cand["samples"]), "speedup": math.nan,
           "speedup_ci_low": math.nan, "speedup_ci_high": math.nan, "p_value": math.nan, "method": "", "note": ""}
    if base is None:
        return {**row, "note": f"no {platform}/{precision} baseline for this model, mode, batch size and seq_len"}
    row.update(baseline_p50_s=_median_s(base), baseline_throughput_items_per_s=base["throughput_items_per_s"],
               baseline_run_id=base["run_id"], n_baseline=0 if base["samples"] is None else len(base["samples"]))
    if base["run_id"] != cand["run_id"]:
        row["note"] = f"baseline from run {base['run_id']} (none in run {cand['run_id']})"
    if cand["platform"] == platform and cand["precision"] == precision:
        return {**row, "speedup": 1.0, "speedup_ci_low": 1.0, "speedup_ci_high": 1.0, "note": "baseline"}
    estimate, method = pair_estimate(cand, base)
    if estimate is None:
        note = "; ".join(filter(None, [row["note"], "measured without rounds: ratio of medians, no CI or test"]))
        return {**row, "speedup": row["baseline_p50_s"] / row["candidate_p50_s"], "method": method, "note": note}
    return {**row, "speedup": 1 / estimate.ratio, "speedup_ci_low": 1 / estimate.ci_high,
            "speedup_ci_high": 1 / estimate.ci_low, "p_value": estimate.p_value, "method": method}


def pair_estimate(cand: pd.Series, base: pd.Series) -> tuple[RatioEstimate | None, str]:
    """Latency ratio candidate / baseline from rounds (each round's p10): paired when both ran in one group of
    rounds, else through the machine reference; (None, "medians") when a side has no rounds."""
    if cand["rounds"] is None or base["rounds"] is None or cand["samples"] is None or base["samples"] is None:
        return None, "medians"
    same_group = cand["run_id"] == base["run_id"] and cand["config_key"] in rounds_info(base.get("extra")).get(
        "group", [])
    if same_group:
        values = [round_quantiles(list(r["samples"]), list(r["rounds"]), STATISTICS[STATISTIC]) for r in (cand, base)]
        if len(set(values[0]) & set(values[1])) >= 2:
            return paired_ratio(*values), f"paired {STATISTIC} rounds"
    from kit.analysis.regressions import units_pair

    *units, method = units_pair(*[(r["samples"], r["rounds"], r.get("extra")) for r in (cand, base)])
    if any(u is None or len(u) < 2 for u in units):
        return None, "medians"
    return unpaired_ratio(list(units[0]), list(units[1])), method


RANKING_COLUMNS = [*IDENTITY, "throughput_items_per_s", "latency_p50_s", "peak_memory_bytes", "throughput_rank",
                   "latency_rank", "run_id"]


def ranking_table(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """Per model, size and mode: configurations ranked by throughput (1 = highest) and by p50 latency (1 = lowest).

    The latency is per iteration, so small batches rank well on latency and large ones on throughput.
    """
    frame = latest_ok(results_with_samples(source, run_id, samples=False))
    if frame.empty:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    frame = frame.assign(latency_p50_s=[_median_s(r) for _, r in frame.iterrows()])
    groups = frame.groupby(["model", "size", "mode"])
    frame["throughput_rank"] = groups["throughput_items_per_s"].rank(ascending=False, method="min").astype(int)
    frame["latency_rank"] = groups["latency_p50_s"].rank(ascending=True, method="min").astype(int)
    frame = frame.sort_values(["model", "size", "mode", "throughput_rank", "latency_rank"])
    return frame[RANKING_COLUMNS].reset_index(drop=True)
