"""Results as analysis frames: a store, Records, a DataFrame or an export, normalised, with raw samples.

Also the helpers the comparisons share: latest ok result per configuration, median latency, identity, Holm correction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import storage
from kit.errors import ConfigError
from kit.records import Record, records_frame

# A configuration: seq_len as `_seq` (0 = the model's default) and `variant` (the overrides/training-options hash
# suffix of config_key) so that missing values and option variants match reliably.
KEY = ["model", "size", "mode", "platform", "precision", "batch_size", "_seq", "variant"]
WORKLOAD = ["model", "size", "mode", "batch_size", "_seq", "variant"]  # one workload across platforms/precisions
IDENTITY = ["model", "size", "mode", "platform", "precision", "batch_size", "seq_len", "variant"]
FILE_SUFFIXES = (".csv", ".parquet")
EXPORT_COLUMNS = ("run_id", "config_key", "status", "latency_p50_s")  # what a storage export holds
Source = storage.Connection | list[Record] | pd.DataFrame | str | Path


def _variant(config_key: Any) -> str:
    parts = str(config_key).split("|")
    is_job_key = len(parts) > 7 and parts[5].startswith("bs")  # kit.config.Job.config_key layout
    return "|".join(parts[7:]) if is_job_key else ""


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "status" not in frame:
        frame["status"] = "ok"
    for name in ("size", "config_key", "reason"):
        frame[name] = frame[name].fillna("").astype(str) if name in frame else ""
    frame["batch_size"] = pd.to_numeric(frame["batch_size"]).astype(int)
    frame["seq_len"] = pd.to_numeric(frame.get("seq_len"), errors="coerce").astype("Int64")
    frame["_seq"] = frame["seq_len"].fillna(0).astype(int)
    frame["variant"] = [_variant(k) for k in frame["config_key"]]
    order = "run_started_at" if "run_started_at" in frame else "created_at"
    frame["_order"] = pd.to_datetime(frame[order], errors="coerce", utc=True) if order in frame else pd.NaT
    if "samples" not in frame:
        frame["samples"] = [_parse_samples(s) for s in frame["samples_s"]] if "samples_s" in frame else None
    if "rounds" not in frame:
        parsed = [_parse_samples(s) for s in frame["sample_rounds"]] if "sample_rounds" in frame else []
        frame["rounds"] = [None if r is None else r.astype(int) for r in parsed] if parsed else None
    return frame


def _parse_samples(value: Any) -> np.ndarray | None:
    values = json.loads(value) if isinstance(value, str) else value
    return np.asarray(values, dtype=float) if values is not None and len(values) else None


def _read_export(path: Path) -> pd.DataFrame:
    if path.suffix not in FILE_SUFFIXES or not path.is_file():
        raise ConfigError(f"{str(path)!r} is not an existing {' or '.join(FILE_SUFFIXES)} file from storage.export_*")
    frame = _read_table(path)
    missing = [c for c in EXPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{str(path)!r} is not a results export (no {', '.join(missing)} column); write one with "
                          "`benchkit export` (storage.export_csv / export_parquet), not an analysis table")
    samples_path = path.with_name(f"{path.stem}_samples{path.suffix}")
    if samples_path.is_file():
        frame = _with_samples(frame, _read_table(samples_path))
    else:
        frame["samples"] = frame["rounds"] = None
    frame.attrs["samples_missing"] = not samples_path.is_file()
    return frame


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; ConfigError naming the file when it is not one (damaged, empty, other)."""
    read = pd.read_csv if path.suffix == ".csv" else pd.read_parquet
    try:
        return read(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read {str(path)!r} as {path.suffix[1:]}: {first}") from exc


def _group_samples(samples: pd.DataFrame, result_ids: pd.Series, column: str = "latency_s") -> list[np.ndarray | None]:
    if column not in samples:  # an export written before samples kept their round
        return [None] * len(result_ids)
    groups = {rid: g[column].to_numpy(dtype=float) for rid, g in samples.groupby("result_id", sort=False)}
    values = [groups.get(rid) for rid in result_ids]
    return [None if v is None or np.isnan(v).any() else v for v in values]


def _with_samples(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """`samples` (latency arrays) and `rounds` (each sample's round, None when measured without rounds)."""
    frame["samples"] = _group_samples(samples, frame["result_id"])
    frame["rounds"] = [None if r is None else r.astype(int) for r in
                       _group_samples(samples, frame["result_id"], "round_idx")]
    return frame


def results_with_samples(source: Source, run_id: str | None = None, *, samples: bool = True) -> pd.DataFrame:
    """Results of every status (results_frame layout) plus `samples`, raw latency arrays (None when not stored).

    `source` is a DuckDB connection, a list of Records, a results/records DataFrame, or a CSV/Parquet export path.
    """
    if isinstance(source, storage.Connection):
        frame = storage.results_frame(source, run_id)
        if samples:
            frame = _with_samples(frame, storage.samples_frame(source, run_id))
    elif isinstance(source, (str, Path)):
        frame = _read_export(Path(source))
    elif isinstance(source, list):
        frame = records_frame(source)
    elif isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        raise ConfigError(f"cannot read results from a {type(source).__name__}; give a connection, records, "
                          "a DataFrame or an exported CSV/Parquet path")
    if run_id is not None and not isinstance(source, storage.Connection):
        frame = frame[frame["run_id"] == run_id]
    if not samples:
        frame = frame.assign(samples=None, rounds=None)
    out = _normalise(frame)
    out.attrs = dict(frame.attrs)
    return out


def latest_ok(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok results, keeping only the latest one per configuration when several runs measured it."""
    frame = frame if "_seq" in frame else _normalise(frame)
    ok = frame[frame["status"] == "ok"]
    return ok.sort_values("_order", kind="stable", na_position="first").drop_duplicates(KEY, keep="last")


def _median_s(row: pd.Series, suffix: str = "") -> float:
    """p50 from the record, or the mean for legacy imports that stored no percentiles."""
    p50 = row.get("latency_p50_s" + suffix)
    return float(p50) if p50 is not None and not pd.isna(p50) else float(row.get("latency_mean_s" + suffix, math.nan))


def _identity(row: pd.Series) -> dict[str, Any]:
    return {name: row[name] for name in IDENTITY}
