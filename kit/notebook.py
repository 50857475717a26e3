"""Values a notebook records for tests and the report index: `record` inside a notebook, `read_recorded` outside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat

MIME = "application/x-benchkit-record+json"


def record(name: str, value: Any) -> None:
    """Display a named JSON value with a private MIME type, so the executed .ipynb carries it (scrapbook-style)."""
    from IPython.display import display

    payload = {"name": name, "value": json.loads(json.dumps(value, default=str))}
    display({MIME: payload, "text/plain": f"recorded {name} = {payload['value']!r}"}, raw=True)


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
