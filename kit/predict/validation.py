"""Validation tables of the predictor for notebooks and reports: held-out scores per target and family, the accuracy
goal, and predictions of unmeasured configurations with their intervals."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict.budget import repeat_floor
from kit.predict.data import SweepOutcome, check_batch_sizes
from kit.predict.features import (
    KERNEL_BYTES_COLUMN,
    SLOW_KERNEL_FACTS,
    TARGETS,
    feature_frame,
    model_facts,
    predictor_rows,
    variant_key,
)
from kit.predict.kernels import written_bytes_at
from kit.predict.model import Predictor, Validation, accuracy, hold_out_groups, interval_coverage, leave_one_group_out

MAPE_GOAL = 0.10  # the project's accuracy goal for held-out throughput
SHOWN_FEATURES = ["model", "family", "platform", "precision", "mode", "batch_size", "n_layers", "hidden_size",
                  "seq_len_effective", "image_size", "n_params", "flops_per_item", "peak_flops_per_s",
                  "throughput_items_per_s", "roofline_s", "roofline_efficiency"]
HELD_OUT_COLUMNS = ["target", "group", "n", "mape", "median_ape", "within_10", "within_15", "coverage", "n_train",
                    "method"]


def _fold_maker(template: Predictor, target: str) -> Callable[[], Predictor]:
    """A maker of unfitted predictors of one target with the template's settings."""
    return lambda: dataclasses.replace(template, targets=(target,), models={}, train_groups=set())


def validate_targets(frame: pd.DataFrame, template: Predictor | None = None) -> dict[str, Validation]:
    """Leave-one-group-out validation of each of the template's targets, every fold fitted with its settings."""
    template = template or Predictor()
    return {target: leave_one_group_out(frame, target, template.group_column, _fold_maker(template, target))
            for target in template.targets}


def validate_throughput(frame: pd.DataFrame, template: Predictor | None = None,
                        extra_training: pd.DataFrame | None = None) -> Validation:
    """Leave-one-group-out validation of throughput alone, every fold fitted with the template's settings;
    extra_training rows join every fold's training data but their own group's (`leave_one_group_out`)."""
    return validate_target(frame, template, "throughput", extra_training)


def validate_target(frame: pd.DataFrame, template: Predictor | None = None, target: str = "throughput",
                    extra_training: pd.DataFrame | None = None) -> Validation:
    """Leave-one-group-out validation of one target, every fold fitted with the template's settings (whatever
    targets the template itself predicts)."""
    template = template or Predictor()
    return leave_one_group_out(frame, target, template.group_column, _fold_maker(template, target),
                               extra_training=extra_training)


def validate_held_out(frame: pd.DataFrame, held_out: list[str], template: Predictor | None = None
                      ) -> dict[str, Validation]:
    """Each of the template's targets on the named groups, held out together (`hold_out_groups`): trained only on
    the other groups, e.g. the families the features were designed on. No groups named: nothing to score ({})."""
    if not held_out:
        return {}
    template = template or Predictor()
    return {target: hold_out_groups(frame, held_out, target, template.group_column, _fold_maker(template, target))
            for target in template.targets}


def held_out_table(validations: dict[str, Validation]) -> pd.DataFrame:
    """Accuracy per target on the held-out groups together ('all') and on each, the share of measurements inside
    their interval (`coverage`: an architecture unlike every training family can fall outside intervals that were
    calibrated on the training families), the rows trained on and the model chosen (an empty table when nothing was
    held out)."""
    rows = []
    for target, v in validations.items():
        fold = v.folds[0]
        parts = [("all", v.predictions), *v.predictions.groupby("group")]
        rows += [{"target": target, "group": group, **accuracy(held["measured"], held["pred"]),
                  "coverage": interval_coverage(held), "n_train": fold["n_train"], "method": fold["method"]}
                 for group, held in parts]
    return pd.DataFrame(rows, columns=HELD_OUT_COLUMNS).set_index(["target", "group"])


def check_held_out_families(families: list[str]) -> list[str]:
    """The names as a list, or a ConfigError naming those that are neither zoo families nor transformers model types
    (the family of a local folder outside the zoo, e.g. resnet)."""
    from transformers import CONFIG_MAPPING

    from kit.zoo import FAMILIES

    if not isinstance(families, list | tuple) or not all(isinstance(f, str) for f in families):
        raise ConfigError(f"held-out families must be a list of family names, got {families!r}")
    unknown = [f for f in families if f not in FAMILIES and f not in CONFIG_MAPPING]
    if unknown:
        raise ConfigError(f"unknown families {unknown} to hold out; known: {', '.join(FAMILIES)} or a transformers "
                          "model type of a local folder")
    return list(families)


def scores_table(validations: dict[str, Validation]) -> pd.DataFrame:
    """Held-out scores of every target: the predictor (with interval coverage) and the analytic baselines, with the
    held-out rows left unscored because their platform or precision is in no training row of their fold."""
    return pd.concat([v.scores().assign(target=t, n_folds=len(v.folds), n_unseen_setting=v.n_unseen_setting())
                      for t, v in validations.items()],
                     ignore_index=True).set_index(["target", "method"])


def per_group_table(validations: dict[str, Validation]) -> pd.DataFrame:
    """Held-out accuracy per target and group, with the rows trained on and the model chosen in that fold."""
    parts = []
    for target, v in validations.items():
        folds = pd.DataFrame(v.folds).rename(columns={"held_out": "group"})[["group", "n_train", "method"]]
        parts.append(v.per_group().merge(folds, on="group").assign(target=target))
    return pd.concat(parts, ignore_index=True).set_index(["target", "group"])


def per_value_table(validations: dict[str, Validation], frame: pd.DataFrame,
                    column: str | list[str] = "size") -> pd.DataFrame:
    """Held-out accuracy per target and value of a column (or combination of columns) of the validated frame, e.g.
    `size` (the zoo's real sizes against the data sweep's tiny variants) or ["platform", "threads"], with each
    group's share of the target's summed absolute percentage error: where the MAPE comes from."""
    columns = [column] if isinstance(column, str) else list(column)
    if not columns:
        raise ConfigError("per_value_table needs at least one column to split the accuracy by")
    for name in columns:
        if name not in frame:
            raise ConfigError(f"the frame has no column {name!r} to split the accuracy by")
    rows = []
    for target, v in validations.items():
        keys = [frame[c].reindex(v.predictions.index).astype(str) for c in columns]
        ape = (v.predictions["pred"] - v.predictions["measured"]).abs() / v.predictions["measured"]
        for value, held in v.predictions.groupby(keys):
            share = float(ape.loc[held.index].sum() / ape.sum()) if ape.sum() > 0 else math.nan
            rows.append({"target": target, **dict(zip(columns, value, strict=True)),
                         **accuracy(held["measured"], held["pred"]), "error_share": share})
    return pd.DataFrame(rows).set_index(["target", *columns])


def validation_frame(validations: dict[str, Validation]) -> pd.DataFrame:
    """Long frame of held-out predictions (target, group, measured, pred, low, high) for charts."""
    return pd.concat([v.predictions.assign(target=t) for t, v in validations.items()], ignore_index=True)


def goal_table(validations: dict[str, Validation], goal: float = MAPE_GOAL) -> pd.DataFrame:
    """Held-out MAPE of each target against the accuracy goal, with the share within 10% and 15%."""
    rows = []
    for target, v in validations.items():
        score = v.scores().iloc[0]
        rows.append({"target": target, "mape": score["mape"], "goal_mape": goal, "met": bool(score["mape"] <= goal),
                     "within_10": score["within_10"], "within_15": score["within_15"], "n": int(score["n"])})
    return pd.DataFrame(rows)


def unmeasured_configurations(frame: pd.DataFrame, batch_sizes: list[int]) -> pd.DataFrame:
    """Measured model variants (per platform, precision, mode and machine) at batch sizes not measured for them,
    as result-like rows with the targets left empty."""
    ok = predictor_rows(frame[frame["status"] == "ok"] if "status" in frame else frame)
    if ok.empty or not batch_sizes:
        return ok.iloc[:0]
    keys = ["variant", "platform", "precision", "mode", "hardware_id"]
    ok = ok.assign(variant=variant_key(ok), hardware_id=ok.get("hardware_id", pd.Series("", index=ok.index)))
    ok = ok.assign(hardware_id=ok["hardware_id"].fillna(""))
    measured = set(ok[[*keys, "batch_size"]].astype(str).itertuples(index=False, name=None))
    latest = ok.sort_values("created_at").drop_duplicates(keys, keep="last").drop(columns="batch_size")
    grid = latest.merge(pd.DataFrame({"batch_size": check_batch_sizes(batch_sizes)}), how="cross")
    new = [tuple(map(str, row)) not in measured for row in grid[[*keys, "batch_size"]].itertuples(index=False)]
    grid = grid[new].reset_index(drop=True)
    setting = [*keys, *(["threads"] if "threads" in ok else [])]
    facts = model_facts(ok)
    for column in (KERNEL_BYTES_COLUMN, *SLOW_KERNEL_FACTS):  # not the measured batch's
        grid[column] = written_bytes_at(grid, ok.assign(**{column: facts[column]}), setting, column)
    return grid.assign(**{c: np.nan for c in TARGETS.values()})


def predict_unmeasured(predictor: Predictor, frame: pd.DataFrame, batch_sizes: list[int]) -> pd.DataFrame:
    """Predictions with intervals of the unmeasured configurations of `unmeasured_configurations`, labelled."""
    rows = unmeasured_configurations(frame, batch_sizes)
    shown = ["model", "family", "n_layers", "hidden_size", "seq_len_effective", "image_size", "platform",
             "precision", "mode", "batch_size"]
    if rows.empty:
        return pd.DataFrame(columns=[*shown, "source"])
    predicted = predictor.predict(rows)
    facts = feature_frame(rows)[shown]
    columns = [c for t in predictor.models for c in (f"{t}_low", f"{t}_pred", f"{t}_high")]
    return facts.join(predicted[columns]).assign(source="predicted")


def _number(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def headline(validations: dict[str, Validation], predictor: Predictor, predictions: pd.DataFrame,
             outcome: SweepOutcome | None = None, held_out: dict[str, Validation] | None = None,
             budget: pd.DataFrame | None = None) -> dict[str, Any]:
    """Values a test or the report index can check: held-out MAPE, share within 10%, interval coverage per target
    (and the best analytic baseline's MAPE), training size, the goal, the sanity of predicted intervals, the MAPE of
    groups held out together (`validate_held_out`) and the measurement floor of an error budget (`repeat_floor`:
    whether a second measurement of a configuration repeats within the goal) when given."""
    values: dict[str, Any] = {"n_train": max((m.n_train for m in predictor.models.values()), default=0),
                              "n_families": len(predictor.train_groups), "coverage_nominal": predictor.coverage}
    for target, validation in validations.items():
        scores = validation.scores().set_index("method")
        values[f"{target}_mape"] = _number(scores.loc["predictor", "mape"])
        values[f"{target}_within_10"] = _number(scores.loc["predictor", "within_10"])
        values[f"{target}_coverage"] = _number(scores.loc["predictor", "coverage"])
        values[f"{target}_baseline_mape"] = _number(scores.drop(index="predictor")["mape"].min())
    mape = values.get("throughput_mape")
    values["mape_goal_met"] = None if mape is None else bool(mape <= MAPE_GOAL)
    ordered = [(predictions[f"{t}_low"] <= predictions[f"{t}_pred"]) & (predictions[f"{t}_pred"]
                                                                        <= predictions[f"{t}_high"])
               for t in predictor.models if f"{t}_pred" in predictions]
    values["n_unmeasured_predicted"] = len(predictions)
    values["intervals_ordered"] = bool(all(o.all() for o in ordered))
    for target, validation in (held_out or {}).items():
        values["held_out_groups"] = validation.folds[0]["held_out"]
        values[f"held_out_{target}_mape"] = _number(validation.scores().iloc[0]["mape"])
    if budget is not None:
        values.update(repeat_floor(budget))
        floor = values["repeat_mape"]
        values["repeats_within_goal"] = None if floor is None else bool(floor <= MAPE_GOAL)
    if outcome is not None:
        values.update({"n_configurations": len(outcome.records), "sweep_wall_s": round(outcome.seconds, 1),
                       "sweep_measured_now": outcome.n_new})
    return values
