"""Why a candidate configuration is excluded from a recommendation: the request's constraints (memory budget, latency
bound, prices), a failed measurement of it (or an out-of-memory death at a smaller batch), or an output deviation
against fp32 PyTorch above the bound; and why a platform has no feasible candidate at all."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from kit.predict.features import extra_dict, overrides_json


def output_deviation(measured: pd.DataFrame, reference: tuple[str, str] = ("cpu", "fp32")) -> pd.DataFrame:
    """Per platform and precision, the largest relative L2 error of the output against fp32 PyTorch measured for this
    model variant (at any batch size: precision error barely depends on the batch); 0 for the reference itself."""
    rows = []
    for (platform, precision), group in measured.groupby(["platform", "precision"]):
        extras = group["extra"] if "extra" in group else pd.Series(dtype=object)
        values = [(extra_dict(e).get("deviation") or {}).get("rel_l2") for e in extras]
        values = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        if (platform, precision) == reference:
            values = [0.0]
        rows.append({"platform": platform, "precision": precision, "output_rel_l2": max(values) if values else np.nan})
    return pd.DataFrame(rows, columns=["platform", "precision", "output_rel_l2"])


MEMORY_FAILURE = re.compile(r"MemoryError|out of memory|OutOfMemory|SIGKILL", re.IGNORECASE)
FAILURE_KEYS = ["platform", "precision", "batch_size", "mode"]


def failed_measurements(data: Any, model: str, size: str | None, overrides: str) -> pd.DataFrame:
    """The model variant's configurations whose latest measurement failed, with the reason and whether it was memory.

    A configuration measured ok later (in any run) is not listed; `memory` marks out-of-memory deaths (MemoryError, an
    OOM message, or SIGKILL from the kernel's OOM killer), which larger batches on the same platform would hit too."""
    from kit import storage

    if isinstance(data, pd.DataFrame):
        frame = data[data["model"] == model] if "status" in data else data.iloc[0:0]
    else:
        frame = storage.results_frame(data, model=model)
    if size is not None and not frame.empty:
        frame = frame[frame["size"] == size]
    if frame.empty or "params_json" not in frame:
        return pd.DataFrame(columns=[*FAILURE_KEYS, "failure", "memory"])
    frame = frame[frame["params_json"].map(overrides_json) == overrides]
    latest = frame.sort_values("created_at").drop_duplicates(FAILURE_KEYS, keep="last")
    failed = latest[latest["status"] == "failed"]
    reasons = failed.get("reason", pd.Series("", index=failed.index)).fillna("").astype(str)
    return failed[FAILURE_KEYS].assign(failure=reasons.map(lambda r: r.splitlines()[0][:120] if r else "failed"),
                                       memory=reasons.map(lambda r: bool(MEMORY_FAILURE.search(r))))


def failure_reasons(table: pd.DataFrame, failures: pd.DataFrame) -> pd.Series:
    """Per candidate: why a failed measurement rules it out ('' if none): the same configuration failed, or the same
    platform and precision ran out of memory at this batch size or a smaller one."""
    out = pd.Series("", index=table.index, dtype=object)
    for failure in failures.itertuples(index=False):
        same = ((table["platform"] == failure.platform) & (table["precision"] == failure.precision)
                & (table["mode"] == failure.mode))
        exact = same & (table["batch_size"] == failure.batch_size) & (table["source"] != "measured")
        out[exact & (out == "")] = f"measured as failed: {failure.failure}"
        if failure.memory:
            larger = same & (table["batch_size"] > failure.batch_size) & (table["source"] != "measured")
            out[larger & (out == "")] = f"ran out of memory when measured at batch {failure.batch_size}"
    return out


def deviation_reasons(table: pd.DataFrame, max_rel_l2: float | None) -> pd.Series:
    """Per candidate: why its output deviation rules it out under the bound ('' if it passes or there is no bound)."""
    out = pd.Series("", index=table.index, dtype=object)
    if max_rel_l2 is None:
        return out
    dev = table["output_rel_l2"].astype(float)
    out[dev.isna()] = "output deviation unknown (never measured for this platform and precision) under a bound"
    over = dev > max_rel_l2
    out[over] = [f"output deviation (relative L2 vs fp32 PyTorch) {v:.3g} exceeds {max_rel_l2:g}" for v in dev[over]]
    return out


def constraint_reason(row: pd.Series, memory_budget_bytes: float | None, latency_bound_s: float | None,
                       hourly_prices: dict | None, objective: str) -> str:
    """Why a candidate fails the request's memory budget, latency bound or price list ('' if it passes)."""
    if memory_budget_bytes is not None:
        if not row["memory_high"] > 0:
            return "memory unknown under a memory budget"
        if row["memory_high"] > memory_budget_bytes:
            return f"memory (upper bound) {row['memory_high'] / 2**30:.2f} GiB exceeds the budget"
    if latency_bound_s is not None and not row["latency_high"] <= latency_bound_s:
        return f"latency (upper bound) {row['latency_high'] * 1e3:.3g} ms exceeds the bound"
    if objective == "cost" and row["platform"] not in hourly_prices:
        return f"no hourly price for {row['platform']}"
    if not row["throughput"] > 0 and objective in ("throughput", "cost"):
        return "throughput unknown"
    return ""


def platform_reasons(platforms: list[str], frame: pd.DataFrame, table: pd.DataFrame,
                      reasons: pd.Series) -> dict[str, str]:
    """Why each platform without a feasible candidate has none."""
    why = {}
    for platform in platforms:
        mine = reasons[table["platform"] == platform]
        if platform not in set(frame["platform"]):
            why[platform] = f"no measurements on {platform} in the data, so nothing to measure or predict from"
        elif mine.empty:
            why[platform] = f"no candidate on {platform} could be measured or predicted for this model and mode"
        elif (mine != "").all():
            why[platform] = f"all {len(mine)} candidates on {platform} fail the constraints ({mine.iloc[0]}, ...)"
    return why


def exclusion_reasons(table: pd.DataFrame, data: Any, rows: pd.DataFrame, constraints: dict[str, Any],
                      model: str, size: str | None, overrides: str) -> tuple[pd.DataFrame, pd.Series]:
    """The candidates with their output deviation, and per candidate why it is excluded ('' if feasible): the
    constraints first, then a failed measurement, then the output-deviation bound.

    `constraints` holds memory_budget_bytes, latency_bound_s, hourly_prices, objective and max_rel_l2."""
    if table.empty:
        return table.assign(output_rel_l2=np.nan), pd.Series(dtype=str)
    reasons = table.apply(constraint_reason, axis=1, args=(
        constraints["memory_budget_bytes"], constraints["latency_bound_s"], constraints["hourly_prices"],
        constraints["objective"]))
    failed = failure_reasons(table, failed_measurements(data, model, size, overrides))
    reasons = reasons.where(failed == "", failed)
    table = table.drop(columns=["output_rel_l2"], errors="ignore").merge(
        output_deviation(rows), on=["platform", "precision"], how="left").set_index(table.index)
    inexact = deviation_reasons(table, constraints["max_rel_l2"])
    return table, reasons.where((reasons != "") | (inexact == ""), inexact)
