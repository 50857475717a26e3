"""Ranking for text generation: the platform, precision, batch size and KV cache with the best time to first token,
time per output token or decode tokens/s for a model, under a memory budget and a TTFT bound, from measured
generation results (no predictions: a generation configuration is recommended only once it was measured).

Each median's interval reaches as far as a second run of the same configuration lands, 9 times in 10, where the
records hold configurations measured in two runs on that machine (kit.recommend.repeats); else it is the median's 95 %
interval from within its run, and `interval_from` says which. Constraints are checked on the pessimistic end (the TTFT
bound on its upper end); the memory budget on the measured peak, so a configuration without one is dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kit.analysis.generation import generation_records
from kit.errors import ConfigError
from kit.recommend.core import check_rank_by
from kit.records import Record

GENERATION_OBJECTIVES = ("ttft", "tpot", "tokens_per_s")
GENERATION_RESULT_COLUMNS = ["rank", "platform", "precision", "batch_size", "prompt_len", "new_tokens", "kv_cache",
                             "ttft_ms", "ttft_high_ms", "tpot_ms", "tpot_high_ms", "tokens_per_s", "tokens_per_s_low",
                             "interval_from", "peak_memory_mb", "run_id"]
# objective -> (point column, pessimistic column, ascending)
SORT = {"ttft": ("ttft_ms", "ttft_high_ms", True), "tpot": ("tpot_ms", "tpot_high_ms", True),
        "tokens_per_s": ("tokens_per_s", "tokens_per_s_low", False)}


def _row(record: Record) -> dict:
    g = record.extra["generation"]
    ttft, tpot = g["ttft"], g["tpot"]
    return {"platform": record.platform, "precision": record.precision, "batch_size": record.batch_size,
            "prompt_len": g.get("prompt_len") or record.seq_len, "new_tokens": g["new_tokens"],
            "kv_cache": g["kv_cache"], "ttft_ms": 1e3 * ttft["p50_s"], "ttft_high_ms": 1e3 * ttft["ci_high_s"],
            "tpot_ms": 1e3 * tpot["p50_s"], "tpot_high_ms": 1e3 * tpot["ci_high_s"],
            "tokens_per_s": record.batch_size / tpot["p50_s"],
            "peak_memory_mb": record.peak_memory_bytes / 2**20 if record.peak_memory_bytes else None,
            "run_id": record.run_id, "created_at": record.created_at, "model": record.model,
            "config_key": record.config_key, "threads": record.threads, "env_id": record.env_id}


def _between_runs(rows: pd.DataFrame, every: pd.DataFrame) -> pd.DataFrame:
    """The rows with their pessimistic ends moved out to the spread between runs of `every` generation result, where
    it holds repeats on their machine (the median's 95 % interval within the run stays otherwise)."""
    from kit.recommend.repeats import INTERVAL_FROM, row_widths

    rows = rows.assign(interval_from=INTERVAL_FROM["run"])
    for point, high in (("ttft_ms", "ttft_high_ms"), ("tpot_ms", "tpot_high_ms")):
        widths = row_widths(rows, every, point)
        has = widths["width"].notna()
        rows.loc[has, high] = (rows[point] * np.exp(widths["width"]))[has]
        rows.loc[has, "interval_from"] = widths.loc[has, "interval_from"]
    return rows.assign(tokens_per_s_low=rows["batch_size"] / rows["tpot_high_ms"] * 1e3)


def recommend_generation(records: list[Record], model: str, objective: str = "tpot", *,
                         memory_budget_bytes: float | None = None, ttft_bound_s: float | None = None,
                         prompt_len: int | None = None, platforms_allowed: list[str] | None = None,
                         rank_by: str = "point") -> pd.DataFrame:
    """Measured generation configurations of `model` (the latest of each), feasible under the constraints, best
    first for the objective; rank_by='bound' sorts by the pessimistic end of each interval."""
    if objective not in GENERATION_OBJECTIVES:
        raise ConfigError(f"unknown generation objective {objective!r}; known: {', '.join(GENERATION_OBJECTIVES)}")
    check_rank_by(rank_by)
    for name, value in (("memory_budget_bytes", memory_budget_bytes), ("ttft_bound_s", ttft_bound_s)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be positive or None, got {value!r}")
    every = pd.DataFrame([_row(r) for r in generation_records(records)],
                         columns=[*GENERATION_RESULT_COLUMNS[1:], "created_at", "model", "config_key", "threads",
                                  "env_id"])
    key = ["platform", "precision", "batch_size", "prompt_len", "new_tokens", "kv_cache"]
    rows = _between_runs(every[every["model"] == model], every)
    rows = rows.sort_values("created_at").drop_duplicates(key, keep="last")
    if prompt_len is not None:
        rows = rows[rows["prompt_len"] == prompt_len]
    if platforms_allowed:
        rows = rows[rows["platform"].isin(platforms_allowed)]
    if memory_budget_bytes is not None:
        rows = rows[rows["peak_memory_mb"].notna() & (rows["peak_memory_mb"] * 2**20 <= memory_budget_bytes)]
    if ttft_bound_s is not None:
        rows = rows[rows["ttft_high_ms"] <= ttft_bound_s * 1e3]
    point, bound, ascending = SORT[objective]
    ranked = rows.sort_values([point if rank_by == "point" else bound, point], ascending=ascending, kind="stable")
    ranked = ranked.reset_index(drop=True).assign(rank=lambda d: d.index + 1)
    return ranked[GENERATION_RESULT_COLUMNS].round(3)
