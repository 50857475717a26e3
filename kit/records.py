"""The one result type: a flat, frozen `Record` per measured configuration, and helpers to tabulate records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from kit.errors import MeasurementError
from kit.stats import MIN_CI_SAMPLES, Summary, summarise

SCHEMA_VERSION = 4
Status = Literal["ok", "failed", "skipped"]
STATUSES = ("ok", "failed", "skipped")
MODES = ("inference", "training", "generation")


@dataclass(frozen=True)
class Record:
    """One configuration's outcome: identity, status, raw samples and the metrics derived from them."""

    # identity
    run_id: str
    config_key: str
    model: str
    family: str
    size: str
    mode: str
    platform: str
    device: str
    precision: str
    batch_size: int
    seq_len: int | None = None
    # outcome
    status: str = "ok"
    reason: str = ""
    # raw samples (seconds per iteration; an iteration processes `batch_size` items)
    samples_s: tuple[float, ...] = ()
    # the interleaving round of each sample (empty when measured in one sequential block)
    sample_rounds: tuple[int, ...] = ()
    # derived latency statistics (seconds)
    n_samples: int = 0
    latency_mean_s: float | None = None
    latency_std_s: float | None = None
    latency_p10_s: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    ci_low_s: float | None = None
    ci_high_s: float | None = None
    ci_rel_halfwidth: float | None = None
    converged: bool | None = None
    throughput_items_per_s: float | None = None
    # items per call of the machine reference measured in the same rounds (interleaved sweeps only): a speed that
    # the machine's drift cancels out of
    normalised_throughput: float | None = None
    # one-off timings (seconds)
    startup_s: float | None = None
    first_inference_s: float | None = None
    # resources
    peak_memory_bytes: int | None = None
    memory_method: str = ""
    threads: int | None = None
    # processes of a distributed run (kit.distributed); None for a single process
    world_size: int | None = None
    cpu_time_s: float | None = None
    load_avg_1m: float | None = None
    # model facts
    n_params: int | None = None
    flops_per_sample: float | None = None
    # anything platform- or mode-specific (training phases, precision that actually ran, output deviation...)
    extra: dict[str, Any] = field(default_factory=dict)
    # provenance
    env_id: str = ""
    params_json: str = "{}"
    schema_version: int = SCHEMA_VERSION
    created_at: str = ""

    @property
    def noisy(self) -> bool:
        """True when the adaptive stop ran out of budget before the CI of the median was tight enough."""
        return self.status == "ok" and self.converged is False

    @classmethod
    def from_samples(cls, samples_s: list[float], *, target_rel_ci: float = 0.02, **identity: Any) -> Record:
        """Build an ok record from raw samples: sort, derive statistics, and check them for sanity."""
        summary = summarise(samples_s)
        created_at = identity.pop("created_at", "") or now_iso()
        rounds = tuple(int(r) for r in identity.pop("sample_rounds", ()) or ())
        record = cls(
            **identity,
            status="ok",
            samples_s=tuple(float(s) for s in samples_s),
            sample_rounds=rounds,
            **_summary_fields(summary, identity["batch_size"], target_rel_ci),
            created_at=created_at,
        )
        check_record(record)
        return record

    @classmethod
    def failure(cls, status: str, reason: str, **identity: Any) -> Record:
        """Build a failed or skipped record that carries its reason and no measurement."""
        if status not in ("failed", "skipped"):
            raise ValueError(f"failure status must be 'failed' or 'skipped', not {status!r}")
        if not reason:
            raise ValueError("a failed or skipped record needs a reason")
        created_at = identity.pop("created_at", "") or now_iso()
        return cls(**identity, status=status, reason=reason, created_at=created_at)

    def to_row(self) -> dict[str, Any]:
        """A flat dict for tables: samples and extras as JSON text, plus the `noisy` flag."""
        row = dataclasses.asdict(self)
        row["samples_s"] = json.dumps(list(self.samples_s))
        row["sample_rounds"] = json.dumps(list(self.sample_rounds))
        row["extra"] = json.dumps(self.extra, default=str, sort_keys=True)
        row["noisy"] = self.noisy
        return row

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (samples as a list) used to send records between processes and files."""
        row = dataclasses.asdict(self)
        row["samples_s"] = list(self.samples_s)
        row["sample_rounds"] = list(self.sample_rounds)
        return row

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record from `to_json` output, ignoring unknown keys from newer schema versions."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["samples_s"] = tuple(kwargs.get("samples_s") or ())
        kwargs["sample_rounds"] = tuple(int(r) for r in kwargs.get("sample_rounds") or ())
        kwargs["extra"] = dict(kwargs.get("extra") or {})
        return cls(**kwargs)


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))


def now_iso() -> str:
    """The current UTC time as ISO-8601 text."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _summary_fields(summary: Summary, batch_size: int, target_rel_ci: float) -> dict[str, Any]:
    return {
        "n_samples": summary.n,
        "latency_mean_s": summary.mean,
        "latency_std_s": summary.std,
        "latency_p10_s": summary.p10,
        "latency_p50_s": summary.p50,
        "latency_p90_s": summary.p90,
        "latency_p95_s": summary.p95,
        "latency_p99_s": summary.p99,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        "ci_rel_halfwidth": summary.rel_halfwidth,
        # too few samples for a real CI (one sample has a zero-width stand-in) is never converged: it reads as noisy
        "converged": summary.n >= MIN_CI_SAMPLES and summary.rel_halfwidth <= target_rel_ci,
        "throughput_items_per_s": batch_size / summary.mean,
    }


def check_record(record: Record) -> None:
    """Raise MeasurementError unless an ok record is sane: positive values, ordered percentiles, consistent units."""
    if record.status != "ok":
        return
    if record.batch_size <= 0:
        raise MeasurementError(f"batch_size must be positive, got {record.batch_size}")
    if not record.samples_s or any(not (s > 0 and math.isfinite(s)) for s in record.samples_s):
        raise MeasurementError(f"samples must be positive and finite for {record.config_key}")
    if record.sample_rounds and len(record.sample_rounds) != len(record.samples_s):
        raise MeasurementError(f"{len(record.sample_rounds)} round indices for {len(record.samples_s)} samples of "
                               f"{record.config_key}")
    if record.normalised_throughput is not None and not record.normalised_throughput > 0:
        raise MeasurementError(f"normalised_throughput must be positive, got {record.normalised_throughput}")
    ordered = [p for p in (record.latency_p10_s, record.latency_p50_s, record.latency_p90_s, record.latency_p95_s,
                           record.latency_p99_s) if p is not None]
    if any(a > b for a, b in zip(ordered, ordered[1:], strict=False)):
        raise MeasurementError(f"percentiles out of order for {record.config_key}: {ordered}")
    if not (record.ci_low_s <= record.latency_p50_s <= record.ci_high_s):
        raise MeasurementError(f"median outside its confidence interval for {record.config_key}")
    expected = record.batch_size / record.latency_mean_s
    if not math.isclose(record.throughput_items_per_s, expected, rel_tol=1e-9):
        raise MeasurementError(f"throughput {record.throughput_items_per_s} != batch / mean latency {expected}")
    for name in ("startup_s", "first_inference_s", "peak_memory_bytes"):
        value = getattr(record, name)
        if value is not None and value < 0:
            raise MeasurementError(f"{name} must not be negative, got {value}")


def records_frame(records: list[Record]) -> pd.DataFrame:
    """A DataFrame with one row per record and the columns of RECORD_FIELDS plus `noisy`."""
    rows = [r.to_row() for r in records]
    return pd.DataFrame(rows, columns=[*RECORD_FIELDS, "noisy"])
