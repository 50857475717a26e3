"""Functions run in child processes by the isolation and sweep tests (importable by module path)."""

import os
import signal
import time


def echo(payload):
    return {"echo": payload}


def hang(payload):
    time.sleep(3600)


def allocate_until_death(payload):
    chunks = []
    while True:
        chunks.append(bytearray(64 * 2**20))


def killed_like_oom(payload):
    os.kill(os.getpid(), signal.SIGKILL)


def raise_error(payload):
    raise RuntimeError(f"broken on purpose: {payload}")


def exit_early(payload):
    os._exit(3)


def fake_measure(job):
    """Stand-in for the real worker: marks that it ran, waits a little, returns a record of fixed samples."""
    from pathlib import Path

    from kit.config import Job
    from kit.records import Record

    job = Job(**job)
    marks = Path(os.environ["BENCHKIT_TEST_MARKS"])
    (marks / (job.config_key.replace("|", "_") + ".called")).write_text("x")
    time.sleep(float(os.environ.get("BENCHKIT_TEST_DELAY_S", "0")))
    record = Record.from_samples([0.01, 0.011, 0.012], **job.identity(), family=job.model, device="cpu")
    return record.to_json()


def hang_on_batch_2(job):
    """The real worker, except that batch size 2 hangs (to test timeouts inside a sweep)."""
    if job["batch_size"] == 2:
        time.sleep(3600)
    from kit.runners.worker import run_job

    return run_job(job)


def environment_seen(payload):
    """What the child sees of its start: an environment variable, its working directory, what is imported."""
    import sys

    return {"value": os.environ.get(payload), "cwd": os.getcwd(), "torch_imported": "torch" in sys.modules}


def drifting_measure(job):
    """A simulated workload (test only) whose call takes 2 ms x a machine speed that drifts slowly with wall time:
    the speed factor rises linearly from 1 at BENCHKIT_TEST_DRIFT_EPOCH by BENCHKIT_TEST_DRIFT_PER_S per second,
    for every child alike. The call sleeps, so the drift is exact and the CPU stays free."""
    from kit.config import Job
    from kit.records import Record
    from kit.timing import PerfCounterClock, measure_adaptive

    job = Job(**job)
    epoch = float(os.environ["BENCHKIT_TEST_DRIFT_EPOCH"])
    per_s = float(os.environ["BENCHKIT_TEST_DRIFT_PER_S"])

    def call():
        time.sleep(0.002 * (1 + per_s * (time.time() - epoch)))

    measurement = measure_adaptive(call, PerfCounterClock(), time_budget_s=job.time_budget_s, target_rel_ci=1e-9,
                                   min_samples=job.min_samples)
    record = Record.from_samples(measurement.samples_s, sample_rounds=measurement.rounds, **job.identity(),
                                 family=job.model, device="cpu")
    return record.to_json()


def crash_in_round_2(job):
    """The real worker for batch size 1; batch size 2 dies (SIGKILL) when granted its third burst."""
    from kit import timing
    from kit.runners.worker import run_job

    if job["batch_size"] == 2:
        driver = timing._DRIVER
        original = driver.next_burst

        def next_burst():
            burst = original()
            if burst is not None and burst[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return burst

        driver.next_burst = next_burst
    return run_job(job)
