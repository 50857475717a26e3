"""DuckDB store: runs, hardware, models, results and raw samples in one file, versioned by migrations.

Only the sweep's parent process writes. Values are always bound; only known identifiers are formatted into SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from kit.errors import ConfigError, KitError
from kit.records import MODES, RECORD_FIELDS, STATUSES, Record, check_record, now_iso

DEFAULT_DB = Path("outputs/benchkit.duckdb")
STORED_FIELDS = tuple(f for f in RECORD_FIELDS if f not in ("samples_s", "sample_rounds"))  # samples: own table
PY_TO_SQL = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", dict: "VARCHAR"}  # dict -> JSON text
NARROW_INTS = {"batch_size", "seq_len", "n_samples", "threads", "schema_version"}
HARDWARE_COLUMNS = ("hostname", "cpu_model", "cores_physical", "cores_logical", "memory_bytes", "driver")
MODEL_FACTS = ("modality", "n_params", "flops_per_sample", "n_layers", "hidden_size")
RUN_COLUMNS = ("run_id", "started_at", "host", "params_json", "git_commit", "kit_version", "software_json", "env_id",
               "hardware_id")
RESUME = "ON CONFLICT (run_id) DO UPDATE SET resumed_at = excluded.started_at, finished_at = NULL"

Connection = duckdb.DuckDBPyConnection


def _column_def(name: str, hint: Any) -> str:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    base = typing.get_origin(base) or base
    if base not in PY_TO_SQL:
        raise TypeError(f"storage has no SQL type for Record.{name}: {hint}; add one to PY_TO_SQL")
    sql_type = "INTEGER" if name in NARROW_INTS else PY_TO_SQL[base]
    return f"{name} {sql_type}" + ("" if optional else " NOT NULL")


RESULT_COLUMN_DEFS = tuple(_column_def(n, typing.get_type_hints(Record)[n]) for n in STORED_FIELDS)


def _create_v1(con: Connection) -> None:
    # Built from the current Record fields, so a later migration adding a column must use ADD COLUMN IF NOT EXISTS.
    # No FOREIGN KEYs: DuckDB forbids upserts and ALTERs on referenced tables.
    con.execute(f"""
        CREATE TABLE schema_meta (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL);
        CREATE TABLE hardware (hardware_id VARCHAR PRIMARY KEY, hostname VARCHAR, cpu_model VARCHAR,
            cores_physical INTEGER, cores_logical INTEGER, memory_bytes BIGINT, gpus_json VARCHAR, driver VARCHAR,
            info_json VARCHAR, peak_flops_json VARCHAR, mem_bandwidth_bytes_per_s DOUBLE);
        CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL, resumed_at TIMESTAMP,
            finished_at TIMESTAMP, host VARCHAR, params_json VARCHAR, git_commit VARCHAR, kit_version VARCHAR,
            software_json VARCHAR, env_id VARCHAR, hardware_id VARCHAR);
        CREATE TABLE models (model_key VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, family VARCHAR, size VARCHAR,
            modality VARCHAR, n_params BIGINT, flops_per_sample DOUBLE, n_layers INTEGER, hidden_size INTEGER,
            facts_json VARCHAR);
        CREATE TABLE results (result_id VARCHAR PRIMARY KEY, {", ".join(RESULT_COLUMN_DEFS)}, noisy BOOLEAN NOT NULL,
            CHECK (status IN ('ok', 'failed', 'skipped')), UNIQUE (run_id, config_key));
        CREATE TABLE samples (result_id VARCHAR NOT NULL, sample_idx INTEGER NOT NULL, latency_s DOUBLE NOT NULL,
            PRIMARY KEY (result_id, sample_idx));
    """)


def _add_rounds_v2(con: Connection) -> None:
    # interleaved rounds: each sample's round, and the speed relative to the machine reference of the same rounds
    con.execute("ALTER TABLE samples ADD COLUMN IF NOT EXISTS round_idx INTEGER")
    con.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS normalised_throughput DOUBLE")


def _add_p10_v3(con: Connection) -> None:
    # the 10th percentile of latency, filled in for stored results from their raw samples
    con.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS latency_p10_s DOUBLE")
    con.execute("""UPDATE results SET latency_p10_s = p.p10 FROM (SELECT result_id, quantile_cont(latency_s, 0.1) AS p10
                   FROM samples GROUP BY result_id) AS p WHERE results.result_id = p.result_id
                   AND results.latency_p10_s IS NULL""")
    # normalised throughput is now the 10th percentiles' ratio; a v2 value (the medians' ratio) is a different
    # quantity, so it is cleared (the per-round medians it came from stay in extra)
    con.execute("""UPDATE results SET normalised_throughput = NULL WHERE normalised_throughput IS NOT NULL
                   AND json_extract(extra, '$.rounds.reference_round_p10_s') IS NULL""")


def _add_world_size_v4(con: Connection) -> None:
    # a distributed run's process count, a column of its own (it was a key of extra)
    con.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS world_size INTEGER")
    fill_world_size(con)


def fill_world_size(con: Connection) -> None:
    """Move `world_size` out of the extra JSON of results stored before it had a column of its own."""
    con.execute("""UPDATE results SET world_size = CAST(json_extract_string(extra, '$.world_size') AS INTEGER),
                   extra = CAST(json_merge_patch(extra, '{"world_size": null}') AS VARCHAR)
                   WHERE json_extract(extra, '$.world_size') IS NOT NULL""")


# (version, function) in order; a schema change bumps records.SCHEMA_VERSION and appends one function here.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _create_v1), (2, _add_rounds_v2),
                                                              (3, _add_p10_v3), (4, _add_world_size_v4)]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _insert_sql(table: str, columns: tuple[str, ...], conflict: str = "") -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) {conflict}"


@contextmanager
def _transaction(con: Connection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


LOCK_WAIT_S = 10.0  # how long an open waits for another process to let go of the file (a sweep holds it briefly)


def describe_io_error(exc: Exception) -> str:
    """DuckDB's first line of an I/O error, plus the likely cause when DuckDB found the file shorter than it says."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{first}: the file is truncated or damaged" if "Could not read enough bytes" in first else first


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower() or "different configuration" in str(exc)


def _open_duckdb(path: str | Path, read_only: bool, wait_s: float) -> Connection:
    """duckdb.connect, retried with a growing pause while another process holds the file, up to wait_s."""
    deadline, pause = time.monotonic() + wait_s, 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            left = deadline - time.monotonic()
            if not _is_lock_error(exc) or left <= 0:
                raise
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)


def connect(path: str | Path = DEFAULT_DB, *, read_only: bool = False, wait_s: float = LOCK_WAIT_S) -> Connection:
    """Open the store (creating its folder and tables when writable) and bring its schema up to date; while another
    process holds the file (a sweep writing a record), wait up to wait_s for it. A Parquet dataset (kit.dataset)
    opens read-only."""
    from kit import dataset

    if dataset.is_dataset(path):
        if not read_only:
            raise ConfigError(f"{path} is a Parquet dataset, which is read-only: measure into a store and append it "
                              "with `benchkit export --dataset`")
        path = dataset.materialise(path)
    if str(path) != ":memory:":
        if read_only and not Path(path).exists():
            raise ConfigError(f"no benchkit database at {path}")
        if Path(path).is_dir():
            raise ConfigError(f"database {path} is a folder; give a file, e.g. {Path(path) / 'benchkit.duckdb'}")
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the folder of database {path}: {exc.strerror}") from exc
    try:
        con = _open_duckdb(path, read_only, wait_s)
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        if not _is_lock_error(exc):
            cause = describe_io_error(exc)
            raise ConfigError(f"cannot open database {path}: {cause} (the file is left as it is)") from exc
        raise ConfigError(f"database {path} stayed busy for {wait_s:g} s: another process holds it open (DuckDB lets "
                          "one process hold a file at a time). A sweep given the file's path holds it only while it "
                          "writes a record; a process holding an open connection (a notebook's kit.connect) blocks "
                          f"the others until it closes it. DuckDB said: {exc}") from exc
    if read_only and str(path) != ":memory:" and schema_version(con) < max(v for v, _ in MIGRATIONS):
        con.close()
        return connect(_upgraded_copy(Path(path)), read_only=True, wait_s=wait_s)
    try:
        ensure_schema(con)
    except BaseException:
        con.close()
        raise
    return con


def _upgraded_copy(path: Path) -> Path:
    """A copy of an older store, in a temporary folder removed at exit, brought up to this kit's schema: what a
    read-only open reads, so that reading never writes the file and still sees every column."""
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="benchkit-upgraded-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    copy = folder / path.name
    shutil.copyfile(path, copy)
    wal = path.with_name(path.name + ".wal")  # changes not yet checkpointed into the file
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    connect(copy).close()
    return copy


@contextmanager
def writing(path: str | Path, wait_s: float = LOCK_WAIT_S) -> Iterator[Connection]:
    """A write connection held only for the block: readers of the file get in between two writes."""
    con = connect(path, wait_s=wait_s)
    try:
        yield con
    finally:
        con.close()


def schema_version(con: Connection) -> int:
    """The highest migration applied to this database; 0 for an empty one."""
    has_meta = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                           "AND schema_name = 'main' AND table_name = 'schema_meta'").fetchone()[0]
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_meta").fetchone()[0] if has_meta else 0


def ensure_schema(con: Connection) -> int:
    """Apply pending migrations in order, each in its own transaction; returns the schema version now stored."""
    version, latest = schema_version(con), max(v for v, _ in MIGRATIONS)
    if version > latest:
        raise ConfigError(f"database schema v{version} is newer than this kit's v{latest}; upgrade the kit")
    for target, migrate in sorted(MIGRATIONS, key=lambda m: m[0]):
        if target <= version:
            continue
        try:
            with _transaction(con):
                migrate(con)
                con.execute("INSERT INTO schema_meta VALUES (?, ?)", [target, _utcnow()])
        except duckdb.Error as exc:
            raise ConfigError(f"migrating the database to schema v{target} failed (read-only?): {exc}") from exc
        version = target
    missing = set(STORED_FIELDS) - set(_table_columns(con, "SELECT * FROM results"))
    if missing:
        raise KitError(f"results table lacks {sorted(missing)}: Record changed without a migration in storage")
    return version


def _table_columns(con: Connection, sql: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]


def run_parameters(con: Connection, run_id: str) -> dict | None:
    """The parameters a stored run was started with (None: no such run, or none recorded)."""
    row = con.execute("SELECT params_json FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def start_run(con: Connection, run_id: str, params: dict, environment: dict) -> None:
    """Record a run and its hardware; starting an existing run again keeps started_at and sets resumed_at."""
    from kit import __version__  # late: kit/__init__ may import this module

    hardware = environment.get("hardware") or {}
    with _transaction(con):
        if hardware.get("hardware_id"):
            _upsert_hardware(con, hardware)
        con.execute(_insert_sql("runs", RUN_COLUMNS, RESUME),
                    [run_id, _utcnow(), hardware.get("hostname"), _json(params), environment.get("git_commit"),
                     __version__, _json(environment.get("software") or {}), environment.get("env_id"),
                     hardware.get("hardware_id")])


def _upsert_hardware(con: Connection, hardware: dict) -> None:
    columns = ("hardware_id", *HARDWARE_COLUMNS, "gpus_json", "info_json")
    values = [hardware["hardware_id"], *(hardware.get(c) for c in HARDWARE_COLUMNS),
              _json(hardware.get("gpus") or []), _json(hardware)]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])  # keeps microbenchmark columns
    con.execute(_insert_sql("hardware", columns, f"ON CONFLICT (hardware_id) DO UPDATE SET {updates}"), values)


def set_hardware_peaks(con: Connection, hardware_id: str, peak_flops: dict,
                       mem_bandwidth_bytes_per_s: float | None = None) -> None:
    """Store microbenchmark peaks with a hardware row (created if absent): top-level keys of peak_flops (one per
    platform) replace the stored ones, others are kept; the bandwidth column is set only when a value is given."""
    with _transaction(con):
        row = con.execute("SELECT peak_flops_json FROM hardware WHERE hardware_id = ?", [hardware_id]).fetchone()
        merged = {**json.loads(row[0] or "{}"), **peak_flops} if row else dict(peak_flops)
        con.execute("INSERT INTO hardware (hardware_id, peak_flops_json, mem_bandwidth_bytes_per_s) VALUES (?, ?, ?) "
                    "ON CONFLICT (hardware_id) DO UPDATE SET peak_flops_json = excluded.peak_flops_json, "
                    "mem_bandwidth_bytes_per_s = coalesce(excluded.mem_bandwidth_bytes_per_s, "
                    "hardware.mem_bandwidth_bytes_per_s)", [hardware_id, _json(merged), mem_bandwidth_bytes_per_s])


def finish_run(con: Connection, run_id: str) -> None:
    """Mark a run finished; a run without finished_at was interrupted (and can be resumed)."""
    if not con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]:
        raise ConfigError(f"unknown run_id {run_id!r}: start_run it first")
    con.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", [_utcnow(), run_id])


def is_read_only(con: Connection) -> bool:
    """Whether the connection's database was opened read-only."""
    row = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return bool(row and row[0])


def update_extras(con: Connection, extras: dict[str, dict[str, Any]]) -> int:
    """Replace the `extra` JSON of stored results by result_id (facts counted later, never measurements); returns
    how many rows changed."""
    rows = [[json.dumps(extra, sort_keys=True), result_id] for result_id, extra in extras.items()]
    if not rows:
        return 0
    known = {r[0] for r in con.execute("SELECT result_id FROM results WHERE result_id IN (SELECT unnest(?))",
                                       [list(extras)]).fetchall()}
    missing = sorted(set(extras) - known)
    if missing:
        raise ConfigError(f"unknown result_id(s) {missing[:5]}")
    con.executemany("UPDATE results SET extra = ? WHERE result_id = ?", rows)
    return len(rows)


def insert_record(con: Connection, record: Record) -> str:
    """Store a record, its samples and its model facts in one transaction; returns the result_id.

    A second record for the same (run_id, config_key) replaces the stored one only when that one is not 'ok' (a
    re-run of a failed or skipped config); otherwise the new record is ignored and the stored result_id returned.
    """
    check_record(record)
    return _store(con, record)[0]


def _store(con: Connection, record: Record, *, own_transaction: bool = True) -> tuple[str, bool]:
    row = record.to_row()
    with _transaction(con) if own_transaction else nullcontext():
        old = con.execute("SELECT result_id, status FROM results WHERE run_id = ? AND config_key = ?",
                          [record.run_id, record.config_key]).fetchone()
        if old and old[1] == "ok":
            return old[0], False
        if old:
            con.execute("DELETE FROM samples WHERE result_id = ?", [old[0]])
            con.execute("DELETE FROM results WHERE result_id = ?", [old[0]])
        result_id = uuid.uuid4().hex
        columns = ("result_id", *STORED_FIELDS, "noisy")
        con.execute(_insert_sql("results", columns), [result_id, *(row[f] for f in STORED_FIELDS), row["noisy"]])
        if record.samples_s:  # one statement for all samples: the lists are bound once and indexed per row
            rounds = list(record.sample_rounds) or None
            con.execute("INSERT INTO samples (result_id, sample_idx, latency_s, round_idx) SELECT ?, i::INTEGER, "
                        "(?::DOUBLE[])[i + 1], (?::INTEGER[])[i + 1] FROM range(?) t(i)",
                        [result_id, list(record.samples_s), rounds, len(record.samples_s)])
        _upsert_model(con, record)
    return result_id, True


def _upsert_model(con: Connection, record: Record) -> None:
    facts = dict(record.extra.get("model_facts") or {})
    facts.update({k: getattr(record, k) for k in ("n_params", "flops_per_sample") if getattr(record, k) is not None})
    columns = ("model_key", "name", "family", "size", *MODEL_FACTS, "facts_json")
    values = [f"{record.model}|{record.size}", record.model, record.family, record.size,
              *(facts.get(k) for k in MODEL_FACTS), _json(facts) if facts else None]
    updates = ", ".join(["family = excluded.family", *(f"{c} = coalesce(excluded.{c}, models.{c})"
                                                        for c in (*MODEL_FACTS, "facts_json"))])
    con.execute(_insert_sql("models", columns, f"ON CONFLICT (model_key) DO UPDATE SET {updates}"), values)


def finished_config_keys(con: Connection, run_id: str, *, include_failed: bool = True) -> set[str]:
    """Config keys already stored for a run, so a resumed sweep can skip them; without failed ones to retry those."""
    statuses = ["ok", "skipped", "failed"] if include_failed else ["ok", "skipped"]
    rows = con.execute("SELECT config_key FROM results WHERE run_id = ? AND list_contains(?, status)",
                       [run_id, statuses]).fetchall()
    return {k for (k,) in rows}


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        clauses.append(f'"{column}" IN ({", ".join("?" * len(values))})')
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def load_records(con: Connection, run_id: str | None = None, *, status: str | None = None) -> list[Record]:
    """Rebuild stored Records exactly, samples included, optionally for one run and one status."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    where, params = _where({"run_id": run_id, "status": status})
    cursor = con.execute(f"""
        WITH r AS (SELECT * FROM results{where})
        SELECT r.*, (SELECT list(latency_s ORDER BY sample_idx) FROM samples s WHERE s.result_id = r.result_id)
               AS samples_s,
               (SELECT list(round_idx ORDER BY sample_idx) FILTER (WHERE round_idx IS NOT NULL) FROM samples s
                WHERE s.result_id = r.result_id) AS sample_rounds
        FROM r ORDER BY run_id, created_at, config_key""", params)
    names = [d[0] for d in cursor.description]
    return [_row_record(dict(zip(names, values, strict=True))) for values in cursor.fetchall()]


def _row_record(row: dict[str, Any]) -> Record:
    fields = {f: row[f] for f in RECORD_FIELDS}
    fields["samples_s"] = tuple(row["samples_s"] or ())
    fields["sample_rounds"] = tuple(row["sample_rounds"] or ())
    fields["extra"] = json.loads(row["extra"] or "{}")
    return Record(**fields)


GPU_NAMES = "array_to_string(json_extract_string(h.gpus_json, '$[*].name'), ', ') AS gpu_names"
RESULTS_SQL = f"""
    SELECT r.*, ru.started_at AS run_started_at, ru.finished_at AS run_finished_at, ru.host, ru.git_commit,
           ru.kit_version, ru.hardware_id, h.cpu_model, {GPU_NAMES}
    FROM results r LEFT JOIN runs ru ON ru.run_id = r.run_id LEFT JOIN hardware h ON h.hardware_id = ru.hardware_id"""
SAMPLES_SQL = """
    SELECT s.result_id, r.run_id, r.config_key, r.model, r.platform, r.precision, r.batch_size, r.mode,
           s.sample_idx, s.latency_s, s.round_idx
    FROM samples s JOIN results r ON r.result_id = s.result_id"""


def _select(con: Connection, sql: str, order: str, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    known = _table_columns(con, sql)
    unknown = sorted(set(filters) - set(known))
    if unknown:
        raise ConfigError(f"unknown filter column(s) {unknown}; known: {', '.join(known)}")
    where, params = _where(filters)
    return f"SELECT * FROM ({sql}){where} ORDER BY {order}", params


def results_frame(con: Connection, run_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per result (Record fields without samples, extra as JSON) joined with its run and hardware.

    Filters are equalities on any column, e.g. `results_frame(con, model="bert-tiny", status="ok")`; a list matches any.
    """
    sql, params = _select(con, RESULTS_SQL, "run_id, created_at, config_key", {"run_id": run_id, **filters})
    return con.execute(sql, params).df()


def samples_frame(con: Connection, run_id: str | None = None) -> pd.DataFrame:
    """Raw samples in long format, one row per sample, with the identity columns needed to group them."""
    sql, params = _select(con, SAMPLES_SQL, "run_id, config_key, sample_idx", {"run_id": run_id})
    return con.execute(sql, params).df()


def runs_frame(con: Connection) -> pd.DataFrame:
    """One row per run with its hardware and counts of results by status."""
    counts = ", ".join(f"count(r.result_id) FILTER (WHERE r.status = '{s}') AS n_{s}" for s in STATUSES)
    return con.execute(f"""
        SELECT ru.*, h.cpu_model, {GPU_NAMES}, count(r.result_id) AS n_results, {counts}
        FROM runs ru LEFT JOIN hardware h ON h.hardware_id = ru.hardware_id
        LEFT JOIN results r ON r.run_id = ru.run_id GROUP BY ALL ORDER BY ru.started_at, ru.run_id""").df()


def export_csv(con: Connection, path: str | Path, run_id: str | None = None, *, force: bool = False) -> Path:
    """Write results (as in results_frame) to CSV, and their raw samples to `<stem>_samples.csv` beside it; an
    existing file is replaced only with `force`."""
    return _export(con, Path(path), run_id, "FORMAT csv, HEADER true", force)


def export_parquet(con: Connection, path: str | Path, run_id: str | None = None, *, force: bool = False) -> Path:
    """Write results (as in results_frame) to Parquet, and their raw samples to `<stem>_samples.parquet` beside it;
    an existing file is replaced only with `force`."""
    return _export(con, Path(path), run_id, "FORMAT parquet", force)


def _export(con: Connection, path: Path, run_id: str | None, options: str, force: bool) -> Path:
    samples_path = path.with_name(f"{path.stem}_samples{path.suffix}")
    known = sorted({r for (r,) in con.execute("SELECT run_id FROM runs UNION SELECT run_id FROM results").fetchall()})
    if run_id is not None and run_id not in known:
        raise ConfigError(f"unknown run id {run_id!r}; stored runs: {', '.join(known) or 'none'}")
    for target in (path, samples_path):
        if target.is_dir():
            raise ConfigError(f"export target {target} is a folder; give a file name ending in {path.suffix}")
        if target.exists() and not force:
            raise ConfigError(f"{target} exists; pass --force (force=True) to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of {path}: {exc.strerror}") from exc
    for sql, order, target in ((RESULTS_SQL, "run_id, created_at, config_key", path),
                               (SAMPLES_SQL, "run_id, config_key, sample_idx", samples_path)):
        query, params = _select(con, sql, order, {"run_id": run_id})
        con.execute(f"COPY ({query}) TO ? ({options})", [*params, str(target)])
    return path


def import_json(con: Connection, path: str | Path, run_id: str | None = None) -> int:
    """Import a JSON result file (Record.to_json list, {"records": [...]}, JSON lines, or legacy flat rows).

    Every row is checked before anything is written, and the rows are stored in one transaction. Legacy rows:
    `latency`/`latency_ms`/`latency_mean_ms` are milliseconds, `memory`/`memory_mb` are MiB; a missing latency or
    throughput is derived as batch / the other. Returns the number of results stored (rows already stored as 'ok' are
    skipped, as in insert_record).
    """
    return store_imported(con, {Path(path): read_import(path, run_id)})


def read_import(path: str | Path, run_id: str | None = None) -> list[Record]:
    """The checked records of a JSON result file; ConfigError naming the file (and row) on the first bad one."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise ConfigError(f"{path} holds no results")
    return [_imported_record(row, path, run_id, i) for i, row in enumerate(rows)]


def store_imported(con: Connection, imported: dict[Path, list[Record]]) -> int:
    """Store the records read from each file, with a run row per run id, in one transaction: all files or none."""
    sources: dict[str, set[str]] = {}
    for path, records in imported.items():
        for record in records:
            sources.setdefault(record.run_id, set()).add(str(path))
    with _transaction(con):
        for rid, paths in sorted(sources.items()):
            con.execute("INSERT INTO runs (run_id, started_at, params_json) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        [rid, _utcnow(), _json({"imported_from": ", ".join(sorted(paths))})])
        return sum(_store(con, record, own_transaction=False)[1] for records in imported.values()
                   for record in records)


def _read_rows(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path} as JSON or JSON lines: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("records", data.get("results", [data]))
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ConfigError(f"{path} must hold a list of result objects, {{'records': [...]}} or JSON lines")
    return data


def _imported_record(row: dict, path: Path, run_id: str | None, index: int) -> Record:
    try:
        if "config_key" not in row:
            return _legacy_record(row, path, run_id)
        record = Record.from_json(row)
        record = dataclasses.replace(record, run_id=run_id) if run_id else record
        check_record(record)
        return record
    except (KeyError, TypeError, ValueError, OverflowError, KitError) as exc:
        raise ConfigError(f"{path}: row {index}: {exc}") from exc


def _scaled(row: dict, units: dict[str, float]) -> float | None:
    key = next((k for k in units if row.get(k) is not None), None)
    if key is None:
        return None
    value = float(row[key]) * units[key]
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{key} must be positive and finite, got {row[key]!r}")
    return value


def _legacy_record(row: dict, path: Path, run_id: str | None) -> Record:
    model = row.get("model") or row.get("model_name")
    platform = row.get("platform") or row.get("hardware") or row.get("backend")
    if not model or not platform:
        raise ValueError("a legacy row needs model (or model_name) and platform (or hardware)")
    batch_size, mode = int(row.get("batch_size") or 0), str(row.get("mode") or "inference")
    if batch_size <= 0 or mode not in MODES:
        raise ValueError(f"batch_size must be positive and mode one of {MODES}: {batch_size!r}, {mode!r}")
    latency_s = _scaled(row, {"latency_s": 1, "latency_mean_s": 1, "latency_ms": 1e-3, "latency_mean_ms": 1e-3,
                              "latency": 1e-3})
    throughput = _scaled(row, {"throughput_items_per_s": 1, "throughput_items_per_sec": 1, "throughput": 1})
    memory = _scaled(row, {"peak_memory_bytes": 1, "memory_bytes": 1, "memory_mb": 2**20, "memory": 2**20})
    if latency_s is None and throughput is None:
        raise ValueError("a legacy row needs a latency or a throughput")
    precision = str(row.get("precision") or row.get("dtype") or "unknown")
    seq_len = int(row["seq_len"]) if row.get("seq_len") else None
    return Record(
        run_id=run_id or str(row.get("run_id") or f"import-{path.stem}"),
        config_key=f"{model}|{platform}|{precision}|{mode}|bs{batch_size}" + (f"|seq{seq_len}" if seq_len else ""),
        model=str(model), family=str(row.get("family") or model), size=str(row.get("size") or ""), mode=mode,
        platform=str(platform), device=str(row.get("device") or platform), precision=precision,
        batch_size=batch_size, seq_len=seq_len, status="ok",
        latency_mean_s=latency_s or batch_size / throughput,
        throughput_items_per_s=throughput or batch_size / latency_s,
        peak_memory_bytes=round(memory) if memory else None, memory_method="legacy import" if memory else "",
        extra={"imported_from": str(path), "legacy": True, "legacy_row": row},
        created_at=str(row.get("created_at") or row.get("timestamp") or now_iso()),
    )
