"""Intervals for measured figures: where a measurement of the same configuration in another run lands.

A result's median CI says how well one run pinned its own median. A shared machine moves between runs by far more than
that: on the study store a second run of a configuration lands inside the first run's CI 13-23 % of the time, and
inside the spread of the first run's rounds about half of the time. So the interval a measured figure carries is the
spread between runs that the store itself holds: for every configuration measured in two or more runs, the size of the
log ratio between each two consecutive runs of it; the REPEAT_QUANTILE of those sizes is how far a second measurement
lands from a first, 9 times in 10 (`repeat_width`: a t bound where the pairs are few). It is taken over the pairs of
the figure's own setting (platform, thread count and machine) when they number at least MIN_PAIRS, else over all pairs
of its machine; `interval_from` says which, and how many pairs. Where the store measured nothing twice on that
machine, the figure keeps its median CI from within its run, and `interval_from` says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats as sps

from kit.predict.remeasure import configuration_key
from kit.predict.steady import machine_column

REPEAT_QUANTILE = 0.9  # the same coverage as the predictor's intervals
MIN_PAIRS = 8  # pairs of runs a setting needs before its own spread is used
QUANTILE_PAIRS = 30  # pairs from which their conformal quantile is the width (below: a t bound from their spread)
INTERVAL_FROM = {"setting": "repeats of this setting", "machine": "repeats on this machine",
                 "run": "within one run", "predicted": "predictor"}


def _machine(frame: pd.DataFrame) -> pd.Series:
    """Per row: its machine (`machine_column`: hardware id, else environment id), else one unnamed machine."""
    if {"hardware_id", "env_id"} & set(frame):
        return machine_column(frame)
    return pd.Series("", index=frame.index)


def setting_of(frame: pd.DataFrame) -> pd.Series:
    """Per row: its platform, intra-op thread count (0: the default) and machine, the unit repeats are pooled in."""
    threads = (pd.to_numeric(frame["threads"], errors="coerce").fillna(0).astype(int).astype(str)
               if "threads" in frame else "0")
    return frame["platform"].astype(str) + "|threads" + threads + "|" + _machine(frame)


def repeat_pairs(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each two consecutive runs of one configuration (on one machine; a run's latest measurement of it stands for
    the run, and runs follow each other by `created_at`, else by run id): their setting, machine and the size of the
    log ratio of `column` between them. Consecutive runs keep a store that tracks the same configurations run after
    run to one pair per run, and are what a next run is. None where the frame does not say configuration and run."""
    if not {"config_key", "run_id", "platform", column} <= set(frame):
        return pd.DataFrame(columns=["setting", "machine", "size"])
    values = pd.to_numeric(frame[column], errors="coerce")
    ok = values.gt(0) & np.isfinite(values)
    order = frame["created_at"].astype(str) if "created_at" in frame else frame["run_id"].astype(str)
    rows = pd.DataFrame({"key": configuration_key(frame) + "|" + _machine(frame), "run": frame["run_id"].astype(str),
                         "order": order, "setting": setting_of(frame), "machine": _machine(frame),
                         "log": np.log(values.where(ok))})[ok]
    rows = rows.sort_values(["key", "order"], kind="stable").drop_duplicates(["key", "run"], keep="last")
    step = rows.groupby("key")["log"].diff().abs()
    pairs = rows[step.notna()].assign(size=step[step.notna()])
    return pairs[["setting", "machine", "size"]].reset_index(drop=True)


def repeat_width(sizes: pd.Series) -> float:
    """How far a second run lands from a first, REPEAT_QUANTILE of the time, from the sizes of pairs' log ratios: from
    QUANTILE_PAIRS pairs on, their conformal quantile (the ceil((n + 1) q)-th smallest, which holds a new pair at
    least q of the time whatever their distribution); below that, Student's t prediction bound from their root mean
    square (n degrees of freedom: the ratio's centre is known to be 1), which a few pairs do not make too narrow."""
    sizes = np.sort(np.asarray(sizes, dtype=float))
    if sizes.size >= QUANTILE_PAIRS:
        return float(sizes[math.ceil((sizes.size + 1) * REPEAT_QUANTILE) - 1])
    return float(sps.t.ppf(0.5 + REPEAT_QUANTILE / 2, sizes.size) * np.sqrt(np.mean(sizes**2)))


def repeat_widths(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per setting with repeats on its machine: the log half-width a second run stays within REPEAT_QUANTILE of the
    time, the pairs it comes from, and `interval_from`: whether they are the setting's own or its machine's, and how
    many."""
    pairs = repeat_pairs(frame, column)
    if pairs.empty:
        return pd.DataFrame(columns=["width", "pairs", "interval_from"], index=pd.Index([], name="setting"))
    own = pairs.groupby("setting")["size"].agg(width=repeat_width, pairs="count")
    machine = pairs.groupby("machine")["size"].agg(width=repeat_width, pairs="count")
    known = pd.DataFrame({"setting": setting_of(frame), "machine": _machine(frame)}).drop_duplicates("setting")
    rows = []
    for setting, machine_id in zip(known["setting"], known["machine"], strict=True):
        if setting in own.index and own.at[setting, "pairs"] >= MIN_PAIRS:
            rows.append((setting, *own.loc[setting], "setting"))
        elif machine_id in machine.index:
            rows.append((setting, *machine.loc[machine_id], "machine"))
    out = pd.DataFrame(rows, columns=["setting", "width", "pairs", "kind"]).astype({"pairs": int})
    labels = [f"{INTERVAL_FROM[kind]} ({n} pair{'s' * (n > 1)})" for kind, n in zip(out["kind"], out["pairs"],
                                                                                     strict=True)]
    return out.drop(columns="kind").assign(interval_from=labels).set_index("setting")


def row_widths(rows: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per row: the log half-width of its setting from the repeats of `column` in `frame`, and where it comes from
    (NaN where the frame holds no repeats on the row's machine)."""
    widths = repeat_widths(frame, column)
    settings = setting_of(rows)
    return pd.DataFrame({"width": settings.map(widths["width"]).astype(float),
                         "interval_from": settings.map(widths["interval_from"])}, index=rows.index)


def measured_intervals(found: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """For measured rows `found` (a result per row): throughput and latency intervals from the repeats between runs in
    `frame` (`repeat_widths`), else the median's CI within the row's run; and where each comes from."""
    throughput, latency = (pd.to_numeric(found[c], errors="coerce") for c in ("throughput_items_per_s",
                                                                               "latency_p50_s"))
    # within one run: throughput is batch / mean latency, its interval takes the relative width of the median's CI
    out = pd.DataFrame({"throughput_low": throughput * latency / found["ci_high_s"],
                        "throughput_high": throughput * latency / found["ci_low_s"],
                        "latency_low": found["ci_low_s"], "latency_high": found["ci_high_s"],
                        "interval_from": INTERVAL_FROM["run"]}, index=found.index)
    for target, point, column in (("throughput", throughput, "throughput_items_per_s"),
                                  ("latency", latency, "latency_p50_s")):
        widths = row_widths(found, frame, column)
        has = widths["width"].notna()
        out.loc[has, f"{target}_low"] = (point * np.exp(-widths["width"]))[has]
        out.loc[has, f"{target}_high"] = (point * np.exp(widths["width"]))[has]
        out.loc[has, "interval_from"] = widths.loc[has, "interval_from"]
    return out
