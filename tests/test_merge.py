"""Merging the stores of two machines: everything lands once, provenance is kept, a clash is refused by name."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from kit import storage
from kit.cli import main
from kit.errors import ConfigError
from kit.merge import merge_stores
from tests.test_storage import ok


def machine_store(path, machine: str, run_id: str, keys: list[str]) -> None:
    """A store written on a test-fixture machine (hardware fingerprint `fixture-<machine>`)."""
    con = storage.connect(path)
    environment = {"env_id": f"env-{machine}", "hardware": {"hardware_id": f"fixture-{machine}", "hostname": machine,
                                                             "cpu_model": f"Fixture CPU {machine}"}}
    storage.start_run(con, run_id, {"models": ["bert"]}, environment)
    for seed, key in enumerate(keys):
        storage.insert_record(con, ok(key, seed=seed, run_id=run_id))
    con.close()


def counts(path) -> dict[str, int]:
    con = storage.connect(path, read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("hardware", "runs", "results",
                                                                                   "samples")}
    finally:
        con.close()


@pytest.fixture
def stores(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    machine_store(a, "a", "run-a", ["k1", "k2"])
    machine_store(b, "b", "run-b", ["k1"])
    return a, b


def test_two_machines_merge_once_with_their_provenance(stores, tmp_path, capsys):
    a, b = stores
    into = tmp_path / "fleet.duckdb"
    assert merge_stores([a, b], into) == {str(a): 2, str(b): 1}
    assert counts(into) == {"hardware": 2, "runs": 2, "results": 3, "samples": 150}
    assert merge_stores([a, b], into) == {str(a): 0, str(b): 0} and counts(into)["results"] == 3  # idempotent
    con = storage.connect(into, read_only=True)
    hardware = dict(con.execute("SELECT run_id, hardware_id FROM runs").fetchall())
    assert hardware == {"run-a": "fixture-a", "run-b": "fixture-b"}
    merged = {(r.run_id, r.config_key): r for r in storage.load_records(con)}
    original = storage.load_records(storage.connect(a, read_only=True), "run-a")
    assert all(merged[(r.run_id, r.config_key)].samples_s == r.samples_s for r in original)  # samples exact
    con.close()
    assert main(["results", "--db", str(into)]) == 0 and capsys.readouterr().out.count("bert") == 3


def test_a_run_or_result_both_stores_hold_differently_is_refused_by_name(stores, tmp_path, capsys):
    a, b = stores
    into = tmp_path / "fleet.duckdb"
    merge_stores([a], into)
    other = tmp_path / "other.duckdb"
    machine_store(other, "c", "run-a", ["k9"])  # another machine named its run alike
    with pytest.raises(ConfigError, match="run 'run-a' is in both stores with another start time or hardware"):
        merge_stores([other], into)
    remeasured = tmp_path / "remeasured.duckdb"
    shutil.copy(a, remeasured)
    con = duckdb.connect(str(remeasured))
    con.execute("UPDATE samples SET result_id = 'x' || result_id")
    con.execute("UPDATE results SET result_id = 'x' || result_id")
    con.close()
    before = counts(into)
    with pytest.raises(ConfigError, match="run 'run-a' holds configuration .* in both stores, measured apart"):
        merge_stores([remeasured], into)
    assert counts(into) == before
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a store" * 100)
    fresh = tmp_path / "fresh.duckdb"
    assert main(["merge", str(a), str(junk), "--into", str(fresh)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not fresh.exists()
