import os
import signal
import subprocess
import sys
import time

import pytest

from kit import storage
from kit.config import SweepSpec
from kit.runners.sweep import run_sweep


def _ok(records):
    return [r for r in records if r.status == "ok"]


def test_tiny_sweep_stores_sane_records(tmp_path):
    con = storage.connect(tmp_path / "b.duckdb")
    spec = SweepSpec(models=["bert"], batch_sizes=[1, 2], precisions=["fp32", "int8"], time_budget_s=0.3,
                     min_samples=5, run_id="tiny")
    records = run_sweep(spec, con, progress=False)
    assert len(records) == 4 and len(_ok(records)) == 4, [r.reason for r in records]
    for r in records:
        assert r.latency_p50_s <= r.latency_p90_s <= r.latency_p95_s <= r.latency_p99_s
        assert r.throughput_items_per_s == pytest.approx(r.batch_size / r.latency_mean_s)
        assert r.startup_s > 0 and r.first_inference_s > 0 and r.peak_memory_bytes > 0
        assert r.n_params > 0 and r.flops_per_sample > 0 and r.threads >= 1 and r.cpu_time_s > 0
        assert r.env_id and r.device == "cpu"
        profile = r.extra["forward_profile"]
        assert profile["ops_per_forward"] > 0 and profile["activation_bytes_per_sample"] > 0
        assert r.extra["host_steal_share"] is None or 0 <= r.extra["host_steal_share"] <= 1
    assert len(storage.load_records(con, "tiny")) == 4


def test_absent_platform_becomes_skipped_record(tmp_path):
    spec = SweepSpec(models=["bert"], platforms=["cpu", "mps"], time_budget_s=0.2, min_samples=3, run_id="skip")
    records = {r.platform: r for r in run_sweep(spec, tmp_path / "b.duckdb", progress=False)}
    assert records["cpu"].status == "ok"
    assert records["mps"].status == "skipped" and "unavailable" in records["mps"].reason


def test_unsupported_precision_becomes_skipped_record(tmp_path):
    spec = SweepSpec(models=["bert"], modes=["training"], precisions=["int8"], run_id="int8train")
    (record,) = run_sweep(spec, tmp_path / "b.duckdb", progress=False)
    assert record.status == "skipped" and "inference-only" in record.reason


def test_hanging_configuration_becomes_failed_record_and_sweep_goes_on(tmp_path):
    spec = SweepSpec(models=["bert"], batch_sizes=[2, 1], time_budget_s=0.2, min_samples=3, timeout_s=20,
                     run_id="hang")
    records = {r.batch_size: r for r in run_sweep(spec, tmp_path / "b.duckdb", progress=False,
                                                  target="tests.child_targets:hang_on_batch_2")}
    assert records[2].status == "failed" and "timed out" in records[2].reason
    assert records[1].status == "ok"


def test_memory_hungry_configuration_becomes_failed_record(tmp_path):
    spec = SweepSpec(models=["bert"], memory_limit_bytes=64 * 2**20, run_id="oom")
    (record,) = run_sweep(spec, tmp_path / "b.duckdb", progress=False)
    assert record.status == "failed" and record.reason


SWEEP_SCRIPT = """
import sys
from kit.config import SweepSpec
from kit.runners.sweep import run_sweep
spec = SweepSpec(models=["bert"], batch_sizes=[1, 2, 3, 4, 5, 6], run_id="resume")
run_sweep(spec, sys.argv[1], progress=False, target="tests.child_targets:fake_measure")
"""


def test_resume_after_parent_sigkill_loses_and_duplicates_nothing(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "BENCHKIT_TEST_MARKS": str(marks), "BENCHKIT_TEST_DELAY_S": "0.5"}
    db = tmp_path / "b.duckdb"
    parent = subprocess.Popen([sys.executable, "-c", SWEEP_SCRIPT, str(db)], env=env, cwd=os.getcwd())
    deadline = time.time() + 120
    while len(list(marks.glob("*.called"))) < 3 and time.time() < deadline:
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    with storage.connect(db) as con:
        before = {r.config_key for r in storage.load_records(con, "resume")}
    assert 1 <= len(before) < 6
    for mark in marks.glob("*.called"):
        mark.unlink()
    os.environ["BENCHKIT_TEST_MARKS"] = str(marks)
    try:
        spec = SweepSpec(models=["bert"], batch_sizes=[1, 2, 3, 4, 5, 6], run_id="resume")
        records = run_sweep(spec, db, progress=False, target="tests.child_targets:fake_measure")
    finally:
        del os.environ["BENCHKIT_TEST_MARKS"]
    keys = [r.config_key for r in records]
    assert len(keys) == 6 and len(set(keys)) == 6
    rerun = {m.name.replace(".called", "").replace("_", "|") for m in marks.glob("*.called")}
    assert not (rerun & before), "finished configurations must not run again"


def test_resume_retries_failed_configurations_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_TEST_MARKS", str(tmp_path))
    db = tmp_path / "b.duckdb"
    spec = SweepSpec(models=["bert"], batch_sizes=[1, 2], timeout_s=60, run_id="retry")
    first = run_sweep(spec, db, progress=False, target="tests.child_targets:raise_error")
    assert [r.status for r in first] == ["failed", "failed"] and "broken on purpose" in first[0].reason
    again = run_sweep(spec, db, progress=False, target="tests.child_targets:fake_measure")
    assert [r.status for r in again] == ["failed", "failed"]  # a plain resume keeps what is stored
    retried = run_sweep(spec, db, progress=False, target="tests.child_targets:fake_measure", retry_failed=True)
    assert [r.status for r in retried] == ["ok", "ok"] and len(list(tmp_path.glob("*.called"))) == 2


def test_the_store_can_be_read_while_a_sweep_fills_it(tmp_path, capsys):
    """A sweep given the store's path holds the file only while it writes a record: `benchkit results` (another
    connection, as another process would open it) reads it in between, and the sweep loses nothing."""
    import subprocess
    import sys
    import time

    from kit.cli import main

    db = tmp_path / "live.duckdb"
    sweep = subprocess.Popen([sys.executable, "-m", "kit.cli", "bench", "--models", "bert", "vit", "--batch-sizes",
                              "1", "2", "--time-budget-s", "2", "--rounds", "4", "--run-id", "live", "--db", str(db)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reads_during = 0
    try:
        while sweep.poll() is None:
            if db.exists() and main(["results", "--db", str(db)]) == 0 and sweep.poll() is None:
                reads_during += 1
            capsys.readouterr()
            time.sleep(0.5)
        assert sweep.returncode == 0, sweep.stderr.read()
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert reads_during >= 3
    from kit import storage

    con = storage.connect(db, read_only=True)
    assert sorted(r.status for r in storage.load_records(con, "live")) == ["ok"] * 4
