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
from kit.features import TARGETS, variant_key
from kit.predict.model import Validation, accuracy
from kit.predict.remeasure import configuration_key

SETTING_COLUMNS = ["platform", "precision", "mode", "threads"]


def other_repeats_mean(frame: pd.DataFrame, target: str = "throughput") -> pd.Series:
    """Per row of a configuration measured more than once (same configuration key, threads and machine): the mean of
    the configuration's other measurements of the target. Rows measured once are left out."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    values = pd.to_numeric(frame[TARGETS[target]], errors="coerce")
    groups = values.groupby(configuration_key(frame))
    count, total = groups.transform("count"), groups.transform("sum")
    repeated = count >= 2
    return ((total - values) / (count - 1))[repeated]


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


def error_budget(validation: Validation, frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of the held-out predictions, of the same corrected by the other rows of their family or setting, and
    of a repeated measurement against the predictor on the configurations measured more than once.

    `frame` is the validated frame (its index matches the validation's predictions)."""
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
    repeats = other_repeats_mean(rows, validation.target)
    noisy = rows.get("noisy", pd.Series(False, index=rows.index)).fillna(False).astype(bool)
    some_noisy = noisy.groupby(configuration_key(rows)).transform("any").loc[repeats.index]
    for label, part in (("all converged", repeats[~some_noisy]), ("some noisy", repeats[some_noisy])):
        table += [(f"predictor, on configurations measured again ({label})", p.loc[part.index, "measured"],
                   p.loc[part.index, "pred"]),
                  (f"another measurement of the same configuration ({label})", p.loc[part.index, "measured"], part)]
    return pd.DataFrame([{"estimate": name, **accuracy(measured, predicted)} for name, measured, predicted in table]
                        ).set_index("estimate")
