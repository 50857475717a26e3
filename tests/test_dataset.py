"""The Parquet dataset: exports append without touching what is there, and every reader takes a dataset folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kit import storage
from kit.cli import main
from kit.dataset import MARKER, export_dataset, is_dataset
from kit.errors import ConfigError
from kit.merge import merge_stores
from tests.test_merge import counts, machine_store


def finished_store(path, machine: str, run_id: str, keys: list[str]) -> None:
    """A test-fixture machine's store with one finished run."""
    machine_store(path, machine, run_id, keys)
    con = storage.connect(path)
    storage.finish_run(con, run_id)
    con.close()


def files(folder) -> dict[str, str]:
    """Every file under the folder (the marker aside) with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def export(store, folder, run_id=None) -> dict[str, list[str]]:
    con = storage.connect(store, read_only=True)
    try:
        return export_dataset(con, folder, run_id)
    finally:
        con.close()


@pytest.fixture
def dataset(tmp_path):
    """Two machines' stores exported into one dataset, one after the other."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    finished_store(a, "a", "run-a", ["k1", "k2"])
    finished_store(b, "b", "run b/2", ["k1"])
    folder = tmp_path / "fleet"
    assert export(a, folder) == {"written": ["run-a"], "already there": [], "not finished": []}
    return folder, a, b


def test_a_second_machine_appends_without_touching_the_first(dataset):
    folder, a, b = dataset
    first = files(folder)
    assert export(b, folder) == {"written": ["run b/2"], "already there": [], "not finished": []}
    after = files(folder)
    assert {k: after[k] for k in first} == first and len(after) > len(first)  # the first run's files untouched
    assert export(a, folder)["already there"] == ["run-a"] and files(folder) == after  # nothing written twice
    assert is_dataset(folder) and (folder / MARKER).exists()
    con = storage.connect(folder, read_only=True)
    assert storage.is_read_only(con)
    machines = dict(con.execute("SELECT run_id, hardware_id FROM runs").fetchall())
    assert machines == {"run-a": "fixture-a", "run b/2": "fixture-b"}
    stored = {(r.run_id, r.config_key): r for r in storage.load_records(con)}
    original = storage.load_records(storage.connect(a, read_only=True), "run-a")
    assert all(stored[(r.run_id, r.config_key)].samples_s == r.samples_s for r in original)  # samples exact
    con.close()


def test_an_unfinished_run_waits_unless_named(tmp_path):
    store = tmp_path / "s.duckdb"
    machine_store(store, "a", "running", ["k1"])
    folder = tmp_path / "ds"
    assert export(store, folder) == {"written": [], "already there": [], "not finished": ["running"]}
    assert export(store, folder, "running")["written"] == ["running"]
    with pytest.raises(ConfigError, match="unknown run_id 'nope'"):
        export(store, folder, "nope")


def test_a_folder_of_other_files_is_refused_and_a_dataset_is_never_written(dataset, tmp_path):
    folder, a, _ = dataset
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a benchkit dataset"):
        export(a, other)
    with pytest.raises(ConfigError, match="read-only"):
        storage.connect(folder)
    assert main(["bench", "--models", "bert", "--db", str(folder)]) == 2


def test_readers_take_a_dataset_where_they_take_a_store(dataset, tmp_path, capsys):
    folder, a, b = dataset
    export(b, folder)
    before = files(folder)
    capsys.readouterr()
    assert main(["results", "--db", str(folder)]) == 0 and capsys.readouterr().out.count("bert") == 3
    assert main(["compare", "--baseline", "run-a", "--run-id", "run b/2", "--db", str(folder)]) == 0
    assert "run b/2 vs baseline run-a: 1 unchanged" in capsys.readouterr().out
    out = tmp_path / "all.csv"
    assert main(["export", "--db", str(folder), "--out", str(out)]) == 0 and out.read_text().count("\n") == 4
    into = tmp_path / "merged.duckdb"
    assert merge_stores([folder], into) == {str(folder): 3}
    assert counts(into) == {"hardware": 2, "runs": 2, "results": 3, "samples": 150}
    assert files(folder) == before  # read, never written


def template_commands(text: str) -> list[list[str]]:
    """The benchkit commands a shell template runs, with its variables given placeholder values."""
    import shlex

    commands = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(".venv/bin/benchkit"):
            continue
        for name in ("PARAMS", "RUN_ID", "STORE", "DATASET"):
            line = line.replace(f'"${name}"', f"placeholder-{name.lower()}")
        commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("template", ["slurm.sbatch", "kubernetes-job.yaml"])
def test_the_fleet_templates_measure_then_export_into_the_dataset(template):
    import yaml

    from kit.cli import build_parser

    text = (Path(__file__).parents[1] / "docs" / "fleet" / template).read_text()
    if template.endswith(".yaml"):
        job = yaml.safe_load(text)
        text = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    commands = template_commands(text)
    assert [c[0] for c in commands] == ["bench", "export"]
    bench, export_ = (build_parser(c[0]).parse_args(c) for c in commands)
    repo = Path(__file__).parents[1]
    assert bench.db == export_.db and export_.dataset
    assert (repo / bench.params).is_file() or "PARAMS=${PARAMS:-parameters/01_benchmark.yaml}" in text
    assert bench.run_id == export_.run_id
