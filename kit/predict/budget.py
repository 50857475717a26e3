"""Where the held-out error comes from: how well the measurements themselves repeat, and how much of the predictor's
error a correction learnt from a family's (or one setting's) other measurements would remove.

The repeat rows are the floor a predictor of single measurements cannot beat: a configuration measured again on the
same machine differs from its other measurements by that much (split by whether all its measurements converged, since
the noisy ones are the ones `remeasure-noisy` measured again). The corrected rows divide each held-out prediction by
the median prediction/measurement ratio of the *other* rows of its family (or of its setting: model variant,
platform, precision, mode and threads), so they use measurements of the held-out family and are not predictions of an
unseen one: they say which part of the error is an offset shared by a family or a setting, and which part is left.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import TARGETS, variant_key
from kit.predict.model import Validation, accuracy
from kit.predict.remeasure import configuration_key

SETTING_COLUMNS = ["platform", "precision", "mode", "threads"]
# the speeds a repeat can be judged on: label -> (latency column the speed is batch / it of, or a stored speed column)
REPEAT_SPEEDS = {"throughput (batch / mean latency)": "throughput_items_per_s",
                 "batch / median latency": "latency_p50_s",
                 "batch / 10th-percentile latency": "latency_p10_s",
                 "normalised throughput (p10, per reference call)": "normalised_throughput"}
# the latencies a repeat can be judged on: label -> latency column, or the normalised latency (kit.predict.steady)
REPEAT_LATENCIES = {"median latency": "latency_p50_s",
                    "normalised median latency (per reference median call)": "normalised_latency"}
REPEAT_ROWS = ("another measurement of the same configuration (all)",  # the rows `repeat_floor` reads
               "predictor, on configurations measured again (all)")


def other_repeats_mean(frame: pd.DataFrame, target: str = "throughput",
                       measurements: pd.DataFrame | None = None) -> pd.Series:
    """Per row of `frame` whose configuration (same configuration key, threads and machine) was measured more than
    once: the mean of the target over the configuration's other measurements in `measurements` (default: the frame
    itself). A row counts as one of those measurements, and is left out of its own mean, where its result id is among
    them (always when they are the frame). Rows with no other measurement are left out."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    column = TARGETS[target]
    measurements = frame if measurements is None else measurements
    values = pd.to_numeric(measurements[column], errors="coerce")
    groups = values.groupby(configuration_key(measurements))
    keys, own = configuration_key(frame), pd.to_numeric(frame[column], errors="coerce")
    counted = _among(frame, measurements) & own.notna()
    count = keys.map(groups.count()).fillna(0) - counted
    total = keys.map(groups.sum()).fillna(0.0) - own.where(counted, 0.0)
    return (total / count)[count >= 1]


def _among(frame: pd.DataFrame, measurements: pd.DataFrame) -> pd.Series:
    """Per row of the frame: True when it is one of the measurements (by result id; every row when they are the
    frame, or when either has no result ids)."""
    if measurements is frame or "result_id" not in frame or "result_id" not in measurements:
        return pd.Series(True, index=frame.index)
    return frame["result_id"].isin(measurements["result_id"])


def _some_noisy(frame: pd.DataFrame, measurements: pd.DataFrame) -> pd.Series:
    """Per row of the frame: True when it, or any measurement of its configuration, is noisy."""
    def noisy(rows: pd.DataFrame) -> pd.Series:
        return rows.get("noisy", pd.Series(False, index=rows.index)).fillna(False).astype(bool)

    any_noisy = noisy(measurements).groupby(configuration_key(measurements)).any()
    return noisy(frame) | configuration_key(frame).map(any_noisy).eq(True)


def _leave_one_out_bias(log_ratio: pd.Series, keys: pd.Series) -> pd.Series:
    """Per row, the median log ratio of the other rows with its key (0 where it has none)."""
    bias = pd.Series(0.0, index=log_ratio.index)
    for _, rows in log_ratio.groupby(keys):
        if len(rows) < 2:
            continue
        values = rows.to_numpy()
        bias[rows.index] = [np.median(np.delete(values, i)) for i in range(len(values))]
    return bias


def _setting_key(frame: pd.DataFrame) -> pd.Series:
    settings = frame.reindex(columns=SETTING_COLUMNS).astype(str).agg("|".join, axis=1)
    return variant_key(frame) + "|" + settings


def error_budget(validation: Validation, frame: pd.DataFrame,
                 measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """Accuracy of the held-out predictions, of the same corrected by the other rows of their family or setting, and
    of a repeated measurement against the predictor on the configurations measured more than once.

    `frame` is the validated frame (its index matches the validation's predictions); `measurements` are the
    measurements to find repeats in (default the frame; `kit.predict.all_measurements` where the frame holds one
    measurement per configuration)."""
    p = validation.predictions
    missing = p.index.difference(frame.index)
    if len(missing):
        raise ConfigError(f"{len(missing)} validated rows are not in the frame; pass the frame that was validated")
    rows = frame.loc[p.index]
    log_ratio = np.log(p["pred"] / p["measured"])
    family = _leave_one_out_bias(log_ratio, p["group"].astype(str))
    setting = _leave_one_out_bias(log_ratio, _setting_key(rows))
    table = [("predictor, family held out", p["measured"], p["pred"]),
             ("predictor, corrected by the family's other rows", p["measured"], p["pred"] / np.exp(family)),
             ("predictor, corrected by the setting's other rows", p["measured"], p["pred"] / np.exp(setting))]
    measurements = rows if measurements is None else measurements
    repeats = other_repeats_mean(rows, validation.target, measurements)
    some_noisy = _some_noisy(rows, measurements).loc[repeats.index]
    for label, part in (("all", repeats), ("all converged", repeats[~some_noisy]), ("some noisy", repeats[some_noisy])):
        table += [(f"predictor, on configurations measured again ({label})", p.loc[part.index, "measured"],
                   p.loc[part.index, "pred"]),
                  (f"another measurement of the same configuration ({label})", p.loc[part.index, "measured"], part)]
    return pd.DataFrame([{"estimate": name, **accuracy(measured, predicted)} for name, measured, predicted in table]
                        ).set_index("estimate")



def _speed(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(frame.get(column, pd.Series(np.nan, index=frame.index)), errors="coerce")
    return frame["batch_size"] / values if column.startswith("latency_") else values


def _latency(frame: pd.DataFrame, column: str) -> pd.Series:
    from kit.predict.steady import normalised

    if column == "normalised_latency":
        return normalised(frame, "latency")
    return pd.to_numeric(frame.get(column, pd.Series(np.nan, index=frame.index)), errors="coerce")


def repeat_columns(target: str = "throughput") -> dict[str, str]:
    """The repeat table's rows of a target: label -> the column (or normalised value) it judges."""
    if target not in ("throughput", "latency"):
        raise ConfigError(f"no repeat table for target {target!r}; known: throughput, latency")
    return REPEAT_SPEEDS if target == "throughput" else REPEAT_LATENCIES


def repeat_table(measurements: pd.DataFrame, target: str = "throughput") -> pd.DataFrame:
    """How far one measurement of a configuration is from the mean of its other measurements (same configuration,
    threads and machine). Throughput: for each speed a result carries, throughput from the mean latency, from the
    median, from the 10th percentile, and normalised by the machine reference. The mean latency takes every disturbed
    call in; the 10th percentile only the calls the machine left alone, so it is the speed that repeats between runs.
    Latency: the median latency, measured and normalised by the reference's median (index 'latency')."""
    keys, index = configuration_key(measurements), "speed" if target == "throughput" else "latency"
    rows = []
    for label, column in repeat_columns(target).items():
        values = (_speed if target == "throughput" else _latency)(measurements, column).astype(float)
        kept = pd.DataFrame({"key": keys, "value": values})[values.notna() & (values > 0)]
        count = kept.groupby("key")["value"].transform("count")
        total = kept.groupby("key")["value"].transform("sum")
        repeated = kept[count >= 2]
        others = (total - kept["value"])[count >= 2] / (count[count >= 2] - 1)
        rows.append({index: label, "configurations": int(repeated["key"].nunique()),
                     **accuracy(repeated["value"], others)})
    return pd.DataFrame(rows).set_index(index)


def repeat_floor(budget: pd.DataFrame) -> dict[str, float | int | None]:
    """The measurement floor an error budget found: how many configuration measurements have a repeat, how far a
    second measurement of the same configuration is from them (MAPE), and the predictor on the same rows. A goal
    below `repeat_mape` cannot be shown against single measurements on this machine. None where nothing repeats."""
    floor, predictor = (budget.loc[name] if name in budget.index else None for name in REPEAT_ROWS)
    n = 0 if floor is None else int(floor["n"])
    return {"repeat_n": n, "repeat_mape": float(floor["mape"]) if n else None,
            "predictor_on_repeats_mape": float(predictor["mape"]) if n else None}
