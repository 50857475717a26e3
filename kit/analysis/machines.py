"""Across machines: the machines a store (or a merged fleet store, or a Parquet dataset) holds, labelled by their
hardware fingerprint, and the speed of the same configuration on each against a baseline machine.

Machines cannot be interleaved with each other, so a speed-up between machines compares two runs: the interval is
Yuen's trimmed Welch interval over each run's per-round 10th percentiles (kit.stats.unpaired_ratio), which covers the
spread between rounds but not how far a whole run's level moves (docs/methodology.md); every row says so in `note`.
`reference_ratio` divides out each machine's own speed on the machine reference measured in the same rounds: above 1,
the model gains more from the machine than the reference workload does.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from kit import storage
from kit.analysis.frames import KEY, _normalise, results_with_samples
from kit.analysis.regressions import round_units
from kit.errors import ConfigError
from kit.stats import STATISTIC, unpaired_ratio

MACHINE_COLUMNS = ["hardware_id", "machine", "cpu_model", "cores_logical", "memory_gib", "gpus", "driver", "runs",
                   "ok_results"]
MACHINE_SPEEDUP_COLUMNS = ["model", "size", "mode", "platform", "precision", "batch_size", "seq_len", "machine",
                   "baseline_machine", "throughput_items_per_s", "baseline_throughput_items_per_s", "speedup",
                   "speedup_ci_low", "speedup_ci_high", "reference_ratio", "method", "note"]
BETWEEN_RUNS = "between runs of two machines: the interval covers the rounds' spread, not a whole run's move"


def machine_label(row: pd.Series | dict[str, Any]) -> str:
    """A short name from the fingerprint: CPU model, logical cores, GPUs (when any) and driver."""
    name = next((str(v) for v in (row.get(k) for k in ("cpu_model", "hostname", "hardware_id")) if _given(v)),
                "unknown machine")
    parts = [name]
    if _given(row.get("cores_logical")):
        parts.append(f"{int(row['cores_logical'])} cores")
    gpus = _gpu_names(row.get("gpus_json"))
    if gpus:
        parts.append(", ".join(gpus))
    if _given(row.get("driver")):
        parts.append(f"driver {row['driver']}")
    return " · ".join(parts)


def _given(value: Any) -> bool:
    """A fingerprint field that is there: not None, NaN, NA or an empty string."""
    if isinstance(value, str):
        return value != ""
    return value is not None and not bool(pd.isna(value))


def _gpu_names(gpus_json: Any) -> list[str]:
    if not isinstance(gpus_json, str):
        return []
    try:
        gpus = json.loads(gpus_json)
    except json.JSONDecodeError:
        return []
    if not isinstance(gpus, list):
        return []
    return [str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in gpus if g]


def machines_table(con: storage.Connection) -> pd.DataFrame:
    """One row per machine with runs in the store: its label, fingerprint, and how many runs and ok results it has."""
    frame = con.execute("""
        SELECT h.*, count(DISTINCT ru.run_id) AS runs, count(r.result_id) FILTER (WHERE r.status = 'ok') AS ok_results
        FROM hardware h JOIN runs ru ON ru.hardware_id = h.hardware_id LEFT JOIN results r ON r.run_id = ru.run_id
        GROUP BY ALL ORDER BY ok_results DESC, h.hardware_id""").df()
    if frame.empty:
        return pd.DataFrame(columns=MACHINE_COLUMNS)
    frame["machine"] = [machine_label(row) for _, row in frame.iterrows()]
    frame["gpus"] = [", ".join(_gpu_names(g)) for g in frame["gpus_json"]]
    frame["memory_gib"] = frame["memory_bytes"] / 2**30
    return frame[MACHINE_COLUMNS]


def resolve_machine(machines: pd.DataFrame, wanted: str | None) -> str:
    """The hardware id of the machine named by hardware id or label; the one with the most ok results when None."""
    if machines.empty:
        raise ConfigError("the store holds no machine with runs")
    if wanted is None:
        return str(machines["hardware_id"].iloc[0])
    hit = machines[(machines["hardware_id"] == wanted) | (machines["machine"] == wanted)]
    if hit.empty:
        raise ConfigError(f"unknown machine {wanted!r}; known: {', '.join(machines['hardware_id'])}")
    return str(hit["hardware_id"].iloc[0])


def machine_speedups(con: storage.Connection, baseline_machine: str | None = None,
                     statistic: str = STATISTIC) -> pd.DataFrame:
    """Per configuration measured on the baseline machine and on others (each machine's latest ok result): the other
    machine's speed-up (baseline latency / its latency, above 1 is faster) with its interval, and its speed relative
    to its own machine reference against the baseline's (reference_ratio)."""
    machines = machines_table(con)
    if len(machines) < 2:
        return pd.DataFrame(columns=MACHINE_SPEEDUP_COLUMNS)
    base_id = resolve_machine(machines, baseline_machine)
    labels = dict(zip(machines["hardware_id"], machines["machine"], strict=True))
    frame = _normalise(results_with_samples(con))
    frame = frame[(frame["status"] == "ok") & frame["hardware_id"].isin(list(labels))]
    latest = frame.sort_values("_order", kind="stable").drop_duplicates([*KEY, "hardware_id"], keep="last")
    base = latest[latest["hardware_id"] == base_id]
    rows = []
    for _, other in latest[latest["hardware_id"] != base_id].iterrows():
        match = base
        for name in KEY:
            match = match[match[name] == other[name]]
        if len(match):
            rows.append(_speedup_row(other, match.iloc[0], labels, statistic))
    table = pd.DataFrame(rows, columns=MACHINE_SPEEDUP_COLUMNS)
    return table.sort_values(["model", "platform", "precision", "batch_size", "machine"], ignore_index=True)


def _speedup_row(other: pd.Series, base: pd.Series, labels: dict[str, str], statistic: str) -> dict[str, Any]:
    row = {name: other[name] for name in ("model", "size", "mode", "platform", "precision", "batch_size", "seq_len")}
    row.update(machine=labels[other["hardware_id"]], baseline_machine=labels[base["hardware_id"]],
               throughput_items_per_s=other["throughput_items_per_s"],
               baseline_throughput_items_per_s=base["throughput_items_per_s"], note=BETWEEN_RUNS)
    units = [round_units(r["samples"], r["rounds"], r.get("extra"), normalised=False, statistic=statistic)
             for r in (other, base)]
    if all(u is not None and len(u) >= 2 for u in units):
        estimate = unpaired_ratio(units[0], units[1])  # latency ratio other / base
        row.update(speedup=1 / estimate.ratio, speedup_ci_low=1 / estimate.ci_high if estimate.ci_high else math.inf,
                   speedup_ci_high=1 / estimate.ci_low if estimate.ci_low else math.inf, method=f"{statistic} rounds")
    else:
        row.update(speedup=float(base["latency_p50_s"] / other["latency_p50_s"]), speedup_ci_low=np.nan,
                   speedup_ci_high=np.nan, method="medians")
    normalised = [_number(r.get("normalised_throughput")) for r in (other, base)]
    row["reference_ratio"] = normalised[0] / normalised[1] if all(np.isfinite(normalised)) else np.nan
    return row


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
