"""Readable tables of records for the terminal, the README and notebooks."""

from __future__ import annotations

import pandas as pd

from kit.records import Record, records_frame

SUMMARY_COLUMNS = ["model", "mode", "platform", "precision", "batch_size", "status", "n_samples", "latency_p50_ms",
                   "latency_p99_ms", "ci_pct", "throughput_items_per_s", "peak_memory_mb", "startup_s", "note"]


def summary_table(records: list[Record]) -> pd.DataFrame:
    """One line per configuration with latencies in ms, CI as ± % of the median, memory in MiB, and status notes."""
    if not records:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    df = records_frame(records)
    out = df[["model", "mode", "platform", "precision", "batch_size", "status", "n_samples"]].copy()
    out["latency_p50_ms"] = (df["latency_p50_s"].astype(float) * 1e3).round(3)
    out["latency_p99_ms"] = (df["latency_p99_s"].astype(float) * 1e3).round(3)
    out["ci_pct"] = (df["ci_rel_halfwidth"].astype(float) * 100).round(2)
    out["throughput_items_per_s"] = df["throughput_items_per_s"].astype(float).round(2)
    out["peak_memory_mb"] = (df["peak_memory_bytes"].astype(float) / 2**20).round(1)
    out["startup_s"] = df["startup_s"].astype(float).round(3)
    out["note"] = [_note(r) for r in records]
    return out[SUMMARY_COLUMNS]


def _note(record: Record) -> str:
    if record.status != "ok":
        return record.reason.splitlines()[0][:100] if record.reason else ""
    return "noisy: CI target not reached" if record.noisy else ""
