"""The sweep: every configuration of a SweepSpec in its own child process, each result stored as soon as it exists.

By default configurations are measured in interleaved rounds (kit.runners.rounds), group by group, with a machine
reference beside them; `interleave: false` measures one configuration after the other, each in one block.

Only this (parent) process writes to the database. A re-run with the same run_id skips configurations that already
have a result, so a killed sweep resumes where it stopped without losing or duplicating anything.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from tqdm.auto import tqdm

from kit import progress as progress_file
from kit import storage
from kit.backends import get_backend
from kit.config import Job, SweepSpec
from kit.environment import collect_environment
from kit.errors import ConfigError
from kit.records import Record
from kit.runners.isolation import run_in_child
from kit.runners.rounds import interleave

WORKER = "kit.runners.worker:run_job"


def family_of(model: str) -> str:
    """The family of a zoo name, or the model_type of a local checkpoint folder's config.json."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return model
    try:  # checked before the sweep; a file changed since then names no family rather than stopping the sweep
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "local"
    return str(data.get("model_type", "local")) if isinstance(data, dict) else "local"


def _identity(job: Job) -> dict[str, Any]:
    return {**job.identity(), "family": family_of(job.model), "device": ""}


def precheck(job: Job) -> Record | None:
    """A skipped record when the platform is absent or cannot run the precision/mode; None when the job can run."""
    backend = get_backend(job.platform)
    ok, reason = backend.available()
    if not ok:
        return Record.failure("skipped", f"platform {job.platform} unavailable: {reason}", **_identity(job))
    ok, reason = backend.supports(job.precision, job.mode)
    if not ok:
        return Record.failure("skipped", reason, **_identity(job))
    return None


def run_job_isolated(job: Job, *, timeout_s: float, memory_limit_bytes: int | None = None,
                     target: str = WORKER) -> Record:
    """Measure one job in a child process; any failure of the child becomes a failed record with its reason."""
    skipped = precheck(job)
    if skipped is not None:
        return skipped
    outcome = run_in_child(target, job.to_dict(), timeout_s=timeout_s, memory_limit_bytes=memory_limit_bytes)
    if outcome.ok:
        return Record.from_json(outcome.value)
    return failure_of(job, outcome.reason)


def failure_of(job: Job, reason: str) -> Record:
    """The failed record of a job whose child died, timed out or raised, with the platform's known cause of such a
    death where it has one (`Backend.death_cause`)."""
    cause = get_backend(job.platform).death_cause(job.precision, job.threads, reason)
    return Record.failure("failed", reason + cause, **_identity(job))


WRITE_WAIT_S = 120.0  # how long a record's write waits for readers to let go of the store before it is kept back


@contextlib.contextmanager
def _using(db: duckdb.DuckDBPyConnection | str | Path, wait_s: float = storage.LOCK_WAIT_S
           ) -> Iterator[duckdb.DuckDBPyConnection]:
    """The given connection, or a connection to the given path held only for the block."""
    if isinstance(db, duckdb.DuckDBPyConnection):
        yield db
    else:
        with storage.writing(db, wait_s) as con:
            yield con


class RecordWriter:
    """Stores each record as it comes; with a path, in a connection of its own, so that readers get in between
    writes. A record that cannot be written (readers held the file for WRITE_WAIT_S) is kept and written with the
    next one; if some are still kept at the end they go to a JSON file for `benchkit import-json`, and the sweep
    says so: nothing measured is lost."""

    def __init__(self, db: duckdb.DuckDBPyConnection | str | Path, env_id: str) -> None:
        self.db, self.env_id, self.kept = db, env_id, []

    def write(self, record: Record) -> None:
        """Store the record (and any kept back before it)."""
        self.kept.append(_with_env(record, self.env_id))
        try:
            with _using(self.db, WRITE_WAIT_S) as con:
                while self.kept:
                    storage.insert_record(con, self.kept[0])
                    self.kept.pop(0)
        except ConfigError:
            if isinstance(self.db, duckdb.DuckDBPyConnection):
                raise

    def close(self, run_id: str) -> None:
        """Write what was kept back; failing that, save it as JSON and raise naming the file."""
        if not self.kept:
            return
        try:
            with _using(self.db, WRITE_WAIT_S) as con:
                for record in self.kept:
                    storage.insert_record(con, record)
            self.kept = []
        except ConfigError as exc:
            path = Path(str(self.db)).with_name(f"{run_id}.unstored.json")
            path.write_text(json.dumps([r.to_json() for r in self.kept]))
            raise ConfigError(f"{len(self.kept)} records of run {run_id} could not be stored ({exc}); they are in "
                              f"{path}: `benchkit import-json {path} --db {self.db}` stores them") from None


# what a resumed run may change: the matrix (more configurations), the run id itself and the resource limits
NOT_SETTINGS = frozenset({"models", "platforms", "precisions", "batch_sizes", "modes", "prompt_lens", "run_id",
                          "timeout_s", "memory_limit_bytes", "memory_cap_bytes"})


def settings_changed(stored: dict, spec: SweepSpec) -> list[str]:
    """'key: stored -> new' for each measurement setting a resumed run would change (keys both know)."""
    new = spec.to_dict()
    return [f"{key}: {stored[key]!r} -> {new[key]!r}" for key in sorted(set(stored) & set(new) - NOT_SETTINGS)
            if json.loads(json.dumps(stored[key])) != json.loads(json.dumps(new[key]))]


def run_sweep(spec: SweepSpec, db: duckdb.DuckDBPyConnection | str | Path | None = None, *,
              progress: bool = True, target: str = WORKER, retry_failed: bool = False,
              force: bool = False) -> list[Record]:
    """Run every configuration not yet stored for spec.run_id (with retry_failed, failed ones again: the new record
    replaces the failure); return all of the run's records from the store. Resuming a run with other measurement
    settings (budget, rounds, overrides...) is refused, naming the differences, unless `force`."""
    db = db if db is not None else storage.DEFAULT_DB
    with _using(db) as con:
        stored = storage.run_parameters(con, spec.run_id)
    changed = settings_changed(stored, spec) if stored is not None else []
    if changed and not force:
        raise ConfigError(f"run {spec.run_id} was measured with other settings ({'; '.join(changed)}); resume it "
                          "with the same ones, use a new run id, or force it (--force)")
    environment = collect_environment()
    with _using(db) as con:
        storage.start_run(con, spec.run_id, spec.to_dict(), environment)
        done = storage.finished_config_keys(con, spec.run_id, include_failed=not retry_failed)
    planned = spec.jobs()
    todo = [job for job in planned if job.config_key not in done]
    if progress and len(todo) < len(planned):
        print(f"resuming run {spec.run_id}: {len(planned) - len(todo)} of {len(planned)} configurations already "
              f"stored, {len(todo)} to measure", flush=True)
    bar = tqdm(total=len(todo), desc=f"sweep {spec.run_id}", unit="config", disable=not progress)
    started, stored = time.monotonic(), []
    writer = RecordWriter(db, environment["env_id"])

    def store(record: Record) -> None:
        writer.write(record)
        stored.append(record.config_key)
        bar.set_postfix_str(record.config_key, refresh=False)
        bar.update()
        progress_file.report(f"sweep {spec.run_id}", len(stored), len(todo), f"stored {record.config_key}: "
                             f"{record.status}", started)

    def on_round(jobs: list[Job], index: int) -> None:
        current = f"round {index + 1}/{spec.rounds} of {jobs[0].model} ({len(jobs)} configurations)"
        fraction = (len(stored) + len(jobs) * (index + 1) / spec.rounds) / len(todo)
        progress_file.report(f"sweep {spec.run_id}", len(stored), len(todo), current, started, fraction)

    if spec.interleave:
        interleave(todo, spec.round_plan(), store, target=target, precheck=precheck, failure=failure_of,
                   on_round=on_round)
    else:
        for job in todo:
            store(run_job_isolated(job, timeout_s=spec.timeout_s, memory_limit_bytes=spec.memory_limit_bytes,
                                   target=target))
    bar.close()
    writer.close(spec.run_id)
    with _using(db, WRITE_WAIT_S) as con:
        storage.finish_run(con, spec.run_id)
        return storage.load_records(con, spec.run_id)


def _with_env(record: Record, env_id: str) -> Record:
    data = record.to_json()
    data["env_id"] = env_id
    return Record.from_json(data)
