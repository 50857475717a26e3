"""Analysis frames written to CSV and Parquet, nested values as JSON text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _exportable(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=[c for c in df.columns if str(c).startswith("_")])
    for column in [c for c in out.columns if out[c].dtype == "object"]:
        if out[column].map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).any():
            out[column] = out[column].map(lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v,
                                                               default=str) if v is not None else None)
    return out


def export_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an analysis frame to CSV (nested values as JSON text); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _exportable(df).to_csv(path, index=False)
    return path


def export_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an analysis frame to Parquet (nested values as JSON text); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _exportable(df).to_parquet(path, index=False)
    return path


def export_table(df: pd.DataFrame, directory: str | Path, stem: str) -> dict[str, str]:
    """Write an analysis frame as `<directory>/<stem>.csv` and `.parquet`; returns {"csv": path, "parquet": path}."""
    directory = Path(directory)
    return {"csv": str(export_csv(df, directory / f"{stem}.csv")),
            "parquet": str(export_parquet(df, directory / f"{stem}.parquet"))}
