"""Fault injection: hostile model folders, bad parameter files and flags, bad databases, bad imports and exports,
compare's exit codes, resumes with other settings, and the page server's refusals.

Each refused case runs the command line in this process (`kit.cli.main`) and asserts exit code 2, a single
`benchkit: error:` line naming the bad value or file, and that nothing under the test's folder changed: every byte of
the store, of an earlier export and of the inputs is the same, and no file or folder was created. The cases that go
through (compare's 0 and 1, a forced resume, a folder that fails while measured) assert their exit code and what they
leave behind.

Faults that need a real parent process to die, or a second process to hold the store, live beside the code they
exercise, since each starts Python processes:
- tests/test_isolation.py::test_a_measuring_child_dies_with_its_parent (kill -9 of a sweep parent: no child left)
- tests/test_sweep.py::test_resume_after_parent_sigkill_loses_and_duplicates_nothing
- tests/test_sweep.py::test_the_store_can_be_read_while_a_sweep_fills_it
- tests/test_storage.py::test_a_crash_mid_sweep_keeps_inserted_records
- tests/test_storage.py::test_a_second_writer_process_gets_a_clear_error
- tests/test_storage.py::test_records_a_busy_store_refuses_are_kept_then_stored_or_saved_as_json
- tests/test_properties.py: random parameter files and JSON imports never give a traceback (hypothesis)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from kit import storage
from kit.cli import main
from kit.config import spec_from_parameters
from kit.records import Record
from tests.test_analysis import env, rec, store, two_runs

ENV = env()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under root, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def refused(argv: list, root: Path, capsys: pytest.CaptureFixture, match: str) -> str:
    """Run the command line; assert exit 2, one error line matching `match`, and nothing changed under root."""
    capsys.readouterr()
    before = snapshot(root)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("benchkit: error: "), (code, err)
    assert re.search(match, lines[0]), lines[0]
    assert snapshot(root) == before
    return lines[0]


def ran(argv: list, root: Path, capsys: pytest.CaptureFixture, code: int) -> str:
    """Run the command line; assert its exit code, no error line, and nothing changed under root; return stdout."""
    capsys.readouterr()
    before = snapshot(root)
    assert main([str(a) for a in argv]) == code
    out, err = capsys.readouterr()
    assert "benchkit: error" not in err and "Traceback" not in err, err
    assert snapshot(root) == before
    return out


# -- model folders -------------------------------------------------------------------------------------------------

MODULE = """from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the folder's code ran")
from transformers import BertConfig
class XConfig(BertConfig):
    model_type = "x-custom"
"""


@pytest.fixture
def custom_folder(tmp_path: Path) -> Path:
    """A folder whose config.json points (auto_map) at configuration_x.py, which writes a marker when imported."""
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x-custom",
                                                    "auto_map": {"AutoConfig": "configuration_x.XConfig"}}))
    (folder / "configuration_x.py").write_text(MODULE)
    (tmp_path / "p.yaml").write_text(f"models: [{json.dumps(str(folder))}]\n")
    return folder


@pytest.mark.parametrize("argv", [
    ["bench", "--models", "{folder}", "--db", "{db}"],
    ["bench", "--params", "{tmp}/p.yaml", "--db", "{db}"],
    ["ab", "--models", "{folder}", "--rounds", "3", "--db", "{db}"],
    ["recommend", "--model", "{folder}", "--db", "{db}"],
    ["distributed-bench", "--model", "{folder}", "--db", "{db}"],
    ["distributed-config", "--model", "{folder}", "--gpus", "2", "--gpu-memory-gb", "8", "--global-batch", "8"],
], ids=lambda argv: " ".join(argv[:2]))
def test_a_folder_that_needs_its_own_code_is_refused_and_never_imported(argv, custom_folder, tmp_path, capsys):
    argv = [a.format(folder=custom_folder, db=tmp_path / "b.duckdb", tmp=tmp_path) for a in argv]
    refused(argv, tmp_path, capsys, r"custom' needs its own code \(configuration_x.py\).*never runs code")
    assert not (custom_folder / "IMPORTED").exists()  # the module wrote no marker: it was never imported


@pytest.mark.parametrize("content, match", [
    (b"{not json", "config.json is not valid JSON"),
    (b"", "config.json is not valid JSON"),
    (bytes(range(128, 256)), "config.json is not valid JSON"),
    (b"[1, 2]", "config.json must be a JSON object"),
    (b'{"hidden_size": 8}', "config.json must be a JSON object with a model_type"),
])
def test_a_bad_config_json_is_one_line_before_any_work(content, match, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_bytes(content)
    refused(["bench", "--models", "bert", folder, "--db", tmp_path / "b.duckdb"], tmp_path, capsys,
            f"model folder '{folder}': {match}")


def test_what_a_valid_folder_raises_while_measured_is_its_failure_row_and_the_sweep_goes_on(tmp_path, capsys):
    folder = tmp_path / "weightless"
    folder.mkdir()  # a config transformers knows, but no weights: the child loading it raises
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 1}))
    db = tmp_path / "b.duckdb"
    assert main(["bench", "--models", str(folder), "bert", "--time-budget-s", "0.1", "--sequential", "--run-id", "F",
                 "--db", str(db)]) == 0
    con = storage.connect(db, read_only=True)
    records = {r.model: r for r in storage.load_records(con, "F")}
    finished = storage.runs_frame(con)["finished_at"].notna().all()
    con.close()
    assert records[str(folder)].status == "failed" and "no file named model.safetensors" in records[str(folder)].reason
    assert records["bert"].status == "ok" and finished


# -- parameter files and flags -------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    (b"models: [bert\n  x: : :", "p.yaml' is not valid YAML: .* at line 2"),
    (bytes(range(200, 256)) * 3, "p.yaml' is not UTF-8 text"),
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
    (tmp_path / "p.yaml").write_bytes(content)
    refused(["bench", "--params", tmp_path / "p.yaml", "--db", tmp_path / "r.duckdb"], tmp_path, capsys, match)


@pytest.mark.parametrize("flags, match", [
    (["--models", "bret"], "unknown model 'bret'"),
    (["--models", "bert", "--batch-sizes", "0"], "batch_sizes must be positive integers, got 0"),
    (["--models", "bert", "--timeout-s", "inf"], "parameter timeout_s: .*finite number, got inf"),
    (["--models", "bert", "--memory-limit-gb", "0"], "--memory-limit-gb must be a positive number, got 0.0"),
    (["--models", "bert", "--memory-limit-gb", "nan"], "--memory-limit-gb must be a positive number, got nan"),
])
def test_a_bad_flag_is_one_line_before_any_work(flags, match, tmp_path, capsys):
    refused(["bench", *flags, "--db", tmp_path / "r.duckdb"], tmp_path, capsys, match)


def test_a_memory_limit_flag_is_named_in_the_failure_it_causes(tmp_path, capsys):
    db = tmp_path / "r.duckdb"
    assert main(["bench", "--models", "bert", "--memory-limit-gb", "0.25", "--sequential", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "0.25 GiB memory limit" in out


# -- databases -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a closed store holding run 'a' with one ok result."""
    path = tmp_path_factory.mktemp("template") / "t.duckdb"
    con = storage.connect(path)
    store(con, "a", [rec("a")], ENV)
    con.close()
    return path.read_bytes()


def _immutable(path: Path, cleanup: ExitStack) -> Path:
    """The file read-only (chmod 0o444) and, where that does not stop its owner (root), immutable (chattr +i)."""
    path.chmod(0o444)
    cleanup.callback(path.chmod, 0o644)
    if os.access(path, os.W_OK) and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
            cleanup.callback(subprocess.run, ["chattr", "-i", str(path)], check=True)
    if os.access(path, os.W_OK):
        pytest.skip("this user can write to any file here")
    return path


def _bad_database(kind: str, root: Path, template: bytes, cleanup: ExitStack) -> Path:
    """A path that is not a usable store, of the given kind, under root."""
    path = root / "db.duckdb"
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 64)
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "truncated store":
        path.write_bytes(template[:len(template) // 2])
    elif kind == "truncated header":
        path.write_bytes(template[:5000])
    elif kind == "immutable store":
        path.write_bytes(template)
        _immutable(path, cleanup)
    elif kind == "folder":
        path.mkdir()
    elif kind == "file as parent":
        (root / "parent").write_text("a file")
        path = root / "parent" / "db.duckdb"
    return path


READERS = ("results", "export", "compare")
DB_COMMANDS = {"results": ["results"], "export": ["export", "--out", "{root}/x.csv"],
               "compare": ["compare", "--baseline", "a"], "bench": ["bench", "--models", "bert", "--rounds", "3"],
               "import-json": ["import-json", "{root}/in.json"]}
DB_CASES = {  # kind -> what the line says (for readers, for writers)
    "random bytes": ("not a valid DuckDB", "not a valid DuckDB"),
    "empty file": ("not a valid DuckDB", "not a valid DuckDB"),
    "truncated store": ("truncated or damaged", "truncated or damaged"),
    "truncated header": ("truncated or damaged", "truncated or damaged"),
    "immutable store": (None, "Operation not permitted|Permission denied"),  # still read as usual
    "folder": ("is a folder", "is a folder"),
    "file as parent": ("no benchkit database", "cannot create the folder"),
}


@pytest.mark.parametrize("command", DB_COMMANDS)
@pytest.mark.parametrize("kind", DB_CASES)
def test_a_bad_database_is_one_line_naming_it_and_left_untouched(kind, command, tmp_path, store_bytes, capsys):
    (tmp_path / "in.json").write_text(json.dumps([rec("b").to_json()]))
    with ExitStack() as cleanup:
        path = _bad_database(kind, tmp_path, store_bytes, cleanup)
        match = DB_CASES[kind][command not in READERS]
        argv = [*(a.format(root=tmp_path) for a in DB_COMMANDS[command]), "--db", path]
        if match is None:
            assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
        else:
            assert str(path) in refused(argv, tmp_path, capsys, match)


# -- import-json ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    (b"", "bad.json holds no results"),
    (b"[]", "bad.json holds no results"),
    (bytes(range(128, 256)) * 4, "cannot read .*bad.json as JSON or JSON lines"),
    (b"{not json", "cannot read .*bad.json as JSON or JSON lines"),
    (b"[1, 2]", "bad.json must hold a list of result objects"),
    (b'[{"model": "m", "platform": "cpu", "batch_size": 1e400, "latency_ms": 3}]', "bad.json: row 0: .*infinity"),
    (b'[{"platform": "cpu", "batch_size": 1, "latency_ms": 3}]', "bad.json: row 0: .*model"),
    (b'[{"model": "m", "platform": "cpu", "batch_size": 1, "latency_ms": -3}]', "bad.json: row 0: .*positive"),
    (b'[{"model": "m", "platform": "cpu", "batch_size": 1}]', "bad.json: row 0: .*latency or a throughput"),
    (b'[{"config_key": "k", "run_id": "r"}]', "bad.json: row 0"),
    (None, "missing.json"),
])
@pytest.mark.parametrize("target", ["existing store", "no store"])
def test_a_bad_import_is_one_line_all_files_or_none_and_creates_no_store(content, match, target, tmp_path,
                                                                          store_bytes, capsys):
    good, bad = tmp_path / "good.json", tmp_path / ("bad.json" if content is not None else "missing.json")
    good.write_text(json.dumps([rec("b").to_json()]))
    if content is not None:
        bad.write_bytes(content)
    db = tmp_path / "store" / "b.duckdb"
    if target == "existing store":
        db.parent.mkdir()
        db.write_bytes(store_bytes)
    refused(["import-json", "--db", db, good, bad], tmp_path, capsys, match)  # the good file first: none stored


def test_an_import_refused_for_one_file_stores_the_other_once_it_is_given_alone(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([rec("b").to_json()]))
    bad.write_text("")
    db = tmp_path / "b.duckdb"
    refused(["import-json", "--db", db, good, bad], tmp_path, capsys, "bad.json holds no results")
    assert main(["import-json", "--db", str(db), str(good)]) == 0
    assert "imported 1 records from 1 file(s)" in capsys.readouterr().out
    con = storage.connect(db, read_only=True)
    assert [r.run_id for r in storage.load_records(con)] == ["b"]
    con.close()


# -- export --------------------------------------------------------------------------------------------------------

@pytest.fixture
def exported(tmp_path: Path, store_bytes: bytes) -> Path:
    """A store of run 'a' at tmp_path/b.duckdb, exported once to x.csv (and x_samples.csv) and x.parquet."""
    db = tmp_path / "b.duckdb"
    db.write_bytes(store_bytes)
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "x.csv")]) == 0
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "x.parquet")]) == 0
    (tmp_path / "y_samples.csv").write_text("someone else's file")
    (tmp_path / "folder.csv").mkdir()
    return db


@pytest.mark.parametrize("out, extra, match", [
    ("z.csv", ["--run-id", "nope"], "unknown run id 'nope'; stored runs: a"),
    ("x.csv", [], "x.csv exists; pass --force"),
    ("x.parquet", [], "x.parquet exists; pass --force"),
    ("y.csv", [], "y_samples.csv exists; pass --force"),
    ("folder.csv", [], "folder.csv is a folder"),
    ("folder.csv", ["--force"], "folder.csv is a folder"),
    ("x.xlsx", [], "--out must end in .csv or .parquet, got '.*x.xlsx'"),
])
def test_an_export_that_would_overwrite_or_mislead_is_refused(out, extra, match, exported, tmp_path, capsys):
    refused(["export", "--db", exported, "--out", tmp_path / out, *extra], tmp_path, capsys, match)


def test_an_export_is_replaced_with_force(exported, tmp_path, capsys):
    (tmp_path / "x.csv").write_text("old")
    assert main(["export", "--db", str(exported), "--out", str(tmp_path / "x.csv"), "--force"]) == 0
    assert (tmp_path / "x.csv").read_text().startswith("result_id")


# -- compare -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compare_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with c.duckdb: runs run-0a, run-0b, run-1 (the same configurations), run-2 (one regression) and
    run-3 (every configuration failed); run-2 exported to run-2.parquet; damaged and empty exports."""
    folder = tmp_path_factory.mktemp("compare")
    con = storage.connect(folder / "c.duckdb")
    two_runs(con)
    identity = ("config_key", "model", "family", "size", "mode", "platform", "device", "precision", "batch_size")
    failures = [Record.failure("failed", "RuntimeError: broken", run_id="run-3", **{k: getattr(r, k) for k in identity})
                for r in storage.load_records(con, "run-1")]
    store(con, "run-3", failures)
    storage.export_parquet(con, folder / "run-2.parquet", run_id="run-2")
    con.close()
    for name, content in (("damaged.parquet", bytes(range(256)) * 8), ("damaged.csv", bytes(range(256)) * 8),
                          ("empty.csv", b""), ("empty.parquet", b"")):
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def compared(compare_files: Path, tmp_path: Path) -> Path:
    """A copy of compare_files in tmp_path; its store's path."""
    shutil.copytree(compare_files, tmp_path, dirs_exist_ok=True)
    return tmp_path / "c.duckdb"


@pytest.mark.parametrize("argv, code", [
    (["--baseline", "run-1", "--run-id", "run-2", "--fail-on-regression", "--max-failed", "0.5"], 0),  # possible only
    (["--baseline", "run-1", "run-0b", "run-0a", "--run-id", "run-2"], 0),  # a regression, not asked to fail
    (["--baseline", "run-1", "run-0b", "run-0a", "--run-id", "run-2", "--fail-on-regression", "--max-failed", "0.5"],
     1),
])
def test_compare_exits_0_without_and_1_with_a_regression(argv, code, compared, tmp_path, capsys):
    out = ran(["compare", *argv, "--db", compared], tmp_path, capsys, code)
    assert "current run-2 vs baseline" in out


@pytest.mark.parametrize("argv, match", [
    (["--baseline", "run-1", "--run-id", "run-3"], "no configuration is ok in both runs: nothing was compared"),
    (["--baseline", "run-1", "--run-id", "run-2"], "1 of 3 configurations failed in the current run, more than "
                                                  "--max-failed 0 allows"),  # run-2 has one failure
    (["--baseline", "run-1", "--run-id", "run-2", "--max-failed", "1.5"], "--max-failed must be a share"),
    (["--baseline", "run-9", "--run-id", "run-2"], "run-9"),
    (["--baseline", "{tmp}/damaged.parquet", "--run-id", "run-2"], "damaged.parquet"),
    (["--baseline", "{tmp}/damaged.csv", "--run-id", "run-2"], "damaged.csv"),
    (["--baseline", "{tmp}/empty.csv", "--run-id", "run-2"], "empty.csv"),
    (["--baseline", "{tmp}/empty.parquet", "--run-id", "run-2"], "empty.parquet"),
    (["--baseline", "{tmp}/missing.csv", "--run-id", "run-2"], "missing.csv"),
    (["--baseline", "{tmp}/damaged.parquet", "--run-id", "{tmp}/run-2.parquet"], "damaged.parquet"),  # no store
    (["--baseline", "{tmp}/empty.csv", "--run-id", "{tmp}/run-2.parquet"], "empty.csv"),
    (["--baseline", "run-1", "--run-id", "run-2", "--threshold", "-0.1"], "threshold"),
])
def test_compare_exits_2_when_it_cannot_compare(argv, match, compared, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    refused(["compare", *argv, "--fail-on-regression", "--db", compared], tmp_path, capsys, match)


# -- resume --------------------------------------------------------------------------------------------------------

BENCH = ["bench", "--models", "bert", "--time-budget-s", "0.2", "--rounds", "3", "--run-id", "R"]


@pytest.fixture
def measured(tmp_path: Path) -> Path:
    """A store where run R of BENCH's settings holds a result for every configuration (nothing left to measure)."""
    spec = spec_from_parameters({"models": ["bert"], "time_budget_s": 0.2, "rounds": 3, "run_id": "R"})
    db = tmp_path / "r.duckdb"
    con = storage.connect(db)
    storage.start_run(con, "R", spec.to_dict(), ENV)
    for job in spec.jobs():
        storage.insert_record(con, Record.from_samples([0.01, 0.011, 0.012], **job.identity(), family="bert",
                                                       device="cpu"))
    con.close()
    return db


def test_resuming_a_run_with_other_settings_is_refused_unless_forced(measured, tmp_path, capsys):
    changed = [*BENCH[:4], "0.4", *BENCH[5:], "--db", measured]
    refused(changed, tmp_path, capsys, r"run R was measured with other settings \(time_budget_s: 0.2 -> 0.4\)")
    assert main([*BENCH, "--db", str(measured)]) == 0  # the same settings: a resume, nothing left to measure
    assert "resuming run R: 1 of 1 configurations already stored, 0 to measure" in capsys.readouterr().out
    assert main([str(a) for a in changed] + ["--force"]) == 0
    con = storage.connect(measured, read_only=True)
    assert len(storage.load_records(con, "R")) == 1
    con.close()


# -- the browser page server ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory):
    """A page server over <folder>/page (index.html and an empty sub-folder), with <folder>/secret.txt beside it."""
    from kit.browser.server import StaticServer

    folder = tmp_path_factory.mktemp("served")
    (folder / "page" / "sub").mkdir(parents=True)
    (folder / "page" / "index.html").write_text("<html></html>")
    (folder / "secret.txt").write_text("no")
    with StaticServer({"page": folder / "page"}) as server:
        yield server, folder


@pytest.mark.parametrize("path, host, status", [
    ("page/%00", None, 404),
    ("page/index.html%00.txt", None, 404),
    ("page/sub/", None, 404),  # a folder is never listed
    ("page", None, 404),
    ("page/../secret.txt", None, 404),
    ("page/%2e%2e/secret.txt", None, 404),
    ("other/index.html", None, 404),
    ("page/index.html", "evil.example", 403),  # DNS rebinding: a page of another name pointed at the loopback
    ("page/index.html", "127.0.0.1.evil.example", 403),
])
def test_the_page_server_refuses_escapes_listings_and_foreign_hosts(path, host, status, page_server, capsys):
    server, folder = page_server
    before = snapshot(folder)
    headers = {"Host": f"{host}:{server.port}"} if host else {}
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(urllib.request.Request(f"{server.origin}/{path}", headers=headers), timeout=10)
    assert refusal.value.code == status and "\n" not in refusal.value.reason
    for name in ("localhost", "127.0.0.1"):  # the server still answers, to a loopback Host only
        request = urllib.request.Request(server.url("page", "index.html"), headers={"Host": f"{name}:{server.port}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200 and reply.read() == b"<html></html>"
    assert "Traceback" not in capsys.readouterr().err  # no request raised in the server
    assert snapshot(folder) == before


def test_a_config_file_broken_after_the_check_names_no_family_and_stops_nothing(tmp_path):
    from kit.runners.sweep import family_of

    folder = tmp_path / "m"
    folder.mkdir()
    for content, family in (('{"model_type": "bert"}', "bert"), ("{not json", "local"), ("[1, 2]", "local"),
                            (b"\xff\xfe", "local")):
        (folder / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())
        assert family_of(str(folder)) == family
