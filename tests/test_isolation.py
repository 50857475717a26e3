import time

import pytest

from kit.runners.isolation import run_in_child, start_method


def test_child_returns_value():
    out = run_in_child("tests.child_targets:echo", [1, 2], timeout_s=60)
    assert out.ok and out.value == {"echo": [1, 2]}


def test_child_exception_becomes_reason():
    out = run_in_child("tests.child_targets:raise_error", "x", timeout_s=60)
    assert not out.ok and "RuntimeError: broken on purpose: x" in out.reason


def test_hanging_child_is_killed_at_timeout():
    start = time.perf_counter()
    out = run_in_child("tests.child_targets:hang", None, timeout_s=3)
    assert not out.ok and "timed out after 3 s" in out.reason
    assert time.perf_counter() - start < 30


def test_child_allocating_until_death_is_reported():
    out = run_in_child("tests.child_targets:allocate_until_death", None, timeout_s=60, memory_limit_bytes=2 * 2**30)
    assert not out.ok and ("MemoryError" in out.reason or "killed" in out.reason)


def test_child_killed_by_sigkill_names_the_signal():
    out = run_in_child("tests.child_targets:killed_like_oom", None, timeout_s=60)
    assert not out.ok and "SIGKILL" in out.reason and "out of memory" in out.reason


def test_child_exiting_early_reports_exit_code():
    out = run_in_child("tests.child_targets:exit_early", None, timeout_s=60)
    assert not out.ok and "exited with code 3" in out.reason


def test_parent_does_not_spin_while_waiting():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    run_in_child("tests.child_targets:hang", None, timeout_s=2)
    after = resource.getrusage(resource.RUSAGE_SELF)
    parent_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert parent_cpu < 0.5, f"parent used {parent_cpu:.2f} s of CPU while waiting 2 s"


def test_forked_child_sees_the_parents_current_environment_and_directory(monkeypatch, tmp_path):
    run_in_child("tests.child_targets:echo", None, timeout_s=60)  # the fork server exists before the change below
    monkeypatch.setenv("BENCHKIT_TEST_VALUE", "set-after-the-server-started")
    monkeypatch.chdir(tmp_path)
    out = run_in_child("tests.child_targets:environment_seen", "BENCHKIT_TEST_VALUE", timeout_s=60)
    assert out.ok, out.reason
    assert out.value["value"] == "set-after-the-server-started" and out.value["cwd"] == str(tmp_path)


def test_forked_child_starts_with_torch_imported_and_spawned_one_without(monkeypatch):
    assert start_method() == "forkserver"
    assert run_in_child("tests.child_targets:environment_seen", "HOME", timeout_s=120).value["torch_imported"]
    monkeypatch.setenv("BENCHKIT_CHILD_START", "spawn")
    assert start_method() == "spawn"
    assert not run_in_child("tests.child_targets:environment_seen", "HOME", timeout_s=120).value["torch_imported"]


def test_unknown_start_method_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("BENCHKIT_CHILD_START", "fork")
    with pytest.raises(ValueError, match="BENCHKIT_CHILD_START='fork'"):
        run_in_child("tests.child_targets:echo", None, timeout_s=60)


def test_an_error_under_a_memory_limit_names_the_limit():
    out = run_in_child("tests.child_targets:raise_error", "x", timeout_s=60, memory_limit_bytes=3 * 2**30)
    assert not out.ok and out.reason.startswith("under a 3.00 GiB memory limit (--memory-limit-gb")
    assert "RuntimeError: broken on purpose: x" in out.reason


PARENT = """
import sys
from kit import storage
from kit.config import SweepSpec
from kit.runners.sweep import run_sweep
spec = SweepSpec(models=["bert"], batch_sizes=[2], run_id="orphan", timeout_s=600, rounds=3,
                 interleave=sys.argv[2] == "rounds")
run_sweep(spec, storage.connect(sys.argv[1]), progress=False, target="tests.child_targets:hang_on_batch_2")
"""


@pytest.mark.parametrize("mode", ["sequential", "rounds"])
def test_a_measuring_child_dies_with_its_parent(tmp_path, mode):
    import os
    import signal
    import subprocess
    import sys

    import psutil

    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "o.duckdb"), mode], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(psutil.Process(parent.pid).children(recursive=True)) < 3:
            time.sleep(0.2)  # multiprocessing's resource tracker, the fork server and a measuring child
        time.sleep(2)
        descendants = psutil.Process(parent.pid).children(recursive=True)
        assert descendants, "the sweep started no child"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        time.sleep(2)
        alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if parent.poll() is None:
            parent.kill()
