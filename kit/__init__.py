"""Benchkit: measure ML models on the hardware present, store every run in DuckDB, and turn results into decisions.

The names below are the public API; submodules (plots, analysis, predict, recommend, memory, pipeline, notebook...)
load on first use so that `import kit` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SweepSpec": "kit.config",
    "Job": "kit.config",
    "load_parameters": "kit.config",
    "spec_from_parameters": "kit.config",
    "Record": "kit.records",
    "records_frame": "kit.records",
    "SCHEMA_VERSION": "kit.records",
    "run_sweep": "kit.runners.sweep",
    "connect": "kit.storage",
    "load_records": "kit.storage",
    "results_frame": "kit.storage",
    "summary_table": "kit.tables",
    "reasons_table": "kit.tables",
    "ConfigError": "kit.errors",
    "KitError": "kit.errors",
}
_SUBMODULES = {"analysis", "backends", "config", "coverage", "environment", "memory", "distributed", "notebook",
               "headlines", "pipeline", "plots", "predict", "recommend", "records", "stats", "storage", "tables",
               "timing", "zoo", "microbench", "explore", "deviation"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"kit.{name}")
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


__all__ = [*_EXPORTS, *sorted(_SUBMODULES)]
