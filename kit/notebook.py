"""Values a notebook records for tests and the report index: `record` inside a notebook, `read_recorded` outside."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

MIME = "application/x-benchkit-record+json"


def record(name: str, value: Any) -> None:
    """Display a named JSON value with a private MIME type, so the executed .ipynb carries it (scrapbook-style)."""
    from IPython.display import display

    payload = {"name": name, "value": _finite(json.loads(json.dumps(value, default=str)))}
    display({MIME: payload, "text/plain": f"recorded {name} = {payload['value']!r}"}, raw=True)


def _finite(value: Any) -> Any:
    """The value with NaN and infinities as None (JSON has no such numbers; the kernel's messages must be JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def read_recorded(ipynb: str | Path) -> dict[str, Any]:
    """Every value recorded in an executed notebook, by name (the last one wins)."""
    notebook = nbformat.read(str(ipynb), as_version=4)
    values: dict[str, Any] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(MIME)
            if payload:
                values[payload["name"]] = payload["value"]
    return values


HEADLINE_TAG = "headline"  # a cell with this tag is moved to the top of the published page (kit.pipeline)


def headline(figures: dict[str, str | None], title: str = "In short") -> None:
    """Show a notebook's answer as a short block of labelled, formatted figures (figures that are None are left
    out), and record it for the report index. Its cell, tagged `headline`, leads the published page."""
    from html import escape

    from IPython.display import HTML, display

    shown = {label: value for label, value in figures.items() if value not in (None, "")}
    items = "".join(f"<li>{escape(label)}: <b>{escape(str(value))}</b></li>" for label, value in shown.items())
    display(HTML(f"<div class='benchkit-headline' style='border-left:4px solid #4c72b0;padding:0.2em 1em;"
                 f"margin:0.5em 0'><b>{escape(title)}</b><ul>{items}</ul></div>"))
    record("headline_figures", shown)


@dataclass(frozen=True)
class Headline:
    """A notebook's answer: `values` recorded by name for the tests and the index, `figures` shown formatted at the
    top of its published page (kit.headlines builds one per notebook)."""

    values: dict[str, Any]
    figures: dict[str, str | None]


def publish(answer: Headline) -> None:
    """Record each value and show the figures: the one call of a notebook's last cell, tagged `headline`."""
    for name, value in answer.values.items():
        record(name, value)
    headline(answer.figures)


def ms(seconds: float | None) -> str | None:
    """Seconds as milliseconds with three significant digits: '1.23 ms', '412 ms'."""
    return None if seconds is None or seconds != seconds else f"{seconds * 1e3:.3g} ms"


def pct(fraction: float | None, signed: bool = False) -> str | None:
    """A fraction as a percentage with one decimal: '12.3 %' (signed: '+12.3 %')."""
    if fraction is None or fraction != fraction:
        return None
    return f"{fraction * 100:+.1f} %" if signed else f"{fraction * 100:.1f} %"


def rate(value: float | None, unit: str) -> str | None:
    """A rate with three significant digits and its unit: '1.25e+03 items/s' becomes '1,250 items/s'."""
    if value is None or value != value:
        return None
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def gib(n_bytes: float | None) -> str | None:
    """Bytes in GiB (MiB below 1 GiB): '2.4 GiB', '367 MiB'."""
    if n_bytes is None or n_bytes != n_bytes:
        return None
    return f"{n_bytes / 2**30:.2g} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.3g} MiB"


def times(ratio: float | None) -> str | None:
    """A ratio as a multiplier: '1.84x'."""
    return None if ratio is None or ratio != ratio else f"{ratio:.3g}x"
