"""Stores of several machines merged into one: `benchkit merge SRC... --into STORE` (a source may be a Parquet
dataset, kit.dataset).

Every source is checked first (a Benchkit store at the schema this kit writes), then each is merged in one
transaction with DuckDB SQL over the attached file: hardware, runs (with their hardware and environment: the
provenance), models, results and their raw samples. A result is identified by its result id: merging the same store
twice stores nothing the second time. A run id or a (run, configuration) pair that both stores hold with different
content (two machines that named a run alike) is refused, naming it, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from kit import dataset, storage
from kit.errors import ConfigError

TABLES = ("hardware", "runs", "models", "results", "samples")
KEYS = {"hardware": "hardware_id", "runs": "run_id", "models": "model_key"}


def _columns(con: storage.Connection, table: str, database: str) -> list[str]:
    rows = con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
                       "ORDER BY column_index", [database, table]).fetchall()
    return [name for (name,) in rows]


def check_source(path: Path, target_version: int) -> None:
    """ConfigError unless `path` is a Benchkit store at this kit's schema version."""
    con = storage.connect(path, read_only=True)
    try:
        version = storage.schema_version(con)
    finally:
        con.close()
    if version != target_version:
        raise ConfigError(f"{path} is a schema v{version} store, this kit writes v{target_version}: open it once "
                          f"with this kit (e.g. `benchkit results --db {path}` after a copy) before merging")


def _conflicts(con: storage.Connection) -> str | None:
    """The first run or result both stores hold with different content, described; None when there is none."""
    run = con.execute("SELECT s.run_id FROM src.runs s JOIN runs t USING (run_id) WHERE t.started_at IS DISTINCT "
                      "FROM s.started_at OR t.hardware_id IS DISTINCT FROM s.hardware_id LIMIT 1").fetchone()
    if run:
        return f"run {run[0]!r} is in both stores with another start time or hardware"
    result = con.execute("SELECT s.run_id, s.config_key FROM src.results s JOIN results t USING (run_id, config_key) "
                         "WHERE t.result_id <> s.result_id LIMIT 1").fetchone()
    if result:
        return f"run {result[0]!r} holds configuration {result[1]!r} in both stores, measured apart"
    return None


def _merge_one(con: storage.Connection, source: Path) -> int:
    """Merge one attached store; the number of results added."""
    con.execute("ATTACH ? AS src (READ_ONLY)", [str(source)])
    try:
        conflict = _conflicts(con)
        if conflict:
            raise ConfigError(f"cannot merge {source}: {conflict}; nothing was merged from it")
        here = con.execute("SELECT current_database()").fetchone()[0]
        with storage._transaction(con):
            new = con.execute("SELECT count(*) FROM src.results WHERE result_id NOT IN (SELECT result_id FROM results)"
                              ).fetchone()[0]
            for table in TABLES:
                columns = ", ".join(c for c in _columns(con, table, "src") if c in _columns(con, table, here))
                if table in KEYS:
                    where = f"WHERE {KEYS[table]} NOT IN (SELECT {KEYS[table]} FROM {table})"
                else:  # results and samples: those of results not yet stored
                    where = "WHERE result_id NOT IN (SELECT result_id FROM results)"
                if table == "samples":
                    where = "WHERE result_id IN (SELECT result_id FROM src.results) AND result_id NOT IN " \
                            "(SELECT DISTINCT result_id FROM samples)"
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM src.{table} {where}")
        return int(new)
    finally:
        con.execute("DETACH src")


def merge_stores(sources: list[str | Path], into: str | Path) -> dict[str, int]:
    """Merge each source (a store or a Parquet dataset) into the store `into` (created when missing); results added
    per source."""
    for source in sources:
        if Path(into).exists() and Path(source).resolve() == Path(into).resolve():
            raise ConfigError(f"{source} is the store merged into; give other stores as sources")
    if dataset.is_dataset(into):
        raise ConfigError(f"{into} is a Parquet dataset: merge into a store, then `benchkit export --dataset`")
    version = max(v for v, _ in storage.MIGRATIONS)
    files = {}
    for source in sources:  # every source checked before the target is opened (or created)
        files[str(source)] = dataset.materialise(source) if dataset.is_dataset(source) else Path(source)
        check_source(files[str(source)], version)
    con = storage.connect(into)
    try:
        return {source: _merge_one(con, path) for source, path in files.items()}
    finally:
        con.close()
