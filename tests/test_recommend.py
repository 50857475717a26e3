"""Recommendations on synthetic frames (test data from a formula): sources, memory budget, cost order, fallbacks."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pandas as pd
import pytest

from kit import predict, recommend, storage
from kit.errors import ConfigError
from tests.test_predict import FAST, fast_predictor, store_synthetic, synthetic_frame

VARIANT = {"overrides": {"num_hidden_layers": 2, "hidden_size": 64}, "seq_len": 64}


@pytest.fixture(autouse=True)
def quick_boosting(monkeypatch):
    """Predictors fitted inside the recommender (the CLI, the steady scale) boost with the tests' fewer rounds too."""
    monkeypatch.setattr(predict.model, "GB_PARAMS", dict(FAST))


@pytest.fixture(scope="module")
def two_platforms() -> pd.DataFrame:
    """cpu and cuda rows of four families; fam0's batch-16 rows are left out so they must be predicted."""
    frame = synthetic_frame(n_families=4, platforms=("cpu", "cuda"))
    return frame[~((frame["model"] == "fam0") & (frame["batch_size"] == 16))].reset_index(drop=True)


def one_model() -> predict.Predictor:
    """A quick predictor without a choice among models, for tests about what is done with its fits."""
    return fast_predictor(baseline_kind="overhead", boosting=True)


@pytest.fixture(scope="module")
def predictor(two_platforms: pd.DataFrame):
    return fast_predictor().fit(two_platforms)


def test_measured_where_measured_predicted_elsewhere(two_platforms, predictor) -> None:
    table = recommend.recommend(two_platforms, "fam0", predictor=predictor, **VARIANT)
    assert len(table) == 4 * 3 and table["rank"].tolist() == list(range(1, 13))
    assert set(table.loc[table["batch_size"] == 16, "source"]) == {"predicted"}
    assert set(table.loc[table["batch_size"] < 16, "source"]) == {"measured"}
    assert (table["throughput_low"] <= table["throughput_items_per_s"]).all()
    assert (table["throughput_items_per_s"] <= table["throughput_high"]).all()
    predicted = table[table["source"] == "predicted"]
    assert (predicted["throughput_low"] < predicted["throughput_items_per_s"]).all()
    assert (predicted["memory_high_bytes"] > predicted["peak_memory_bytes"]).all()
    assert table["throughput_items_per_s"].is_monotonic_decreasing
    assert table.iloc[0]["platform"] == "cuda" and table.iloc[0]["precision"] == "fp16"


def test_predictions_are_anchored_to_the_nearest_measured_batch(two_platforms, predictor) -> None:
    fam0 = two_platforms["model"] == "fam0"  # make fam0 twice as fast as its features say: an effect of the family
    faster = two_platforms.assign(
        throughput_items_per_s=two_platforms["throughput_items_per_s"].where(~fam0, 2 * two_platforms[
            "throughput_items_per_s"]),
        latency_p50_s=two_platforms["latency_p50_s"].where(~fam0, two_platforms["latency_p50_s"] / 2))
    keys = ["platform", "precision", "batch_size"]
    plain = recommend.recommend(two_platforms, "fam0", predictor=predictor, **VARIANT).set_index(keys)
    table = recommend.recommend(faster, "fam0", predictor=predictor, **VARIANT).set_index(keys)
    predicted = table[table["source"] == "predicted"]
    assert len(predicted) == 4 and (predicted["anchor_batches"] == "4").all()  # batch 16's nearest measured one
    assert (table.loc[table["source"] == "measured", "anchor_batches"] == "").all()
    for column in ("throughput_items_per_s", "throughput_low", "throughput_high"):
        assert np.allclose(predicted[column], 2 * plain.loc[predicted.index, column])  # follows the measurements
    assert np.allclose(predicted["latency_s"], plain.loc[predicted.index, "latency_s"] / 2)
    full = synthetic_frame(n_families=4, platforms=("cpu", "cuda"))  # the batch-16 rows that two_platforms lacks
    overrides = full["params_json"].map(lambda p: json.loads(p)["overrides"])
    truth = full[(full["model"] == "fam0") & (full["batch_size"] == 16) & (full["seq_len"] == 64)
                 & overrides.map(lambda o: o == VARIANT["overrides"])].set_index(keys)["throughput_items_per_s"]
    error = (predicted["throughput_items_per_s"] / (2 * truth.loc[predicted.index]) - 1).abs()
    assert (error < 0.15).all(), error  # without the anchor it would be about 50 % off


def test_a_prediction_between_measured_batches_follows_both() -> None:
    full = synthetic_frame(n_families=4, platforms=("cpu", "cuda"))
    fam0 = full["model"] == "fam0"
    data = full[~(fam0 & (full["batch_size"] == 4))].reset_index(drop=True)  # fam0 measured at batch 1 and 16 only
    trained = fast_predictor().fit(data)
    keys = ["platform", "precision", "batch_size"]
    table = recommend.recommend(data, "fam0", predictor=trained, **VARIANT).set_index(keys)
    predicted = table[table["source"] == "predicted"]
    assert len(predicted) == 4 and (predicted["anchor_batches"] == "1, 16").all()
    # fam0 at batch 1 twice as fast and at batch 16 eight times: batch 4 (half-way in log) gets sqrt(2 x 8) = 4
    factor = data["batch_size"].map({1: 2.0, 16: 8.0}).where(data["model"] == "fam0", 1.0)
    skewed = data.assign(throughput_items_per_s=data["throughput_items_per_s"] * factor,
                         latency_p50_s=data["latency_p50_s"] / factor)
    moved = recommend.recommend(skewed, "fam0", predictor=trained, **VARIANT).set_index(keys)
    assert np.allclose(moved.loc[predicted.index, "throughput_items_per_s"], 4 * predicted["throughput_items_per_s"])
    weights = recommend.core._interpolation_weights(pd.Series(np.log([1.0, 4.0, 16.0]), index=[7, 8, 9]), np.log(32))
    assert weights.to_dict() == {9: 1.0}  # beyond the measured range: the nearest alone


def test_memory_budget_is_respected_with_upper_bounds(two_platforms, predictor) -> None:
    free = recommend.recommend(two_platforms, "fam0", predictor=predictor, platforms_allowed=["cpu"], **VARIANT)
    cpu = free[free["platform"] == "cpu"]
    budget = float(cpu["memory_high_bytes"].median())
    table = recommend.recommend(two_platforms, "fam0", predictor=predictor, platforms_allowed=["cpu"],
                                memory_budget_bytes=budget, **VARIANT)
    assert len(table) and (table["memory_high_bytes"] <= budget).all()
    excluded = table.attrs["excluded"]
    assert len(excluded) and (excluded["memory_high"] > budget).all()
    best = recommend.best_under_budget(two_platforms, "fam0", budget, predictor=predictor, platforms_allowed=["cpu"],
                                       **VARIANT)
    assert best is not None and best["memory_high_bytes"] <= budget
    assert best["throughput_items_per_s"] == table["throughput_items_per_s"].max()


def test_unknown_memory_never_passes_a_budget(two_platforms, predictor) -> None:
    frame = two_platforms.assign(peak_memory_bytes=np.nan)
    model = fast_predictor(targets=("throughput", "latency")).fit(frame)
    table = recommend.recommend(frame, "fam0", predictor=model, memory_budget_bytes=1e12, **VARIANT)
    assert table.empty and "memory unknown" in table.attrs["excluded"]["reason"].iloc[0]


def test_prices_order_cost(two_platforms, predictor) -> None:
    expensive_gpu = recommend.recommend(two_platforms, "fam0", "cost", predictor=predictor,
                                        hourly_prices={"cpu": 0.1, "cuda": 2.5}, **VARIANT)
    costs = expensive_gpu["cost_per_million"]
    assert costs.is_monotonic_increasing
    row = expensive_gpu.iloc[0]
    assert row["cost_per_million"] == pytest.approx(2.5 / 3600 / row["throughput_items_per_s"] * 1e6
                                                    if row["platform"] == "cuda" else
                                                    0.1 / 3600 / row["throughput_items_per_s"] * 1e6)
    cuda_fp32 = expensive_gpu[(expensive_gpu["platform"] == "cuda") & (expensive_gpu["precision"] == "fp32")]
    cpu_bf16 = expensive_gpu[(expensive_gpu["platform"] == "cpu") & (expensive_gpu["precision"] == "bf16")]
    assert cpu_bf16["rank"].min() < cuda_fp32["rank"].min()  # 25x cheaper beats ~10x faster
    pricey_cpu = recommend.recommend(two_platforms, "fam0", "cost", predictor=predictor,
                                     hourly_prices={"cpu": 100.0, "cuda": 1.0}, **VARIANT)
    assert set(pricey_cpu.head(6)["platform"]) == {"cuda"}
    only_cpu_priced = recommend.recommend(two_platforms, "fam0", "cost", predictor=predictor,
                                          hourly_prices={"cpu": 0.1}, **VARIANT)
    assert set(only_cpu_priced["platform"]) == {"cpu"}


def test_latency_bound_and_latency_objective(two_platforms, predictor) -> None:
    table = recommend.recommend(two_platforms, "fam0", "latency", predictor=predictor, latency_bound_s=1e-4,
                                **VARIANT)
    assert len(table) and (table["latency_high_s"] <= 1e-4).all() and table["latency_s"].is_monotonic_increasing


def test_fallback_to_cpu_with_the_reason(two_platforms) -> None:
    cpu = two_platforms[two_platforms["platform"] == "cpu"]
    model = fast_predictor().fit(cpu)
    table = recommend.recommend(cpu, "fam0", predictor=model, platforms_allowed=["cuda", "cpu"], **VARIANT)
    assert set(table["platform"]) == {"cpu"} and (table["fallback_reason"] == "").all()
    assert any("cuda" in note for note in table.attrs["notes"])
    fallen = recommend.recommend(cpu, "fam0", predictor=model, platforms_allowed=["cuda"], **VARIANT)
    assert set(fallen["platform"]) == {"cpu"}
    assert fallen["fallback_reason"].str.contains("no measurements on cuda").all()
    strict = recommend.recommend(cpu, "fam0", predictor=model, platforms_allowed=["cuda"], fallback=False, **VARIANT)
    assert strict.empty


def test_evaluation_leaves_the_family_out(two_platforms) -> None:
    frame = synthetic_frame(n_families=3, platforms=("cpu", "cuda"))
    trained_on: list[set[str]] = []

    def make():
        class Spy(type(fast_predictor())):
            def fit(self, data):
                trained_on.append(set(data["family"]))
                return super().fit(data)

        return Spy(targets=("throughput",), gb_params=fast_predictor().gb_params)

    frame = frame.assign(result_id=[f"r{i}" for i in range(len(frame))])
    result = recommend.evaluate_recommendations(frame, make_predictor=make)
    assert len(trained_on) == 3 and all(len(families) == 2 for families in trained_on)
    by_id = frame.set_index("result_id")
    assert all(by_id.loc[r, "platform"] == best.split("|")[0] and by_id.loc[r, "batch_size"] == int(best.split("|")[2])
               for r, best in zip(result["best_result"], result["best"], strict=True))
    assert (result.loc[result["hit"], "chosen_result"] == result.loc[result["hit"], "best_result"]).all()
    assert result.attrs["n_variants"] == 3 * 6 and set(result["group"]) == {"fam0", "fam1", "fam2"}
    assert result.attrs["top1_hit_rate"] >= 0.6 and result.attrs["mean_regret"] < 0.06
    assert (result["regret"] >= 0).all() and (result.loc[result["hit"], "regret"] == 0).all()


def test_rank_by_bound_puts_a_sure_measurement_above_a_wide_prediction() -> None:
    """A prediction whose point beats a measurement but whose interval reaches far below it: first by point value,
    second by the pessimistic end (lowest throughput, highest latency, cost at the lowest throughput)."""
    table = pd.DataFrame({
        "source": ["predicted", "measured"], "throughput_items_per_s": [120.0, 100.0],
        "throughput_low": [60.0, 95.0], "latency_s": [0.010, 0.012], "latency_high_s": [0.030, 0.013],
        "memory_high_bytes": [2e9, 1e9], "cost_per_million": [0.5, 0.6]})
    for objective in ("throughput", "latency", "cost"):
        assert recommend.rank(table, objective)["source"].tolist() == ["predicted", "measured"], objective
        assert recommend.rank(table, objective, "bound")["source"].tolist() == ["measured", "predicted"], objective
    no_interval = table.assign(throughput_low=[60.0, np.nan])  # no interval: ranked by its point value
    assert recommend.rank(no_interval, "throughput", "bound")["source"].tolist() == ["measured", "predicted"]
    with pytest.raises(ConfigError, match="unknown rank_by 'lower'"):
        recommend.rank(table, "throughput", "lower")


def test_recommend_and_evaluation_rank_by_bound(two_platforms, predictor) -> None:
    table = recommend.recommend(two_platforms, "fam0", predictor=predictor, rank_by="bound", **VARIANT)
    assert table["throughput_low"].is_monotonic_decreasing and table["rank"].tolist() == list(range(1, 13))
    with pytest.raises(ConfigError, match="rank_by"):
        recommend.recommend(two_platforms, "fam0", predictor=predictor, rank_by="worst", **VARIANT)
    two_families = two_platforms[two_platforms["family"].isin(["fam0", "fam1"])]
    result = recommend.evaluate_recommendations(two_families, make_predictor=fast_predictor, rank_by="bound")
    assert result.attrs["n_variants"] > 0 and (result["regret"] >= 0).all()
    with pytest.raises(ConfigError, match="rank_by"):
        recommend.evaluate_recommendations(two_families, rank_by="worst")
    with pytest.raises(ConfigError, match="rank_by"):
        recommend.Request(model="bert", rank_by="worst")
    assert recommend.Request(model="bert", rank_by="bound").kwargs()["rank_by"] == "bound"


def test_bad_input_is_a_config_error(two_platforms) -> None:
    with pytest.raises(ConfigError, match="unknown objective 'speed'"):
        recommend.recommend(two_platforms, "fam0", "speed")
    with pytest.raises(ConfigError, match="needs hourly_prices"):
        recommend.recommend(two_platforms, "fam0", "cost")
    with pytest.raises(ConfigError, match="memory_budget_bytes"):
        recommend.recommend(two_platforms, "fam0", memory_budget_bytes=-1)
    with pytest.raises(ConfigError, match="cpu=0.1"):
        recommend.parse_prices(["cpu:0.1"])
    assert recommend.parse_prices(["cpu=0.1", "cuda=2.5"]) == {"cpu": 0.1, "cuda": 2.5}


_store = store_synthetic  # the same synthetic records the prediction tests store


def test_cmd_recommend_reads_the_database(tmp_path, capsys) -> None:
    db = tmp_path / "b.duckdb"
    con = storage.connect(db)
    _store(con, synthetic_frame(n_families=3, batch_sizes=(1, 4)))
    frame = recommend.measured_frame(con)
    assert frame["peak_flops_per_s"].notna().all()  # peaks come from the hardware row
    con.close()
    parser = argparse.ArgumentParser()
    recommend.add_recommend_arguments(parser)
    args = parser.parse_args(["--model", "fam1", "--objective", "cost", "--price", "cpu=0.1", "--platforms", "cuda",
                              "cpu", "--memory-budget-gb", "8", "--db", str(db), "--top", "3"])
    assert recommend.cmd_recommend(args) == 0
    out = capsys.readouterr().out
    assert "note: cuda: no measurements on cuda" in out and "cost_per_million" in out and "measured" in out
    args = parser.parse_args(["--model", "fam1", "--rank-by", "bound", "--db", str(db), "--top", "3"])
    assert args.rank_by == "bound" and recommend.cmd_recommend(args) == 0
    args = parser.parse_args(["--model", "fam1", "--memory-budget-gb", "0.001", "--db", str(db)])
    assert recommend.cmd_recommend(args) == 1


def test_request_checks_every_parameter_before_any_work() -> None:
    request = recommend.Request(model="BERT", memory_budget_gb=2, latency_bound_ms=50, platforms=["cuda", "cpu"],
                                batch_sizes=[1, 8], budgets_gb=[0.5, 1])
    kwargs = request.kwargs()
    assert request.model == "bert" and kwargs["memory_budget_bytes"] == 2 * 2**30
    assert kwargs["latency_bound_s"] == pytest.approx(0.05) and kwargs["platforms_allowed"] == ["cuda", "cpu"]
    for bad, match in (({"platforms": ["cdua"]}, "unknown platforms"), ({"memory_budget_gb": -1}, "memory_budget_gb"),
                       ({"budgets_gb": [1, 0]}, "budgets_gb"), ({"batch_sizes": [0]}, "positive integers"),
                       ({"objective": "cost"}, "needs hourly_prices"), ({"mode": "serving"}, "mode"),
                       ({"precisions": ["fp64"]}, "unknown precisions"), ({"model": "nope"}, "unknown model"),
                       ({"coverage": 1.5}, "coverage")):
        with pytest.raises(ConfigError, match=match):
            recommend.Request(**{"model": "bert", **bad})


def test_evaluation_with_one_family_says_why_it_is_skipped(two_platforms) -> None:
    one = two_platforms[two_platforms["family"] == "fam1"]
    result = recommend.evaluate_recommendations(one, make_predictor=lambda: fast_predictor(targets=("throughput",)))
    assert result.empty and "two or more" in result.attrs["skipped_reason"]
    summary = recommend.evaluation_summary(result).iloc[0]
    assert summary["n_variants"] == 0 and "two or more" in summary["skipped_reason"]
    request = recommend.Request(model="bert")
    assert recommend.headline(one.iloc[:0].assign(source=[], fallback_reason=[]), request, result)[
        "top1_hit_rate"] is None


def test_a_family_whose_training_data_cannot_be_learnt_from_is_left_unscored_with_why(two_platforms) -> None:
    """Held out fam1, the other family's single row teaches nothing: fam1 goes unscored and says why, and the
    evaluation does not stop (fam0, one configuration, has nothing to choose between)."""
    lone = two_platforms[two_platforms["family"] == "fam0"].iloc[:1]
    data = pd.concat([two_platforms[two_platforms["family"] == "fam1"], lone], ignore_index=True)
    result = recommend.evaluate_recommendations(data, make_predictor=lambda: fast_predictor(targets=("throughput",)))
    assert result.empty and result.attrs["unscored"].startswith("fam1 (no measured rows")
    assert result.attrs["skipped_reason"].endswith(f"not scored: {result.attrs['unscored']}")
    assert recommend.evaluation_summary(result).iloc[0]["unscored"] == result.attrs["unscored"]


def test_evaluation_of_cost_and_latency_objectives() -> None:
    frame = synthetic_frame(n_families=3, platforms=("cpu", "cuda"))
    prices = {"cpu": 0.1, "cuda": 2.5}
    for objective, target in (("cost", "throughput"), ("latency", "latency")):
        result = recommend.evaluate_recommendations(
            frame, objective, hourly_prices=prices if objective == "cost" else None,
            make_predictor=lambda target=target: fast_predictor(targets=(target,)))
        assert result.attrs["n_variants"] == 3 * 6 and 0 <= result.attrs["top1_hit_rate"] <= 1
        assert (result["regret"] >= 0).all() and (result.loc[result["hit"], "regret"] == 0).all()
    with pytest.raises(ConfigError, match="needs hourly_prices"):
        recommend.evaluate_recommendations(frame, "cost")


def test_budget_search_notes_and_headline(two_platforms, predictor) -> None:
    cpu = two_platforms[two_platforms["platform"] == "cpu"]
    model = fast_predictor().fit(cpu)
    median = float(cpu["peak_memory_bytes"].median()) / 2**30
    request = recommend.Request(model="bert", platforms=["cuda", "cpu"], memory_budget_gb=median * 1.5,
                                budgets_gb=[median / 100, median * 1.5, median * 100])
    kwargs = {**request.kwargs(), "overrides": VARIANT["overrides"], "seq_len": VARIANT["seq_len"]}
    table = recommend.recommend(cpu, "fam0", predictor=model, **kwargs)
    notes = recommend.notes_table(table)
    assert (notes["kind"] == "note").any() and notes["detail"].str.contains("cuda").any()
    assert (recommend.excluded_table(table)["memory_high"] > request.memory_budget_bytes).all()
    h = recommend.headline(table, request)
    assert h["pick_platform"] in h["candidate_platforms"] and h["pick_within_budget"]
    assert h["n_ranked"] == len(table) == h["n_measured"] + h["n_predicted"] and not h["fell_back"]
    search = recommend.budget_search(cpu, request, model)
    assert len(search) == 3 and search["source"].iloc[0] == "nothing fits"
    fits = search.iloc[1:]
    assert (fits["memory_high_bytes"] <= fits["memory_budget_gb"] * 2**30).all()
    assert fits["throughput_items_per_s"].is_monotonic_increasing  # a larger budget never picks a slower one
    overview = recommend.data_overview(recommend.measured_frame(cpu))
    assert overview["n_results"].sum() == len(cpu) and set(overview["platform"]) == {"cpu"}
    assert "none" in recommend.predictor_summary(None)["method"].iloc[0]


def test_a_seed_only_database_ranks_measurements_and_never_an_unbounded_prediction(tmp_path) -> None:
    """Two measurements of one model (like the notebooks' seed run): predictions have no held-out residuals, so
    their intervals are unbounded and a memory budget excludes them; the measured ones are ranked."""
    con = storage.connect(tmp_path / "b.duckdb")
    frame = synthetic_frame(n_families=1, batch_sizes=(1, 2))
    _store(con, frame[(frame["params_json"] == frame["params_json"].iloc[0]) & (frame["precision"] == "fp32")])
    data = recommend.measured_frame(con)
    model = recommend.fit_predictor(data, coverage=0.8)
    assert model is not None and not np.isfinite(model.summary()["high_factor"]).any()
    table = recommend.recommend(data, "fam0", predictor=model, memory_budget_bytes=2**40, batch_sizes=[1, 2, 4])
    assert set(table["source"]) == {"measured"} and len(table) == 2
    assert (table.attrs["excluded"]["source"] == "predicted").all()
    assert recommend.evaluate_recommendations(data).attrs["skipped_reason"]


def test_a_configuration_that_failed_or_ran_out_of_memory_is_never_recommended(two_platforms, predictor) -> None:
    variant = two_platforms[(two_platforms["model"] == "fam0") & (two_platforms["params_json"] == json.dumps(
        {"overrides": {"num_hidden_layers": 2, "hidden_size": 64}}))]
    failed = variant[(variant["platform"] == "cpu") & (variant["precision"] == "fp32")].head(1).assign(
        batch_size=8, status="failed", throughput_items_per_s=np.nan, created_at="2026-02-01T00:00:00",
        reason="child process killed by SIGKILL (likely out of memory: the OOM killer sends SIGKILL)")
    data = pd.concat([two_platforms, failed], ignore_index=True)
    table = recommend.recommend(data, "fam0", predictor=predictor, batch_sizes=[1, 4, 8, 16], **VARIANT)
    cpu_fp32 = table[(table["platform"] == "cpu") & (table["precision"] == "fp32")]
    assert sorted(cpu_fp32["batch_size"]) == [1, 4]  # 8 failed, 16 is larger on the platform that ran out of memory
    excluded = table.attrs["excluded"]
    reasons = dict(zip(excluded["batch_size"][excluded["platform"] == "cpu"],
                       excluded["reason"][excluded["platform"] == "cpu"], strict=True))
    assert reasons[8].startswith("measured as failed: child process killed by SIGKILL")
    assert reasons[16] == "ran out of memory when measured at batch 8"
    assert {8, 16} <= set(table[table["platform"] == "cuda"]["batch_size"])  # other platforms are unaffected


def test_a_deviation_bound_rules_out_inexact_precisions(two_platforms, predictor) -> None:
    def with_deviation(row: pd.Series) -> str:
        extra = json.loads(row["extra"])
        if (row["platform"], row["precision"]) == ("cpu", "bf16"):
            extra["deviation"] = {"rel_l2": 0.02 * (1 + row["batch_size"] / 100), "max_abs": 0.01}
        if (row["platform"], row["precision"]) == ("cuda", "fp32"):
            extra["deviation"] = {"rel_l2": 1e-6, "max_abs": 1e-7}
        return json.dumps(extra)

    data = two_platforms.assign(extra=two_platforms.apply(with_deviation, axis=1))
    free = recommend.recommend(data, "fam0", predictor=predictor, **VARIANT)
    assert {"cpu/bf16", "cuda/fp16"} <= set(free["platform"] + "/" + free["precision"])
    bf16 = free[(free["platform"] == "cpu") & (free["precision"] == "bf16")]["output_rel_l2"]
    assert bf16.eq(0.02 * 1.04).all()  # the largest measured at any batch size (fam0's largest measured batch is 4)
    strict = recommend.recommend(data, "fam0", predictor=predictor, max_rel_l2=0.01, **VARIANT)
    kept = set(strict["platform"] + "/" + strict["precision"])
    assert kept == {"cpu/fp32", "cuda/fp32"}  # cpu fp32 is the reference; cuda fp16 was never compared: unknown
    reasons = strict.attrs["excluded"].groupby(["platform", "precision"])["reason"].first()
    assert reasons[("cpu", "bf16")].startswith("output deviation (relative L2 vs fp32 PyTorch) 0.0208 exceeds 0.01")
    assert reasons[("cuda", "fp16")].startswith("output deviation unknown")
    with pytest.raises(ConfigError, match="max_rel_l2"):
        recommend.recommend(data, "fam0", predictor=predictor, max_rel_l2=-1, **VARIANT)


def test_candidates_run_with_the_default_threads_and_match_measurements_of_that_count(two_platforms,
                                                                                      predictor) -> None:
    pinned = two_platforms["params_json"].map(lambda p: json.dumps({**json.loads(p), "threads": 1}))
    frame = pd.concat([two_platforms.assign(threads=2), two_platforms.assign(threads=1, params_json=pinned)],
                      ignore_index=True)
    assert recommend.core.default_threads(frame) == {"cpu": 2.0, "cuda": 2.0}  # unpinned runs say the default
    assert recommend.core.default_threads(frame[frame["threads"] == 1]) == {"cpu": 1.0, "cuda": 1.0}
    fam0 = frame["model"] == "fam0"
    only_one_thread = frame[(~fam0 & (frame["threads"] == 2)) | (fam0 & (frame["threads"] == 1))]
    table = recommend.recommend(frame, "fam0", predictor=predictor, **VARIANT)
    assert set(table.loc[table["batch_size"] < 16, "source"]) == {"measured"}  # measured at the default count
    table = recommend.recommend(only_one_thread, "fam0", predictor=predictor, **VARIANT)
    assert set(table["source"]) == {"predicted"}  # fam0 ran on one thread only: not what a default run gets
    assert (table["anchor_batches"] == "").all()  # and one-thread rows do not anchor default-thread predictions


def test_check_predictions_scores_results_measured_elsewhere(predictor) -> None:
    frame = synthetic_frame(n_families=4, platforms=("cpu", "cuda"))
    data = frame[frame["family"] != "fam3"]
    later = frame[(frame["family"] == "fam3") & (frame["platform"] == "cpu")].head(6)
    already = data[(data["family"] == "fam0") & (data["platform"] == "cpu")].head(1)
    failed = later.head(1).assign(status="failed", reason="child process killed by SIGKILL", batch_size=64)
    checked = recommend.check_predictions(data, pd.concat([later, already, failed], ignore_index=True),
                                          fast_predictor().fit(data))
    assert len(checked) == 8 and checked.attrs["n"] == 7
    new = checked[checked["model"] == "fam3"].iloc[:6]
    assert set(new["source"]) == {"predicted"} and new["ape"].max() < 0.15  # the same law as the training data
    np.testing.assert_allclose(new["measured"], later["throughput_items_per_s"])
    assert checked.iloc[6]["source"] == "measured" and checked.iloc[6]["ape"] < 1e-9
    last = checked.iloc[7]
    assert last["status"] == "failed" and np.isnan(last["ape"]) and "SIGKILL" in last["reason"]
    assert np.isclose(checked.attrs["mape"], checked["ape"].mean())
    assert checked.attrs["coverage"] == checked["inside"].dropna().astype(float).mean()
    by_source = checked.attrs["by_source"]
    assert by_source["measured"]["n"] == 1 and by_source["predicted"]["n"] == 6
    assert np.isclose(by_source["predicted"]["mape"], new["ape"].mean())
    with pytest.raises(ConfigError, match="throughput_items_per_s"):
        recommend.check_predictions(data, later.drop(columns="throughput_items_per_s"))


def test_cmd_check_predictions_prints_each_result_and_the_scores(tmp_path, capsys) -> None:
    from kit import cli

    frame = synthetic_frame(n_families=3, batch_sizes=(1, 4))
    train, later, empty = tmp_path / "train.duckdb", tmp_path / "later.duckdb", tmp_path / "empty.duckdb"
    again = frame[frame["family"] == "fam0"].head(2)  # measured again: the store holds them
    again = again.assign(throughput_items_per_s=again["throughput_items_per_s"] * 1.1,
                         **{c: again[c] / 1.1 for c in ("latency_p50_s", "latency_mean_s", "ci_low_s", "ci_high_s")})
    for path, rows in ((train, frame[frame["family"] != "fam2"]),
                       (later, pd.concat([frame[frame["family"] == "fam2"].head(4), again]))):
        con = storage.connect(path)
        _store(con, rows)
        con.close()
    storage.connect(empty).close()
    assert cli.main(["check-predictions", "--measured-db", str(later), "--db", str(train)]) == 0
    out = capsys.readouterr().out
    assert out.count("fam2") == 4 and "predicted" in out
    assert "6 throughput figures checked on the measured scale: MAPE" in out
    assert "4 predicted: MAPE" in out and "2 measured in the store before (the repeat floor): MAPE 9.1%" in out
    assert "predicted against the floor: MAPE" in out and "machine reference" not in out  # measured without one
    assert cli.main(["check-predictions", "--measured-db", str(later), "--db", str(train), "--scale", "steady"]) == 2
    assert "rounds beside the machine reference" in capsys.readouterr().err  # the synthetic rows have no reference
    assert cli.main(["check-predictions", "--measured-db", str(empty), "--db", str(train)]) == 2
    assert "no results in" in capsys.readouterr().err


def test_both_rankings_come_from_the_same_fits_as_one_ranking_alone(two_platforms) -> None:
    two_families = two_platforms[two_platforms["family"].isin(["fam0", "fam1"])]
    both = recommend.evaluate_rankings(two_families, make_predictor=one_model)
    assert set(both) == {"point", "bound"}
    for rank_by, table in both.items():
        alone = recommend.evaluate_recommendations(two_families, make_predictor=one_model, rank_by=rank_by)
        pd.testing.assert_frame_equal(table, alone)
        assert table.attrs == alone.attrs


def test_on_the_steady_scale_drift_no_longer_picks_the_best(tmp_path) -> None:
    """Rows of a law measured on a drifting machine: the measured 'best' of a variant is often the configuration
    measured while the machine was fast; on the steady scale the law's best is found again."""
    from tests.test_steady import drifted

    frame = drifted(synthetic_frame(n_families=3, platforms=("cpu", "cuda"), noise=0.0), sigma=0.3)
    empty = storage.connect(tmp_path / "empty.duckdb")  # no results with rounds: only the hits are told
    scores = recommend.ranking_scores(frame, make_predictor=one_model, samples=empty)
    assert (scores["n_told"] == (scores["top1_hit_rate"] * scores["n_variants"]).round()).all()
    assert (scores["hit_or_tie_rate"] == scores["top1_hit_rate"]).all()
    assert list(scores.index) == [(s, r) for s in ("measured", "steady") for r in ("point", "bound")]
    assert scores["n_variants"].nunique() == 1 and scores["n_variants"].iloc[0] == 3 * 6  # the same cases
    measured, steady = scores.loc[("measured", "point")], scores.loc[("steady", "point")]
    assert steady["top1_hit_rate"] > measured["top1_hit_rate"] and steady["mean_regret"] < measured["mean_regret"]
    assert steady["top1_hit_rate"] >= 0.8


def test_check_predictions_on_the_steady_scale_leaves_the_drift_between_runs_out() -> None:
    """Training rows measured on a drifting machine, checked rows measured later on a machine 30 % slower: on the
    steady scale each prediction is turned into today's speed with the reference measured beside the checked row."""
    from tests.test_steady import REFERENCE_S, drifted

    frame = synthetic_frame(n_families=4, noise=0.0)
    data = drifted(frame[frame["family"] != "fam3"], sigma=0.3)
    later = frame[frame["family"] == "fam3"].head(6)
    slow = later.assign(throughput_items_per_s=later["throughput_items_per_s"] / 1.3, extra=[
        json.dumps({**json.loads(e), "rounds": {"reference_round_p10_s": [REFERENCE_S * 1.3] * 5}})
        for e in later["extra"]], normalised_throughput=later["throughput_items_per_s"] * REFERENCE_S)
    no_reference = later.head(1)  # measured without rounds: not scored on the steady scale
    rows = pd.concat([slow, no_reference], ignore_index=True)
    measured_scale = recommend.check_predictions(data, rows, one_model().fit(data))
    steady = recommend.check_predictions(data, rows, scale="steady")
    assert steady.attrs["scale"] == "steady" and steady.attrs["n"] == 6
    assert steady.iloc[6]["reason"] == "measured without the machine reference" and np.isnan(steady.iloc[6]["ape"])
    assert steady.attrs["median_ape"] < 0.1 < measured_scale.attrs["median_ape"]
    np.testing.assert_allclose(steady["measured"].iloc[:6], later["throughput_items_per_s"] / 1.3)
    typical = float(np.median([json.loads(e)["rounds"]["reference_round_p10_s"][0] for e in data["extra"]]))
    for checked in (steady, measured_scale):  # how much slower the machine ran: the same on both scales
        assert checked.attrs["reference_factor"] == pytest.approx(REFERENCE_S * 1.3 / typical)
    with pytest.raises(ConfigError, match="unknown scale 'raw'"):
        recommend.check_predictions(data, rows, scale="raw")
    with pytest.raises(ConfigError, match="rounds beside the machine reference"):
        recommend.check_predictions(frame, rows, scale="steady")


def test_latency_checked_on_the_steady_scale_leaves_the_drift_between_runs_out() -> None:
    """The same for the median latency: the later machine is 30 % slower, its reference's median too; on the steady
    scale each predicted latency is turned into today's with the reference measured beside the checked row."""
    from tests.test_steady import REFERENCE_MEDIAN_S, drifted

    frame = synthetic_frame(n_families=4, noise=0.0)
    data = drifted(frame[frame["family"] != "fam3"], sigma=0.3)
    later = frame[frame["family"] == "fam3"].head(6)
    slow = later.assign(latency_p50_s=later["latency_p50_s"] * 1.3, extra=[json.dumps({**json.loads(e), "rounds": {
        "reference_round_medians_s": [REFERENCE_MEDIAN_S * 1.3] * 5, "normalised_latency": t / REFERENCE_MEDIAN_S}})
        for e, t in zip(later["extra"], later["latency_p50_s"], strict=True)])
    measured_scale = recommend.check_predictions(data, slow, one_model().fit(data), target="latency")
    steady = recommend.check_predictions(data, slow, scale="steady", target="latency")
    assert steady.attrs["target"] == "latency" and steady.attrs["n"] == 6
    np.testing.assert_allclose(steady["measured"], later["latency_p50_s"] * 1.3)
    np.testing.assert_allclose(measured_scale["measured"], later["latency_p50_s"] * 1.3)
    assert steady.attrs["median_ape"] < 0.1 < measured_scale.attrs["median_ape"]
    assert (steady["low"] <= steady["predicted"]).all() and (steady["predicted"] <= steady["high"]).all()
    itself = recommend.check_predictions(data, data.head(4), scale="steady", target="latency")
    assert (itself["source"] == "measured").all() and itself["ape"].max() < 1e-9
    assert (itself["low"] <= itself["measured"]).all() and (itself["measured"] <= itself["high"]).all()
    with pytest.raises(ConfigError, match="unknown target 'memory'"):
        recommend.check_predictions(data, slow, target="memory")


def test_recommend_turns_steady_figures_into_todays_before_constraints_apply() -> None:
    from tests.test_steady import drifted

    data = predict.steady.steady_data(drifted(synthetic_frame(n_families=3, noise=0.0), sigma=0.0))
    predictor = fast_predictor().fit(data)
    plain = recommend.recommend(data, "fam0", predictor=predictor, **VARIANT)
    today = recommend.recommend(data, "fam0", predictor=predictor, **VARIANT,
                                to_today={"throughput": 0.5, "latency": 2.0})
    keys = ["platform", "precision", "batch_size"]
    plain, today = plain.set_index(keys), today.set_index(keys).loc[plain.set_index(keys).index]
    for column, factor in (("throughput_items_per_s", 0.5), ("throughput_low", 0.5), ("latency_s", 2.0),
                           ("latency_high_s", 2.0)):
        np.testing.assert_allclose(today[column], plain[column] * factor)
    bound = float(plain["latency_high_s"].max()) * 1.01  # every candidate fits it on the steady scale, not today
    kept = recommend.recommend(data, "fam0", "latency", latency_bound_s=bound, predictor=predictor,
                               **VARIANT, to_today={"throughput": 0.5, "latency": 2.0})
    assert len(kept) < len(plain)


def test_cmd_recommend_on_the_steady_scale_measures_the_reference_now(tmp_path, capsys) -> None:
    from kit import cli
    from kit.config import SweepSpec
    from kit.runners.sweep import run_sweep

    path = tmp_path / "r.duckdb"
    spec = SweepSpec(models=["bert"], platforms=["cpu"], precisions=["fp32"], batch_sizes=[1, 2], time_budget_s=0.2,
                     min_samples=5, threads=1, run_id="rounds")
    assert {r.status for r in run_sweep(spec, path, progress=False)} == {"ok"}
    assert cli.main(["recommend", "--model", "bert", "--db", str(path), "--scale", "steady", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"note: steady scale: the machine reference runs at \d+% of its typical speed here now "
                     r"\(1 thread\(s\)\)", out) and "measured" in out
    assert cli.main(["recommend", "--model", "bert", "--db", str(path), "--scale", "steady", "--threads", "2"]) == 2
    assert "threads=2" in capsys.readouterr().err  # no results at two threads: refused before measuring
    assert cli.main(["recommend", "--model", "bert", "--db", str(path), "--scale", "steady", "--threads", "0"]) == 2
    assert "got 0" in capsys.readouterr().err


def test_a_result_checked_against_itself_on_the_steady_scale_is_exact() -> None:
    """A stored result checked against the store: on the steady scale the measurement is its own round-paired
    throughput (normalised over the reference beside it), not the mean-latency one, so it comes out exact even when
    slow calls pull its mean 25 % down."""
    from tests.test_steady import drifted

    data = drifted(synthetic_frame(n_families=3, noise=0.0), sigma=0.3)
    rows = data.head(5).assign(throughput_items_per_s=data["throughput_items_per_s"].head(5) * 0.75)
    checked = recommend.check_predictions(data, rows, scale="steady")
    assert (checked["source"] == "measured").all() and checked.attrs["n"] == 5
    assert checked["ape"].max() < 1e-9


def _two_thread_counts() -> pd.DataFrame:
    """The synthetic law at the default two threads, and at one (pinned) thread half as fast."""
    frame = synthetic_frame(n_families=4, noise=0.0)
    pinned = frame["params_json"].map(lambda p: json.dumps({**json.loads(p), "threads": 1}))
    one = frame.assign(threads=1, params_json=pinned, throughput_items_per_s=frame["throughput_items_per_s"] / 2,
                       latency_p50_s=frame["latency_p50_s"] * 2, latency_mean_s=frame["latency_mean_s"] * 2)
    return pd.concat([frame.assign(threads=2), one], ignore_index=True)


def test_candidates_run_with_the_threads_asked_for() -> None:
    frame = _two_thread_counts()
    data = frame[frame["family"] != "fam3"]
    predictor = fast_predictor().fit(data)
    facts = recommend.measured_frame(frame[frame["family"] == "fam3"]).iloc[0][recommend.core.FACT_COLUMNS].to_dict()
    default = recommend.recommend(data, "fam3", predictor=predictor, facts=facts, **VARIANT)
    one = recommend.recommend(data, "fam3", predictor=predictor, threads=1, facts=facts, **VARIANT)
    assert set(default["source"]) == set(one["source"]) == {"predicted"}
    keys = ["platform", "precision", "batch_size"]
    ratio = (default.set_index(keys)["throughput_items_per_s"] / one.set_index(keys)["throughput_items_per_s"])
    assert ratio.between(1.6, 2.5).all()  # the law: one thread is half as fast
    measured = recommend.recommend(frame, "fam3", threads=1, predictor=predictor, **VARIANT)
    assert set(measured["source"]) == {"measured"}  # fam3's one-thread measurements stand for one-thread candidates
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match=f"threads must be a positive whole number or None, got {bad!r}"):
            recommend.recommend(data, "fam3", predictor=predictor, threads=bad, facts=facts, **VARIANT)


def test_check_predictions_predicts_each_result_at_its_thread_count() -> None:
    """Results measured later at one thread where the default is two: each is predicted at the count it ran with."""
    frame = _two_thread_counts()
    data = frame[frame["family"] != "fam3"]
    later = frame[(frame["family"] == "fam3") & frame["batch_size"].isin([1, 16])]
    checked = recommend.check_predictions(data, later, fast_predictor().fit(data))
    assert checked.attrs["n"] == len(later) and (checked["source"] == "predicted").all()
    by_threads = checked.groupby(later["threads"].to_numpy())["ape"].max()
    assert by_threads.max() < 0.25  # at the default count alone, every one-thread result would be ~2x off


def test_repeat_picks_are_the_recommendations_null_experiment(two_platforms) -> None:
    same = recommend.repeat_picks(two_platforms, two_platforms)
    assert same.attrs["top1_hit_rate"] == 1.0 and same.attrs["mean_regret"] == 0.0
    assert same.attrs["n_variants"] == recommend.measured_frame(two_platforms)["variant"].nunique()
    # a second run where each variant's best configuration ran at half speed: every pick moves, regret as measured
    first = recommend.measured_frame(two_platforms.assign(result_id=[f"r{i}" for i in range(len(two_platforms))]))
    best = first.groupby("variant")["throughput_items_per_s"].idxmax()
    slower = first.assign(throughput_items_per_s=first["throughput_items_per_s"].where(
        ~first.index.isin(best), first["throughput_items_per_s"] / 2))
    moved = recommend.repeat_picks(first, slower)
    assert moved.attrs["top1_hit_rate"] == 0.0 and (moved["chosen"] != moved["best"]).all()
    assert set(moved["best_result"]) == set(first.loc[best, "result_id"])  # the first run's results, to tell apart
    assert not set(moved["chosen_result"]) & set(moved["best_result"])
    runner_up = first.drop(index=best).groupby("variant")["throughput_items_per_s"].max()
    expected = first.loc[best].set_index("variant")["throughput_items_per_s"] / runner_up - 1
    assert np.allclose(moved.set_index("variant")["regret"], expected.loc[moved["variant"]])
    assert recommend.repeat_picks(first, first.iloc[:0]).attrs["skipped_reason"]


def test_each_thread_count_is_a_case_of_its_own(two_platforms) -> None:
    first = recommend.measured_frame(two_platforms).assign(threads=2)
    # the same configurations measured later at one thread, where the ranking of the platforms flips
    flipped = first["throughput_items_per_s"] * np.where(first["platform"] == "cpu", 3.0, 0.1)
    one = first.assign(threads=1, throughput_items_per_s=flipped, created_at="2026-01-02T00:00:00")
    both = pd.concat([first, one], ignore_index=True)
    picks = recommend.repeat_picks(both, first)  # the second run measured at two threads only
    assert picks.attrs["top1_hit_rate"] == 1.0 and (picks["threads"] == 2).all()
    assert picks.attrs["n_variants"] == first["variant"].nunique()
    assert recommend.repeat_picks(both, both).attrs["n_variants"] == 2 * first["variant"].nunique()
    def make_predictor():
        return fast_predictor(targets=("throughput",), baseline_kind="overhead", boosting=False)

    cases = recommend.evaluate_recommendations(both, make_predictor=make_predictor)
    alone = recommend.evaluate_recommendations(first, make_predictor=make_predictor)
    assert len(cases) == 2 * len(alone) and set(cases["threads"]) == {1, 2}
    at_two = cases[cases["threads"] == 2].reset_index(drop=True)
    assert (at_two["best"] == alone["best"]).all() and (at_two["n_configs"] == alone["n_configs"]).all()


def test_cmd_check_predictions_says_how_far_the_machine_moved(tmp_path, capsys, monkeypatch) -> None:
    """With results measured beside the machine reference, the command says how much slower (or faster) the machine
    ran than during the store's runs, from the reference_factor of the check."""
    from kit import cli
    from kit.recommend.evaluation import CHECK_COLUMNS

    later = tmp_path / "later.duckdb"
    con = storage.connect(later)
    _store(con, synthetic_frame(n_families=1, batch_sizes=(1,)).head(1))
    con.close()
    scores = {"n": 1, "mape": 0.1, "median_ape": 0.1, "coverage": 1.0}
    for factor, pace in ((1.5, "slower"), (0.8, "faster")):
        checked = pd.DataFrame(columns=[*CHECK_COLUMNS])
        checked.attrs = {"scale": "steady", "target": "throughput", **scores, "by_source": {},
                         "reference_factor": factor}
        monkeypatch.setattr(recommend, "check_predictions", lambda *a, checked=checked, **k: checked)
        assert cli.main(["check-predictions", "--measured-db", str(later), "--db", str(later)]) == 0
        out = capsys.readouterr().out
        assert (f"the machine reference took {factor:.2f}x its typical time in the store beside these results (the "
                f"machine ran {pace} than during the store's runs)") in out


def test_candidates_carry_the_depthwise_costs_and_their_machine_s_typical_reference() -> None:
    """Unmeasured candidates have no rounds of their own: they take the depthwise costs of their machine's peaks and
    the typical reference of its measured rows at their thread count, so their depthwise time is on the steady
    scale."""
    from kit.depthwise import depthwise_seconds
    from kit.predict.features import DEPTHWISE_COSTS, TYPICAL_REFERENCE_COLUMN, feature_frame
    from kit.recommend.core import candidate_grid
    from tests.test_depthwise import COSTS, SHAPES

    costs = {"1": {**COSTS, "reference_s": 1e-3}}
    rounds = [json.dumps({"rounds": {"reference_round_p10_s": [s] * 3}}) for s in (2e-3, 2e-3, 4e-3)]
    measured = pd.DataFrame({"platform": "cpu", "precision": "fp32", "mode": "inference", "hardware_id": "hw",
                             "batch_size": [1, 2, 4], "threads": 1.0, "extra": rounds,
                             "peak_flops_per_s": 1e11, "mem_bandwidth_bytes_per_s": 1e10,
                             DEPTHWISE_COSTS: [costs] * 3})
    grid = candidate_grid(measured, {"conv_shapes": SHAPES}, ["cpu"], "inference", [8], threads=1)
    assert grid[TYPICAL_REFERENCE_COLUMN].tolist() == [2e-3]  # the median of the rows' reference
    assert grid[DEPTHWISE_COSTS].iloc[0] == costs
    features = feature_frame(grid.assign(model="m", family="f", size="s", n_params=1e6, flops_per_sample=1e9))
    assert features["depthwise_s"].iloc[0] == pytest.approx(2 * depthwise_seconds(SHAPES, 8, COSTS))


def _interleaved(records: list) -> list:
    """The records as measured in one group of interleaved rounds."""
    from kit.records import Record

    group = {"group": [r.config_key for r in records]}
    return [Record.from_json({**r.to_json(), "extra": {"rounds": {**r.extra["rounds"], **group}}}) for r in records]


def test_ties_are_misses_the_rounds_cannot_tell_from_the_best(tmp_path) -> None:
    """A pick measured within 0.3 % of the best in its group of rounds (the null experiment), or with the same
    throughput at another batch size, is a tie; one 30 % slower is not; a pick measured without rounds or outside the
    best's group (another run: rounds of two runs do not repeat) is not told, and counts as a miss."""
    from tests.test_analysis import rec, store

    con = storage.connect(tmp_path / "ties.duckdb")
    grouped = _interleaved([rec("r", seed=1, drift=0.5), rec("r", "openvino", scale=1.003, seed=2, drift=0.5),
                            rec("r", precision="int8", scale=1.3, seed=3, drift=0.5),
                            rec("r", precision="bf16", batch_size=4, scale=2.0, seed=4, drift=0.5)])
    store(con, "r", [*grouped, rec("r", "cuda", seed=5, rounds=0)])
    store(con, "other", [rec("other", "mps", seed=6)])  # the same speed as the best, in rounds of another run
    ids = storage.results_frame(con).set_index(["platform", "precision"])["result_id"]
    best = ids[("cpu", "fp32")]
    picks = [best, *(ids[key] for key in (("openvino", "fp32"), ("cpu", "int8"), ("cpu", "bf16"), ("cuda", "fp32"),
                                          ("mps", "fp32")))]
    cases = pd.DataFrame({"hit": [True] + [False] * 5, "chosen_result": picks, "best_result": [best] * 6})
    told = recommend.tell_apart(cases, con)
    assert told["tie"].tolist() == [True, True, False, True, pd.NA, pd.NA]
    assert told.attrs["n_told"] == 4 and told.attrs["hit_or_tie_rate"] == pytest.approx(3 / 6)
    assert recommend.tell_apart(cases, con, "latency")["tie"].tolist() == [True, True, False, False, pd.NA, pd.NA]
    with pytest.raises(ConfigError, match="'memory'"):
        recommend.tell_apart(cases, con, "memory")
