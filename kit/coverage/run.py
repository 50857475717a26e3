"""The coverage run: every selected architecture on every platform, one child process per architecture and
platform, each row stored as soon as it exists; a rerun with the same run id skips the rows already stored.

The CPU row of an architecture comes first: when PyTorch itself fails (build, input or forward), the other platforms
are skipped rows that name the CPU row's stage and error instead of failing the same way again.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit import storage
from kit.coverage.architectures import Architecture, select_architectures
from kit.coverage.measure import TORCH_STAGES, config_key, facts, identity
from kit.errors import ConfigError
from kit.records import Record
from kit.runners.isolation import run_in_child
from kit.runners.sweep import RecordWriter

TARGET = "kit.coverage.measure:measure_platform"
PLATFORMS = ("cpu", "openvino", "wasm")


def default_run_id() -> str:
    """coverage-tf<version>: one matrix per transformers version, resumed by default."""
    import transformers

    return f"coverage-tf{transformers.__version__}"


@dataclass(frozen=True)
class CoverageSpec:
    """What a coverage run attempts and how long each measurement may take."""

    platforms: list[str] = field(default_factory=lambda: ["cpu", "openvino"])
    modalities: list[str] | None = None
    only: list[str] | None = None
    sample: int | None = None
    seed: int = 0
    batch_size: int = 1
    seq_len: int = 16
    time_budget_s: float = 0.3
    timeout_s: float = 180.0
    threads: int | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        from kit.backends import known_platforms

        unknown = sorted(set(self.platforms) - set(known_platforms()))
        if not self.platforms or unknown:
            raise ConfigError(f"platforms {unknown or self.platforms!r} unknown; known: {', '.join(known_platforms())}")
        for name in ("batch_size", "seq_len", "time_budget_s", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")

    def architectures(self) -> list[Architecture]:
        """The architectures selected by the modality, --only and --sample filters."""
        return select_architectures(modalities=self.modalities, only=self.only, sample=self.sample, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        """The parameters stored with the run."""
        return {**asdict(self), "run_id": self.resolved_run_id()}

    def resolved_run_id(self) -> str:
        """The run id given, else default_run_id()."""
        return self.run_id or default_run_id()


SPEC_FIELDS = ("platforms", "modalities", "only", "sample", "seed", "time_budget_s", "timeout_s", "run_id")
NOT_SPEC = ("db_path",)  # notebook 08's parameters that are not the run's


def spec_from_parameters(path: str | Path) -> CoverageSpec:
    """The CoverageSpec of a notebook 08 parameter file (e.g. parameters/08_coverage.quick.yaml); ConfigError naming
    an unknown key or a bad value."""
    from kit.config import load_parameters

    params = load_parameters(path)
    unknown = sorted(set(params) - set(SPEC_FIELDS) - set(NOT_SPEC))
    if unknown:
        raise ConfigError(f"{path}: unknown coverage parameters {unknown}; known: {', '.join(SPEC_FIELDS)}")
    return CoverageSpec(**{k: v for k, v in params.items() if k in SPEC_FIELDS})


def _job(spec: CoverageSpec, arch: Architecture, platform: str, stage_file: str) -> dict[str, Any]:
    return {"architecture": arch.to_dict(), "platform": platform, "run_id": spec.resolved_run_id(),
            "batch_size": spec.batch_size, "seq_len": spec.seq_len, "time_budget_s": spec.time_budget_s,
            "threads": spec.threads, "stage_file": stage_file}


def measure_isolated(spec: CoverageSpec, arch: Architecture, platform: str, target: str = TARGET) -> Record:
    """One architecture on one platform in a child process (`target`, kit.coverage.measure by default); a child that
    hangs or dies is a failed row naming the stage it was in."""
    with tempfile.TemporaryDirectory(prefix="benchkit-coverage-") as folder:
        stage_file = os.path.join(folder, "stage")
        job = _job(spec, arch, platform, stage_file)
        outcome = run_in_child(target, job, timeout_s=spec.timeout_s)
        if outcome.ok:
            return Record.from_json(outcome.value)
        stage = Path(stage_file).read_text() if Path(stage_file).is_file() else "build"
    reason = next((ln for ln in outcome.reason.splitlines() if ln.strip()), "child process failed")
    return Record.failure("failed", reason, device="", **identity(job),
                          extra={**facts(job["architecture"], stage), "error_detail": outcome.reason})


def torch_failure(cpu: Record | None) -> str | None:
    """Why the other platforms are not attempted: the CPU row failed in PyTorch itself (None otherwise)."""
    if cpu is None or cpu.status != "failed" or cpu.extra.get("stage") not in TORCH_STAGES:
        return None
    return f"not attempted: PyTorch fails at stage {cpu.extra['stage']} ({cpu.reason})"


def _stored(db: str | Path, run_id: str, retry_failed: bool) -> dict[str, Record]:
    """The run's stored rows by key; with retry_failed, without the failed rows and the rows not attempted because
    of them, so that those are measured again (the new row replaces the stored one)."""
    with storage.writing(db) as con:
        records = storage.load_records(con, run_id)
    return {r.config_key: r for r in records if not (retry_failed and _to_retry(r))}


def _to_retry(record: Record) -> bool:
    return record.status == "failed" or record.extra.get("stage") == "not attempted"


def run_coverage(spec: CoverageSpec, db: str | Path = storage.DEFAULT_DB, *,
                 echo: Callable[[str], None] | None = None, target: str = TARGET,
                 retry_failed: bool = False) -> list[Record]:
    """Attempt every selected architecture on every platform of the spec, skipping rows stored under its run id
    (with retry_failed, failed rows are attempted again); return the rows of the selected architectures."""
    from kit.environment import collect_environment

    run_id, architectures = spec.resolved_run_id(), spec.architectures()
    environment = collect_environment()
    with storage.writing(db) as con:
        storage.start_run(con, run_id, spec.to_dict(), environment)
    stored, writer = _stored(db, run_id, retry_failed), RecordWriter(db, environment["env_id"])
    platforms = sorted(spec.platforms, key=lambda p: p != "cpu")
    started = time.monotonic()
    for index, arch in enumerate(architectures, 1):
        for platform in platforms:
            key = config_key(arch.model_type, platform)
            if key in stored:
                continue
            why = torch_failure(stored.get(config_key(arch.model_type, "cpu"))) if platform != "cpu" else None
            job = _job(spec, arch, platform, "")
            record = (Record.failure("skipped", why, device="", **identity(job),
                                     extra=facts(job["architecture"], "not attempted"))
                      if why else measure_isolated(spec, arch, platform, target))
            writer.write(record)
            stored[key] = record
            if echo:
                echo(f"[{index}/{len(architectures)}] {arch.model_type} {platform}: {record.status} "
                     f"{record.reason[:100]} ({time.monotonic() - started:.0f} s)")
    writer.close(run_id)
    with storage.writing(db) as con:
        storage.finish_run(con, run_id)
    wanted = {config_key(a.model_type, p) for a in architectures for p in spec.platforms}
    return [r for k, r in sorted(stored.items()) if k in wanted]
