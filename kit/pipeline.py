"""Execute parameterised notebooks with papermill, render them with nbconvert, and write an index page."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from kit import progress
from kit.config import load_parameters
from kit.errors import ConfigError, KitError
from kit.notebook import HEADLINE_TAG, read_recorded
from kit.notebook import MIME as RECORD_MIME

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PARAMETERS = REPO / "parameters"
ORDER = ("01_benchmark", "02_comparative_analysis", "03_training_vs_inference", "04_prediction",
         "05_recommendation", "06_distributed", "07_generation", "08_coverage", "explore")


@dataclass(frozen=True)
class Executed:
    """Paths of one executed notebook and the values it recorded."""

    stem: str
    ipynb: Path
    html: Path
    html_no_input: Path
    recorded: dict[str, Any] = field(default_factory=dict)


class NotebookFailed(KitError):
    """A notebook cell raised; the message names the notebook and papermill's failing cell."""


def notebook_stems() -> list[str]:
    """Notebook stems in pipeline order (those present in notebooks/)."""
    present = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    return [s for s in ORDER if s in present] + sorted(present - set(ORDER))


def render_html(ipynb: Path, out: Path, *, exclude_input: bool = False) -> Path:
    """Render an executed notebook to a standalone HTML file; without code cells (`exclude_input`, the published
    page) it also leaves out the values recorded for tests and the index (kit.notebook.record)."""
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                            exclude_output_prompt=exclude_input)
    notebook = nbformat.read(str(ipynb), as_version=4)
    if exclude_input:
        for cell in notebook.cells:
            if "outputs" in cell:
                cell.outputs = [o for o in cell.outputs if RECORD_MIME not in o.get("data", {})]
        notebook.cells = [c for c in notebook.cells if c.cell_type != "code" or c.outputs]
        # the answer first: cells tagged `headline` (kit.notebook.headline) go right after the title
        leading = [c for c in notebook.cells if HEADLINE_TAG in c.get("metadata", {}).get("tags", [])]
        rest = [c for c in notebook.cells if not any(c is cell for cell in leading)]
        notebook.cells = rest[:1] + leading + rest[1:]
    body, _ = exporter.from_notebook_node(notebook)
    out.write_text(body, encoding="utf-8")
    return out


def execute(notebook: str | Path, params_yaml: str | Path | None, out_dir: str | Path, *,
            run_label: str | None = None, extra_parameters: dict[str, Any] | None = None) -> Executed:
    """Run one notebook with the YAML's parameters into out_dir/<stem>/<label>.ipynb, then render HTML twice."""
    notebook = Path(notebook)
    parameters = load_parameters(params_yaml) if params_yaml else {}
    parameters.update(extra_parameters or {})
    label = run_label or dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    target = Path(out_dir) / notebook.stem
    target.mkdir(parents=True, exist_ok=True)
    ipynb = target / f"{label}.ipynb"
    env_before = os.environ.get("HF_HUB_OFFLINE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        papermill.execute_notebook(str(notebook), str(ipynb), parameters=parameters, cwd=str(REPO),
                                   kernel_name="python3", progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        raise NotebookFailed(f"{notebook.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from exc
    finally:
        if env_before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
    html_path = render_html(ipynb, target / f"{label}.html")
    published = render_html(ipynb, target / f"{label}.published.html", exclude_input=True)
    return Executed(notebook.stem, ipynb, html_path, published, read_recorded(ipynb))


PROFILES = {"quick": ".quick.yaml", "full": ".yaml", "tiny": ".tiny.yaml"}  # profile -> parameter file suffix


def parameters_for(stem: str, profile: str) -> Path:
    """parameters/<stem><suffix> of a profile (quick: real sizes in minutes; full: the whole study; tiny: tests)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    return PARAMETERS / f"{stem}{PROFILES[profile]}"


def expected_seconds(profile: str) -> dict[str, float]:
    """How long each notebook of a profile took on the reference machine (parameters/profiles.yaml), for ETAs."""
    path = PARAMETERS / "profiles.yaml"
    table = load_parameters(path) if path.is_file() else {}
    return {stem: float(s) for stem, s in (table.get(profile) or {}).items()}


@dataclass
class Entry:
    """One notebook of a report: its status (pending, running, done, failed), duration, outputs or error."""

    stem: str
    status: str = "pending"
    seconds: float | None = None
    executed: Executed | None = None
    error: str = ""


def run_all(out_dir: str | Path = "outputs", *, profile: str = "quick", stems: list[str] | None = None,
            extra_parameters: dict[str, Any] | None = None,
            echo: Callable[[str], None] | None = None) -> list[Entry]:
    """Execute every notebook in order with its profile's parameters, rewriting out_dir/index.html before and after
    each one; a failing notebook is recorded with its error and the others still run. `echo` gets a line per
    notebook (with the time left) and the live progress of its sweeps."""
    known = notebook_stems()
    unknown = [s for s in stems or [] if s not in known]
    if unknown:
        raise ConfigError(f"unknown notebook(s) {unknown}; known: {', '.join(known)}")
    stems = stems or known
    missing = [str(p) for p in (parameters_for(s, profile) for s in stems) if not p.is_file()]
    if missing:
        raise ConfigError(f"profile {profile!r} has no parameter file {', '.join(missing)}")
    out_dir, label = Path(out_dir), dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    entries, index = [Entry(s) for s in stems], out_dir / "index.html"
    shown = sorted(earlier_entries(out_dir, [s for s in known if s not in stems]) + entries,
                   key=lambda e: known.index(e.stem))
    upgrade_stores(stores_read(stems, profile, extra_parameters), echo)
    expected, started = expected_seconds(profile), time.monotonic()
    for number, entry in enumerate(entries, 1):
        entry.status = "running"
        write_index(shown, index, profile)
        left = _time_left(entries, expected, time.monotonic() - started)
        _say(echo, f"[{number}/{len(entries)}] {entry.stem}: running ({_elapsed(started)} so far, about {left} left)")
        begun = time.monotonic()
        try:
            with _watched(out_dir, echo):
                entry.executed = execute(NOTEBOOKS / f"{entry.stem}.ipynb", parameters_for(entry.stem, profile),
                                         out_dir, run_label=label, extra_parameters=extra_parameters)
            entry.status = "done"
        except NotebookFailed as exc:
            entry.status, entry.error = "failed", str(exc)
        entry.seconds = time.monotonic() - begun
        write_index(shown, index, profile)
        _say(echo, f"[{number}/{len(entries)}] {entry.stem}: {entry.status} in {progress.duration(entry.seconds)}"
             + (f": {entry.error}" if entry.error else ""))
    return entries


def stores_read(stems: list[str], profile: str, extra_parameters: dict[str, Any] | None = None) -> list[Path]:
    """The stores the notebooks read (their db_path, or the one every notebook is given), once each."""
    given = (extra_parameters or {}).get("db_path")
    paths = {Path(given or load_parameters(parameters_for(s, profile)).get("db_path") or "outputs/benchkit.duckdb")
             for s in stems}
    return sorted(paths)


def upgrade_stores(paths: list[Path], echo: Callable[[str], None] | None = None) -> None:
    """Store the facts that results of an older kit lack (`benchkit upgrade`) in each existing store, once, before
    the notebooks read it: otherwise each read counts them again in memory (minutes on a large store)."""
    from kit import storage
    from kit.predict.upgrade import upgrade_store, upgrade_summary

    for path in (p for p in paths if p.is_file()):
        con = storage.connect(path)
        try:
            counts = upgrade_store(con)
        finally:
            con.close()
        if any(counts.values()):
            _say(echo, f"{path}: what older results lacked: {upgrade_summary(counts)}")


def earlier_entries(out_dir: Path, stems: list[str]) -> list[Entry]:
    """The latest earlier execution of each of these notebooks in out_dir (out_dir/<stem>/<label>.ipynb with its
    HTML), as done entries, so that running some notebooks keeps the others on the index page."""
    entries = []
    for stem in stems:
        runs = sorted(p for p in (out_dir / stem).glob("*.ipynb") if p.with_suffix(".html").is_file()
                      and p.with_suffix(".published.html").is_file())
        if runs:
            ipynb = runs[-1]
            executed = Executed(stem, ipynb, ipynb.with_suffix(".html"), ipynb.with_suffix(".published.html"),
                                read_recorded(ipynb))
            entries.append(Entry(stem, "done", None, executed))
    return entries


def _say(echo: Callable[[str], None] | None, line: str) -> None:
    if echo is not None:
        echo(line)


def _elapsed(started: float) -> str:
    return progress.duration(time.monotonic() - started)


def _time_left(entries: list[Entry], expected: dict[str, float], elapsed: float) -> str:
    """The expected time of the notebooks not yet done, scaled by how the finished ones compared with theirs."""
    done = [e for e in entries if e.seconds is not None]
    known = [e for e in done if e.stem in expected]
    pace = sum(e.seconds for e in known) / sum(expected[e.stem] for e in known) if known else 1.0
    todo = [expected.get(e.stem) for e in entries if e.seconds is None]
    return "?" if any(t is None for t in todo) else progress.duration(pace * sum(todo))


@contextlib.contextmanager
def _watched(out_dir: Path, echo: Callable[[str], None] | None) -> Iterator[None]:
    """Point the notebook kernel's sweeps at a progress file (BENCHKIT_PROGRESS_FILE) and echo its changes."""
    if echo is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ".progress.json"
    path.unlink(missing_ok=True)
    before = os.environ.get(progress.PROGRESS_ENV)
    os.environ[progress.PROGRESS_ENV] = str(path)
    try:
        with progress.Watcher(path, lambda line: echo("    " + line)):
            yield
    finally:
        if before is None:
            os.environ.pop(progress.PROGRESS_ENV, None)
        else:
            os.environ[progress.PROGRESS_ENV] = before
        path.unlink(missing_ok=True)


STATUS_COLOURS = {"done": "#e6f4ea", "running": "#fff4ce", "failed": "#fde7e9", "pending": "#f1f3f4"}


def write_index(entries: list[Entry], path: Path, profile: str = "") -> Path:
    """The report's index page: every notebook with its status, duration, links and headline figures (or error);
    while notebooks are still pending or running it reloads itself every 30 s."""
    rows = []
    for entry in entries:
        item = entry.executed
        if item is not None:
            name = (f"<a href='{item.html.relative_to(path.parent)}'>{entry.stem}</a> "
                    f"(<a href='{item.html_no_input.relative_to(path.parent)}'>published</a>)")
            body = "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(_short(v))}</li>"
                                    for k, v in item.recorded.items()) + "</ul>"
        else:
            name, body = entry.stem, f"<pre>{html.escape(entry.error)}</pre>" if entry.error else ""
        took = progress.duration(entry.seconds) if entry.seconds is not None else ""
        rows.append(f"<tr style='background:{STATUS_COLOURS[entry.status]}'><td>{name}</td><td>{entry.status}</td>"
                    f"<td>{took}</td><td>{body}</td></tr>")
    busy = any(e.status in ("pending", "running") for e in entries)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    refresh = "<meta http-equiv='refresh' content='30'>" if busy else ""
    where = f"{'updated' if busy else 'finished'} {stamp} on host <b>{html.escape(socket.gethostname())}</b>"
    where += f", profile <b>{html.escape(profile)}</b>" if profile else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Benchkit report</title>{refresh}</head><body>"
            f"<h1>Benchkit report</h1><p>{where}</p><table border='1' cellpadding='6'><tr><th>notebook</th>"
            f"<th>status</th><th>time</th><th>headline figures</th></tr>{''.join(rows)}</table></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.tmp")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return path


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too, so the index stays readable."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _short(value: Any) -> str:
    text = str(_rounded(value))
    return text if len(text) < 200 else text[:197] + "..."
