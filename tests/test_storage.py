"""DuckDB store: round trips, schema versions and migrations, resume, de-duplication, frames, export and import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit import storage
from kit.errors import ConfigError
from kit.records import SCHEMA_VERSION, Record

ROOT = Path(__file__).resolve().parents[1]
RUN = "run-1"
ENV = {
    "env_id": "env-abc",
    "git_commit": "deadbeef",
    "software": {"python": "3.11", "duckdb": "2.0"},
    "hardware": {"hardware_id": "hw-1", "hostname": "box", "cpu_model": "Test CPU", "cores_physical": 2,
                 "cores_logical": 4, "memory_bytes": 8 * 2**30, "driver": "550.1",
                 "gpus": [{"name": "GPU A"}, {"name": "GPU B"}]},
}


def identity(config_key: str = "k1", **over) -> dict:
    """Identity fields of a test record, overridable; a fixed created_at so two builds of one record compare equal."""
    base = dict(run_id=RUN, config_key=config_key, model="bert-tiny", family="bert", size="tiny", mode="inference",
                platform="cpu", device="cpu", precision="fp32", batch_size=2, created_at="2026-01-01T00:00:00+00:00")
    return {**base, **over}


def ok(config_key: str = "k1", seed: int = 0, **over) -> Record:
    """An ok record with awkward float samples, to check exactness."""
    samples = list(np.random.default_rng(seed).lognormal(-5, 0.1, size=50))
    return Record.from_samples(samples, **identity(config_key, **over))


def failed(config_key: str = "k1", status: str = "failed", **over) -> Record:
    """A failed or skipped record."""
    return Record.failure(status, f"{status} because reasons", **identity(config_key, **over))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "bench.duckdb"


@pytest.fixture
def con(db_path: Path):
    con = storage.connect(db_path)
    storage.start_run(con, RUN, {"batch_sizes": [1, 2]}, ENV)
    yield con
    con.close()


def test_round_trip_of_ok_failed_and_skipped_records(con):
    records = [ok("a", extra={"phase": "fwd", "nested": {"x": [1, 2.5]}}), failed("b"), failed("c", "skipped")]
    for record in records:
        storage.insert_record(con, record)
    loaded = {r.config_key: r for r in storage.load_records(con, RUN)}
    assert [loaded[r.config_key] for r in records] == records
    assert loaded["a"].samples_s == records[0].samples_s  # exact floats, order kept
    assert [r.config_key for r in storage.load_records(con, status="failed")] == ["b"]
    with pytest.raises(ConfigError, match="status"):
        storage.load_records(con, status="broken")


def test_schema_version_is_stored_once(db_path):
    con = storage.connect(db_path)
    assert storage.ensure_schema(con) == SCHEMA_VERSION == storage.MIGRATIONS[-1][0]
    con.close()
    con = storage.connect(db_path)
    assert con.execute("SELECT version FROM schema_meta ORDER BY version").fetchall() == [
        (v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_v1_store_gains_round_indices_and_normalised_throughput(db_path, monkeypatch):
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:1])
    monkeypatch.setattr(storage, "STORED_FIELDS", tuple(f for f in storage.STORED_FIELDS
                                                        if f not in ("normalised_throughput", "latency_p10_s")))
    con = storage.connect(db_path)
    con.execute("ALTER TABLE results DROP COLUMN normalised_throughput")  # as a v1 store written before it
    con.execute("ALTER TABLE results DROP COLUMN latency_p10_s")
    storage.insert_record(con, Record.failure("failed", "boom", **identity(run_id="old")))
    con.close()
    monkeypatch.undo()
    con = storage.connect(db_path)
    assert storage.schema_version(con) == SCHEMA_VERSION
    assert "round_idx" in storage.samples_frame(con).columns
    (old,) = storage.load_records(con)
    assert old.reason == "boom" and old.normalised_throughput is None and old.sample_rounds == ()
    fresh = Record.from_samples([0.002, 0.001, 0.003], sample_rounds=[0, 1, 1], **identity(run_id="new"))
    storage.insert_record(con, fresh)
    new = storage.load_records(con, "new")[0]
    assert new.samples_s == (0.002, 0.001, 0.003) and new.sample_rounds == (0, 1, 1)


def store_at_schema(db_path, monkeypatch, version: int, column: str, records: list[Record]) -> None:
    """A store as a kit at schema `version` wrote it, before `column` existed, holding `records`."""
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:version])
    monkeypatch.setattr(storage, "STORED_FIELDS", tuple(f for f in storage.STORED_FIELDS if f != column))
    con = storage.connect(db_path)
    con.execute(f"ALTER TABLE results DROP COLUMN {column}")
    for record in records:
        storage.insert_record(con, record)
    con.close()
    monkeypatch.undo()


def test_a_v2_store_gains_the_10th_percentile_from_its_samples(db_path, monkeypatch):
    store_at_schema(db_path, monkeypatch, 2, "latency_p10_s",
                    [Record.from_samples([0.004, 0.001, 0.002, 0.003, 0.005], **identity(run_id="old"))])
    con = storage.connect(db_path)
    assert storage.schema_version(con) == SCHEMA_VERSION
    (old,) = storage.load_records(con)
    assert old.latency_p10_s == pytest.approx(0.0014)  # numpy's and DuckDB's linear interpolation agree
    assert old == Record.from_samples([0.004, 0.001, 0.002, 0.003, 0.005], **identity(run_id="old"))


def test_a_read_only_open_of_an_older_store_reads_an_upgraded_copy_and_leaves_the_file(db_path, monkeypatch):
    store_at_schema(db_path, monkeypatch, 2, "latency_p10_s",
                    [Record.from_samples([0.004, 0.001, 0.002, 0.003, 0.005], **identity(run_id="old"))])
    before = Path(db_path).read_bytes()
    con = storage.connect(db_path, read_only=True)
    assert storage.is_read_only(con) and storage.schema_version(con) == SCHEMA_VERSION
    assert storage.load_records(con)[0].latency_p10_s == pytest.approx(0.0014)
    con.close()
    assert Path(db_path).read_bytes() == before
    with storage.connect(db_path, read_only=True) as again:  # the file itself is still the older schema
        assert storage.schema_version(again) == SCHEMA_VERSION


def test_a_v3_store_moves_world_size_out_of_extra_into_its_column(db_path, monkeypatch):
    store_at_schema(db_path, monkeypatch, 3, "world_size",
                    [Record.from_samples([0.01, 0.02], extra={"world_size": 2, "strategy": "ddp"},
                                         **identity(run_id="ddp")), ok("single")])
    con = storage.connect(db_path)
    assert storage.schema_version(con) == SCHEMA_VERSION
    ddp, single = sorted(storage.load_records(con), key=lambda r: r.config_key)
    assert (ddp.world_size, ddp.extra) == (2, {"strategy": "ddp"})
    assert single.world_size is None and single == ok("single")


def test_pending_migration_is_applied_to_a_v1_database(db_path, monkeypatch):
    con = storage.connect(db_path)
    storage.insert_record(con, ok("a"))
    con.close()

    def add_energy(con) -> None:
        con.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS energy_j DOUBLE")

    monkeypatch.setattr(storage, "MIGRATIONS", [*storage.MIGRATIONS, (SCHEMA_VERSION + 1, add_energy)])
    con = storage.connect(db_path)
    assert storage.schema_version(con) == SCHEMA_VERSION + 1
    assert [v for (v,) in con.execute("SELECT version FROM schema_meta ORDER BY version").fetchall()] == list(
        range(1, SCHEMA_VERSION + 2))
    assert "energy_j" in storage.results_frame(con).columns
    assert storage.load_records(con) == [ok("a")]


def test_newer_database_is_refused(db_path):
    con = storage.connect(db_path)
    con.execute("INSERT INTO schema_meta VALUES (99, now()::TIMESTAMP)")
    con.close()
    with pytest.raises(ConfigError, match="newer"):
        storage.connect(db_path)


def test_finished_config_keys_drive_resume(con):
    assert storage.finished_config_keys(con, RUN) == set()
    storage.insert_record(con, ok("a"))
    storage.insert_record(con, failed("b"))
    storage.insert_record(con, ok("c", run_id="other"))
    assert storage.finished_config_keys(con, RUN) == {"a", "b"}
    assert storage.finished_config_keys(con, RUN, include_failed=False) == {"a"}


def test_runs_record_start_resume_and_finish(con):
    first = storage.runs_frame(con).iloc[0]
    storage.start_run(con, RUN, {"batch_sizes": [1, 2]}, ENV)
    storage.insert_record(con, ok("a"))
    storage.finish_run(con, RUN)
    run = storage.runs_frame(con).iloc[0]
    assert run["started_at"] == first["started_at"] and pd.notna(run["resumed_at"]) and pd.notna(run["finished_at"])
    assert (run["git_commit"], run["env_id"], run["cpu_model"], run["gpu_names"]) == (
        "deadbeef", "env-abc", "Test CPU", "GPU A, GPU B")
    assert (run["n_results"], run["n_ok"], run["n_failed"]) == (1, 1, 0)
    with pytest.raises(ConfigError, match="unknown run_id"):
        storage.finish_run(con, "nope")


def test_double_insert_of_an_ok_result_is_ignored(con):
    first = storage.insert_record(con, ok("a", seed=1))
    assert storage.insert_record(con, ok("a", seed=2)) == first
    assert storage.insert_record(con, failed("a")) == first
    assert storage.load_records(con) == [ok("a", seed=1)]
    assert len(storage.samples_frame(con)) == 50


@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_rerun_replaces_a_failed_or_skipped_result(con, status):
    old = storage.insert_record(con, failed("a", status))
    new = storage.insert_record(con, ok("a"))
    assert new != old
    assert storage.load_records(con) == [ok("a")]
    assert set(storage.samples_frame(con)["result_id"]) == {new}


def test_model_row_is_upserted_with_facts(con):
    facts = {"modality": "text", "n_layers": 2, "hidden_size": 32}
    storage.insert_record(con, ok("a", n_params=1234, flops_per_sample=5.5e6, extra={"model_facts": facts}))
    storage.insert_record(con, failed("b"))  # knows no facts: must not erase them
    row = con.execute("SELECT model_key, modality, n_params, flops_per_sample, n_layers, hidden_size FROM models"
                      ).fetchall()
    assert row == [("bert-tiny|tiny", "text", 1234, 5.5e6, 2, 32)]


def test_results_frame_joins_run_info_and_filters(con):
    storage.insert_record(con, ok("a"))
    storage.insert_record(con, ok("b", platform="cuda", precision="fp16"))
    storage.insert_record(con, failed("c"))
    frame = storage.results_frame(con, RUN)
    assert len(frame) == 3 and "samples_s" not in frame.columns
    assert {"run_started_at", "git_commit", "cpu_model", "gpu_names", "noisy", "result_id"} <= set(frame.columns)
    assert set(frame["gpu_names"]) == {"GPU A, GPU B"}
    assert list(storage.results_frame(con, platform="cuda")["config_key"]) == ["b"]
    assert list(storage.results_frame(con, platform="cpu", status="ok")["config_key"]) == ["a"]
    assert list(storage.results_frame(con, precision=["fp16", "int8"])["config_key"]) == ["b"]
    assert json.loads(frame["extra"].iloc[0]) == {}
    with pytest.raises(ConfigError, match="unknown filter column.*plat"):
        storage.results_frame(con, plat="cpu")


def test_samples_frame_is_long_format(con):
    record = ok("a")
    storage.insert_record(con, record)
    frame = storage.samples_frame(con, RUN)
    assert list(frame.columns) == ["result_id", "run_id", "config_key", "model", "platform", "precision",
                                   "batch_size", "mode", "sample_idx", "latency_s", "round_idx"]
    assert list(frame["sample_idx"]) == list(range(50)) and tuple(frame["latency_s"]) == record.samples_s


@pytest.mark.parametrize("export, reader", [(storage.export_csv, pd.read_csv),
                                            (storage.export_parquet, pd.read_parquet)])
def test_export_is_readable_back_with_pandas(con, tmp_path, export, reader):
    for record in (ok("a"), ok("b", seed=3), failed("c"), ok("d", run_id="other")):
        storage.insert_record(con, record)
    suffix = ".csv" if export is storage.export_csv else ".parquet"
    path = export(con, tmp_path / "out" / f"it's results{suffix}", run_id=RUN)  # quote in the name on purpose
    back, expected = reader(path), storage.results_frame(con, RUN)
    assert list(back["config_key"]) == list(expected["config_key"]) == ["a", "b", "c"]
    assert list(back.columns) == list(expected.columns)
    np.testing.assert_allclose(back["latency_p50_s"], expected["latency_p50_s"], rtol=1e-15)
    samples = reader(path.with_name(f"it's results_samples{suffix}"))
    assert len(samples) == 100 and set(samples["config_key"]) == {"a", "b"}


@pytest.mark.parametrize("layout", ["list", "records", "lines"])
def test_import_json_of_records(con, tmp_path, layout):
    records = [ok("a"), failed("b"), failed("c", "skipped")]
    rows = [r.to_json() for r in records]
    text = {"list": json.dumps(rows), "records": json.dumps({"records": rows}),
            "lines": "\n".join(json.dumps(r) for r in rows)}[layout]
    path = tmp_path / "old.json"
    path.write_text(text)
    assert storage.import_json(con, path) == 3
    assert storage.load_records(con) == records
    assert storage.import_json(con, path) == 2  # the ok row is kept; failed/skipped ones are replaced, as re-runs
    assert storage.load_records(con) == records


def test_import_json_of_legacy_flat_rows(con, tmp_path):
    rows = [{"model_name": "resnet18", "hardware": "cuda", "batch_size": 8, "precision": "fp16",
             "latency_mean_ms": 20.0, "throughput_items_per_sec": 390.0, "memory_mb": 512},
            {"model": "bert-tiny", "platform": "cpu", "batch_size": 4, "latency_ms": 8.0}]
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(rows))
    assert storage.import_json(con, path, run_id="imported") == 2
    first, second = sorted(storage.load_records(con, "imported"), key=lambda r: r.model)
    assert second.latency_mean_s == pytest.approx(0.020) and second.throughput_items_per_s == 390.0
    assert second.peak_memory_bytes == 512 * 2**20 and second.status == "ok" and second.samples_s == ()
    assert first.throughput_items_per_s == pytest.approx(4 / 0.008)  # derived: batch / mean latency
    assert first.extra["legacy"] is True and first.extra["imported_from"] == str(path)
    assert "imported" in set(storage.runs_frame(con)["run_id"])


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, text=True, **kwargs)


def test_a_crash_mid_sweep_keeps_inserted_records(db_path):
    code = f"""
        import os
        from kit import storage
        from tests.test_storage import ok, ENV, RUN
        con = storage.connect({str(db_path)!r})
        storage.start_run(con, RUN, {{}}, ENV)
        storage.insert_record(con, ok("a"))
        os._exit(3)  # dies without finish_run, close or checkpoint
    """
    assert _python(code).wait(timeout=120) == 3
    con = storage.connect(db_path)
    assert storage.load_records(con, RUN) == [ok("a")]
    assert storage.finished_config_keys(con, RUN) == {"a"}
    assert pd.isna(storage.runs_frame(con)["finished_at"].iloc[0])


def test_a_second_writer_process_gets_a_clear_error(db_path):
    storage.connect(db_path).close()
    holder = _python(f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); print('ready', flush=True); "
                     "time.sleep(60)", stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with pytest.raises(ConfigError, match="stayed busy for 1 s: another process holds it open"):
            storage.connect(db_path, wait_s=1)
        assert 0.9 < time.monotonic() - start < 5  # it waited for the holder, then gave up
    finally:
        holder.kill()
        holder.wait()


def test_records_a_busy_store_refuses_are_kept_then_stored_or_saved_as_json(db_path, monkeypatch):
    from kit.runners import sweep

    monkeypatch.setattr(sweep, "WRITE_WAIT_S", 0.3)
    storage.connect(db_path).close()

    def hold():
        holder = _python(f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); print('ready', flush=True); "
                         "time.sleep(60)", stdout=subprocess.PIPE)
        assert holder.stdout.readline().strip() == "ready"
        return holder

    holder = hold()
    writer = sweep.RecordWriter(db_path, "env")
    writer.write(ok("a"))  # the store is busy: kept back, no error
    assert [r.config_key for r in writer.kept] == ["a"]
    holder.kill(), holder.wait()
    writer.write(ok("b"))  # free again: both stored
    assert writer.kept == []
    holder = hold()
    try:
        writer.write(ok("c"))
        with pytest.raises(ConfigError, match=r"1 records of run run-1 could not be stored .*import-json"):
            writer.close(RUN)
    finally:
        holder.kill(), holder.wait()
    saved = db_path.with_name(f"{RUN}.unstored.json")
    assert [r["config_key"] for r in json.loads(saved.read_text())] == ["c"]
    con = storage.connect(db_path, read_only=True)
    assert sorted(r.config_key for r in storage.load_records(con, RUN)) == ["a", "b"]
