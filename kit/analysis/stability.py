"""How stable the machine was while a run measured: the machine reference's spread across rounds (drift index).

A result measured in interleaved rounds carries, in extra["rounds"], the reference's median in every round of its
group. Their robust coefficient of variation is the drift index: 0.5 % is a quiet machine; several per cent means
absolute figures of this run move that much with the machine, and only paired (interleaved) or normalised figures
compare.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from kit.stats import drift_index

STABLE_DRIFT = 0.02  # above this, absolute figures of one run are not comparable with another run's
STABILITY_COLUMNS = ["run_id", "n_results", "n_rounds", "reference", "drift_index", "max_drift_index",
                     "round_cv", "normalised_round_cv", "verdict"]


def rounds_info(extra: Any) -> dict[str, Any]:
    """The extra["rounds"] facts of a result (JSON text or dict); {} for a result measured without rounds."""
    data = json.loads(extra) if isinstance(extra, str) and extra else extra
    return dict(data.get("rounds") or {}) if isinstance(data, dict) else {}


REFERENCE_KEYS = {"median": "reference_round_medians_s", "p10": "reference_round_p10_s"}


def reference_medians(extra: Any) -> list[float | None]:
    """The machine reference's median latency in each round of the result's group ([] without a reference)."""
    return reference_values(extra, "median")


def reference_values(extra: Any, statistic: str) -> list[float | None]:
    """The machine reference's per-round statistic (median, p10) in each round of the result's group; [] without a
    reference, or where the run stored no such statistic."""
    return list(rounds_info(extra).get(REFERENCE_KEYS[statistic]) or [])


def run_drift(frame: pd.DataFrame) -> float | None:
    """A run's drift index: the median over its results of the reference's spread across rounds (None without)."""
    values = []
    for extra in frame.get("extra", pd.Series(dtype=object)).dropna():
        reference = [m for m in reference_medians(extra) if m]
        if len(reference) > 1:
            values.append(drift_index(reference))
    return float(np.median(values)) if values else None


def run_reference_level(frame: pd.DataFrame, statistic: str = "p10") -> float | None:
    """How fast the machine was during a run: the median over its results of the reference's per-round statistic
    (median over the rounds, seconds per call; None without a reference)."""
    levels = [reference_level(extra, statistic) for extra in frame.get("extra", pd.Series(dtype=object)).dropna()]
    levels = [level for level in levels if level is not None]
    return float(np.median(levels)) if levels else None


def reference_level(extra: Any, statistic: str = "p10") -> float | None:
    """The machine reference's median per-round statistic beside one result (None without a reference)."""
    values = [v for v in reference_values(extra, statistic) if v]
    return float(np.median(values)) if values else None


def verdict(drift: float | None) -> str:
    """A sentence a reader can act on, from a run's drift index."""
    if drift is None:
        return "measured without a machine reference: stability unknown"
    if drift <= STABLE_DRIFT:
        return "stable"
    return (f"drifting ({drift:.1%} across rounds): compare this run with another only through interleaved or "
            "normalised figures")


def stability_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: results measured in rounds, rounds, reference, its drift index (median and worst group),
    the median spread of the results' own per-round medians, raw and normalised by the reference, and a verdict."""
    rows = []
    for run_id, run in frame[frame["status"] == "ok"].groupby("run_id", sort=False):
        infos = [rounds_info(e) for e in run["extra"]]
        measured = [i for i in infos if i.get("n_rounds")]
        drifts = [drift_index([m for m in i.get("reference_round_medians_s") or [] if m]) for i in measured
                  if len([m for m in i.get("reference_round_medians_s") or [] if m]) > 1]
        median = float(np.median(drifts)) if drifts else None
        rows.append({"run_id": run_id, "n_results": len(measured),
                     "n_rounds": max((i["n_rounds"] for i in measured), default=0),
                     "reference": next((i.get("reference") for i in measured if i.get("reference")), None),
                     "drift_index": median, "max_drift_index": max(drifts) if drifts else None,
                     "round_cv": _median([i.get("round_cv") for i in measured]),
                     "normalised_round_cv": _median([i.get("normalised_round_cv") for i in measured]),
                     "verdict": verdict(median) if measured else "measured without rounds"})
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def _median(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.median(kept)) if kept else None
