import dataclasses

import pytest

from kit.errors import MeasurementError
from kit.records import RECORD_FIELDS, Record, check_record, records_frame

IDENTITY = dict(run_id="r1", config_key="bert|tiny|inference|cpu|fp32|bs4|seqdefault", model="bert", family="bert",
                size="tiny", mode="inference", platform="cpu", device="cpu", precision="fp32", batch_size=4)


def test_from_samples_derives_statistics_and_throughput():
    r = Record.from_samples([0.02, 0.01, 0.03, 0.01, 0.01, 0.02, 0.01], **IDENTITY)
    assert r.status == "ok" and r.n_samples == 7
    assert r.latency_mean_s == pytest.approx(0.11 / 7)
    assert r.throughput_items_per_s == pytest.approx(4 / r.latency_mean_s)
    assert r.latency_p50_s <= r.latency_p90_s <= r.latency_p95_s <= r.latency_p99_s
    assert r.ci_low_s <= r.latency_p50_s <= r.ci_high_s
    assert r.created_at


def test_a_given_created_at_is_kept_by_both_builders():
    stamp = "2026-01-01T00:00:00+00:00"
    assert Record.from_samples([0.01] * 7, created_at=stamp, **IDENTITY).created_at == stamp
    assert Record.failure("failed", "boom", created_at=stamp, **IDENTITY).created_at == stamp


def test_from_samples_rejects_non_positive_samples():
    with pytest.raises(MeasurementError):
        Record.from_samples([0.01, 0.0, 0.02], **IDENTITY)


def test_check_record_catches_inconsistent_throughput():
    r = Record.from_samples([0.01] * 10, **IDENTITY)
    bad = dataclasses.replace(r, throughput_items_per_s=r.throughput_items_per_s * 4)
    with pytest.raises(MeasurementError, match="throughput"):
        check_record(bad)


def test_check_record_catches_unordered_percentiles():
    r = Record.from_samples([0.01] * 10, **IDENTITY)
    with pytest.raises(MeasurementError, match="percentiles"):
        check_record(dataclasses.replace(r, latency_p99_s=r.latency_p50_s / 2))


def test_failure_needs_reason_and_valid_status():
    assert Record.failure("skipped", "no GPU", **IDENTITY).reason == "no GPU"
    with pytest.raises(ValueError):
        Record.failure("skipped", "", **IDENTITY)
    with pytest.raises(ValueError):
        Record.failure("ok", "why", **IDENTITY)


def test_json_round_trip_and_frame_columns():
    r = Record.from_samples([0.01, 0.012, 0.011], extra={"a": 1}, **IDENTITY)
    assert Record.from_json(r.to_json()) == r
    df = records_frame([r, Record.failure("failed", "boom", **IDENTITY)])
    assert list(df.columns) == [*RECORD_FIELDS, "noisy"] and len(df) == 2


def test_noisy_flag_follows_convergence():
    quiet = Record.from_samples([0.01] * 20, **IDENTITY)
    loud = Record.from_samples([0.01, 0.05] * 10, **IDENTITY)
    assert not quiet.noisy and loud.noisy


def test_too_few_samples_for_a_ci_are_never_converged():
    one = Record.from_samples([5.47], **IDENTITY)  # one slow call ran past the budget: a zero-width stand-in CI
    assert one.ci_rel_halfwidth == 0 and one.converged is False and one.noisy
    six = Record.from_samples([0.01] * 6, **IDENTITY)
    assert six.converged is True and not six.noisy
