"""The error budget: a measurement's repeatability and the corrections by a family's or a setting's other rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit import predict
from kit.errors import ConfigError
from kit.predict import Validation
from tests.test_predict import synthetic_frame


def budget_frame() -> pd.DataFrame:
    """Two families. Family a has one setting at three batch sizes; its batch-1 configuration was measured twice
    (100 and 120 items/s, both converged). Family b has one noisy configuration measured twice (50 and 40) and one
    row at another batch size."""
    rows = [("a", "a|1", 1, 100.0, False), ("a", "a|1", 1, 120.0, False), ("a", "a|4", 4, 300.0, False),
            ("a", "a|8", 8, 500.0, False), ("b", "b|1", 1, 50.0, True), ("b", "b|1", 1, 40.0, False),
            ("b", "b|2", 2, 90.0, False)]
    frame = pd.DataFrame(rows, columns=["family", "config_key", "batch_size", "throughput_items_per_s", "noisy"])
    return frame.assign(model=frame["family"], size="tiny", overrides="{}", seq_len_effective=16.0,
                        platform="cpu", precision="fp32", mode="inference", threads=1, hardware_id="h")


def validation(frame: pd.DataFrame, factors: dict[str, float]) -> Validation:
    """Held-out predictions that are each family's measurements times its factor."""
    measured = frame["throughput_items_per_s"]
    pred = measured * frame["family"].map(factors)
    predictions = pd.DataFrame({"group": frame["family"], "measured": measured, "pred": pred, "low": pred / 2,
                                "high": pred * 2})
    return Validation("throughput", predictions, [])


def test_other_repeats_mean_pairs_each_measurement_with_the_others_of_its_configuration() -> None:
    repeats = predict.other_repeats_mean(budget_frame())
    assert repeats.to_dict() == {0: 120.0, 1: 100.0, 4: 40.0, 5: 50.0}  # rows measured once are left out
    with pytest.raises(ConfigError, match="unknown target 'speed'"):
        predict.other_repeats_mean(budget_frame(), "speed")


def test_other_repeats_mean_finds_the_repeats_of_one_measurement_per_configuration() -> None:
    measurements = budget_frame().assign(result_id=[f"r{i}" for i in range(7)])
    chosen = measurements.drop(index=[0, 4])  # one per configuration: 120 for a|1, 40 for b|1
    repeats = predict.other_repeats_mean(chosen, measurements=measurements)
    assert repeats.to_dict() == {1: 100.0, 5: 50.0}  # a row is left out of its own mean, by its result id
    elsewhere = chosen.assign(result_id="x")  # rows that are none of the measurements: every measurement counts
    assert predict.other_repeats_mean(elsewhere, measurements=measurements).to_dict() == {
        1: 110.0, 2: 300.0, 3: 500.0, 5: 45.0, 6: 90.0}


def test_error_budget_finds_repeats_in_the_measurements_given() -> None:
    measurements = budget_frame().assign(result_id=[f"r{i}" for i in range(7)])
    frame = measurements.drop(index=[0, 4])
    budget = predict.error_budget(validation(frame, {"a": 1.2, "b": 0.8}), frame, measurements)
    converged, noisy = ("another measurement of the same configuration (all converged)",
                        "another measurement of the same configuration (some noisy)")
    assert budget.loc[converged, "n"] == 1 and budget.loc[converged, "mape"] == pytest.approx(1 / 6)  # 100 vs 120
    # b|1's kept measurement (40) converged, but its other one (50) is noisy
    assert budget.loc[noisy, "n"] == 1 and budget.loc[noisy, "mape"] == pytest.approx(0.25)
    assert predict.error_budget(validation(frame, {"a": 1.2, "b": 0.8}), frame).loc[converged, "n"] == 0


def test_error_budget_splits_family_offsets_settings_and_the_repeat_floor() -> None:
    frame = budget_frame()
    budget = predict.error_budget(validation(frame, {"a": 1.2, "b": 0.8}), frame)
    mape = budget["mape"]
    assert mape["predictor, family held out"] == pytest.approx(0.2)
    # a shared family offset is exactly what the other rows of the family reveal
    assert mape["predictor, corrected by the family's other rows"] == pytest.approx(0.0)
    assert mape["predictor, corrected by the setting's other rows"] == pytest.approx(0.0)
    converged = "another measurement of the same configuration (all converged)"
    assert budget.loc[converged, "n"] == 2
    assert mape[converged] == pytest.approx((0.2 + 1 / 6) / 2)  # 120 against 100, and 100 against 120
    assert mape["another measurement of the same configuration (some noisy)"] == pytest.approx((0.25 + 0.2) / 2)
    assert mape["predictor, on configurations measured again (some noisy)"] == pytest.approx(0.2)
    every = "another measurement of the same configuration (all)"
    assert budget.loc[every, "n"] == 4 and mape[every] == pytest.approx((0.2 + 1 / 6 + 0.25 + 0.2) / 4)
    floor = predict.repeat_floor(budget)
    assert floor == {"repeat_n": 4, "repeat_mape": pytest.approx(mape[every]),
                     "predictor_on_repeats_mape": pytest.approx(0.2)}


def test_a_row_alone_in_its_family_keeps_its_error() -> None:
    frame = budget_frame()
    frame.loc[6, "family"] = "c"  # alone in its family and in its setting (another model variant)
    frame.loc[6, "model"] = "c"
    budget = predict.error_budget(validation(frame, {"a": 1.2, "b": 0.8, "c": 1.5}), frame)
    expected = 0.5 / len(frame)  # only c's row keeps its 50 % error
    assert budget.loc["predictor, corrected by the family's other rows", "mape"] == pytest.approx(expected)
    assert budget.loc["predictor, corrected by the setting's other rows", "mape"] == pytest.approx(expected)


def test_error_budget_needs_the_validated_frame() -> None:
    frame = budget_frame()
    with pytest.raises(ConfigError, match="2 validated rows are not in the frame"):
        predict.error_budget(validation(frame, {"a": 1.0, "b": 1.0}), frame.iloc[:5])


def test_error_budget_of_a_real_leave_one_family_out_validation() -> None:
    frame = synthetic_frame(n_families=3)
    frame = frame.assign(config_key=frame["model"] + frame.index.astype(str), threads=1)  # each row measured once
    validation_ = predict.leave_one_group_out(frame, "throughput")
    budget = predict.error_budget(validation_, frame)
    assert budget.loc["predictor, family held out", "mape"] == pytest.approx(validation_.scores().iloc[0]["mape"])
    assert budget.loc["predictor, family held out", "n"] == len(validation_.predictions)
    assert np.isfinite(budget.loc["predictor, corrected by the family's other rows", "mape"])
    assert budget.loc["another measurement of the same configuration (all converged)", "n"] == 0
    assert predict.repeat_floor(budget) == {"repeat_n": 0, "repeat_mape": None, "predictor_on_repeats_mape": None}


def test_repeat_table_scores_each_speed_against_the_mean_of_the_other_measurements() -> None:
    frame = budget_frame().assign(latency_p50_s=[0.01, 0.012, 0.02, 0.02, 0.02, 0.025, 0.02],
                                  latency_p10_s=[0.008, 0.008, 0.01, 0.01, 0.016, 0.02, 0.01],
                                  normalised_throughput=[2.0, 2.0, 3.0, 3.0, None, None, 1.0])
    table = predict.repeat_table(frame)
    assert list(table.index) == list(predict.budget.REPEAT_SPEEDS)
    mean = table.loc["throughput (batch / mean latency)"]
    # a|1: 100 vs 120 (APE 1/6 and 1/5); b|1: 50 vs 40 (1/4 and 1/5); the rows measured once do not count
    assert mean["n"] == 4 and mean["configurations"] == 2
    assert mean["mape"] == pytest.approx((20 / 120 + 20 / 100 + 10 / 40 + 10 / 50) / 4)
    # batch 1 / median: a|1 100 vs 83.3, b|1 50 vs 40; p10: a|1 125 vs 125 (no change), b|1 62.5 vs 50
    assert table.loc["batch / median latency", "mape"] == pytest.approx((1 / 5 + 1 / 6 + 1 / 4 + 1 / 5) / 4)
    assert table.loc["batch / 10th-percentile latency", "mape"] == pytest.approx((0 + 0 + 1 / 4 + 1 / 5) / 4)
    normalised = table.loc["normalised throughput (p10, per reference call)"]
    assert normalised["n"] == 2 and normalised["mape"] == 0  # b's measurements have no reference
    unnormalised = predict.repeat_table(frame.assign(normalised_throughput=None))
    assert unnormalised.loc["normalised throughput (p10, per reference call)", "n"] == 0
