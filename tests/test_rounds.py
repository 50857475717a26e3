"""Interleaved rounds: drift cancels in paired rounds, groups, memory fallback, failures, resume, the reference."""

from __future__ import annotations

import os
import time

import numpy as np
import psutil
import pytest
import scipy.stats

from kit import storage
from kit.config import SweepSpec
from kit.errors import ConfigError
from kit.runners import rounds
from kit.runners.sweep import run_sweep
from kit.stats import compare, paired_ratio, round_medians, round_quantiles

DRIFT = "tests.child_targets:drifting_measure"


def _by_batch(records):
    return {r.batch_size: r for r in records}


@pytest.fixture
def drift(monkeypatch):
    """A machine that slows by 50 % per second from now on (simulated in the test target)."""
    monkeypatch.setenv("BENCHKIT_TEST_DRIFT_EPOCH", repr(time.time()))
    monkeypatch.setenv("BENCHKIT_TEST_DRIFT_PER_S", "0.5")


@pytest.mark.alone  # timed sleeps held to 3 %: late wake-ups under load would blur them
def test_drift_fools_the_sequential_comparison_but_not_the_interleaved_one(tmp_path, drift, monkeypatch):
    # two identical configurations (batch sizes 1 and 2 run the same simulated call): no real difference
    common = dict(models=["bert"], batch_sizes=[1, 2], time_budget_s=0.6, reference=None)
    sequential = _by_batch(run_sweep(SweepSpec(**common, interleave=False, run_id="seq"), tmp_path / "s.duckdb",
                                     progress=False, target=DRIFT))
    old = compare(sequential[2].samples_s, sequential[1].samples_s)
    assert old.significant and old.ratio > 1.05  # a false "regression": batch 2 simply ran later

    monkeypatch.setenv("BENCHKIT_TEST_DRIFT_EPOCH", repr(time.time()))  # the same drift from the start again
    interleaved = _by_batch(run_sweep(SweepSpec(**common, rounds=12, run_id="int"), tmp_path / "i.duckdb",
                                      progress=False, target=DRIFT))
    a, b = (round_medians(r.samples_s, r.sample_rounds) for r in (interleaved[1], interleaved[2]))
    assert len(a) == len(b) == 12
    new = paired_ratio(b, a)
    # within a round the second burst runs one burst later (2.5 % slower here), in random order: no false regression
    assert abs(new.ratio - 1) < 0.03 and new.ci_low < 1.05, new
    # the drift is real in the interleaved run too: the last rounds are much slower than the first
    assert a[11] / a[0] > 1.2


def test_rounds_store_round_indices_reference_and_normalised_throughput(tmp_path):
    spec = SweepSpec(models=["bert"], batch_sizes=[1, 2], time_budget_s=0.4, rounds=4, run_id="r")
    con = storage.connect(tmp_path / "b.duckdb")
    records = run_sweep(spec, con, progress=False)
    assert [r.status for r in records] == ["ok", "ok"], [r.reason for r in records]
    for record in records:
        assert set(record.sample_rounds) == {0, 1, 2, 3} and len(record.sample_rounds) == record.n_samples
        info = record.extra["rounds"]
        assert info["n_rounds"] == 4 and info["burst_s"] == pytest.approx(0.1) and info["reference"] == "matmul"
        assert len(info["reference_round_medians_s"]) == 4 and all(m > 0 for m in info["reference_round_medians_s"])
        assert info["drift_index"] >= 0 and sorted(info["group"]) == sorted(r.config_key for r in records)
        assert all(0 < p10 <= m for p10, m in zip(info["reference_round_p10_s"], info["reference_round_medians_s"],
                                                   strict=True))
        # items per reference call: the 20 %-trimmed geometric mean over rounds of reference p10 / own p10
        expected = record.batch_size * np.exp(scipy.stats.trim_mean(np.log(
            [ref / own for ref, own in zip(info["reference_round_p10_s"],
                                           round_quantiles(record.samples_s, record.sample_rounds, 0.1).values(),
                                           strict=True)]), 0.2))
        assert record.normalised_throughput == pytest.approx(expected)
        # the median call in reference median calls: the same trimmed mean of per-round ratios, of the medians
        latency = np.exp(scipy.stats.trim_mean(np.log(
            [own / ref for ref, own in zip(info["reference_round_medians_s"],
                                           round_medians(record.samples_s, record.sample_rounds).values(),
                                           strict=True)]), 0.2))
        assert info["normalised_latency"] == pytest.approx(latency)
        # two reference processes ran; the result is normalised against the faster one
        levels = info["reference_levels_s"]
        assert len(levels) == rounds.REFERENCE_PROCESSES == 2 and min(levels) > 0
        assert np.median(info["reference_round_p10_s"]) == pytest.approx(min(levels))
    stored = storage.load_records(con, "r")
    assert [r.sample_rounds for r in stored] == [r.sample_rounds for r in records]


def test_groups_follow_model_and_size_and_the_group_size():
    spec = SweepSpec(models=["bert", "vit"], batch_sizes=[1, 2, 4], platforms=["cpu", "openvino"], run_id="g")
    groups = rounds.plan_groups(spec.jobs(), group_size=4)
    assert [len(g) for g in groups] == [4, 2, 4, 2]
    assert all(len({(j.model, j.size) for j in g}) == 1 for g in groups)


def test_memory_cap_falls_back_to_smaller_groups(tmp_path):
    spec = SweepSpec(models=["bert"], batch_sizes=[1, 2, 4], time_budget_s=0.2, rounds=3, memory_cap_bytes=1,
                     reference=None, run_id="cap")
    records = run_sweep(spec, tmp_path / "b.duckdb", progress=False)
    assert [r.status for r in records] == ["ok"] * 3
    assert all(r.extra["rounds"]["group"] == [r.config_key] for r in records)  # one configuration per group


def test_a_child_dying_mid_rounds_is_one_failure_row(tmp_path):
    spec = SweepSpec(models=["bert"], batch_sizes=[1, 2], time_budget_s=0.3, rounds=4, run_id="crash")
    records = _by_batch(run_sweep(spec, tmp_path / "b.duckdb", progress=False,
                                  target="tests.child_targets:crash_in_round_2"))
    assert records[1].status == "ok" and set(records[1].sample_rounds) == {0, 1, 2, 3}
    assert records[2].status == "failed" and "SIGKILL" in records[2].reason


def test_resume_after_an_interruption_in_the_middle_of_a_round(tmp_path, monkeypatch):
    db = tmp_path / "b.duckdb"
    spec = SweepSpec(models=["bert", "vit"], batch_sizes=[1, 2], time_budget_s=0.2, rounds=3, reference=None,
                     run_id="resume")
    original, children = rounds.Child.burst, []

    def burst(self, round_idx, seconds, timeout_s):
        children.append(self.pid)
        if self.key.startswith("resume|vit") and round_idx == 1:
            raise KeyboardInterrupt  # the parent stops in the middle of the second group's second round
        return original(self, round_idx, seconds, timeout_s)

    monkeypatch.setattr(rounds.Child, "burst", burst)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, db, progress=False)
    con = storage.connect(db)
    assert sorted(r.model for r in storage.load_records(con, "resume")) == ["bert", "bert"]
    time.sleep(0.5)
    assert not [pid for pid in set(children) if psutil.pid_exists(pid) and
                psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # no child left behind
    monkeypatch.setattr(rounds.Child, "burst", original)
    records = run_sweep(spec, con, progress=False)
    assert sorted((r.model, r.status) for r in records) == [("bert", "ok")] * 2 + [("vit", "ok")] * 2


def test_round_options_are_validated():
    for bad, match in ((dict(rounds=0), "rounds"), (dict(group_size=True), "group_size"),
                       (dict(memory_cap_bytes=1.5), "memory_cap_bytes"), (dict(reference="fft"), "reference 'fft'"),
                       (dict(interleave="yes"), "interleave")):
        with pytest.raises(ConfigError, match=match):
            SweepSpec(models=["bert"], **bad)


def test_the_fastest_reference_process_is_the_one_a_result_is_normalised_against():
    def process(call_s, rounds_=(0, 0, 1, 1, 2, 2)):
        return {"samples_s": [call_s * f for f in (1.0, 1.2) * (len(rounds_) // 2)], "rounds": list(rounds_)}

    fast, slow, silent = process(0.171e-3), process(0.193e-3), {"samples_s": [], "rounds": []}
    assert rounds.fastest_reference([slow, fast, silent]) is fast
    assert rounds.fastest_reference([silent]) is None and rounds.fastest_reference([]) is None
    assert rounds.reference_level(fast) == pytest.approx(0.171e-3 * 1.02)  # each round's 10th percentile of 1.0, 1.2


@pytest.mark.parametrize("name", ["matmul", "copy", "bert"])
def test_each_reference_workload_measures(name):
    from kit.runners.reference import measure_reference

    value = measure_reference({"name": name, "time_budget_s": 0.05})
    assert value["name"] == name and len(value["samples_s"]) >= 1 and min(value["samples_s"]) > 0
    assert value["rounds"] == []  # no driver installed: the adaptive loop


def test_children_start_from_another_interpreter(tmp_path):
    import sys

    child = rounds.Child("x", "tests.child_targets:echo", {"a": 1}, python=sys.executable)
    assert child.finish(60) == (True, {"echo": {"a": 1}})
    assert os.path.exists(sys.executable)
