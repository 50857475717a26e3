"""What more threads can give: the bounds a prediction at t > 1 threads is held within.

A forward split over t threads runs at most t times faster than on one thread (THREAD_BOUND). How close it comes
depends on the work each call hands the threads: a call too small to split (torch leaves tensors under its grain size
on one thread, and every parallel region costs a synchronisation) gains nothing. So the gains measured in training,
on configurations run at one thread and at t, bound the prediction too: per platform, precision and thread count, the
log gain as a non-decreasing function of the log FLOPs per call (`fit_gains`, isotonic regression). A family unlike
the training ones is then never predicted to gain more from t threads than training configurations with as much work
per call gained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from kit.predict.baselines import call_count
from kit.predict.features import numeric_column, variant_key

# +1: the target grows with speed (throughput), -1: it shrinks (latency); memory has no thread bound
THREAD_BOUND = {"throughput": 1.0, "latency": -1.0}
MIN_GAIN_PAIRS = 4  # configurations measured at one thread and at t that a gain curve is fitted on, at least
PAIR_KEYS = ["hardware_id", "platform", "_variant", "precision", "mode", "batch_size"]

GainKey = tuple[str, str, int]  # (platform, precision, threads)


def log_work_per_call(features: pd.DataFrame) -> pd.Series:
    """Log FLOPs of a batch per call (`call_count`: OpenVINO's kernels, else torch's aten calls); NaN without
    either."""
    calls = call_count(features)
    return np.log(features["flops_per_batch"].astype(float) / calls.where(calls > 0))


def _keys(features: pd.DataFrame) -> pd.DataFrame:
    """The pairing columns: a configuration on one machine, whatever its thread count."""
    out = pd.DataFrame({"_variant": variant_key(features)}, index=features.index)
    for column in PAIR_KEYS:
        if column != "_variant":
            out[column] = features[column].astype(str) if column in features else ""
    return out[PAIR_KEYS]


def fit_gains(features: pd.DataFrame, y: pd.Series, target: str) -> dict[GainKey, IsotonicRegression]:
    """Per (platform, precision, threads > 1) with at least MIN_GAIN_PAIRS configurations measured at one thread and
    at t: the log gain of t threads (log of the speed ratio) as a non-decreasing function of `log_work_per_call`."""
    sign = THREAD_BOUND.get(target)
    threads = numeric_column(features, "threads")
    if sign is None or not (threads == 1).any() or not (threads > 1).any():
        return {}
    data = _keys(features).assign(_log=sign * np.log(y.astype(float)), _x=log_work_per_call(features),
                                  _threads=threads)
    data = data[np.isfinite(data["_log"]) & np.isfinite(data["_x"])]
    one = data[data["_threads"] == 1].groupby(PAIR_KEYS)["_log"].median().rename("_one")
    many = data[data["_threads"] > 1].groupby([*PAIR_KEYS, "_threads"]).agg(_log=("_log", "median"), _x=("_x", "first"))
    pairs = many.join(one, how="inner").reset_index()
    gains = {}
    for (platform, precision, t), group in pairs.groupby(["platform", "precision", "_threads"]):
        if len(group) >= MIN_GAIN_PAIRS:
            curve = IsotonicRegression(increasing=True, out_of_bounds="clip")
            gains[(platform, precision, int(t))] = curve.fit(group["_x"], group["_log"] - group["_one"])
    return gains


def gain_limits(gains: dict[GainKey, IsotonicRegression], features: pd.DataFrame) -> pd.Series:
    """Per row: the log gain over one thread that training configurations with as much work per call reached at its
    platform, precision and thread count; NaN where no curve was fitted or the work per call is unknown."""
    out = pd.Series(np.nan, index=features.index, dtype=float)
    if not gains:
        return out
    x = log_work_per_call(features)
    threads = numeric_column(features, "threads").fillna(0).astype(int)
    keys = pd.Series(list(zip(features["platform"].astype(str), features["precision"].astype(str), threads,
                              strict=True)), index=features.index)
    for key, curve in gains.items():
        rows = (keys == key) & np.isfinite(x)
        if rows.any():
            out[rows] = curve.predict(x[rows].to_numpy())
    return out
