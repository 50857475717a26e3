"""Ablations: the leave-one-family-out accuracy of the predictor with some of its facts withheld, on the same rows
and folds, so that whether a term earns its place is a ratio measured in one run, not a comparison across runs;
and the same with a section of the training rows withheld (`section_table`), to judge a part of the sweep.

A fact is withheld by removing it from every row (its column and its stored JSON), as if it had never been counted;
the features are then derived again, so the analytic baselines fall back where they would without it (OpenVINO's
kernels to torch's aten calls, its written bytes to torch's eager activation bytes, thin products or convolutions
to none).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import (
    DEPTHWISE_COSTS,
    KERNEL_BYTES_COLUMN,
    KERNEL_COLUMN,
    SHAPE_COLUMNS,
    SLOW_KERNEL_FACTS,
    extra_dict,
    feature_frame,
)
from kit.predict.model import Predictor, accuracy, hold_out_groups, leave_one_group_out

# fact -> (its column, where it is stored in `extra`: a top-level key, or a key of extra["forward_profile"])
# (None, None): a fact of the machine's peaks, not of the result
FACTS = {KERNEL_COLUMN: ("runtime_layers", None), KERNEL_BYTES_COLUMN: ("runtime_output_bytes", None),
         **{column: (fact, None) for column, fact in SLOW_KERNEL_FACTS.items()},
         "matmul_shapes": ("matmul_shapes", "forward_profile"), "conv_shapes": ("conv_shapes", "forward_profile"),
         DEPTHWISE_COSTS: (None, None)}
OBJECT_FACTS = (*SHAPE_COLUMNS, DEPTHWISE_COSTS)  # emptied with None, the others with NaN


def check_facts(facts: list[str]) -> None:
    """Raise ConfigError naming any fact that cannot be withheld."""
    unknown = [f for f in facts if f not in FACTS]
    if unknown:
        raise ConfigError(f"unknown fact(s) to withhold {unknown}; known: {', '.join(FACTS)}")


def _strip(extra: object, facts: list[str]) -> str:
    out = dict(extra_dict(extra))
    for fact in facts:
        key, parent = FACTS[fact]
        if key is None:
            continue
        if parent is None:
            out.pop(key, None)
        elif isinstance(out.get(parent), dict):
            out[parent] = {k: v for k, v in out[parent].items() if k != key}
    return json.dumps(out)


def without_facts(frame: pd.DataFrame, facts: list[str]) -> pd.DataFrame:
    """The frame as if these facts had never been counted (columns emptied, stored JSON stripped), features derived
    again."""
    check_facts(facts)
    if not facts:
        return frame
    out = frame.assign(**{f: (None if f in OBJECT_FACTS else np.nan) for f in facts if f in frame})
    if "extra" in out:
        out["extra"] = out["extra"].map(lambda e: _strip(e, facts))
    return feature_frame(out)


def ablation_table(frame: pd.DataFrame, variants: dict[str, list[str]], target: str = "throughput",
                   by: tuple[str, ...] = ("platform", "threads"),
                   make_predictor: Callable[[], Predictor] | None = None,
                   extra_training: pd.DataFrame | None = None, held_out: list[str] | None = None) -> pd.DataFrame:
    """Per variant (a name and the facts it withholds): leave-one-family-out MAPE and share within 10 % of the
    target, overall and per value of `by` (MAPE), each variant on the same rows and folds; with `held_out`
    families, those held out together instead (trained on the others, e.g. the fresh families from the zoo's).
    `extra_training` (e.g. coverage rows, `kit.predict.architectures.architecture_rows`) joins every fold's training
    data with the same facts withheld, and is never scored."""
    for facts in variants.values():
        check_facts(facts)
    rows = []
    for name, facts in variants.items():
        data = without_facts(frame, facts)
        extra = without_facts(extra_training, facts) if extra_training is not None else None
        if held_out:
            predictions = hold_out_groups(data, held_out, target, "family", make_predictor, extra).predictions
        else:
            predictions = leave_one_group_out(data, target, make_predictor=make_predictor,
                                              extra_training=extra).predictions
        rows.append({"variant": name, "withheld": ", ".join(facts) or "none", **_scores(predictions, data, by)})
    return pd.DataFrame(rows)


SCORED = ("outside", "all")  # section_table: the rows outside the section, or every row of the held-out family


def section_table(frame: pd.DataFrame, section: pd.Series, target: str = "throughput",
                  by: tuple[str, ...] = ("platform", "threads"),
                  make_predictor: Callable[[], Predictor] | None = None, scored: str = "outside") -> pd.DataFrame:
    """Is a section of the training rows (a boolean mask on the frame, e.g. one part of a sweep) worth having?
    Leave-one-family-out MAPE and share within 10 % with the section's rows in the training data and without them,
    both scored on the same rows. scored='outside': the rows outside the section (a section's rows are never scored).
    scored='all': every row of the held-out family, its section rows too (with 'mape section' on those alone), each
    fold trained without the section's rows of the other families in the second way: what the section teaches about
    rows like its own, where the section is the only source of such rows."""
    if scored not in SCORED:
        raise ConfigError(f"unknown scored {scored!r}; known: {', '.join(SCORED)}")
    inside = section.reindex(frame.index, fill_value=False).astype(bool)
    if inside.all():
        raise ConfigError("the section holds every row: no rows are left to score")
    rows = []
    for way, keep in (("with the section", pd.Series(True, index=frame.index)), ("without the section", ~inside)):
        if scored == "outside":
            predictions = leave_one_group_out(frame[keep], target, make_predictor=make_predictor).predictions
            predictions = predictions[~inside.loc[predictions.index]]
            extra = {}
        else:
            predictions = _each_held_out(frame, keep, target, make_predictor)
            held = predictions[inside.loc[predictions.index]]
            extra = {"mape section": accuracy(held["measured"], held["pred"])["mape"] if len(held) else np.nan}
        rows.append({"variant": way, "section_rows": int(inside.sum()), **_scores(predictions, frame, by), **extra})
    return pd.DataFrame(rows)


def _each_held_out(frame: pd.DataFrame, keep: pd.Series, target: str,
                   make_predictor: Callable[[], Predictor] | None) -> pd.DataFrame:
    """Each family held out in turn, trained on the other families' rows where `keep`, scored on all of its own."""
    families = frame["family"].astype(str)
    parts = [hold_out_groups(frame[keep | (families == family)], [family], target, "family", make_predictor)
             .predictions for family in sorted(families.unique())]
    return pd.concat(parts)


def _scores(predictions: pd.DataFrame, data: pd.DataFrame, by: tuple[str, ...]) -> dict[str, float]:
    """n, MAPE and share within 10 % of the predictions, and MAPE per value of the `by` columns of their rows."""
    row = {k: v for k, v in accuracy(predictions["measured"], predictions["pred"]).items()
           if k in ("n", "mape", "within_10")}
    columns = [c for c in by if c in data]
    if columns:
        labels = data.loc[predictions.index, columns].map(_label).agg("/".join, axis=1)
        for label, part in predictions.groupby(labels):
            row[f"mape {label}"] = accuracy(part["measured"], part["pred"])["mape"]
    return row


def _label(value: object) -> str:
    """A group value as text: whole floats without their '.0' (thread counts), missing as '-'."""
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:g}"
    return str(value)
