"""Throughput on the steady scale: normalised by the machine reference measured beside it, in items/s at the
machine's typical reference speed, so drift between rounds and runs leaves it where it is."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit import predict
from kit.errors import ConfigError
from kit.predict import steady
from tests.test_predict import fast_predictor, synthetic_frame

REFERENCE_S = 4e-4  # the reference call's 10th percentile at the machine's usual speed
REFERENCE_MEDIAN_S = 5e-4  # and its median


def drifted(frame: pd.DataFrame, sigma: float = 0.25, seed: int = 0) -> pd.DataFrame:
    """The law's rows measured on a drifting machine: each row at a speed factor d (log-normal), which slows the
    model and the reference alike; the normalised throughput is the law's, in items per reference call, and the
    normalised latency the law's latency in reference median calls."""
    rng = np.random.default_rng(seed)
    d = np.exp(rng.normal(0, sigma, len(frame)))
    extras = [json.dumps({**json.loads(e), "rounds": {
        "reference_round_p10_s": [REFERENCE_S * f] * 5, "reference_round_medians_s": [REFERENCE_MEDIAN_S * f] * 5,
        "normalised_latency": latency / REFERENCE_MEDIAN_S}})
        for e, f, latency in zip(frame["extra"], d, frame["latency_p50_s"], strict=True)]
    return frame.assign(law=frame["throughput_items_per_s"], throughput_items_per_s=frame["throughput_items_per_s"] / d,
                        law_latency=frame["latency_p50_s"],
                        **{c: frame[c] * d for c in ("latency_p50_s", "latency_mean_s", "ci_low_s", "ci_high_s")},
                        normalised_throughput=frame["throughput_items_per_s"] * REFERENCE_S, extra=extras)


@given(st.floats(1e-6, 1e9), st.floats(1e-9, 10.0), st.floats(1e-9, 10.0), st.sampled_from(["throughput", "latency"]))
def test_steady_and_absolute_convert_into_each_other_exactly(value, typical_s, today_s, target):
    back = steady.to_steady(steady.to_absolute(value, typical_s, today_s, target), typical_s, today_s, target)
    assert back == pytest.approx(value, rel=1e-12)
    assert steady.to_absolute(value, typical_s, typical_s, target) == pytest.approx(value, rel=1e-15)


def test_a_slower_reference_today_means_less_throughput_and_more_latency():
    assert steady.to_absolute(100.0, 1e-3, 2e-3) == pytest.approx(50.0)  # items/s at a machine half as fast
    assert steady.to_absolute(0.01, 1e-3, 2e-3, "latency") == pytest.approx(0.02)  # seconds
    with pytest.raises(ConfigError, match="memory"):
        steady.to_absolute(1.0, 1.0, 1.0, "memory")


def test_steady_latency_removes_the_drift_the_measured_latency_keeps():
    frame = drifted(synthetic_frame(n_families=3, noise=0.0))
    out = steady.steady_frame(frame, "latency")
    assert len(out) == len(frame) and out.attrs["n_left_out"] == 0
    ratio = out["steady_latency_p50_s"] / out["law_latency"]  # one constant per machine: its median speed factor
    assert ratio.std() / ratio.mean() < 1e-9
    assert (out["latency_p50_s"] == out["steady_latency_p50_s"]).all()
    assert (out["measured_latency_p50_s"] == frame["latency_p50_s"]).all()
    assert (out["throughput_items_per_s"] == frame["throughput_items_per_s"]).all()  # the other target untouched
    typical = steady.typical_reference_seconds(frame, "median")
    np.testing.assert_allclose(out["latency_p50_s"], steady.normalised(frame, "latency") * typical)
    without = frame.assign(extra=[json.dumps({"rounds": {"reference_round_medians_s": [1e-3]}})] * len(frame))
    assert steady.steady_frame(without, "latency").empty  # measured without a normalised latency: left out


def test_a_latency_law_learnt_on_the_steady_scale_is_recovered_where_the_measured_scale_misses_it():
    frame = predict.features.feature_frame(drifted(synthetic_frame(n_families=4, noise=0.02, seed=1), sigma=0.25,
                                                   seed=5))
    measurements = frame.assign(result_id=range(len(frame)), config_key=[f"c{i}" for i in range(len(frame))])
    repeats = predict.repeat_table(pd.concat([measurements, measurements.assign(result_id=-1 - measurements[
        "result_id"], latency_p50_s=measurements["latency_p50_s"] * 1.1)]), "latency")
    assert list(repeats.index) == list(predict.budget.REPEAT_LATENCIES)
    assert repeats.loc["median latency", "mape"] == pytest.approx((0.1 / 1.1 + 0.1) / 2)
    assert repeats.loc["normalised median latency (per reference median call)", "mape"] == pytest.approx(0)
    scores = predict.steady_scores(frame, fast_predictor(targets=("latency",)), repeats, target="latency")
    assert list(scores.index) == ["measured", "steady"] and (scores["n"] == len(frame)).all()
    assert scores.loc["steady", "mape"] < 0.06 < 0.12 < scores.loc["measured", "mape"]
    assert scores.loc["steady", "coverage"] >= 0.75
    assert scores["repeat_mape"].tolist() == pytest.approx([(0.1 / 1.1 + 0.1) / 2, 0])
    with pytest.raises(ConfigError, match="memory"):
        steady.steady_frame(frame, "memory")


def test_the_steady_latency_budget_puts_the_predictor_beside_the_normalised_latency_floor():
    law = synthetic_frame(n_families=3, noise=0.0).assign(threads=1)
    law = law.assign(config_key=[f"config-{i}" for i in range(len(law))])
    twice = []
    for seed, slower in ((0, 1.0), (1, 1.04)):  # the second measurement's normalised latency 4 % longer
        again = drifted(law, seed=seed)
        again = again.assign(result_id=[f"r{seed}-{i}" for i in range(len(again))], extra=[json.dumps({
            **json.loads(e), "rounds": {**json.loads(e)["rounds"], "normalised_latency": json.loads(e)["rounds"][
                "normalised_latency"] * slower}}) for e in again["extra"]])
        twice.append(again)
    validation = steady.validate_steady(twice[0], fast_predictor(), "latency")
    assert validation.target == "latency"
    budget = steady.steady_budget(validation, twice[0], pd.concat(twice, ignore_index=True))
    assert list(budget.index) == [("cpu", "1")] and int(budget["repeated"].iloc[0]) == len(law)
    assert budget["repeat_mape"].iloc[0] == pytest.approx((0.04 + 0.04 / 1.04) / 2)


def test_the_steady_scale_removes_the_machine_drift_the_measured_one_keeps():
    frame = drifted(synthetic_frame(n_families=3, noise=0.0))
    out = steady.steady_frame(frame)
    assert len(out) == len(frame) and out.attrs["n_left_out"] == 0
    ratio = out[steady.STEADY_COLUMN] / out["law"]  # one constant per machine: its median speed factor
    assert ratio.std() / ratio.mean() < 1e-9
    assert (out["throughput_items_per_s"] == out[steady.STEADY_COLUMN]).all()
    assert (out[steady.MEASURED_COLUMN] == frame["throughput_items_per_s"]).all()
    assert (frame["throughput_items_per_s"] / frame["law"]).std() > 0.1  # what drift did to the measured rows


def test_rows_without_a_reference_are_left_out_and_counted():
    frame = drifted(synthetic_frame(n_families=2, noise=0.0))
    frame.loc[frame.index[:5], "normalised_throughput"] = np.nan
    out = steady.steady_frame(frame)
    assert len(out) == len(frame) - 5 and out.attrs["n_left_out"] == 5
    assert steady.steady_frame(frame.drop(columns="normalised_throughput")).empty


def test_each_machine_has_its_own_typical_reference():
    frame = drifted(synthetic_frame(n_families=2, noise=0.0), sigma=0.0)
    slow = frame.assign(hardware_id="other", extra=[json.dumps({"rounds": {"reference_round_p10_s": [REFERENCE_S * 2]}})
                                                    for _ in range(len(frame))])
    typical = steady.typical_reference_seconds(pd.concat([frame, slow], ignore_index=True))
    assert sorted(typical.unique()) == pytest.approx([REFERENCE_S, 2 * REFERENCE_S])


def test_each_thread_count_has_its_own_typical_reference():
    """The rounds run the reference at the configurations' thread count: a 2-thread reference call takes half as
    long, so each thread count's results go on the scale of its own reference, not a median mixing both (which moved
    with the share of each in the store)."""
    one = drifted(synthetic_frame(n_families=2, noise=0.0), sigma=0.0).assign(threads=1)
    two = one.assign(threads=2, throughput_items_per_s=one["throughput_items_per_s"] * 1.8,
                     normalised_throughput=one["throughput_items_per_s"] * 1.8 * REFERENCE_S / 2, extra=[
                         json.dumps({"rounds": {"reference_round_p10_s": [REFERENCE_S / 2] * 5}}) for _ in one.index])
    for share in (1, 4):  # a store with four times the 2-thread rows: the same scale for every row
        frame = pd.concat([one, *[two] * share], ignore_index=True)
        out = steady.steady_frame(frame)
        np.testing.assert_allclose(out[steady.STEADY_COLUMN], frame["throughput_items_per_s"])
    assert steady.reference_group(frame).nunique() == 2


def test_a_law_learnt_on_the_steady_scale_is_recovered_where_the_measured_scale_misses_it():
    frame = drifted(synthetic_frame(n_families=4, noise=0.02, seed=1), sigma=0.25, seed=5)
    scores = predict.steady_scores(predict.features.feature_frame(frame), fast_predictor(targets=("throughput",)))
    assert list(scores.index) == ["measured", "steady"] and (scores["n"] == len(frame)).all()
    assert scores.loc["steady", "mape"] < 0.06 < 0.12 < scores.loc["measured", "mape"]
    assert scores.loc["steady", "coverage"] >= 0.75
    assert scores["repeat_mape"].isna().all()  # no repeat table given


def test_families_held_out_together_are_scored_on_both_scales_on_the_same_rows():
    frame = predict.features.feature_frame(drifted(synthetic_frame(n_families=4, noise=0.02, seed=1), seed=5))
    frame.loc[frame.index[:3], "normalised_throughput"] = np.nan  # measured without the reference: on neither scale
    table = predict.held_out_scales(frame, ["fam0", "fam1"], fast_predictor(targets=("throughput", "memory")))
    assert list(table.index.names) == ["scale", "target", "group"]
    assert set(table.index) == {(s, "throughput", g) for s in ("measured", "steady") for g in ("all", "fam0", "fam1")}
    held = frame["family"].isin(["fam0", "fam1"]) & frame["normalised_throughput"].notna()
    assert (table.xs("all", level="group")["n"] == held.sum()).all()
    assert table.loc[("steady", "throughput", "all"), "mape"] < 0.06 < 0.12 < table.loc[
        ("measured", "throughput", "all"), "mape"]
    assert predict.held_out_scales(frame, [], fast_predictor()).empty
    assert predict.held_out_scales(frame, ["fam0"], fast_predictor(targets=("memory",))).empty


def test_the_measured_scale_reuses_the_frame_validation_when_every_row_is_steady(monkeypatch):
    frame = predict.features.feature_frame(drifted(synthetic_frame(n_families=3, noise=0.02, seed=2), seed=6))
    template = fast_predictor(targets=("throughput",))
    measured = predict.validate_targets(frame, template)["throughput"]
    calls = []
    original = predict.validation.validate_target
    monkeypatch.setattr(predict.validation, "validate_target", lambda data, t, target: calls.append(len(data)) or
                        original(data, t, target))
    scores = steady.steady_scores(frame, template, measured=measured)
    assert calls == [len(frame)]  # the steady scale only
    assert scores.loc["measured", "mape"] == pytest.approx(measured.scores().set_index("method").loc[
        "predictor", "mape"])


def test_the_steady_budget_puts_the_predictor_beside_the_normalised_repeat_floor_per_setting():
    """Every configuration measured twice, its normalised throughput repeating within about 3 %: per platform and
    thread count, the predictor's steady MAPE on those configurations beside that floor."""
    law = synthetic_frame(n_families=3, noise=0.0, platforms=("cpu", "cuda"))
    law = law.assign(threads=1, config_key=[f"config-{i}" for i in range(len(law))])
    rng = np.random.default_rng(3)
    twice = []
    for seed in (0, 1):
        again = drifted(law, seed=seed)
        twice.append(again.assign(result_id=[f"r{seed}-{i}" for i in range(len(again))],
                                  normalised_throughput=again["normalised_throughput"]
                                  * np.exp(rng.normal(0, 0.03, len(again)))))
    measurements = pd.concat(twice, ignore_index=True)
    frame = twice[0]
    validation = steady.validate_steady(frame, fast_predictor())
    budget = steady.steady_budget(validation, frame, measurements)
    assert list(budget.index) == [("cpu", "1"), ("cuda", "1")]
    assert (budget["repeated"] == budget["n"]).all() and budget["n"].sum() == len(frame)
    assert ((budget["repeat_mape"] > 0.01) & (budget["repeat_mape"] < 0.05)).all()  # two draws of 3 % noise
    ratio = budget["predictor_on_repeated_mape"] / budget["repeat_mape"]
    assert np.allclose(budget["ratio_to_floor"], ratio)
    scores = steady.steady_scores(frame, fast_predictor(), steady_validation=validation)
    assert scores.loc["steady", "mape"] == pytest.approx(predict.accuracy(validation.predictions["measured"],
                                                                            validation.predictions["pred"])["mape"])
    assert steady.validate_steady(law, fast_predictor()) is None  # no normalised throughput: nothing to validate
    assert steady.steady_budget(None, frame, measurements).empty


def test_upgrade_computes_the_normalised_latency_older_results_lack_from_their_samples(tmp_path):
    from kit import storage
    from kit.predict import upgrade
    from kit.records import Record

    con = storage.connect(tmp_path / "u.duckdb")
    storage.start_run(con, "old", {}, {"hardware": {"hardware_id": "hw", "hostname": "h"}, "env_id": "e"})
    rounds = {"reference_round_medians_s": [0.001, 0.002, None]}  # the reference missed the third round
    common = dict(run_id="old", model="bert", family="bert", size="tiny", mode="inference", platform="cpu",
                  device="cpu", precision="fp32", batch_size=1, extra={"rounds": rounds})
    for key, extra in (("in-rounds", {"rounds": rounds}), ("alone", {})):
        storage.insert_record(con, Record.from_samples(
            [0.010, 0.011, 0.012, 0.020, 0.021, 0.022, 0.015, 0.016, 0.017],
            sample_rounds=[0, 0, 0, 1, 1, 1, 2, 2, 2], config_key=key, **{**common, "extra": extra}))
    assert steady.steady_frame(predict.all_measurements(con), "latency").empty  # stored without it
    assert upgrade.missing_normalised_latency(con).keys() == {storage.results_frame(con, config_key="in-rounds")[
        "result_id"].iloc[0]}
    assert upgrade.upgrade_store(con)["normalised_latency"] == 1
    stored = json.loads(storage.results_frame(con, config_key="in-rounds")["extra"].iloc[0])["rounds"]
    assert stored["normalised_latency"] == pytest.approx(np.sqrt(0.011 / 0.001 * 0.021 / 0.002))  # rounds 0 and 1
    assert stored["reference_round_medians_s"] == rounds["reference_round_medians_s"]
    assert upgrade.upgrade_store(con)["normalised_latency"] == 0  # nothing left to compute


def test_the_reference_measured_now_gives_its_fastest_process_10th_percentile_and_median():
    from kit.runners.reference import reference_now

    level = reference_now(1, seconds=0.2)
    assert set(level) == {"p10", "median"} and 0 < level["p10"] <= level["median"] < 0.1


def test_factors_to_today_follow_the_reference_measured_now():
    frame = drifted(synthetic_frame(n_families=2, noise=0.0), sigma=0.0).assign(threads=1)
    today = {"p10": 2 * REFERENCE_S, "median": 2 * REFERENCE_MEDIAN_S}  # the machine runs at half its usual speed
    factors = steady.factors_to_today(steady.typical_of(frame, "hw-cpu", 1), today)
    assert factors == pytest.approx({"throughput": 0.5, "latency": 2.0})
    with pytest.raises(ConfigError, match=r"hw-cpu\|threads=2\).*known: hw-cpu\|threads=1"):
        steady.typical_of(frame, "hw-cpu", 2)
    both = steady.steady_data(frame)
    assert len(both) == len(frame) and {"steady_throughput_items_per_s", "steady_latency_p50_s"} <= set(both)
