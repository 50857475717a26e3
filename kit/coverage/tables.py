"""Tables of a coverage run: one row per architecture and platform, the matrix by modality x platform, the failure
reasons grouped with counts, and each platform's speed relative to PyTorch on the CPU."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd

from kit.records import Record

COLUMNS = ("model_type", "modality", "platform", "status", "stage", "reason", "latency_p50_ms",
           "throughput_items_per_s", "n_params", "model_class")
NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
REASON_CHARS = 160


def coverage_frame(records: list[Record]) -> pd.DataFrame:
    """One row per coverage record: architecture, modality, platform, status, stage, reason and its figures."""
    rows = [{"model_type": r.model, "modality": r.extra.get("modality", ""), "platform": r.platform,
             "status": r.status, "stage": r.extra.get("stage", ""), "reason": r.reason,
             "latency_p50_ms": r.latency_p50_s * 1e3 if r.latency_p50_s else np.nan,
             "throughput_items_per_s": r.throughput_items_per_s if r.throughput_items_per_s else np.nan,
             "n_params": r.n_params, "model_class": r.extra.get("model_class", "")}
            for r in records if r.extra.get("coverage")]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def coverage_frame_from_results(results: pd.DataFrame) -> pd.DataFrame:
    """coverage_frame of a storage.results_frame selection (extra as JSON text)."""
    records = [Record.from_json({**row, "extra": json.loads(row["extra"] or "{}"), "samples_s": ()})
               for row in results.to_dict("records")]
    return coverage_frame(records)


def matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Share of architectures that ran (ok) per modality x platform, with an 'all' row, and the number attempted in
    `n` (per modality: the architectures; every platform attempts each of them)."""
    if frame.empty:
        return pd.DataFrame()
    with_all = pd.concat([frame, frame.assign(modality="all")], ignore_index=True)
    share = with_all.assign(ok=with_all["status"].eq("ok")).pivot_table(
        index="modality", columns="platform", values="ok", aggfunc="mean")
    share["n"] = with_all.groupby("modality")["model_type"].nunique()
    order = [m for m in share.sort_values("n", ascending=False).index if m != "all"] + ["all"]
    return share.loc[order].rename_axis(columns=None)


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per platform and status (ok, failed, skipped)."""
    if frame.empty:
        return pd.DataFrame()
    return frame.pivot_table(index="platform", columns="status", values="model_type", aggfunc="count", fill_value=0)


def reason_group(reason: str) -> str:
    """A failure reason with its numbers replaced by N and cut to REASON_CHARS, so that the same error on other
    shapes groups together."""
    return NUMBER.sub("N", reason)[:REASON_CHARS]


def failure_reasons(frame: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """Failed rows grouped by platform, stage and reason: the count and a few of the architectures, most common
    first."""
    failed = frame[frame["status"] == "failed"]
    if failed.empty:
        return pd.DataFrame(columns=["platform", "stage", "reason", "count", "examples"])
    grouped = (failed.assign(reason=failed["reason"].map(reason_group))
               .groupby(["platform", "stage", "reason"], as_index=False)
               .agg(count=("model_type", "size"), examples=("model_type", lambda s: ", ".join(sorted(s)[:4]))))
    grouped = grouped.sort_values(["count", "platform"], ascending=[False, True], ignore_index=True)
    return grouped.head(top) if top else grouped


def failures_by_stage(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed rows per platform and stage."""
    failed = frame[frame["status"] == "failed"]
    if failed.empty:
        return pd.DataFrame()
    return failed.pivot_table(index="stage", columns="platform", values="model_type", aggfunc="count", fill_value=0)


def speed_vs_cpu(frame: pd.DataFrame) -> pd.DataFrame:
    """Per architecture that ran on the CPU and another platform: that platform's speed-up over PyTorch on the CPU
    (CPU median latency / platform median latency; above 1 the platform is faster)."""
    ok = frame[frame["status"] == "ok"]
    cpu = ok[ok["platform"] == "cpu"].set_index("model_type")["latency_p50_ms"]
    other = ok[ok["platform"] != "cpu"]
    out = other.assign(cpu_latency_p50_ms=other["model_type"].map(cpu)).dropna(subset=["cpu_latency_p50_ms"])
    out = out.assign(speedup_vs_cpu=out["cpu_latency_p50_ms"] / out["latency_p50_ms"])
    return out[["model_type", "modality", "platform", "latency_p50_ms", "cpu_latency_p50_ms", "speedup_vs_cpu"]]\
        .sort_values(["platform", "speedup_vs_cpu"], ignore_index=True)


def speed_summary(speed: pd.DataFrame) -> pd.DataFrame:
    """Per platform: architectures compared, the geometric mean and quartiles of the speed-up over the CPU, and the
    share where the platform is faster."""
    if speed.empty:
        return pd.DataFrame(columns=["platform", "n", "geomean", "p25", "median", "p75", "faster_share"])
    return speed.groupby("platform", as_index=False)["speedup_vs_cpu"].agg(
        n="size", geomean=lambda s: float(np.exp(np.log(s).mean())), p25=lambda s: s.quantile(0.25),
        median="median", p75=lambda s: s.quantile(0.75), faster_share=lambda s: (s > 1).mean())


def headline_figures(frame: pd.DataFrame, speed: pd.DataFrame) -> dict[str, Any]:
    """The figures a coverage notebook leads with: architectures attempted, ok share per platform, the most common
    failure and the geometric-mean speed-up per platform."""
    from kit.notebook import pct, times

    figures: dict[str, Any] = {"architectures attempted": str(frame["model_type"].nunique())}
    for platform, rows in frame.groupby("platform"):
        figures[f"run on {platform}"] = f"{pct(rows['status'].eq('ok').mean())} ({rows['status'].eq('ok').sum()})"
    reasons = failure_reasons(frame, top=1)
    if len(reasons):
        top = reasons.iloc[0]
        figures["most common failure"] = f"{top['reason'][:80]} ({top['platform']}, {top['stage']}: {top['count']})"
    for _, row in speed_summary(speed).iterrows():
        figures[f"{row['platform']} speed vs CPU (geometric mean)"] = f"{times(row['geomean'])} over {row['n']}"
    return figures
