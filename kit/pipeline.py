"""Execute parameterised notebooks with papermill, render them with nbconvert, and write an index page."""

from __future__ import annotations

import datetime as dt
import html
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from kit.config import load_parameters
from kit.errors import ConfigError, KitError
from kit.notebook import read_recorded

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PARAMETERS = REPO / "parameters"
ORDER = ("01_benchmark", "02_comparative_analysis", "03_training_vs_inference", "04_prediction",
         "05_recommendation", "06_distributed", "explore")


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
    """Render an executed notebook to a standalone HTML file (optionally without code cells)."""
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                            exclude_output_prompt=exclude_input)
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
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


def run_all(out_dir: str | Path = "outputs", *, tiny: bool = False, stems: list[str] | None = None,
            extra_parameters: dict[str, Any] | None = None) -> list[Executed]:
    """Execute every notebook in order with parameters/<stem>.yaml (or .tiny.yaml), then write index.html."""
    known = notebook_stems()
    unknown = [s for s in stems or [] if s not in known]
    if unknown:
        raise ConfigError(f"unknown notebook(s) {unknown}; known: {', '.join(known)}")
    out_dir = Path(out_dir)
    label = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    executed = []
    for stem in stems or known:
        params = PARAMETERS / (f"{stem}.tiny.yaml" if tiny else f"{stem}.yaml")
        executed.append(execute(NOTEBOOKS / f"{stem}.ipynb", params, out_dir, run_label=label,
                                extra_parameters=extra_parameters))
    write_index(executed, out_dir / "index.html")
    return executed


def write_index(executed: list[Executed], path: Path) -> Path:
    """An index page linking every notebook's HTML, with date, host and the headline values each recorded."""
    rows = []
    for item in executed:
        rel = item.html.relative_to(path.parent)
        rel_pub = item.html_no_input.relative_to(path.parent)
        figures = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(_short(v))}</li>"
                          for k, v in item.recorded.items())
        rows.append(f"<tr><td><a href='{rel}'>{item.stem}</a> (<a href='{rel_pub}'>published</a>)</td>"
                    f"<td><ul>{figures}</ul></td></tr>")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Benchkit report</title></head><body>"
            f"<h1>Benchkit report</h1><p>{stamp} on host <b>{html.escape(socket.gethostname())}</b></p>"
            f"<table border='1' cellpadding='6'><tr><th>notebook</th><th>headline figures</th></tr>"
            f"{''.join(rows)}</table></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
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
