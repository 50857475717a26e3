"""Same-job A/B: the paired table, its exit codes, settings and interpreters, and two real interleaved runs."""

from __future__ import annotations

import dataclasses
import re
import sys

import numpy as np
import pytest

from kit import storage
from kit.cli import main
from kit.config import SweepSpec
from kit.errors import ConfigError
from kit.records import Record
from kit.runners.ab import ABSpec, ab_exit_code, ab_table, by_configuration, parse_settings


def rec(run_id: str, scale: float, seed: int, *, rounds: int = 10, status: str = "ok") -> Record:
    """A record of 10 rounds x 6 samples around 10 ms x scale, on a machine whose speed drifts by 30 % over them."""
    identity = dict(run_id=run_id, config_key="k", model="bert", family="bert", size="tiny", mode="inference",
                    platform="cpu", device="cpu", precision="fp32", batch_size=1)
    if status != "ok":
        return Record.failure(status, "RuntimeError: boom\ntraceback", **identity)
    rng = np.random.default_rng(seed)
    index = [i // 6 for i in range(6 * rounds)]
    samples = [0.01 * scale * (1 + 0.03 * r) * rng.lognormal(0, 0.01) for r in index]
    return Record.from_samples(samples, sample_rounds=index, **identity)


def test_a_paired_slowdown_is_a_regression_and_exits_1():
    table = ab_table([([rec("a", 1.0, 1)], [rec("b", 1.12, 2)])], threshold=0.05)
    row = table.iloc[0]
    assert row["status"] == "regression" and 9 < row["change_pct"] < 15 and row["ci_low_pct"] > 5
    assert row["n_rounds"] == 10 and row["detectable_pct"] < 5
    assert ab_exit_code(table) == 1


def test_no_change_exits_0_and_a_failure_alone_exits_2():
    same = ab_table([([rec("a", 1.0, 1)], [rec("b", 1.0, 2)])])
    assert same.iloc[0]["status"] == "unchanged" and same.iloc[0]["ci_low_pct"] < 0 < same.iloc[0]["ci_high_pct"]
    assert ab_exit_code(same) == 0
    failed = ab_table([([rec("a", 1.0, 1)], [rec("b", 1.0, 2, status="failed")])])
    assert failed.iloc[0]["status"] == "failed" and failed.iloc[0]["note"] == "candidate: RuntimeError: boom"
    assert ab_exit_code(failed) == 2


def test_a_change_within_the_threshold_is_unchanged():
    row = ab_table([([rec("a", 1.0, 1)], [rec("b", 1.03, 2)])], threshold=0.05).iloc[0]
    assert row["status"] == "unchanged" and row["p_holm"] < 0.05  # real, but smaller than what counts


def test_several_processes_put_their_lasting_offsets_inside_the_interval():
    # the same speed on both sides, but each process keeps an offset of its own for its lifetime (about 1.5 %)
    base = [rec("a", offset, seed) for seed, offset in enumerate([1.0, 1.02, 0.985])]
    offsets = [1.01, 0.99, 1.015]
    cand = [rec("b", offset, seed + 10) for seed, offset in enumerate(offsets)]
    one = ab_table([(base[:1], cand[:1])]).iloc[0]
    assert one["ci_low_pct"] > 0  # one pair of processes: its rounds cannot see the offset, the CI misses 1.0
    three = ab_table([(base, cand)]).iloc[0]
    assert three["n_processes"] == 3 and three["n_rounds"] == 10
    assert three["ci_low_pct"] < 0 < three["ci_high_pct"] and three["status"] == "unchanged"
    slower = ab_table([(base, [rec("b", 1.12 * offset, seed) for seed, offset in enumerate(offsets)])]).iloc[0]
    assert slower["status"] == "regression" and 8 < slower["change_pct"] < 16


def test_records_group_into_configurations_by_process():
    records = [dataclasses.replace(rec("a", 1.0, 1), config_key=key) for key in ("k|p1", "k", "j", "k|p2")]
    assert [[r.config_key for r in group] for group in by_configuration(records)] == [["j"], ["k", "k|p1", "k|p2"]]
    with pytest.raises(ConfigError, match="processes must be a whole number from 1 to 16, got 0"):
        ABSpec(SweepSpec(models=["bert"], run_id="x"), processes=0)


def disturbed(record: Record, share: float, seed: int) -> Record:
    """The record with a random `share` of its calls slowed 1.5-3x, as another process's bursts would."""
    rng = np.random.default_rng(seed)
    samples = [s * rng.uniform(1.5, 3) if rng.random() < share else s for s in record.samples_s]
    return Record.from_samples(samples, sample_rounds=list(record.sample_rounds), run_id=record.run_id,
                               config_key="k", model="bert", family="bert", size="tiny", mode="inference",
                               platform="cpu", device="cpu", precision="fp32", batch_size=1)


def test_the_p10_statistic_sees_through_interference_the_median_takes_in():
    # the same speed on both sides; the candidate's calls were disturbed more often (40 % against 5 %)
    pair = [([disturbed(rec("a", 1.0, 1), 0.05, 3)], [disturbed(rec("b", 1.0, 2), 0.4, 4)])]
    median = ab_table(pair, statistic="median").iloc[0]
    p10 = ab_table(pair, statistic="p10").iloc[0]
    assert median["change_pct"] > 10 and median["detectable_pct"] > 10
    assert abs(p10["change_pct"]) < 2 and p10["status"] == "unchanged" and p10["detectable_pct"] < 5
    # a real slow-down moves every call, so the p10 sees it too
    slower = ab_table([([rec("a", 1.0, 1)], [rec("b", 1.12, 2)])], statistic="p10").iloc[0]
    assert slower["status"] == "regression" and 9 < slower["change_pct"] < 15
    with pytest.raises(ConfigError, match="unknown statistic 'mean'"):
        ABSpec(SweepSpec(models=["bert"], run_id="x"), statistic="mean")


def test_settings_and_interpreters_are_checked_before_any_work(tmp_path):
    assert parse_settings(["seq_len=128", "precisions=bf16"], "--x") == {"seq_len": 128, "precisions": ["bf16"]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_settings(["seq_len"], "--baseline-set")
    sweep = SweepSpec(models=["bert"], run_id="x")
    with pytest.raises(ConfigError, match="cannot set models"):
        ABSpec(sweep, baseline={"models": ["vit"]})
    with pytest.raises(ConfigError, match="not an executable"):
        ABSpec(sweep, candidate_python=str(tmp_path / "python"))
    with pytest.raises(ConfigError, match="same number"):
        ABSpec(sweep, candidate={"batch_sizes": [1, 2]})
    with pytest.raises(ConfigError, match="unknown precision"):
        ABSpec(sweep, candidate={"precisions": ["fp8"]})
    with pytest.raises(ConfigError, match="3 rounds"):
        ABSpec(SweepSpec(models=["bert"], rounds=2, run_id="x"))


def test_ab_of_one_environment_against_itself_through_another_interpreter(tmp_path, capsys):
    db = tmp_path / "ab.duckdb"
    code = main(["ab", "--models", "bert", "--batch-sizes", "1", "--time-budget-s", "0.3", "--rounds", "3",
                 "--baseline-python", sys.executable, "--candidate-python", sys.executable, "--threshold", "0.5",
                 "--processes", "2", "--run-id", "null", "--db", str(db)])
    out = capsys.readouterr().out
    # the verdict itself is timing: two child processes on a shared CI machine can differ by more than 50 % for a
    # few rounds, so this test checks the plumbing; the null claim is measured in benchmarks/repeatability.py
    assert code == 0, out
    assert re.search(r"\b1 (unchanged|improvement|regression)\b", out) and f"python {sys.executable}" in out
    assert "x 2 process(es)" in out
    con = storage.connect(db, read_only=True)
    stored = storage.load_records(con)
    assert sorted((r.run_id, r.config_key.endswith("|p1")) for r in stored) == [
        ("null.baseline", False), ("null.baseline", True), ("null.candidate", False), ("null.candidate", True)]
    assert all(set(r.sample_rounds) == {0, 1, 2} for r in stored)


@pytest.mark.alone  # beside another test, rounds can differ by more than 9x and hide the slow-down
def test_ab_flags_a_real_slowdown(tmp_path, capsys):
    code = main(["ab", "--models", "bert", "--batch-sizes", "8", "--time-budget-s", "0.6", "--rounds", "6",
                 "--baseline-set", "seq_len=16", "--candidate-set", "seq_len=128", "--threshold", "0.2",
                 "--processes", "1", "--db", str(tmp_path / "ab.duckdb"), "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 1 and "1 regression" in out, out


def test_ab_with_nothing_comparable_exits_2(tmp_path, capsys):
    code = main(["ab", "--models", "bert", "--platforms", "mps", "--rounds", "3", "--db", str(tmp_path / "a.duckdb")])
    out, err = capsys.readouterr()
    assert code == 2 and "nothing to compare" in err
    assert "1 configurations x 2 sides x 3 process(es)" in out  # three processes per side by default
