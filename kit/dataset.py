"""A Parquet dataset many machines write to: `benchkit export --dataset DIR` and reading it wherever `--db` goes.

Layout (hive partitions by machine and run; each export adds files and never rewrites one that is there):

    DIR/benchkit-dataset.json                         format and schema version
    DIR/runs/hardware=H/run=R/<uuid>.parquet          one row per run, with its provenance
    DIR/results/hardware=H/run=R/<uuid>.parquet       one row per configuration
    DIR/samples/hardware=H/run=R/<uuid>.parquet       every raw latency sample with its round
    DIR/hardware/hardware=H/<uuid>.parquet            each machine's fingerprint, once
    DIR/models/<uuid>.parquet                         model facts not yet in the dataset

The partition folders only lay the files out: every row keeps its own run_id and hardware_id. A run already in the
dataset is never written again; a run not finished yet is left out unless it is named. Reading builds a read-only
DuckDB file of the dataset in a temporary folder (every table at the kit's schema), so every command and notebook
that reads a store reads a dataset too, a local folder or any location DuckDB's read_parquet can glob (s3://,
https://, ... through its httpfs extension).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import uuid
from pathlib import Path

import duckdb

from kit import storage
from kit.errors import ConfigError
from kit.records import SCHEMA_VERSION

MARKER = "benchkit-dataset.json"
FORMAT = "benchkit-dataset"
UNKNOWN = "unknown"  # the partition of runs without a hardware fingerprint (imported results)
PARTITIONED = {  # table -> the SELECT of one run set's rows, with the partition columns hardware and run
    "runs": "SELECT r.*, coalesce(r.hardware_id, '{unknown}') AS hardware, r.run_id AS run FROM runs r "
            "WHERE r.run_id IN (SELECT unnest(?))",
    "results": "SELECT x.*, coalesce(r.hardware_id, '{unknown}') AS hardware, r.run_id AS run FROM results x "
               "JOIN runs r USING (run_id) WHERE r.run_id IN (SELECT unnest(?))",
    "samples": "SELECT s.*, coalesce(r.hardware_id, '{unknown}') AS hardware, r.run_id AS run FROM samples s "
               "JOIN results x USING (result_id) JOIN runs r USING (run_id) WHERE r.run_id IN (SELECT unnest(?))",
}
TABLES = ("hardware", "runs", "models", "results", "samples")
SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfss://", "http://", "https://", "hf://", "r2://")


def is_dataset(location: str | Path) -> bool:
    """Whether a --db value names a dataset: a folder holding the dataset marker, or a remote location."""
    text = str(location)
    return text.startswith(SCHEMES) or (Path(text).is_dir() and (Path(text) / MARKER).is_file())


def _glob(location: str, table: str) -> str:
    return f"{location.rstrip('/')}/{table}/**/*.parquet"


def _stored_ids(location: str, table: str, column: str) -> set[str]:
    """The ids a dataset table already holds (empty when it has no files yet)."""
    try:
        rows = duckdb.sql(f"SELECT DISTINCT {column} FROM read_parquet(?, union_by_name = true)",
                          params=[_glob(location, table)]).fetchall()
    except duckdb.IOException:  # no files yet
        return set()
    return {r[0] for r in rows}


def _check_marker(folder: Path) -> None:
    marker = folder / MARKER
    if marker.exists():
        try:
            meta = json.loads(marker.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{marker} is not a benchkit dataset marker: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{marker} is not a benchkit dataset marker (format {FORMAT!r} expected)")
        if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
            raise ConfigError(f"dataset {folder} has schema v{meta['schema_version']}, newer than this kit's "
                              f"v{SCHEMA_VERSION}; upgrade the kit")
    elif folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is a folder with other files in it, not a benchkit dataset: give a new or empty "
                          "folder")


def export_dataset(con: storage.Connection, folder: str | Path, run_id: str | None = None) -> dict[str, list[str]]:
    """Append the store's runs to the dataset folder (created if missing): every finished run not yet in it, or the
    one named (finished or not). Returns {"written": run ids, "already there": ..., "not finished": ...}."""
    folder = Path(folder)
    _check_marker(folder)
    runs = dict(con.execute("SELECT run_id, finished_at IS NOT NULL FROM runs ORDER BY started_at").fetchall())
    if run_id is not None and run_id not in runs:
        raise ConfigError(f"unknown run_id {run_id!r}: the store has no such run")
    there = _stored_ids(str(folder), "runs", "run_id") if folder.exists() else set()
    chosen = [run_id] if run_id is not None else list(runs)
    outcome = {"written": [r for r in chosen if r not in there and (runs[r] or r == run_id)],
               "already there": [r for r in chosen if r in there],
               "not finished": [r for r in chosen if r not in there and not runs[r] and r != run_id]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"format": FORMAT, "schema_version": storage.schema_version(con)}))
    if outcome["written"]:
        _write_runs(con, folder, outcome["written"])
    return outcome


def _write_runs(con: storage.Connection, folder: Path, run_ids: list[str]) -> None:
    for table, sql in PARTITIONED.items():
        con.execute(f"COPY ({sql.format(unknown=UNKNOWN)}) TO {_literal(folder / table)} "
                    "(FORMAT parquet, PARTITION_BY (hardware, run), APPEND)", [run_ids])
    machines = sorted(_machines(con, run_ids) - _stored_ids(str(folder), "hardware", "hardware_id"))
    if machines:
        con.execute("COPY (SELECT *, hardware_id AS hardware FROM hardware WHERE hardware_id IN (SELECT unnest(?))) "
                    f"TO {_literal(folder / 'hardware')} (FORMAT parquet, PARTITION_BY (hardware), APPEND)", [machines])
    known = sorted(_stored_ids(str(folder), "models", "model_key"))
    if con.execute("SELECT count(*) FROM models WHERE model_key NOT IN (SELECT unnest(?))", [known]).fetchone()[0]:
        (folder / "models").mkdir(exist_ok=True)
        con.execute("COPY (SELECT * FROM models WHERE model_key NOT IN (SELECT unnest(?))) "
                    f"TO {_literal(folder / 'models' / f'{uuid.uuid4().hex}.parquet')} (FORMAT parquet)", [known])


def _literal(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _machines(con: storage.Connection, run_ids: list[str]) -> set[str]:
    rows = con.execute("SELECT DISTINCT hardware_id FROM runs WHERE run_id IN (SELECT unnest(?)) "
                       "AND hardware_id IS NOT NULL", [run_ids]).fetchall()
    return {r[0] for r in rows}


def materialise(location: str | Path) -> Path:
    """A DuckDB file in a temporary folder (removed at exit) holding the dataset's tables at the kit's schema."""
    location = str(location)
    if not location.startswith(SCHEMES):
        _check_marker(Path(location))
    folder = Path(tempfile.mkdtemp(prefix="benchkit-dataset-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "dataset.duckdb"
    con = storage.connect(path)
    try:
        for table in TABLES:
            columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            try:
                found = duckdb.sql("SELECT * FROM read_parquet(?, union_by_name = true) LIMIT 0",
                                   params=[_glob(location, table)]).columns
            except duckdb.IOException:  # no files for this table
                continue
            kept = ", ".join(c for c in found if c in columns)
            con.execute(f"INSERT OR IGNORE INTO {table} BY NAME SELECT {kept} "
                        "FROM read_parquet(?, union_by_name = true)", [_glob(location, table)])
        storage.fill_world_size(con)  # files written by a kit that kept it in extra
    except duckdb.Error as exc:
        raise ConfigError(f"cannot read dataset {location}: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    return path
