"""Throughput on a steady scale: each result's normalised throughput (items per call of the machine reference, from
the round-paired 10th percentiles, kit.runners.rounds) expressed in items/s at its machine's typical reference speed
(at the thread count the reference ran at).

A shared machine drifts: the same configuration measured at a fast minute and at a slow one differs by far more than
the model explains. The reference measured in the same rounds drifts with it, so the ratio does not; dividing by the
machine's median reference time (over its stored rounds at the same thread count) puts every result of a machine on
one scale, in items/s.
A prediction on that scale is turned into today's absolute figure with the reference measured today:
`absolute = steady x typical reference seconds / today's reference seconds` (`to_absolute`, `to_steady`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import extra_dict

STEADY_COLUMN = "steady_throughput_items_per_s"
MEASURED_COLUMN = "measured_throughput_items_per_s"  # the mean-latency throughput the steady frame replaces


def reference_seconds(frame: pd.DataFrame) -> pd.Series:
    """Per row: the median of the machine reference's per-round 10th percentiles measured beside it (NaN when the
    result was not measured in rounds with a reference)."""
    def median(extra: object) -> float:
        rounds = extra_dict(extra).get("rounds") or {}
        values = [v for v in rounds.get("reference_round_p10_s") or [] if v and v > 0]
        return float(np.median(values)) if values else np.nan

    return frame["extra"].map(median).astype(float) if "extra" in frame else pd.Series(np.nan, index=frame.index)


def machine_column(frame: pd.DataFrame) -> pd.Series:
    """Per row: the machine it was measured on (hardware id, else environment id)."""
    for column in ("hardware_id", "env_id"):
        if column in frame:
            return frame[column].astype(str)
    raise ConfigError("results without hardware_id or env_id: the machine of a result is unknown")


def reference_group(frame: pd.DataFrame) -> pd.Series:
    """Per row: the machine and the thread count its reference ran at (the rounds run the reference at the
    configurations' threads, so a 2-thread reference call takes about half a 1-thread one); 'default' where the
    result set no thread count."""
    threads = (pd.to_numeric(frame["threads"], errors="coerce") if "threads" in frame
               else pd.Series(np.nan, index=frame.index))
    labels = threads.map(lambda t: "default" if pd.isna(t) else str(int(t)))
    return machine_column(frame) + "|threads=" + labels


def typical_reference_seconds(frame: pd.DataFrame) -> pd.Series:
    """Per row: the typical time of the reference it was measured beside, the median of reference_seconds over the
    rows of its machine and thread count (`reference_group`)."""
    seconds = reference_seconds(frame)
    groups = reference_group(frame)
    return groups.map(seconds.groupby(groups).median())


def to_absolute(steady: float | pd.Series, typical_s: float | pd.Series,
                today_s: float | pd.Series) -> float | pd.Series:
    """A steady throughput as the absolute throughput at today's reference speed."""
    return steady * typical_s / today_s


def to_steady(absolute: float | pd.Series, typical_s: float | pd.Series,
              today_s: float | pd.Series) -> float | pd.Series:
    """An absolute throughput measured at today's reference speed, on the steady scale (inverse of to_absolute)."""
    return absolute * today_s / typical_s


def steady_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that have a normalised throughput, with `throughput_items_per_s` replaced by the steady throughput
    (the measured one kept in MEASURED_COLUMN, the steady one also in STEADY_COLUMN), so the predictor and its
    validation run unchanged on the steady scale; `attrs['n_left_out']` counts rows without one."""
    normalised = (pd.to_numeric(frame["normalised_throughput"], errors="coerce") if "normalised_throughput" in frame
                  else pd.Series(np.nan, index=frame.index))
    steady = normalised / typical_reference_seconds(frame)
    keep = steady.gt(0) & np.isfinite(steady)
    out = frame[keep].assign(**{MEASURED_COLUMN: frame.loc[keep, "throughput_items_per_s"],
                                STEADY_COLUMN: steady[keep], "throughput_items_per_s": steady[keep]})
    out.attrs = {**frame.attrs, "n_left_out": int((~keep).sum())}
    return out


def validate_steady(frame: pd.DataFrame, template: Any) -> Any:
    """Leave-one-family-out validation of throughput on the steady scale (the rows with a normalised throughput),
    every fold fitted with the template's settings; None when no row has one."""
    from kit.predict.validation import validate_throughput

    steady = steady_frame(frame)
    return validate_throughput(steady, template) if not steady.empty else None


BUDGET_COLUMNS = ["n", "predictor_mape", "repeated", "predictor_on_repeated_mape", "repeat_mape", "ratio_to_floor"]


def steady_budget(validation: Any, frame: pd.DataFrame, measurements: pd.DataFrame,
                  by: tuple[str, ...] = ("platform", "threads")) -> pd.DataFrame:
    """Per setting (platform and thread count): the predictor's held-out MAPE on the steady scale (`validate_steady`),
    on all rows and on the configurations measured more than once, beside the normalised repeat floor there (each
    measurement's normalised throughput against the mean of its configuration's other measurements) and the ratio of
    the two (the goal: at most 1.5). Empty without a steady validation."""
    from kit.predict.model import accuracy
    from kit.predict.remeasure import configuration_key

    if validation is None:
        return pd.DataFrame(columns=[*by, *BUDGET_COLUMNS]).set_index(list(by))
    p = validation.predictions
    rows = frame.loc[p.index]
    speed = pd.to_numeric(measurements.get("normalised_throughput"), errors="coerce")
    keys = configuration_key(measurements)[speed > 0]
    speed = speed[speed > 0]
    count, total = keys.map(keys.value_counts()), speed.groupby(keys).transform("sum")
    repeated = count >= 2
    others = (total - speed)[repeated] / (count[repeated] - 1)
    setting, row_setting = _setting(measurements.loc[others.index], by), _setting(rows, by)
    on_repeats = configuration_key(rows).isin(set(keys[repeated]))
    table = []
    for name, held in p.groupby(row_setting):
        floor = accuracy(speed.loc[others.index][setting == name], others[setting == name])
        again = held[on_repeats.loc[held.index]]
        mine = accuracy(again["measured"], again["pred"])
        table.append({**dict(zip(by, name.split("|"), strict=True)), "n": len(held),
                      "predictor_mape": accuracy(held["measured"], held["pred"])["mape"], "repeated": len(again),
                      "predictor_on_repeated_mape": mine["mape"], "repeat_mape": floor["mape"],
                      "ratio_to_floor": mine["mape"] / floor["mape"] if floor["n"] and floor["mape"] else np.nan})
    return pd.DataFrame(table, columns=[*by, *BUDGET_COLUMNS]).set_index(list(by))


def _setting(frame: pd.DataFrame, by: tuple[str, ...]) -> pd.Series:
    """Per row, its values of the `by` columns joined by '|' (a Series even when the frame is empty)."""
    values = ["|".join(map(str, row)) for row in frame.reindex(columns=list(by)).itertuples(index=False)]
    return pd.Series(values, index=frame.index, dtype=object)


def steady_scores(frame: pd.DataFrame, template: Any, repeats: pd.DataFrame | None = None,
                  measured: Any = None, steady_validation: Any = None) -> pd.DataFrame:
    """Leave-one-family-out throughput scores of the predictor on the measured scale and on the steady scale, on the
    same rows (those with a normalised throughput), beside the repeat floor of each scale from kit.predict
    .repeat_table (a second measurement of a configuration against its others; NaN where nothing repeats).
    `measured`: the throughput Validation of the whole frame, used for the measured scale when every row has a
    normalised throughput (the same rows, so the same folds); `steady_validation`: `validate_steady`'s, reused."""
    from kit.predict.budget import REPEAT_SPEEDS
    from kit.predict.validation import scores_table, validate_throughput

    steady = steady_frame(frame)
    if steady.empty:
        return pd.DataFrame(columns=["scale", "n", "mape", "median_ape", "within_10", "coverage", "repeat_mape"])
    floors = {column: repeats["mape"].get(label, np.nan) for label, column in REPEAT_SPEEDS.items()
              } if repeats is not None else {}

    def validation(data: pd.DataFrame) -> dict[str, Any]:
        return {"throughput": validate_throughput(data, template)}

    same_rows = steady.attrs["n_left_out"] == 0 and measured is not None
    rows = []
    for scale, validations, floor in (
            ("measured", {"throughput": measured} if same_rows else validation(frame.loc[steady.index]),
             "throughput_items_per_s"),
            ("steady", {"throughput": steady_validation} if steady_validation is not None else validation(steady),
             "normalised_throughput")):
        score = scores_table(validations).loc[("throughput", "predictor")]
        rows.append({"scale": scale, **score[["n", "mape", "median_ape", "within_10", "coverage"]].to_dict(),
                     "repeat_mape": floors.get(floor, np.nan)})
    return pd.DataFrame(rows).set_index("scale")
