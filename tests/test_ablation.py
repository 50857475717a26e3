"""Ablations: withholding a fact empties it everywhere, and the leave-one-family-out table shows what it was worth."""

import json

import numpy as np
import pandas as pd
import pytest

from kit.errors import ConfigError
from kit.predict import Predictor, features
from kit.predict.ablation import ablation_table, section_table, without_facts
from tests.test_predict import overhead_law, synthetic_frame


def thin_product_law(widths: dict[str, int | None] | None = None, seed: int = 0, column: str = "matmul_shapes"):
    """Rows whose time includes what thin matrix products lose: only the stored shapes explain it. Per family the
    width of its products (None: no shapes stored); `column` says whether they are matrix products or
    convolutions."""
    widths = widths or {"fam0": 16, "fam1": 48, "fam2": 512}
    frame = synthetic_frame(n_families=len(widths), noise=0.0, seed=seed)
    frame["family"] = frame["model"] = frame["family"].map(dict(zip(sorted(set(frame["family"])), widths,
                                                                     strict=True)))
    width = frame["family"].map(widths)
    shapes = [None if pd.isna(w) else json.dumps([[round(f / (2 * w**2)), w, w, 1, 2 * round(f / (2 * w**2)), w, w, 1,
                                                   1]]) for f, w in zip(frame["flops_per_sample"], width, strict=True)]
    frame = frame.assign(**{column: shapes})
    feats = features.feature_frame(frame)
    seconds = overhead_law(feats) + feats["thin_s"].fillna(0.0) / 0.3
    return frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)


def test_withheld_facts_are_gone_from_columns_and_stored_json() -> None:
    frame = synthetic_frame(n_families=1).head(2).assign(platform="openvino")
    extras = [json.dumps({**json.loads(e), "runtime_output_bytes": 5e6, "runtime_layers": {"MatMul": 3},
                          "runtime_transpose_bytes": 1e6, "runtime_reorder_bytes": 2e6,
                          "runtime_eltwise_bytes": 3e6}) for e in frame["extra"]]
    feats = features.feature_frame(frame.assign(extra=extras))
    assert (feats["kernel_output_bytes"] == 5e6).all() and (feats["kernels_per_forward"] == 3).all()
    stripped = without_facts(feats, ["kernel_output_bytes"])
    assert stripped["kernel_output_bytes"].isna().all() and (stripped["kernels_per_forward"] == 3).all()
    assert stripped["extra"].map(lambda e: "runtime_output_bytes" not in json.loads(e)).all()
    moved = without_facts(feats, ["kernel_transpose_bytes"])
    assert moved["kernel_transpose_bytes"].isna().all() and (moved["kernel_output_bytes"] == 5e6).all()
    assert (moved["kernel_reorder_bytes"] == 2e6).all() and (moved["slow_bytes"] == 5e6).all()  # the other kinds stay
    assert (stripped["activation_bytes"] < feats["activation_bytes"]).all()  # torch's eager bytes of the tiny rows
    assert without_facts(feats, []) is feats


def test_ablation_table_shows_what_a_fact_is_worth_on_the_same_folds() -> None:
    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    table = ablation_table(thin_product_law(), {"all": [], "no shapes": ["matmul_shapes"]},
                           by=("platform",), make_predictor=make_predictor).set_index("variant")
    assert table.loc["all", "withheld"] == "none" and table.loc["no shapes", "withheld"] == "matmul_shapes"
    assert table.loc["all", "n"] == table.loc["no shapes", "n"] == len(thin_product_law())  # the same rows
    assert table.loc["all", "mape"] < 0.01 and table.loc["no shapes", "mape"] > 0.05
    assert table.loc["all", "mape cpu"] == pytest.approx(table.loc["all", "mape"])
    assert np.isfinite(table["within_10"]).all()


def test_withholding_conv_shapes_withholds_what_thin_convolutions_lose() -> None:
    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    variants = {"all": [], "no matmul shapes": ["matmul_shapes"], "no conv shapes": ["conv_shapes"]}
    table = ablation_table(thin_product_law(column="conv_shapes"), variants, by=(),
                           make_predictor=make_predictor).set_index("variant")
    assert table.loc["all", "mape"] < 0.01 and table.loc["no matmul shapes", "mape"] < 0.01  # convolutions only
    assert table.loc["no conv shapes", "mape"] > 0.05


def test_extra_training_rows_teach_a_fact_the_other_families_lack() -> None:
    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    zoo = thin_product_law({"fam0": 16, "fam1": None, "fam2": None})  # only the held-out family has shapes stored
    extra = thin_product_law({"arch-a": 16, "arch-b": 48}, seed=1)
    variants = {"all": [], "no shapes": ["matmul_shapes"]}
    alone = ablation_table(zoo, variants, by=(), make_predictor=make_predictor).set_index("variant")
    helped = ablation_table(zoo, variants, by=(), make_predictor=make_predictor,
                            extra_training=extra).set_index("variant")
    assert helped.loc["all", "n"] == alone.loc["all", "n"] == len(zoo)  # extra rows are never scored
    assert helped.loc["all", "mape"] < 0.01 < alone.loc["all", "mape"]  # learnt only from the extra rows
    assert helped.loc["no shapes", "mape"] > 0.05  # withheld from the extra rows too


def test_a_section_of_rows_is_judged_on_the_rows_outside_it() -> None:
    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    zoo = thin_product_law({"fam0": 16, "fam1": None, "fam2": None})  # only fam0's thin products are stored
    section = thin_product_law({"arch-a": 16, "arch-b": 48}, seed=1)  # the rows that teach what they cost
    frame = pd.concat([zoo, section], ignore_index=True)
    mask = frame["family"].str.startswith("arch")
    table = section_table(frame, mask, by=("platform",), make_predictor=make_predictor).set_index("variant")
    with_it, without = table.loc["with the section"], table.loc["without the section"]
    assert with_it["n"] == without["n"] == len(zoo)  # the same rows, the section's never scored
    assert (table["section_rows"] == len(section)).all()
    assert with_it["mape"] < 0.01 < without["mape"]  # fam0 is learnt from the section alone
    assert with_it["mape cpu"] == pytest.approx(with_it["mape"])
    with pytest.raises(ConfigError, match="every row"):
        section_table(frame, pd.Series(True, index=frame.index))


def test_a_section_in_every_family_is_judged_on_the_held_out_family_s_own_section_rows() -> None:
    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    widths = {"fam0": 16, "fam1": 16, "fam2": 16}
    plain = thin_product_law(dict.fromkeys(widths))  # no shapes stored: no thin-product cost counted or paid
    section = thin_product_law(widths, seed=1)  # the same families' rows that pay it, as a sweep section would add
    frame = pd.concat([plain, section.assign(run_id="section")], ignore_index=True)
    mask = frame["run_id"] == "section"
    table = section_table(frame, mask, by=(), make_predictor=make_predictor, scored="all").set_index("variant")
    with_it, without = table.loc["with the section", :], table.loc["without the section", :]
    assert with_it["n"] == without["n"] == len(frame)  # every row of each held-out family, its section rows too
    assert with_it["mape section"] < 0.01 < without["mape section"]  # learnt from the other families' section rows
    assert with_it["mape"] < without["mape"]
    with pytest.raises(ConfigError, match="unknown scored 'some'"):
        section_table(frame, mask, scored="some")


def test_unknown_fact_is_named_before_any_work() -> None:
    with pytest.raises(ConfigError, match="'kernels'.*known: kernels_per_forward"):
        ablation_table(synthetic_frame(n_families=2), {"bad": ["kernels"]})



def test_families_held_out_together_show_what_the_depthwise_costs_are_worth() -> None:
    """One family has depthwise convolutions, the others none: only their measured costs can tell its time."""
    frame = synthetic_frame(n_families=4, noise=0.0, seed=1)
    last = sorted(set(frame["family"]))[-1]
    convs = json.dumps([[196, 1, 9, 256, 392, 1, 9, 256, 12]])  # 12 depthwise 3x3 convs, 256 channels of 14x14
    costs = {"1": {"call_s": 1e-4, "element_s": 1e-9, "mac_s": 5e-11, "reference_s": 1e-3}}
    frame = frame.assign(conv_shapes=np.where(frame["family"] == last, convs, None),
                         depthwise_costs=[costs] * len(frame))
    feats = features.feature_frame(frame)
    seconds = overhead_law(feats) + feats["depthwise_s"].fillna(0.0)
    frame = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)

    def make_predictor():
        return Predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    table = ablation_table(frame, {"all": [], "without": ["depthwise_costs"]}, make_predictor=make_predictor,
                           held_out=[last]).set_index("variant")
    assert (table["n"] == (frame["family"] == last).sum()).all()  # the held-out family's rows alone, both ways
    assert table.loc["all", "mape"] < 0.01 and table.loc["without", "mape"] > 0.05
