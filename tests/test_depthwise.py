"""Depthwise convolutions: costs fitted from timed shapes, the time they give a model's stored shapes, and the fixed
term the overhead baseline adds with them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kit import depthwise, microbench, storage
from kit.predict.ablation import without_facts
from kit.predict.baselines import OverheadBaseline
from kit.predict.features import DEPTHWISE_COSTS, depthwise_time

COSTS = {"call_s": 5e-6, "element_s": 2e-9, "mac_s": 6e-11}
# M, N, K, G at batch 1, then at batch 2, calls: a 3x3 depthwise conv over 96 channels of 32x32 (twice), a 7x7 one
# over 384 channels of 7x7, an ungrouped 1x1 conv and a grouped conv with 4 outputs per group (neither is depthwise)
SHAPES = json.dumps([[1024, 1, 9, 96, 2048, 1, 9, 96, 2], [49, 1, 49, 384, 98, 1, 49, 384, 1],
                     [1024, 64, 96, 1, 2048, 64, 96, 1, 3], [256, 4, 36, 16, 512, 4, 36, 16, 1]])


def _law(elements: float, macs: float) -> float:
    return COSTS["call_s"] + COSTS["element_s"] * elements + COSTS["mac_s"] * macs


def test_fitted_costs_recover_a_known_law_over_the_grid() -> None:
    rows = [{"elements": float(c * s * s), "macs": float(c * s * s * k * k),
             "seconds": _law(c * s * s, c * s * s * k * k)} for c, s, k in depthwise.GRID]
    fitted = depthwise.fit_costs(rows)
    assert {k: fitted[k] for k in COSTS} == pytest.approx(COSTS, rel=1e-6)
    assert fitted["fit_mape"] < 1e-9
    signs = np.random.default_rng(1).choice([-1.0, 1.0], len(rows))  # timings 10 % off the law, either way
    noisy = [{**row, "seconds": row["seconds"] * (1 + 0.1 * sign)} for row, sign in zip(rows, signs, strict=True)]
    assert 0.03 < depthwise.fit_costs(noisy)["fit_mape"] < 0.12  # the fit says how far the timings lie from it


def test_depthwise_seconds_sum_the_depthwise_convolutions_only_and_grow_with_the_batch() -> None:
    convs = depthwise.depthwise_convs(SHAPES)
    assert convs[:, 3].tolist() == [96, 384]  # the ungrouped and the grouped conv are left out
    for batch in (1, 4):
        expected = (2 * _law(1024 * batch * 96, 1024 * batch * 96 * 9) + _law(49 * batch * 384, 49 * batch * 384 * 49))
        assert depthwise.depthwise_seconds(SHAPES, batch, COSTS) == pytest.approx(expected)
    assert depthwise.depthwise_seconds(json.dumps([[1024, 64, 96, 1, 2048, 64, 96, 1, 3]]), 2, COSTS) == 0.0
    assert depthwise.depthwise_seconds(None, 2, COSTS) == 0.0 and depthwise.depthwise_convs("").shape == (0, 9)


def test_costs_come_from_the_nearest_measured_thread_count() -> None:
    table = {"1": {"call_s": 1.0}, "2": {"call_s": 2.0}}
    assert depthwise.costs_at(table, 1)["call_s"] == 1.0
    assert depthwise.costs_at(table, 8)["call_s"] == 2.0
    assert depthwise.costs_at(table, float("nan"))["call_s"] == 2.0  # unknown: the default (largest) count
    assert depthwise.costs_at(None, 1) is None and depthwise.costs_at({}, 1) is None


def test_costs_measured_on_this_cpu_are_positive_and_fit_the_timings() -> None:
    import torch

    measured = microbench.depthwise_costs("cpu", ("fp32",), budget_s=0.2)
    counts = {"1", str(torch.get_num_threads())}
    assert set(measured) == {"fp32"} and set(measured["fp32"]) == counts
    for costs in measured["fp32"].values():
        assert all(costs[k] >= 0 for k in COSTS) and any(costs[k] > 0 for k in COSTS)
        assert 0 < costs["reference_s"] < 0.1 and 0 <= costs["fit_mape"] < 1.0
        # a 3x3 conv over 128 channels of 28x28 takes between a microsecond and a tenth of a second
        assert 1e-6 < depthwise.depthwise_seconds(json.dumps([[784, 1, 9, 128, 1568, 1, 9, 128, 1]]), 1, costs) < 0.1


def _frame(depthwise_costs: dict | None, extra: dict | None = None, threads: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"conv_shapes": [SHAPES], "batch_size": [4], "threads": [threads], "mode": ["inference"],
                         DEPTHWISE_COSTS: [depthwise_costs], "extra": [json.dumps(extra or {})],
                         "hardware_id": ["hw"]})


def test_depthwise_time_moves_to_the_scale_of_the_typical_reference() -> None:
    table = {"1": {**COSTS, "reference_s": 1e-3}}
    plain = depthwise.depthwise_seconds(SHAPES, 4, COSTS)
    assert depthwise_time(_frame(table)).iloc[0] == pytest.approx(plain)  # no reference beside the results: as timed
    rounds = {"rounds": {"reference_round_p10_s": [2e-3, 2e-3, 2e-3]}}  # the machine ran its reference 2x slower
    assert depthwise_time(_frame(table, rounds)).iloc[0] == pytest.approx(2 * plain)
    training = _frame(table).assign(mode="training")
    assert depthwise_time(training).iloc[0] == pytest.approx(3 * plain)  # forward and backward
    assert np.isnan(depthwise_time(_frame(None)).iloc[0])  # no costs measured on that machine


def _rows(n: int, with_depthwise: bool) -> pd.DataFrame:
    """Synthetic rows whose time is 2x the roofline compute plus 1e-5 s per op call, plus their depthwise time."""
    rng = np.random.default_rng(0)
    compute = rng.uniform(1e-3, 2e-2, n)
    calls = rng.integers(50, 500, n).astype(float)
    dw = rng.uniform(1e-3, 1e-2, n) if with_depthwise else np.zeros(n)
    frame = pd.DataFrame({"batch_size": 1.0, "compute_s": compute, "flops_per_batch": compute * 1e11,
                          "memory_s": compute / 10, "traffic_bytes": compute * 1e9, "training": 0.0,
                          "ops_per_forward": calls, "conv_compute_s": 0.0, "conv_flops_per_batch": 0.0,
                          "thin_s": 0.0, "thin_flops": 0.0, "slow_s": np.nan, "slow_bytes": np.nan,
                          "platform": "cpu", "mode": "inference", "precision": "fp32", "threads": 1.0,
                          "depthwise_s": dw})
    return frame.assign(throughput_items_per_s=1.0 / (2 * compute + 1e-5 * calls + dw))


def test_the_overhead_baseline_adds_the_depthwise_time_it_could_not_learn_from_rows_without_it() -> None:
    train, test = _rows(40, with_depthwise=False), _rows(20, with_depthwise=True)
    model = OverheadBaseline("throughput").fit(train, train["throughput_items_per_s"])
    predicted = np.exp(model.predict_log(test))
    assert predicted.to_numpy() == pytest.approx(test["throughput_items_per_s"].to_numpy(), rel=1e-6)
    without = np.exp(model.predict_log(test.assign(depthwise_s=np.nan)))
    assert (without > test["throughput_items_per_s"] * 1.05).all()  # without the term: predicted too fast
    both = pd.concat([train, test])  # rows with depthwise convolutions in training: their fixed time taken out first
    refit = OverheadBaseline("throughput").fit(both, both["throughput_items_per_s"])
    assert np.exp(refit.predict_log(test)).to_numpy() == pytest.approx(test["throughput_items_per_s"].to_numpy(),
                                                                       rel=1e-6)


def test_ensure_peaks_adds_depthwise_costs_to_peaks_stored_without_them(tmp_path, monkeypatch) -> None:
    from kit.environment import hardware_info

    hardware_id = hardware_info()["hardware_id"]
    con = storage.connect(tmp_path / "b.duckdb")
    storage.set_hardware_peaks(con, hardware_id, {"cpu": {"flops_per_s": {"fp32": 1e11, "bf16": 1e9},
                                                          "mem_bandwidth_bytes_per_s": 2e10}}, 2e10)
    asked = []
    monkeypatch.setattr(microbench, "measure_peaks", lambda *a, **k: pytest.fail("the stored peaks are kept"))
    monkeypatch.setattr(microbench, "depthwise_costs",
                        lambda platform, precisions, budget_s: asked.append(precisions) or
                        {p: {"1": {**COSTS, "reference_s": 1e-3}} for p in precisions})
    peaks = microbench.ensure_peaks(con, ("cpu",), budget_s=0.1)
    assert [set(p) for p in asked] == [{"fp32", "bf16"}] and peaks.attrs["measured_now"] == ["cpu"]
    assert peaks.set_index("precision").loc["fp32", "peak_flops_per_s"] == 1e11  # unchanged
    assert peaks.set_index("precision").loc["bf16", DEPTHWISE_COSTS]["1"]["call_s"] == COSTS["call_s"]
    assert microbench.ensure_peaks(con, ("cpu",), budget_s=0.1).attrs["measured_now"] == []  # measured once


def test_withholding_the_depthwise_costs_empties_the_term() -> None:
    frame = _frame({"1": {**COSTS, "reference_s": 1e-3}}).assign(
        model="m", family="f", size="s", platform="cpu", precision="fp32", n_params=1e6, flops_per_sample=1e9,
        throughput_items_per_s=10.0, peak_flops_per_s=1e11, mem_bandwidth_bytes_per_s=1e10)
    from kit.predict.features import feature_frame

    assert feature_frame(frame)["depthwise_s"].iloc[0] > 0
    assert np.isnan(without_facts(frame, [DEPTHWISE_COSTS])["depthwise_s"].iloc[0])


def test_microbench_missing_measures_only_what_the_store_lacks(tmp_path, monkeypatch, capsys) -> None:
    from kit.cli import main
    from kit.environment import hardware_info

    db = tmp_path / "b.duckdb"
    con = storage.connect(db)
    storage.set_hardware_peaks(con, hardware_info()["hardware_id"],
                               {"cpu": {"flops_per_s": {"fp32": 1e11}, "mem_bandwidth_bytes_per_s": 2e10}}, 2e10)
    con.close()
    monkeypatch.setattr(microbench, "measure_peaks", lambda *a, **k: pytest.fail("the stored peaks are kept"))
    monkeypatch.setattr(microbench, "depthwise_costs", lambda platform, precisions, budget_s:
                        {p: {"1": {**COSTS, "reference_s": 1e-3, "fit_mape": 0.1}} for p in precisions})
    assert main(["microbench", "--missing", "--db", str(db)]) == 0
    printed = capsys.readouterr().out
    assert "measured now: cpu" in printed and "peak_flops_per_s" in printed and "call_us" in printed
    stored = microbench.stored_peaks(storage.connect(db, read_only=True)).iloc[0]
    assert stored["peak_flops_per_s"] == 1e11 and stored[DEPTHWISE_COSTS]["1"]["call_s"] == COSTS["call_s"]
    assert main(["microbench", "--missing", "--db", str(db)]) == 0
    assert "measured now: nothing" in capsys.readouterr().out
