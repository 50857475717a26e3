"""Readable tables of records for the terminal, the README and notebooks."""

from __future__ import annotations

import pandas as pd

from kit.records import Record, records_frame

SUMMARY_COLUMNS = ["model", "mode", "platform", "precision", "batch_size", "seq_len", "status", "n_samples",
                   "latency_p50_ms", "latency_p99_ms", "ci_pct", "throughput_items_per_s", "peak_memory_mb",
                   "startup_s", "note"]


def summary_table(records: list[Record], status: str | None = None) -> pd.DataFrame:
    """One line per configuration (only those with `status` when given) with latencies in ms, CI as ± % of the
    median, memory in MiB, and status notes."""
    records = [r for r in records if status is None or r.status == status]
    if not records:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    df = records_frame(records)
    out = df[["model", "mode", "platform", "precision", "batch_size", "seq_len", "status", "n_samples"]].copy()
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
    if record.extra.get("origin"):
        return f"imported from {record.extra['origin']} {record.extra.get('tool_version') or ''}".strip()
    return "noisy: CI target not reached" if record.noisy else ""


REASON_COLUMNS = ["status", "reason", "configurations", "examples"]


def reasons_table(records: list[Record]) -> pd.DataFrame:
    """Configurations that were not measured, counted per status and reason (the reason's first line, whole), with
    up to three of them as examples: what sits under a table of the measured ones."""
    rows: dict[tuple[str, str], list[str]] = {}
    for record in records:
        if record.status != "ok":
            reason = record.reason.splitlines()[0] if record.reason else ""
            rows.setdefault((record.status, reason), []).append(
                f"{record.model} {record.platform}/{record.precision} bs{record.batch_size}")
    table = [{"status": status, "reason": reason, "configurations": len(names),
              "examples": ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")}
             for (status, reason), names in rows.items()]
    return pd.DataFrame(table, columns=REASON_COLUMNS).sort_values(
        ["status", "configurations"], ascending=[True, False], kind="stable").reset_index(drop=True)
