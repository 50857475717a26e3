"""Noisy results measured again, and the predictor's preference for converged measurements."""

from __future__ import annotations

import pandas as pd
import pytest

from kit import predict, storage
from kit.config import Job
from kit.environment import collect_environment
from kit.errors import ConfigError
from kit.predict import remeasure
from kit.records import Record

TINY = {"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64}


def test_noisy_rows_give_way_to_a_converged_measurement_of_their_configuration() -> None:
    again = "r" + remeasure.REMEASURE_SUFFIX + "1"
    frame = pd.DataFrame({
        "config_key": ["a", "a", "b", "c", "c", "d", "d", "e", "e", "f", "f"],
        "threads": [1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1],
        "hardware_id": ["h"] * 11,
        "run_id": ["r"] * 7 + ["r", again, "r", again],
        "noisy": [True, False, True, False, False, True, False, False, False, False, True],
    })
    kept = remeasure.prefer_converged(frame)
    # a: the noisy one goes; b: noisy but alone, kept; c: two converged, both kept; d: other thread counts differ;
    # e: a converged re-measurement supersedes the first measurement; f: a noisy one does not
    assert kept.index.tolist() == [1, 2, 3, 4, 5, 6, 8, 9]
    assert remeasure.prefer_converged(frame.drop(columns="noisy")).equals(frame.drop(columns="noisy"))
    assert remeasure.prefer_converged(frame.drop(columns="run_id")).index.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_a_configuration_counts_once_by_its_fastest_good_measurement() -> None:
    frame = pd.DataFrame({
        "config_key": ["a", "a", "a", "b", "b", "c", "d", "d"],
        "threads": [1] * 8,
        "hardware_id": ["h"] * 8,
        "noisy": [False, False, True, True, True, False, False, False],
        "throughput_items_per_s": [100.0, 120.0, 200.0, 50.0, 60.0, 10.0, 90.0, 300.0],
        "extra": ["{}"] * 7 + ['{"host_steal_share": 0.2}'],
    })
    kept = remeasure.best_measurements(frame)
    # a: the faster converged one, not the noisy 200; b: all noisy, the fastest; c: alone; d: 300 was disturbed
    assert kept.index.tolist() == [1, 4, 5, 6]
    assert remeasure.best_measurements(frame.drop(columns="throughput_items_per_s")).equals(
        remeasure.prefer_converged(frame.drop(columns="throughput_items_per_s")))


def noisy_record(run_id: str, params: dict) -> Record:
    """A stored-looking noisy result of a real job: samples far apart, so the CI misses a tight target."""
    job = Job(run_id=run_id, model="bert", size="tiny", mode="inference", platform="cpu", precision="fp32",
              batch_size=1, seq_len=8, overrides=TINY, **params)
    return Record.from_samples([0.001, 0.004, 0.002, 0.008, 0.001], target_rel_ci=1e-6, **job.identity(),
                               family="bert", device="cpu", threads=1)


def test_remeasure_spec_rebuilds_the_stored_configuration() -> None:
    record = noisy_record("r1", {"time_budget_s": 0.3, "threads": 1})
    spec = remeasure.remeasure_spec(record.params_json, "r1")
    assert spec.run_id.startswith("r1" + remeasure.REMEASURE_SUFFIX)
    assert spec.jobs()[0].config_key == record.config_key and spec.threads == 1 and spec.time_budget_s == 0.3
    assert remeasure.remeasure_spec(record.params_json, "r1").run_id == spec.run_id  # resumable
    with pytest.raises(ConfigError, match="lack"):
        remeasure.remeasure_spec('{"model": "bert"}', "r2")


def test_remeasure_noisy_measures_again_keeps_the_old_row_and_then_has_nothing_left(tmp_path) -> None:
    con = storage.connect(tmp_path / "b.duckdb")
    storage.start_run(con, "pred-x", {}, collect_environment())  # this machine, as the re-measurement's
    # a loose CI target in the stored parameters, so that the re-measurement converges
    record = noisy_record("pred-x", {"time_budget_s": 0.3, "target_rel_ci": 0.9, "threads": 1, "min_samples": 3})
    assert record.noisy
    storage.insert_record(con, record)
    assert remeasure.remeasure_noisy(con, run_prefix="other", progress=False).empty
    table = remeasure.remeasure_noisy(con, run_prefix="pred", progress=False)
    assert table["status"].tolist() == ["ok"] and table["converged"].all()
    assert table["new_throughput"].iloc[0] > 0 and table["remeasure_run_id"].iloc[0].startswith("pred-x-re-")
    stored = storage.results_frame(con, status="ok")
    assert len(stored) == 2 and stored["noisy"].sum() == 1  # nothing measured is lost
    assert remeasure.noisy_results(con).empty and remeasure.remeasure_noisy(con, progress=False).empty
    summary = remeasure.noisy_summary(con).iloc[0]
    assert (summary["n_noisy"], summary["n_superseded"], summary["n_left_to_remeasure"]) == (1, 1, 0)
    kept = remeasure.prefer_converged(stored)
    assert kept["run_id"].tolist() == [table["remeasure_run_id"].iloc[0]]
    assert predict.training_frame(con)["run_id"].tolist() == kept["run_id"].tolist()  # what the predictor learns from


def test_a_configuration_measured_again_is_not_measured_a_third_time(tmp_path) -> None:
    con = storage.connect(tmp_path / "b.duckdb")
    again = "pred-y" + remeasure.REMEASURE_SUFFIX + "1234abcd"
    for run_id in ("pred-y", again):  # the re-measurement was noisy too
        storage.start_run(con, run_id, {}, collect_environment())
        storage.insert_record(con, noisy_record(run_id, {"time_budget_s": 0.3, "threads": 1}))
    assert len(remeasure.prefer_converged(storage.results_frame(con))) == 2  # both noisy: both measurements count
    assert remeasure.noisy_results(con).empty and remeasure.noisy_results(con, run_prefix=again).empty
    summary = remeasure.noisy_summary(con).iloc[0]
    assert (summary["n_ok"], summary["n_noisy"], summary["n_superseded"]) == (2, 2, 1)  # the faster one counts
    assert (summary["n_remeasurements"], summary["n_left_to_remeasure"]) == (1, 0)


def test_converged_results_of_disturbed_runs_are_measured_again_and_superseded(tmp_path) -> None:
    con = storage.connect(tmp_path / "b.duckdb")
    storage.start_run(con, "pred-z", {}, collect_environment())
    params = {"time_budget_s": 0.3, "target_rel_ci": 0.9, "threads": 1, "min_samples": 3}
    job = Job(run_id="pred-z", model="bert", size="tiny", mode="inference", platform="cpu", precision="fp32",
              batch_size=1, seq_len=8, overrides=TINY, **params)
    record = Record.from_samples([0.001] * 40, target_rel_ci=0.9, **job.identity(), family="bert", device="cpu",
                                 threads=1)
    assert not record.noisy
    storage.insert_record(con, record)
    assert remeasure.noisy_results(con, "pred").empty  # converged: not measured again by default
    with pytest.raises(ConfigError, match="run prefix"):
        remeasure.remeasure_noisy(con, converged_too=True, progress=False)
    table = remeasure.remeasure_noisy(con, "pred", converged_too=True, progress=False)
    assert table["status"].tolist() == ["ok"] and table["old_throughput"].iloc[0] == pytest.approx(1000.0)
    assert len(storage.results_frame(con, status="ok")) == 2  # nothing measured is lost
    assert remeasure.noisy_results(con, "pred", converged_too=True).empty  # measured again once, not twice
    learned = predict.training_frame(con)  # one measurement of the configuration: the faster good one
    stored = storage.results_frame(con, status="ok")
    good = stored[~stored["noisy"] & ~remeasure.disturbed(stored)]
    good = good if len(good) else stored
    assert len(learned) == 1 and learned["throughput_items_per_s"].iloc[0] == good["throughput_items_per_s"].max()


def test_a_converged_result_whose_loop_lost_cpu_time_to_the_host_is_measured_again(tmp_path) -> None:
    con = storage.connect(tmp_path / "b.duckdb")
    storage.start_run(con, "pred-s", {}, collect_environment())
    for seq_len, steal in ((8, 0.3), (16, 0.01)):  # a disturbed loop, and one that lost a little: not disturbed
        job = Job(run_id="pred-s", model="bert", size="tiny", mode="inference", platform="cpu", precision="fp32",
                  batch_size=1, seq_len=seq_len, overrides=TINY, time_budget_s=0.3, threads=1)
        storage.insert_record(con, Record.from_samples([0.001] * 40, target_rel_ci=0.9, **job.identity(),
                                                       family="bert", device="cpu", threads=1,
                                                       extra={"host_steal_share": steal}))
    frame = storage.results_frame(con).sort_values("seq_len", ignore_index=True)
    assert remeasure.disturbed(frame).tolist() == [True, False] and not frame["noisy"].any()
    chosen = remeasure.noisy_results(con)
    assert chosen["config_key"].tolist() == frame["config_key"].iloc[:1].tolist()
    summary = remeasure.noisy_summary(con).iloc[0]
    assert (summary["n_noisy"], summary["n_disturbed"], summary["n_left_to_remeasure"]) == (0, 1, 1)
    again = frame.iloc[:1].assign(run_id="pred-s" + remeasure.REMEASURE_SUFFIX + "1", extra="{}")
    kept = remeasure.prefer_converged(pd.concat([frame, again], ignore_index=True))
    assert kept["run_id"].tolist() == ["pred-s", again["run_id"].iloc[0]]  # the good re-measurement supersedes


def test_a_sample_of_configurations_is_seeded_and_bounded() -> None:
    rows = pd.DataFrame({"config_key": [f"k{i}" for i in range(20)]})
    first = remeasure.sample_configurations(rows, 5, seed=1)
    assert len(first) == 5 and first.equals(remeasure.sample_configurations(rows, 5, seed=1))
    assert not first.equals(remeasure.sample_configurations(rows, 5, seed=2))
    assert remeasure.sample_configurations(rows, 50).equals(rows)  # fewer rows than asked: all of them
    assert remeasure.sample_configurations(rows, None) is rows
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match=f"sample must be .* got {bad!r}"):
            remeasure.sample_configurations(rows, bad)
