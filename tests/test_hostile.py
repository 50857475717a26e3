"""Hostile inputs: a folder's own code never runs, a bad config.json or database file is one line before any work."""

from __future__ import annotations

import json
import re

import pytest

from kit.cli import main

MODULE = """from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the folder's code ran")
from transformers import BertConfig
class XConfig(BertConfig):
    model_type = "x-custom"
"""


@pytest.fixture
def custom_folder(tmp_path):
    """A folder whose config.json points (auto_map) at configuration_x.py, which writes a marker when imported."""
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x-custom",
                                                    "auto_map": {"AutoConfig": "configuration_x.XConfig"}}))
    (folder / "configuration_x.py").write_text(MODULE)
    return folder


@pytest.mark.parametrize("argv", [
    ["bench", "--models", "{folder}", "--db", "{db}"],
    ["ab", "--models", "{folder}", "--rounds", "3", "--db", "{db}"],
    ["recommend", "--model", "{folder}", "--db", "{db}"],
])
def test_a_folder_that_needs_its_own_code_is_refused_and_never_imported(argv, custom_folder, tmp_path, capsys):
    db = tmp_path / "b.duckdb"
    code = main([a.format(folder=custom_folder, db=db) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "configuration_x.py" in err and "never runs code" in err
    assert len(err.strip().splitlines()) == 1
    assert not (custom_folder / "IMPORTED").exists()


@pytest.mark.parametrize("content, match", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                            ('{"hidden_size": 8}', "model_type")])
def test_a_bad_config_json_is_one_line_before_any_work(content, match, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text(content)
    db = tmp_path / "b.duckdb"
    assert main(["bench", "--models", "bert", str(folder), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert match in err and "config.json" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # nothing measured, nothing written


def _bad_database(kind: str, tmp_path):
    """A path that is not a usable database: random bytes, an empty file, a folder, a file as its parent folder."""
    if kind == "random bytes":
        (tmp_path / "db").write_bytes(bytes(range(256)) * 20)
    elif kind == "empty file":
        (tmp_path / "db").write_bytes(b"")
    elif kind == "folder":
        (tmp_path / "db").mkdir()
    else:
        (tmp_path / "parent").write_text("a file")
        return tmp_path / "parent" / "db"
    return tmp_path / "db"


@pytest.mark.parametrize("kind, match", [("random bytes", "not a valid DuckDB"), ("empty file", "not a valid DuckDB"),
                                         ("folder", "is a folder"), ("file as parent", "cannot create the folder")])
@pytest.mark.parametrize("command", [["results"], ["bench", "--models", "bert", "--rounds", "3"]])
def test_a_bad_database_file_is_one_line_and_left_untouched(kind, match, command, tmp_path, capsys):
    path = _bad_database(kind, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    if kind == "file as parent" and command == ["results"]:
        match = "no benchkit database"  # reading: nothing there to open
    assert main([*command, "--db", str(path)]) == 2
    err = capsys.readouterr().err
    assert match in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.parametrize("content, match", [
    (b"models: [bert\n  x: : :", "is not valid YAML: .* at line 2"),
    (bytes(range(200, 256)) * 3, "is not UTF-8 text"),
    (b'models: [bert]\nmemory_limit_bytes: "lots"\n', "parameter memory_limit_bytes: .*valid integer, got 'lots'"),
    (b"models: [bert]\nmemory_limit_bytes: 1.5\n", "parameter memory_limit_bytes: .*valid integer, got 1.5"),
    (b"models: [bert]\noverrides: [1, 2]\n", r"parameter overrides: .*dictionary, got \[1, 2\]"),
    (b"models: [bert]\ntraining: [lr]\n", r"parameter training: .*dictionary, got \['lr'\]"),
    (b"models: [bert]\ntimeout_s: .inf\n", "parameter timeout_s: .*finite number, got inf"),
    (b'models: [bert]\nrun_id: ""\n', "parameter run_id: must be non-empty text on one line, got ''"),
    (b'models: [bert]\nrun_id: "a\\nb"\n', r"parameter run_id: .*got 'a\\nb'"),
    (b"models: [bert]\nrounds: true\n", "parameter rounds: .*valid integer, got True"),
    (b"platforms: [cpu]\n", "needs --models or a --params file with .models."),
])
def test_a_bad_parameter_file_is_one_line_before_any_work(content, match, tmp_path, capsys):
    params, db = tmp_path / "p.yaml", tmp_path / "r.duckdb"
    params.write_bytes(content)
    assert main(["bench", "--params", str(params), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert not db.exists()


def test_an_infinite_timeout_flag_is_refused_before_any_work(tmp_path, capsys):
    db = tmp_path / "r.duckdb"
    assert main(["bench", "--models", "bert", "--timeout-s", "inf", "--db", str(db)]) == 2
    assert "parameter timeout_s" in capsys.readouterr().err and not db.exists()


def test_resuming_a_run_with_other_settings_is_refused_unless_forced(tmp_path, capsys):
    from kit import storage

    db = tmp_path / "r.duckdb"
    first = ["bench", "--models", "bert", "--time-budget-s", "0.2", "--rounds", "3", "--run-id", "R", "--db", str(db)]
    assert main(first) == 0
    assert main([*first[:2], "bert", "vit", *first[3:]]) == 0  # more configurations, same settings: a resume
    capsys.readouterr()
    changed = [*first[:4], "0.4", *first[5:]]
    assert main(changed) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run R was measured with other settings (time_budget_s: 0.2 -> 0.4)" in err
    con = storage.connect(db, read_only=True)
    assert storage.run_parameters(con, "R")["time_budget_s"] == 0.2 and len(storage.load_records(con, "R")) == 2
    con.close()
    assert main([*changed, "--force"]) == 0  # nothing left to measure; the run is resumed as asked


def test_a_memory_limit_flag_is_checked_and_named_in_the_failure(tmp_path, capsys):
    db = tmp_path / "r.duckdb"
    assert main(["bench", "--models", "bert", "--memory-limit-gb", "0", "--db", str(db)]) == 2
    assert "--memory-limit-gb must be a positive number, got 0.0" in capsys.readouterr().err and not db.exists()
    assert main(["bench", "--models", "bert", "--memory-limit-gb", "0.25", "--sequential", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "0.25 GiB memory limit" in out
