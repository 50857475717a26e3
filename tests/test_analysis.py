"""Analysis on synthetic seeded samples (testing the logic, not measuring anything): speed-ups, rankings,
regression detection from the database and from exported CSVs, metric history, training vs inference, the CLI."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit import analysis, storage
from kit.errors import ConfigError
from kit.records import Record


def env(torch_version: str = "2.4.0", commit: str = "aaaa") -> dict:
    """A run environment whose software versions and commit the history test can vary."""
    return {"env_id": f"env-{torch_version}", "git_commit": commit,
            "software": {"python": "3.11", "torch": torch_version},
            "hardware": {"hardware_id": "hw-1", "hostname": "box", "cpu_model": "Test CPU"}}


def rec(run_id: str, platform: str = "cpu", precision: str = "fp32", *, model: str = "bert-tiny",
        mode: str = "inference", batch_size: int = 2, scale: float = 1.0, seed: int = 0, n: int = 60,
        sigma: float = 0.03, rounds: int = 10, drift: float = 0.0, machine: float = 1.0,
        reference_machine: float | None = None, reference_sigma: float = 0.0, **extra_fields) -> Record:
    """An ok record with seeded log-normal samples around 10 ms x scale, measured in `rounds` rounds (0: without)
    beside a 1 ms machine reference; the machine's speed drifts linearly by `drift` over the rounds, slowing the
    samples and the reference alike, and `machine` scales both for the whole run (another state of the machine).
    `reference_machine` scales the reference alone instead (a state that hits it differently), and
    `reference_sigma` gives it log-normal noise of its own per round."""
    samples = np.random.default_rng(seed).lognormal(math.log(0.01 * scale), sigma, size=n)
    key = f"{model}|tiny|{mode}|{platform}|{precision}|bs{batch_size}|seqdefault"
    if rounds:
        index = [i * rounds // n for i in range(n)]
        speed = [machine * (1 + drift * r / max(rounds - 1, 1)) for r in range(rounds)]
        samples = [s * speed[r] for s, r in zip(samples, index, strict=True)]
        own = np.random.default_rng(seed + 1000).lognormal(0, reference_sigma, size=rounds)
        level = 1.0 if reference_machine is None else reference_machine / machine
        reference = [0.001 * v * level * z for v, z in zip(speed, own, strict=True)]
        extra_fields = {"sample_rounds": index, "extra": {"rounds": {
            "reference": "matmul", "reference_round_medians_s": reference, "reference_round_p10_s": reference}},
            **extra_fields}
    return Record.from_samples(list(samples), run_id=run_id, config_key=key, model=model, family=model.split("-")[0],
                               size="tiny", mode=mode, platform=platform, device=platform, precision=precision,
                               batch_size=batch_size, **extra_fields)


def store(con, run_id: str, records: list[Record], environment: dict | None = None) -> None:
    """Start a run and insert its records."""
    storage.start_run(con, run_id, {}, environment or env())
    for record in records:
        storage.insert_record(con, record)


@pytest.fixture
def con(tmp_path: Path):
    con = storage.connect(tmp_path / "bench.duckdb")
    yield con
    con.close()


def two_runs(con, slow_factor: float = 1.30, noise_factor: float = 1.015) -> None:
    """Baseline runs run-0a, run-0b and run-1 (the same configurations measured three times, within 1 %), then run-2
    where cpu/fp32 bs2 is slower by slow_factor and bs4 by noise_factor only."""
    for run, scale, seed in (("run-0a", 1.005, 40), ("run-0b", 0.995, 50)):
        store(con, run, [rec(run, seed=seed, scale=scale), rec(run, batch_size=4, seed=seed + 1, scale=scale),
                         rec(run, "cuda", seed=seed + 2), rec(run, model="gpt2-tiny", seed=seed + 3)])
    store(con, "run-1", [rec("run-1", seed=1), rec("run-1", batch_size=4, seed=2), rec("run-1", "cuda", seed=3),
                         rec("run-1", model="gpt2-tiny", seed=4)])
    store(con, "run-2", [rec("run-2", scale=slow_factor, seed=11), rec("run-2", batch_size=4, scale=noise_factor,
                                                                         seed=12),
                         rec("run-2", "cpu", "bf16", seed=13),
                         Record.failure("failed", "RuntimeError: out of memory", run_id="run-2",
                                        config_key="bert-tiny|tiny|inference|cuda|fp32|bs2|seqdefault",
                                        model="bert-tiny", family="bert", size="tiny", mode="inference",
                                        platform="cuda", device="cuda", precision="fp32", batch_size=2)])


def by_config(df: pd.DataFrame, **where) -> pd.Series:
    """The single row of df matching the given column values."""
    mask = np.ones(len(df), dtype=bool)
    for column, value in where.items():
        mask &= (df[column] == value).to_numpy()
    assert mask.sum() == 1, (where, df)
    return df[mask].iloc[0]


BASES = ["run-1", "run-0b", "run-0a"]


def test_regression_detection_finds_planted_slowdown_and_ignores_noise(con):
    two_runs(con)
    df = analysis.detect_regressions("run-2", BASES, con=con)
    slow = by_config(df, model="bert-tiny", platform="cpu", precision="fp32", batch_size=2)
    assert slow["status"] == "regression" and slow["significant"] and 25 < slow["change_pct"] < 35
    assert slow["ratio_ci_low"] <= slow["ratio"] <= slow["ratio_ci_high"]
    assert by_config(df, platform="cpu", precision="fp32", batch_size=4)["status"] == "unchanged"
    assert by_config(df, platform="cpu", precision="bf16")["status"] == "added"
    assert by_config(df, model="gpt2-tiny")["status"] == "removed"
    assert "out of memory" in by_config(df, platform="cuda")["note"]
    assert by_config(df, platform="cuda")["status"] == "failed"
    tested = df[df["tested"]]
    assert (tested["p_holm"] >= tested["p_value"]).all() and len(tested) == 2
    assert analysis.regression_exit_code(df) == 1
    assert "over 3 baseline runs" in slow["method"]


def test_one_baseline_run_gives_no_significance(con):
    # a whole run can sit in a slow state: without the spread between runs a change is only possible
    two_runs(con)
    df = analysis.detect_regressions("run-2", "run-1", con=con)
    slow = by_config(df, model="bert-tiny", platform="cpu", precision="fp32", batch_size=2)
    assert slow["status"] == "possible_regression" and not slow["tested"] and math.isnan(slow["p_value"])
    assert slow["ratio_ci_low"] > 1.2 and "one baseline run" in slow["note"] and "one baseline run" in slow["method"]
    assert analysis.regression_exit_code(df) == 0


def test_no_regression_when_only_noise(con):
    two_runs(con, slow_factor=0.99, noise_factor=1.02)
    df = analysis.detect_regressions("run-2", BASES, con=con)
    assert not (df["status"] == "regression").any() and analysis.regression_exit_code(df) == 0


def test_large_but_insignificant_slowdown_is_not_a_regression(con):
    store(con, "a", [rec("a", n=3, sigma=0.4, seed=1)])
    store(con, "a2", [rec("a2", n=3, sigma=0.4, seed=3)])
    store(con, "b", [rec("b", n=3, sigma=0.4, scale=1.5, seed=2)])
    row = analysis.detect_regressions("b", ["a", "a2"], con=con).iloc[0]
    assert row["status"] == "unchanged" and "not significant" in row["note"]
    assert "too unstable to detect a 10% change" in row["note"] and row["detectable_pct"] > 10


def test_samples_of_one_run_are_no_evidence_without_rounds(con):
    store(con, "a", [rec("a", seed=1, rounds=0, n=400)])
    store(con, "b", [rec("b", seed=2, rounds=0, n=400, scale=1.3)])
    row = analysis.detect_regressions("b", "a", con=con).iloc[0]
    assert row["status"] == "possible_regression" and not row["tested"] and row["method"] == "medians"
    assert "no evidence about another run" in row["note"]


def test_the_reference_cancels_a_drift_that_moves_the_whole_run(con):
    # the current run is measured while the machine slows by 40 % over its rounds; the code did not change
    store(con, "a", [rec("a", seed=1)])
    store(con, "b", [rec("b", seed=2, drift=0.4)])
    row = analysis.detect_regressions("b", "a", con=con).iloc[0]
    assert row["method"].startswith("normalised p10 rounds") and row["status"] == "unchanged"
    assert abs(row["change_pct"]) < 3
    assert analysis.run_drift(analysis.results_with_samples(con, "b")) > 0.1


def test_the_summary_warns_when_the_machine_reference_moved_between_the_runs(con):
    for run, seed in (("a", 1), ("a2", 3)):
        store(con, run, [rec(run, seed=seed)])
    store(con, "fast", [rec("fast", seed=2, machine=0.88)])  # the whole machine 12 % faster, the code unchanged
    store(con, "same", [rec("same", seed=4, machine=0.98)])
    moved = analysis.stability_summary(analysis.detect_regressions("fast", ["a", "a2"], con=con), 0.10)
    assert "machine reference 0.880 ms per call, baseline 1.000 ms (-12.0%): the machine was in another state" in moved
    still = analysis.stability_summary(analysis.detect_regressions("same", ["a", "a2"], con=con), 0.10)
    assert "(-2.0%)" in still and "another state" not in still
    levels = analysis.detect_regressions("same", "a", con=con).attrs["reference_level"]
    assert levels == {"current": pytest.approx(0.00098), "baseline": pytest.approx(0.001)}


def test_a_change_the_machine_reference_explains_is_no_regression_or_improvement(con):
    """The null run of four identical sweeps: the fourth met the machine 12 % faster on the reference and ran a
    model 18-19 % faster, with a reference too noisy per round to divide by; the code did not change."""
    for run, seed in (("a", 1), ("a2", 3), ("a3", 5)):
        store(con, run, [rec(run, seed=seed, reference_sigma=0.04), rec(run, batch_size=4, seed=seed + 10,
                                                                      reference_sigma=0.04)])
    store(con, "fast", [rec("fast", seed=2, machine=0.82, reference_machine=0.88, reference_sigma=0.04),
                        rec("fast", batch_size=4, seed=12, scale=1.3, reference_sigma=0.04)])
    df = analysis.detect_regressions("fast", ["a", "a2", "a3"], con=con)
    moved, slow = by_config(df, batch_size=2), by_config(df, batch_size=4)
    assert moved["method"].startswith("p10 rounds (the reference did not narrow them)") and moved["significant"]
    assert moved["status"] == "unchanged" and moved["change_pct"] < -15
    assert moved["reference_shift_pct"] == pytest.approx(-12, abs=3) and 0.9 < moved["normalised_ratio"] < 0.97
    assert "but the machine reference beside it moved -1" in moved["note"] and "normalised scale" in moved["note"]
    assert slow["status"] == "regression" and abs(slow["reference_shift_pct"]) < 5  # a real change still counts
    assert analysis.regression_exit_code(df) == 1
    one = analysis.detect_regressions("fast", "a", con=con)  # against one baseline run: not even a possible change
    assert by_config(one, batch_size=2)["status"] == "unchanged"
    assert by_config(one, batch_size=4)["status"] == "possible_regression"


def test_several_baseline_runs_widen_the_interval(con):
    store(con, "a1", [rec("a1", seed=1)])
    store(con, "a2", [rec("a2", seed=3, scale=1.06)])
    store(con, "b", [rec("b", seed=2, scale=1.12)])
    one = analysis.detect_regressions("b", "a1", con=con).iloc[0]
    two = analysis.detect_regressions("b", ["a1", "a2"], con=con).iloc[0]
    assert one["status"] == "possible_regression" and two["status"] == "unchanged"
    assert two["ratio_ci_high"] - two["ratio_ci_low"] > 3 * (one["ratio_ci_high"] - one["ratio_ci_low"])
    assert "over 2 baseline runs" in two["method"]


def test_improvement_is_reported(con):
    for run, seed in (("a", 1), ("a2", 3), ("a3", 4)):
        store(con, run, [rec(run, seed=seed)])
    store(con, "b", [rec("b", scale=0.5, seed=2)])
    assert analysis.detect_regressions("b", ["a", "a2", "a3"], con=con).iloc[0]["status"] == "improvement"


def test_csv_baseline_with_and_without_samples(con, tmp_path):
    two_runs(con)
    csv = storage.export_csv(con, tmp_path / "exports" / "baseline.csv", run_id="run-1")
    csvs = [storage.export_csv(con, tmp_path / "exports" / f"{run}.csv", run_id=run) for run in ("run-0a", "run-0b")]
    df = analysis.detect_regressions("run-2", [str(csv), *csvs], con=con)
    assert by_config(df, model="bert-tiny", platform="cpu", precision="fp32", batch_size=2)["status"] == "regression"
    assert by_config(df, model="gpt2-tiny")["status"] == "removed"
    (tmp_path / "exports" / "baseline_samples.csv").unlink()
    df = analysis.detect_regressions("run-2", csv, con=con)
    slow = by_config(df, model="bert-tiny", platform="cpu", precision="fp32", batch_size=2)
    assert slow["status"] == "possible_regression" and not slow["tested"] and math.isnan(slow["p_value"])
    assert "test not run" in slow["note"] and "_samples" in slow["note"]
    assert analysis.regression_exit_code(df) == 0


def test_both_sides_from_exports_without_a_database(con, tmp_path):
    two_runs(con)
    base = storage.export_parquet(con, tmp_path / "a.parquet", run_id="run-1")
    more = [storage.export_parquet(con, tmp_path / f"{run}.parquet", run_id=run) for run in ("run-0a", "run-0b")]
    current = storage.export_csv(con, tmp_path / "b.csv", run_id="run-2")
    df = analysis.detect_regressions(current, [base, *more])
    assert by_config(df, model="bert-tiny", platform="cpu", precision="fp32", batch_size=2)["status"] == "regression"


def test_noisy_runs_are_flagged_in_the_note(con):
    store(con, "a", [rec("a", seed=1, target_rel_ci=1e-9)])
    store(con, "a2", [rec("a2", seed=3)])
    store(con, "a3", [rec("a3", seed=4)])
    store(con, "b", [rec("b", seed=2, scale=1.5)])
    row = analysis.detect_regressions("b", ["a", "a2", "a3"], con=con).iloc[0]
    assert row["status"] == "regression" and "noisy (CI target missed): baseline" in row["note"]


def test_bad_comparison_inputs_raise_config_errors(con, tmp_path):
    two_runs(con)
    with pytest.raises(ConfigError, match="run-9"):
        analysis.detect_regressions("run-2", "run-9", con=con)
    with pytest.raises(ConfigError, match="no database connection"):
        analysis.detect_regressions("run-2", "run-1")
    with pytest.raises(ConfigError, match="missing.csv"):
        analysis.detect_regressions("run-2", tmp_path / "missing.csv", con=con)
    with pytest.raises(ConfigError, match="threshold"):
        analysis.detect_regressions("run-2", "run-1", threshold=-0.1, con=con)
    speedups = analysis.export_csv(analysis.speedup_table(con), tmp_path / "speedup.csv")
    with pytest.raises(ConfigError, match="not a results export"):
        analysis.detect_regressions("run-2", speedups, con=con)


def test_cmd_compare_prints_table_and_fails_on_regression(tmp_path, capsys):
    db = tmp_path / "bench.duckdb"
    con = storage.connect(db)
    two_runs(con)
    con.close()
    parser = argparse.ArgumentParser()
    analysis.add_compare_arguments(parser)
    assert analysis.cmd_compare(parser.parse_args(["--baseline", "run-1", "--db", str(db)])) == 0
    assert analysis.cmd_compare(parser.parse_args(["--baseline", "run-1", "--db", str(db), "--max-failed", "0.5",
                                                   "--fail-on-regression"])) == 0  # one baseline run: possible only
    assert analysis.cmd_compare(parser.parse_args(["--baseline", "run-1", "run-0b", "run-0a", "--db", str(db),
                                                   "--max-failed", "0.5", "--fail-on-regression"])) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "current run-2 vs baseline run-1 run-0b run-0a" in out and "drift index" in out
    same = parser.parse_args(["--baseline", "run-1", "--run-id", "run-1", "--db", str(db), "--fail-on-regression"])
    assert analysis.cmd_compare(same) == 0
    median = parser.parse_args(["--baseline", "run-1", "run-0b", "run-0a", "--db", str(db), "--statistic", "median"])
    assert analysis.cmd_compare(median) == 0 and "median rounds" in analysis.detect_regressions(
        "run-2", BASES, con=storage.connect(db, read_only=True), statistic="median")["method"].iloc[0]
    with pytest.raises(SystemExit):
        parser.parse_args(["--baseline", "run-1", "--statistic", "mean"])
    with pytest.raises(ConfigError, match="unknown statistic 'mean'"):
        analysis.detect_regressions("run-2", "run-1", statistic="mean")


def test_speedup_table_with_ci_holm_and_missing_baseline(con):
    store(con, "r", [rec("r", seed=1), rec("r", "cuda", "fp32", scale=0.5, seed=2),
                     rec("r", "cuda", "fp16", scale=0.25, seed=3), rec("r", "cpu", "bf16", scale=0.99, seed=4),
                     rec("r", "cuda", model="vit-tiny", scale=0.5, seed=5)])
    df = analysis.speedup_table(con, run_id="r")
    fp16 = by_config(df, model="bert-tiny", platform="cuda", precision="fp16")
    assert 3.6 < fp16["speedup"] < 4.4 and fp16["speedup_ci_low"] <= fp16["speedup"] <= fp16["speedup_ci_high"]
    assert fp16["significant"] and fp16["baseline_throughput_items_per_s"] < fp16["candidate_throughput_items_per_s"]
    assert by_config(df, model="bert-tiny", platform="cpu", precision="fp32")["note"] == "baseline"
    missing = by_config(df, model="vit-tiny")
    assert math.isnan(missing["speedup"]) and "no cpu/fp32 baseline" in missing["note"]
    tested = df[df["p_value"].notna()]
    assert len(tested) == 3 and (tested["p_holm"] >= tested["p_value"]).all()
    assert (analysis.speedup_table(con, run_id="r")["speedup"].fillna(-1) == df["speedup"].fillna(-1)).all()


def test_speedup_pairs_each_candidate_with_its_own_runs_baseline(con):
    two_runs(con)  # the cpu/fp32 baseline is 30% slower in run-2; cuda was measured in run-1 only
    df = analysis.speedup_table(con)
    cuda = by_config(df, platform="cuda")
    assert cuda["baseline_run_id"] == "run-1" and cuda["speedup"] == pytest.approx(1.0, abs=0.05)
    bf16 = by_config(df, platform="cpu", precision="bf16")
    assert bf16["baseline_run_id"] == "run-2" and bf16["speedup"] == pytest.approx(1.3, rel=0.05)
    store(con, "run-3", [rec("run-3", "cuda", "fp16", seed=21)])
    fp16 = by_config(analysis.speedup_table(con), platform="cuda", precision="fp16")
    assert fp16["baseline_run_id"] == "run-2" and "baseline from run run-2" in fp16["note"]


def test_speedup_table_from_records_and_other_baseline():
    records = [rec("r", seed=1), rec("r", "cuda", scale=0.5, seed=2)]
    df = analysis.speedup_table(records, baseline_platform="cuda")
    assert by_config(df, platform="cpu")["speedup"] == pytest.approx(0.5, rel=0.05)
    assert analysis.speedup_table([]).empty


def test_ranking_table_ranks_throughput_and_latency(con):
    store(con, "r", [rec("r", batch_size=1, scale=0.6, seed=1), rec("r", batch_size=8, scale=2.0, seed=2),
                     rec("r", "cuda", batch_size=8, scale=0.5, seed=3)])
    df = analysis.ranking_table(con)
    assert list(df["throughput_rank"]) == [1, 2, 3]
    assert by_config(df, platform="cuda")["throughput_rank"] == 1
    assert by_config(df, platform="cpu", batch_size=1)["latency_rank"] == 2


def test_history_across_runs_shows_software_change(con):
    store(con, "run-1", [rec("run-1", seed=1)], env("2.4.0", "aaaa"))
    store(con, "run-2", [rec("run-2", seed=2, scale=1.2)], env("2.5.0", "bbbb"))
    store(con, "run-3", [rec("run-3", seed=3, scale=1.2)], env("2.5.0", "bbbb"))
    df = analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2)
    assert list(df["run_id"]) == ["run-1", "run-2", "run-3"]
    assert list(df["software_changes"]) == ["(first run)", "torch 2.4.0 -> 2.5.0", ""]
    assert list(df["commit_changed"]) == [False, True, False] and df["git_commit"].iloc[1] == "bbbb"
    assert df["change_pct"].iloc[1] == pytest.approx(-100 / 6, abs=3)  # throughput falls by ~1/6
    latency = analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2, metric="latency_p50_s")
    assert latency["value"].iloc[1] > latency["value"].iloc[0] and (latency["metric"] == "latency_p50_s").all()
    with pytest.raises(ConfigError, match="latency_ms"):
        analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2, metric="latency_ms")
    assert analysis.metric_history(con, "nope", "cpu", "fp32", 2).empty


def test_training_vs_inference_ratios_and_phases():
    phases = {"forward_s": 0.004, "backward_s": 0.008, "optimizer_s": 0.003, "zero_grad_s": 0.001}
    records = [rec("r", peak_memory_bytes=100 * 2**20, seed=1),
               rec("r", mode="training", scale=3.0, peak_memory_bytes=300 * 2**20, extra={"phases_mean_s": phases},
                   seed=2),
               rec("r", "cuda", peak_memory_bytes=2**20, seed=3)]
    df = analysis.training_vs_inference(records)
    cpu = by_config(df, platform="cpu")
    assert cpu["throughput_ratio"] == pytest.approx(1 / 3, rel=0.05) and cpu["memory_ratio"] == pytest.approx(3)
    assert cpu["backward_pct"] == pytest.approx(50) and cpu["note"] == ""
    assert "no training result" in by_config(df, platform="cuda")["note"]


def test_export_analysis_frames(con, tmp_path):
    store(con, "r", [rec("r", seed=1), rec("r", "cuda", scale=0.5, seed=2)])
    df = analysis.speedup_table(con)
    csv = analysis.export_csv(df, tmp_path / "out" / "speedup.csv")
    parquet = analysis.export_parquet(analysis.results_with_samples(con), tmp_path / "out" / "results.parquet")
    assert pd.read_csv(csv)["speedup"].notna().all()
    assert len(pd.read_parquet(parquet)["samples"].iloc[0]) > 10


def keyed(run_id: str, seq_len: int | None = None, *, scale: float = 1.0, seed: int = 0, model: str = "bert-tiny",
          platform: str = "cpu", **fields) -> Record:
    """Like rec, with a config_key naming seq_len the way kit.config.Job does, so seq_lens are distinct configs."""
    samples = np.random.default_rng(seed).lognormal(math.log(0.01 * scale), 0.03, size=40)
    key = f"{model}|tiny|inference|{platform}|fp32|bs2|" + (f"seq{seq_len}" if seq_len else "seqdefault")
    return Record.from_samples(list(samples), run_id=run_id, config_key=key, model=model, family=model.split("-")[0],
                               size="tiny", mode="inference", platform=platform, device=platform, precision="fp32",
                               batch_size=2, seq_len=seq_len, **fields)


def test_history_changes_are_taken_within_one_configuration(con):
    store(con, "run-1", [keyed("run-1", 16, seed=1), keyed("run-1", 64, scale=4, seed=2)])
    store(con, "run-2", [keyed("run-2", 16, scale=1.1, seed=3)])
    store(con, "run-3", [keyed("run-3", 64, scale=4, seed=4)])
    df = analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2, metric="latency_p50_s")
    seq64 = df[df["config_key"].str.endswith("seq64")]
    assert seq64["change_pct"].iloc[1] == pytest.approx(0, abs=5)  # against run-1's seq64, not run-2's seq16
    assert list(seq64["software_changes"]) == ["(first run)", ""]
    one = analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2, config_key=seq64["config_key"].iloc[0])
    assert list(one["run_id"]) == ["run-1", "run-3"]


def test_commit_change_ignores_runs_without_a_commit(con):
    store(con, "run-1", [keyed("run-1", seed=1)], {**env(), "git_commit": None})
    store(con, "run-2", [keyed("run-2", seed=2)], env(commit="bbbb"))
    store(con, "run-3", [keyed("run-3", seed=3)], env(commit="cccc"))
    assert list(analysis.metric_history(con, "bert-tiny", "cpu", "fp32", 2)["commit_changed"]) == [False, False, True]


def test_previous_run_id_skips_runs_sharing_no_configuration(con):
    store(con, "run-1", [keyed("run-1", seed=1)])
    store(con, "run-2", [keyed("run-2", model="vit-tiny", seed=2)])
    store(con, "run-3", [keyed("run-3", seed=3), keyed("run-3", model="vit-tiny", platform="cuda", seed=4)])
    assert analysis.previous_run_id(con, "run-3") == "run-1"
    assert analysis.previous_run_id(con, "run-2") is None and analysis.previous_run_id(con, "run-1") is None
    with pytest.raises(ConfigError, match="run-9"):
        analysis.previous_run_id(con, "run-9")


def test_plan_comparison_resolves_defaults(con, tmp_path):
    two_runs(con)
    plan = analysis.plan_comparison(con, db_path=tmp_path / "bench.duckdb")
    assert (plan.run_id, plan.baseline, plan.export_dir) == ("run-2", "run-1", tmp_path / "exports")
    assert plan.baselines() == BASES and "run-2 vs baseline run-1, run-0b, run-0a" in plan.describe()
    assert "10%" in plan.describe()
    assert analysis.regression_exit_code(analysis.regressions_for(plan, con)) == 1
    first = analysis.plan_comparison(con, "run-0a", export_dir=tmp_path / "x")
    assert first.baseline is None and "no earlier run" in first.describe() and first.export_dir == tmp_path / "x"
    empty = analysis.regressions_for(first, con)
    assert empty.empty and list(empty.columns) == analysis.REGRESSION_COLUMNS
    assert analysis.comparison_table(empty).empty
    csv = storage.export_csv(con, tmp_path / "base.csv", run_id="run-1")
    assert analysis.plan_comparison(con, baseline_run_id=str(csv)).baseline == str(csv)


def test_plan_comparison_of_a_path_opens_the_store_read_only_and_lets_go(con, tmp_path):
    two_runs(con)
    con.close()
    path = tmp_path / "bench.duckdb"
    plan = analysis.plan_comparison(path)
    assert (plan.run_id, plan.baseline, plan.export_dir) == ("run-2", "run-1", tmp_path / "exports")
    with pytest.raises(ConfigError, match="run-9"):
        analysis.plan_comparison(str(path), "run-9")
    storage.connect(path, wait_s=0).close()  # not held: a writer gets in at once


BAD_PLANS = [({"threshold": 0}, "threshold"), ({"alpha": 1.5}, "alpha"), ({"baseline_platform": "cdua"}, "cdua"),
             ({"baseline_precision": "fp8"}, "fp8"), ({"history_metric": "latency_ms"}, "latency_ms"),
             ({"run_id": "run-9"}, "run-9"), ({"baseline_run_id": "run-9"}, "run-9"),
             ({"baseline_run_id": "missing.csv"}, "missing.csv")]


@pytest.mark.parametrize("bad, match", BAD_PLANS)
def test_plan_comparison_rejects_bad_values(con, bad, match):
    two_runs(con)
    with pytest.raises(ConfigError, match=match):
        analysis.plan_comparison(con, **bad)


def test_plan_comparison_needs_an_ok_result(con):
    store(con, "r", [Record.failure("skipped", "platform cuda unavailable", run_id="r", config_key="k",
                                    model="bert-tiny", family="bert", size="tiny", mode="inference", platform="cuda",
                                    device="", precision="fp32", batch_size=2)])
    with pytest.raises(ConfigError, match="no ok result"):
        analysis.plan_comparison(con)


def test_history_configuration_prefers_most_measured_then_baseline_platform(con):
    store(con, "run-1", [keyed("run-1", 16, seed=1)])
    store(con, "run-2", [keyed("run-2", 16, seed=2), keyed("run-2", 64, seed=3), keyed("run-2", platform="cuda")])
    config = analysis.history_configuration(con, "run-2")
    assert config["config_key"].endswith("seq16") and config["batch_size"] == 2
    assert len(analysis.metric_history(con, **config)) == 2
    store(con, "run-3", [keyed("run-3", platform="cuda", seed=4), keyed("run-3", 64, seed=5)])  # both in 2 runs
    assert analysis.history_configuration(con, "run-3")["platform"] == "cpu"
    assert analysis.history_configuration(con, "run-3", platform="cuda")["platform"] == "cuda"
    with pytest.raises(ConfigError, match="no ok result"):
        analysis.history_configuration(con, "run-9")


def test_export_table_writes_csv_and_parquet(con, tmp_path):
    store(con, "r", [rec("r", seed=1), rec("r", "cuda", scale=0.5, seed=2)])
    paths = analysis.export_table(analysis.speedup_table(con), tmp_path / "exports", "speedup_r")
    assert sorted(paths) == ["csv", "parquet"] and paths["csv"].endswith("speedup_r.csv")
    assert len(pd.read_csv(paths["csv"])) == len(pd.read_parquet(paths["parquet"])) == 2


def training_records(gradients_bytes: int = 1000) -> list[Record]:
    """A cpu training/inference pair with phases, a memory split and losses, and a training result without a pair."""
    phases = {"forward_s": 0.008, "backward_s": 0.016, "optimizer_s": 0.004, "zero_grad_s": 0.001}
    split = {"weights_bytes": 1000, "gradients_bytes": gradients_bytes, "optimizer_state_bytes": 2000,
             "activations_bytes": 5000}
    extra = {"phases_mean_s": phases, "memory_split_bytes": split, "process_baseline_bytes": 10_000,
             "first_loss": 2.0, "last_loss": 1.5, "n_steps": 20, "lr": 1e-4}
    return [rec("r", peak_memory_bytes=12_000, seed=1),
            rec("r", mode="training", scale=3.0, peak_memory_bytes=19_000, extra=extra, seed=2),
            rec("r", "cuda", mode="training", scale=0.5, extra={**extra, "last_loss": 2.5}, seed=3)]


def test_training_phases_cover_the_step():
    df = analysis.training_phases(training_records())
    cpu = by_config(df, platform="cpu")
    assert cpu["phase_sum_s"] == pytest.approx(0.029) and cpu["step_mean_s"] == pytest.approx(0.03, rel=0.05)
    assert 0.9 < cpu["phase_coverage"] < 1.05 and cpu["n_measured_steps"] == 60
    assert list(df.columns) == analysis.PHASE_COLUMNS and len(df) == 2


def test_training_memory_split_beside_inference_peak():
    df = analysis.training_memory(training_records())
    cpu = by_config(df, platform="cpu")
    assert cpu["inference_peak_memory_bytes"] == 12_000 and cpu["training_peak_memory_bytes"] == 19_000
    assert cpu["gradients_bytes"] == 1000 and cpu["process_baseline_bytes"] == 10_000 and cpu["note"] == ""
    assert math.isnan(by_config(df, platform="cuda")["inference_peak_memory_bytes"])
    legacy = analysis.training_memory(training_records(gradients_bytes=0))
    assert "gradients_bytes is 0" in by_config(legacy, platform="cpu")["note"]


def test_training_convergence_flags_the_loss_direction():
    df = analysis.training_convergence(training_records())
    assert list(df["loss_decreased"]) == [True, False]  # cpu 2.0 -> 1.5, cuda 2.0 -> 2.5
    assert by_config(df, platform="cpu")["loss_change_pct"] == pytest.approx(-25)
    assert analysis.training_convergence([rec("r", seed=1)]).empty


def test_training_vs_inference_median_ratio():
    cpu = by_config(analysis.training_vs_inference(training_records()), platform="cpu")
    assert cpu["throughput_ratio_p50"] == pytest.approx(1 / 3, rel=0.05)
    assert cpu["throughput_ratio"] == pytest.approx(cpu["throughput_ratio_p50"], rel=0.05)


def test_training_sweep_spec_measures_both_modes_and_checks_options():
    spec = analysis.training_sweep_spec(models=["bert"], batch_sizes=[2], training={"lr": 1e-3})
    assert sorted({job.mode for job in spec.jobs()}) == ["inference", "training"]
    assert all(job.training == ({"lr": 1e-3} if job.mode == "training" else {}) for job in spec.jobs())
    with pytest.raises(ConfigError, match="learning_rate"):
        analysis.training_sweep_spec(models=["bert"], training={"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="modes"):
        analysis.training_sweep_spec(models=["bert"], modes=["training"])
    with pytest.raises(ConfigError, match="batch_sizes"):
        analysis.training_sweep_spec(models=["bert"], batch_sizes=[0])


def test_speedups_within_one_group_pair_the_rounds():
    base, fast = rec("r", seed=1, drift=0.5), rec("r", "cuda", scale=0.5, seed=2, drift=0.5)
    group = {"group": [base.config_key, fast.config_key]}
    records = [Record.from_json({**r.to_json(), "extra": {"rounds": {**r.extra["rounds"], **group}}})
               for r in (base, fast)]
    row = by_config(analysis.speedup_table(records), platform="cuda")
    assert row["method"] == "paired p10 rounds" and row["speedup"] == pytest.approx(2.0, rel=0.03)
    assert row["speedup_ci_high"] - row["speedup_ci_low"] < 0.1
    apart = by_config(analysis.speedup_table([base, fast]), platform="cuda")  # no common group: via the reference
    assert apart["method"] == "normalised p10 rounds" and apart["speedup"] == pytest.approx(2.0, rel=0.03)
    without = by_config(analysis.speedup_table([rec("r", seed=1, rounds=0), rec("r", "cuda", scale=0.5, seed=2,
                                                                                rounds=0)]), platform="cuda")
    assert without["method"] == "medians" and math.isnan(without["p_value"]) and "without rounds" in without["note"]
