"""The `benchkit` command line: every sub-command is wired, bad input is one clear line and exit 2."""

import subprocess
import sys

import pytest

from kit import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_has_its_arguments_and_handler(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    assert f"benchkit {name}" in capsys.readouterr().out
    assert callable(cli._resolve(cli.COMMANDS[name][2]))


def test_bench_stores_a_tiny_run_and_results_prints_it(tmp_path, capsys):
    db = tmp_path / "b.duckdb"
    assert cli.main(["bench", "--models", "bert", "--batch-sizes", "1", "--platforms", "cpu", "cuda",
                     "--time-budget-s", "0.2", "--run-id", "cli-run", "--db", str(db)]) == 0
    assert cli.main(["results", "--db", str(db), "--run-id", "cli-run"]) == 0
    out = capsys.readouterr().out
    assert "cli-run" in out and " ok " in out and "skipped" in out  # cuda is absent here: a skipped row, no number


def test_remeasure_noisy_says_when_nothing_is_noisy(tmp_path, capsys):
    db = tmp_path / "b.duckdb"
    assert cli.main(["bench", "--models", "bert", "--batch-sizes", "1", "--time-budget-s", "0.2", "--run-id", "r",
                     "--db", str(db)]) == 0
    capsys.readouterr()
    from kit import storage

    con = storage.connect(db, read_only=True)
    noisy = storage.results_frame(con)["noisy"].any()
    con.close()
    assert cli.main(["remeasure-noisy", "--db", str(db), "--run-prefix", "other"]) == 0
    assert "no noisy results" in capsys.readouterr().out
    assert cli.main(["remeasure-noisy", "--db", str(db), "--converged-too"]) == 2  # a whole store: refused
    assert "needs a run prefix" in capsys.readouterr().err
    assert cli.main(["remeasure-noisy", "--db", str(db), "--run-prefix", "pred", "--sample", "0"]) == 2
    assert "sample must be a positive number of configurations, got 0" in capsys.readouterr().err
    if not noisy:  # a converged tiny run leaves nothing to measure again
        assert cli.main(["remeasure-noisy", "--db", str(db)]) == 0
        assert "0 measured again" in capsys.readouterr().out


def test_python_dash_m_kit_runs():
    done = subprocess.run([sys.executable, "-m", "kit", "models"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "bert" in done.stdout


def test_report_names_an_unknown_notebook_before_running_any(tmp_path, capsys):
    assert cli.main(["report", "--notebooks", "01_benchmark", "07_nope", "--out", str(tmp_path)]) == 2
    assert "07_nope" in capsys.readouterr().err and not any(tmp_path.iterdir())
