"""Per-platform charts of results: throughput, latency, memory or any metric as grouped bars, and batch scaling."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from kit.plots.figures import HUE_TITLE, MIB, _figure, _grouped_bars, _labels, _no_data, _ok, _palette


def _bar_chart(df: pd.DataFrame, value: str, scale: float, title: str, ylabel: str,
               err: tuple[str, str] | None = None) -> Figure:
    frame = _ok(df)
    frame = frame[frame[value].notna()] if value in frame else pd.DataFrame()
    if frame.empty:
        return _no_data(title, "configuration", ylabel)
    columns = [value, *(err or ())]
    frame = frame.assign(**{c: frame[c].astype(float) * scale for c in columns})
    frame["_x"], described = _labels(frame)
    fig = _figure(max(6.0, 1.1 * frame["_x"].nunique() * max(1, frame["_hue"].nunique()) ** 0.5 + 2))
    ax = fig.add_subplot()
    _grouped_bars(ax, frame, value, err)
    ax.set(title=title, xlabel=f"configuration ({described})", ylabel=ylabel)
    return fig


def median_throughput(df: pd.DataFrame) -> pd.DataFrame:
    """Adds throughput at the median latency (batch / p50) and its 95% CI (batch / the median's CI bounds)."""
    batch = df["batch_size"].astype(float)
    p50 = df["latency_p50_s"].astype(float).fillna(df["latency_mean_s"].astype(float))
    return df.assign(throughput_p50_items_per_s=batch / p50, throughput_ci_low=batch / df["ci_high_s"].astype(float),
                     throughput_ci_high=batch / df["ci_low_s"].astype(float))


def throughput_by_platform(df: pd.DataFrame) -> Figure:
    """Throughput at the median latency (items/s, higher is better) with its 95% CI, per platform and precision."""
    frame = median_throughput(df) if df is not None and not df.empty else df
    return _bar_chart(frame, "throughput_p50_items_per_s", 1.0,
                      "Throughput by platform and precision (higher is better; bars: 95% CI)",
                      "throughput = batch / median latency (items/s)", err=("throughput_ci_low", "throughput_ci_high"))


def latency_by_platform(df: pd.DataFrame) -> Figure:
    """Median latency per iteration (ms, lower is better) with the 95% CI of the median as error bars."""
    frame = df
    if df is not None and {"latency_p50_s", "latency_mean_s"} <= set(df.columns):  # legacy imports: mean only
        frame = df.assign(latency_p50_s=df["latency_p50_s"].fillna(df["latency_mean_s"]))
    return _bar_chart(frame, "latency_p50_s", 1e3, "Median latency per iteration (lower is better; bars: 95% CI)",
                      "p50 latency (ms)", err=("ci_low_s", "ci_high_s"))


def memory_by_platform(df: pd.DataFrame) -> Figure:
    """Peak memory (MiB) per configuration and platform/precision, as measured by each platform's tracker."""
    return _bar_chart(df, "peak_memory_bytes", 1 / MIB, "Peak memory by platform and precision (lower is better)",
                      "peak memory (MiB)")


def batch_scaling(df: pd.DataFrame) -> Figure:
    """Throughput against batch size (log2 axis), one panel per model and mode, one line per platform/precision."""
    title, xlabel, ylabel = "Throughput scaling with batch size", "batch size (log2 scale)", "throughput (items/s)"
    frame = _ok(df)
    if frame.empty:
        return _no_data(title, xlabel, ylabel)
    frame["_panel"], _ = _labels(frame, ("model", "size", "mode", "seq_len", "variant"))
    panels = list(dict.fromkeys(frame.sort_values(["model", "mode"])["_panel"]))
    palette = _palette(sorted(frame["_hue"].unique()))
    ncols = min(3, len(panels))
    fig = _figure(4.5 * ncols + 1.5, 3.6 * math.ceil(len(panels) / ncols))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(math.ceil(len(panels) / ncols), ncols, i + 1)
        sub = frame[frame["_panel"] == panel].sort_values("batch_size")
        for hue, line in sub.groupby("_hue"):
            ax.plot(line["batch_size"], line["throughput_items_per_s"], marker="o", color=palette[hue], label=hue)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sub["batch_size"].unique()), [str(b) for b in sorted(sub["batch_size"].unique())])
        ax.set(title=panel.replace("\n", ", "), xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    handles = [h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]]
    labels = [lab for ax in fig.axes for lab in ax.get_legend_handles_labels()[1]]
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), title=HUE_TITLE, loc="outside right upper", fontsize="small")
    fig.suptitle(title)
    return fig


def metric_chart(df: pd.DataFrame, metric: str, ylabel: str, scale: float = 1.0, title: str | None = None) -> Figure:
    """Any numeric result column per configuration, one bar per platform/precision (scale converts units)."""
    return _bar_chart(df, metric, scale, title or f"{ylabel} by platform and precision", ylabel)
