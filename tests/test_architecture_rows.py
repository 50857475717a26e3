"""Coverage rows as training data for the predictor: marked explicitly, mapped to the zoo family of the same config
class, profiles counted where stored without them, never scored, and left out of the fold of their own family.

The frames here are test data generated from a formula, not measurements (tests.test_predict.synthetic_frame).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kit.predict import architectures
from kit.predict.features import predictor_rows
from kit.predict.model import leave_one_group_out
from tests.test_predict import fast_predictor, synthetic_frame


def coverage_like(frame: pd.DataFrame, config_class: str | None = None, modality: str = "text") -> pd.DataFrame:
    """Synthetic rows dressed as coverage rows (extra coverage: true and the classes built)."""
    out = frame.copy()

    def dress(extra: str, model: str) -> str:
        return json.dumps({**json.loads(extra), "coverage": True, "modality": modality,
                           "config_class": config_class or f"{model}Config", "model_class": f"{model}Model"})

    out["extra"] = [dress(e, m) for e, m in zip(out["extra"], out["model"], strict=True)]
    return out


def test_architecture_rows_are_marked_mapped_and_only_ok():
    rows = coverage_like(synthetic_frame(n_families=2, batch_sizes=(1,)))
    rows.loc[rows.index[0], "status"] = "failed"
    assert predictor_rows(rows).empty  # coverage rows stay out unless made training rows
    clip = coverage_like(synthetic_frame(n_families=1, batch_sizes=(1,)), "CLIPConfig", modality="vision")
    made = architectures.architecture_rows(pd.concat([rows, clip], ignore_index=True))
    assert len(made) == len(rows) - 1 + len(clip)
    assert predictor_rows(made).index.equals(made.index)
    assert set(made["family"]) == {"fam0", "fam1", "clip"}  # the zoo family built from the same config class
    vision = made["family"] == "clip"
    assert made.loc[vision, "seq_len"].isna().all() and made.loc[~vision, "seq_len"].notna().all()


def test_a_profile_stored_without_is_counted_as_the_child_counts_it():
    extra = {"coverage": True, "config_class": "BertConfig", "model_class": "BertModel", "modality": "text"}
    frame = pd.DataFrame({"model": ["bert"], "seq_len": [16], "status": ["ok"], "extra": [json.dumps(extra)]})
    filled = architectures.fill_architecture_profiles(frame)
    counted = json.loads(filled.at[0, "extra"])
    again = architectures.count_architecture("bert", extra, 16)
    assert counted["forward_profile"] == again["forward_profile"]  # counts, not timings: the same every time
    assert counted["forward_profile"]["flops_per_sample"] > 0 and counted["model_facts"]["n_layers"] >= 1
    assert counted["profile_counted_later"] == sorted(again["forward_profile"])
    assert architectures.fill_architecture_profiles(filled).equals(filled)  # nothing left to count


def test_a_profile_stored_without_some_keys_gains_them_and_keeps_its_own():
    extra = {"coverage": True, "config_class": "BertConfig", "model_class": "BertModel", "modality": "text"}
    full = architectures.count_architecture("bert", extra, 16)["forward_profile"]
    older = {k: v for k, v in full.items() if not k.startswith("grouped_conv")} | {"ops_per_forward": 999.0}
    frame = pd.DataFrame({"model": ["bert"], "seq_len": [16], "status": ["ok"],
                          "extra": [json.dumps({**extra, "forward_profile": older})]})
    counted = json.loads(architectures.fill_architecture_profiles(frame).at[0, "extra"])
    assert counted["forward_profile"] == full | {"ops_per_forward": 999.0}  # a stored value is never replaced
    assert counted["profile_counted_later"] == ["grouped_conv_bytes_per_sample", "grouped_conv_flops_per_sample"]


def test_extra_training_rows_join_other_folds_and_are_never_scored():
    zoo = synthetic_frame(n_families=3, seed=0)
    extra = synthetic_frame(n_families=5, seed=1)
    extra["family"] = np.where(extra["family"] == "fam0", "fam0", "arch-" + extra["family"])
    validation = leave_one_group_out(zoo, "throughput", make_predictor=lambda: fast_predictor(targets=("throughput",)),
                                     extra_training=extra)
    assert len(validation.predictions) == len(zoo)
    assert set(validation.predictions["group"]) == {"fam0", "fam1", "fam2"}
    per_fold = {fold["held_out"]: fold["n_extra_training"] for fold in validation.folds}
    own = int((extra["family"] == "fam0").sum())
    assert per_fold["fam0"] == len(extra) - own and per_fold["fam1"] == len(extra)


def test_scores_with_and_without_come_from_the_same_held_out_rows():
    zoo = synthetic_frame(n_families=3, seed=0)
    extra = synthetic_frame(n_families=4, seed=2)
    extra["family"] = "arch-" + extra["family"]
    table = architectures.architecture_scores(zoo, extra, fast_predictor())
    assert list(table.index) == ["zoo families only", "with coverage architectures"]
    assert (table["n"] == len(zoo)).all()
    assert table["families_trained"].tolist() == [3, 7] and table["n_extra_training"].tolist() == [0, len(extra)]
    assert (table["mape"] > 0).all() and (table["mape"] < 0.5).all()  # the law holds for both, so both learn it
    alone = architectures.architecture_scores(zoo, extra.iloc[:0], fast_predictor())
    assert list(alone.index) == ["zoo families only"]
