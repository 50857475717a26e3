"""Throughput and latency on a steady scale: each result's speed relative to the machine reference measured in the
same rounds (kit.runners.rounds), expressed in the target's units at its machine's typical reference speed (at the
thread count the reference ran at).

A shared machine drifts: the same configuration measured at a fast minute and at a slow one differs by far more than
the model explains. The reference measured in the same rounds drifts with it, so the ratio does not. Throughput: the
normalised throughput (items per reference call, from the round-paired 10th percentiles) divided by the machine's
median reference 10th percentile gives items/s. Latency: the normalised latency (the model's median call in
reference median calls, from the round-paired medians) times the machine's median reference median gives seconds.
Either puts every result of a machine on one scale.
A prediction on that scale is turned into today's absolute figure with the reference measured today (`to_absolute`,
`to_steady`): throughput scales with typical / today's reference seconds, latency with today's / typical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kit.analysis.stability import REFERENCE_KEYS
from kit.errors import ConfigError
from kit.predict.features import TARGETS, extra_dict

STEADY_COLUMN = "steady_throughput_items_per_s"
MEASURED_COLUMN = "measured_throughput_items_per_s"  # the mean-latency throughput the steady frame replaces
STEADY_COLUMNS = {"throughput": STEADY_COLUMN, "latency": "steady_latency_p50_s"}
MEASURED_COLUMNS = {"throughput": MEASURED_COLUMN, "latency": "measured_latency_p50_s"}
# the reference statistic each target is normalised by: the 10th percentiles for throughput, the medians for latency
REFERENCE_STATISTIC = {"throughput": "p10", "latency": "median"}
# what `normalised` reads: a results column (throughput), a key of extra['rounds'] (latency)
NORMALISED_COLUMNS = {"throughput": "normalised_throughput", "latency": "normalised_latency"}


def _check_target(target: str) -> None:
    if target not in STEADY_COLUMNS:
        raise ConfigError(f"no steady scale for target {target!r}; known: {', '.join(STEADY_COLUMNS)}")


def reference_seconds(frame: pd.DataFrame, statistic: str = "p10") -> pd.Series:
    """Per row: the median of the machine reference's per-round statistic (p10 or median) measured beside it (NaN
    when the result was not measured in rounds with a reference)."""
    key = REFERENCE_KEYS[statistic]

    def median(extra: object) -> float:
        rounds = extra_dict(extra).get("rounds") or {}
        values = [v for v in rounds.get(key) or [] if v and v > 0]
        return float(np.median(values)) if values else np.nan

    return frame["extra"].map(median).astype(float) if "extra" in frame else pd.Series(np.nan, index=frame.index)


def normalised(frame: pd.DataFrame, target: str = "throughput") -> pd.Series:
    """Per row: the result's speed relative to the reference beside it, NaN where it has none: the normalised
    throughput (items per reference call), or the normalised latency (the median call in reference median calls,
    stored in extra['rounds'] by the rounds or by `benchkit upgrade`)."""
    _check_target(target)
    if target == "throughput":
        values = frame["normalised_throughput"] if "normalised_throughput" in frame else np.nan
        return pd.to_numeric(pd.Series(values, index=frame.index), errors="coerce")
    if "extra" not in frame:
        return pd.Series(np.nan, index=frame.index)
    return frame["extra"].map(lambda e: (extra_dict(e).get("rounds") or {}).get("normalised_latency")).astype(float)


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


def typical_reference_seconds(frame: pd.DataFrame, statistic: str = "p10") -> pd.Series:
    """Per row: the typical time of the reference it was measured beside, the median of reference_seconds over the
    rows of its machine and thread count (`reference_group`)."""
    seconds = reference_seconds(frame, statistic)
    groups = reference_group(frame)
    return groups.map(seconds.groupby(groups).median())


def typical_reference_of(rows: pd.DataFrame, measured: pd.DataFrame, statistic: str = "p10") -> pd.Series:
    """Per row of `rows` (e.g. unmeasured candidates, which carry no rounds of their own): the typical reference
    seconds of its machine and thread count among the `measured` rows (`typical_reference_seconds`); NaN where they
    hold none."""
    if rows.empty or measured.empty:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    table = typical_reference_seconds(measured, statistic).groupby(reference_group(measured)).first()
    return reference_group(rows).map(table).astype(float)


def to_absolute(steady: float | pd.Series, typical_s: float | pd.Series, today_s: float | pd.Series,
                target: str = "throughput") -> float | pd.Series:
    """A steady throughput (or latency) as the absolute one at today's reference speed."""
    _check_target(target)
    return steady * typical_s / today_s if target == "throughput" else steady * today_s / typical_s


def to_steady(absolute: float | pd.Series, typical_s: float | pd.Series, today_s: float | pd.Series,
              target: str = "throughput") -> float | pd.Series:
    """An absolute throughput (or latency) measured at today's reference speed, on the steady scale (the inverse of
    to_absolute)."""
    _check_target(target)
    return absolute * today_s / typical_s if target == "throughput" else absolute * typical_s / today_s


def at_reference(frame: pd.DataFrame, seconds: pd.Series, target: str = "throughput") -> pd.Series:
    """Per row: the normalised target in its units at a reference taking these seconds per call (items/s: the
    normalised throughput / seconds; seconds: the normalised latency x seconds)."""
    speed = normalised(frame, target)
    return speed / seconds if target == "throughput" else speed * seconds


def steady_values(frame: pd.DataFrame, target: str = "throughput") -> pd.Series:
    """Per row: the target on the steady scale (items/s or seconds at the machine's typical reference speed), NaN
    where the row was measured without the reference."""
    _check_target(target)
    return at_reference(frame, typical_reference_seconds(frame, REFERENCE_STATISTIC[target]), target)


def steady_frame(frame: pd.DataFrame, target: str = "throughput") -> pd.DataFrame:
    """The rows that have the target on the steady scale (`steady_values`), with the target's column replaced by it
    (the measured value kept in MEASURED_COLUMNS[target], the steady one also in STEADY_COLUMNS[target]; for latency
    the median's CI moved with it), so the predictor, its validation and the recommender run unchanged on the steady
    scale; `attrs['n_left_out']` counts rows without one."""
    steady = steady_values(frame, target)
    keep = steady.gt(0) & np.isfinite(steady)
    column = TARGETS[target]
    out = frame[keep].assign(**{MEASURED_COLUMNS[target]: frame.loc[keep, column],
                                STEADY_COLUMNS[target]: steady[keep], column: steady[keep]})
    if target == "latency":
        factor = steady[keep] / pd.to_numeric(frame.loc[keep, column], errors="coerce")
        out = out.assign(**{c: frame.loc[keep, c] * factor for c in ("ci_low_s", "ci_high_s") if c in frame})
    out.attrs = {**frame.attrs, "n_left_out": int((~keep).sum())}
    return out


def steady_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with both throughput and latency on the steady scale, both targets replaced (`steady_frame`): what
    a recommendation on the steady scale learns from and ranks."""
    return steady_frame(steady_frame(frame, "throughput"), "latency")


def typical_of(frame: pd.DataFrame, machine: str, threads: int) -> dict[str, float]:
    """The typical reference seconds of one machine and thread count, per statistic ({'p10': s, 'median': s});
    ConfigError when the store holds no result of them measured beside the reference."""
    labels = reference_group(frame)
    label = f"{machine}|threads={int(threads)}"
    typical = {}
    for statistic in ("p10", "median"):
        seconds = typical_reference_seconds(frame, statistic)[labels == label].dropna()
        if seconds.empty:
            known = sorted(set(labels[reference_seconds(frame).notna()]))
            raise ConfigError(f"the store holds no results of this machine at {threads} thread(s) measured beside the "
                              f"machine reference ({label}); known: {', '.join(known) or 'none'}")
        typical[statistic] = float(seconds.iloc[0])
    return typical


def factors_to_today(typical: dict[str, float], today: dict[str, float]) -> dict[str, float]:
    """What turns steady figures into today's (`to_absolute` of 1): throughput x typical / today's reference 10th
    percentile, latency x today's / typical reference median. `typical`: `typical_of`'s; `today`: the reference
    measured now ({'p10': s, 'median': s}, kit.runners.reference.reference_now)."""
    return {target: float(to_absolute(1.0, typical[statistic], today[statistic], target))
            for target, statistic in REFERENCE_STATISTIC.items()}


def validate_steady(frame: pd.DataFrame, template: Any, target: str = "throughput") -> Any:
    """Leave-one-family-out validation of the target on the steady scale (the rows measured beside the reference),
    every fold fitted with the template's settings; None when no row has one."""
    from kit.predict.validation import validate_target

    steady = steady_frame(frame, target)
    return validate_target(steady, template, target) if not steady.empty else None


BUDGET_COLUMNS = ["n", "predictor_mape", "repeated", "predictor_on_repeated_mape", "repeat_mape", "ratio_to_floor"]


def steady_budget(validation: Any, frame: pd.DataFrame, measurements: pd.DataFrame,
                  by: tuple[str, ...] = ("platform", "threads")) -> pd.DataFrame:
    """Per setting (platform and thread count): the predictor's held-out MAPE on the steady scale (`validate_steady`,
    of its target), on all rows and on the configurations measured more than once, beside the normalised repeat
    floor there (each measurement's normalised throughput or latency against the mean of its configuration's other
    measurements) and the ratio of the two (the goal: at most 1.5). Empty without a steady validation."""
    from kit.predict.model import accuracy
    from kit.predict.remeasure import configuration_key

    if validation is None:
        return pd.DataFrame(columns=[*by, *BUDGET_COLUMNS]).set_index(list(by))
    p = validation.predictions
    rows = frame.loc[p.index]
    speed = normalised(measurements, validation.target)
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
                  measured: Any = None, steady_validation: Any = None, target: str = "throughput") -> pd.DataFrame:
    """Leave-one-family-out scores of one target (throughput or latency) on the measured scale and on the steady
    scale, on the same rows (those measured beside the reference), beside the repeat floor of each scale from
    kit.predict.repeat_table of that target (a second measurement of a configuration against its others; NaN where
    nothing repeats). `measured`: the target's Validation of the whole frame, used for the measured scale when every
    row is on the steady scale (the same rows, so the same folds); `steady_validation`: `validate_steady`'s, reused."""
    from kit.predict.budget import repeat_columns
    from kit.predict.validation import scores_table, validate_target

    steady = steady_frame(frame, target)
    if steady.empty:
        return pd.DataFrame(columns=["scale", "n", "mape", "median_ape", "within_10", "coverage", "repeat_mape"])
    floors = {column: repeats["mape"].get(label, np.nan) for label, column in repeat_columns(target).items()
              } if repeats is not None else {}

    def validation(data: pd.DataFrame) -> dict[str, Any]:
        return {target: validate_target(data, template, target)}

    same_rows = steady.attrs["n_left_out"] == 0 and measured is not None
    rows = []
    for scale, validations, floor in (
            ("measured", {target: measured} if same_rows else validation(frame.loc[steady.index]), TARGETS[target]),
            ("steady", {target: steady_validation} if steady_validation is not None else validation(steady),
             NORMALISED_COLUMNS[target])):
        score = scores_table(validations).loc[(target, "predictor")]
        rows.append({"scale": scale, **score[["n", "mape", "median_ape", "within_10", "coverage"]].to_dict(),
                     "repeat_mape": floors.get(floor, np.nan)})
    return pd.DataFrame(rows).set_index("scale")


def held_out_scales(frame: pd.DataFrame, held_out: list[str], template: Any = None) -> pd.DataFrame:
    """The named groups held out together (`validate_held_out`, `held_out_table`) on the measured and on the steady
    scale, on the same rows (those with throughput and latency on the steady scale), index (scale, target, group):
    throughput and latency of the template's targets, both scales; nothing on the steady scale when no row has one."""
    from dataclasses import replace

    from kit.predict.model import Predictor
    from kit.predict.validation import HELD_OUT_COLUMNS, held_out_table, validate_held_out

    template = template or Predictor()
    targets = tuple(t for t in template.targets if t in STEADY_COLUMNS)
    if not held_out or not targets:
        return pd.DataFrame(columns=HELD_OUT_COLUMNS[2:],
                            index=pd.MultiIndex.from_tuples([], names=["scale", "target", "group"]))
    template = replace(template, targets=targets, models={}, train_groups=set())
    steady = steady_data(frame)
    scales = {"measured": frame.loc[steady.index] if len(steady) else frame}
    if len(steady):
        scales["steady"] = steady
    tables = {scale: held_out_table(validate_held_out(data, held_out, template)) for scale, data in scales.items()}
    return pd.concat(tables, names=["scale"])
