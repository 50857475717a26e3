"""Charts of comparative analysis (kit.analysis): speed-ups over a baseline, and one metric's history."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit.plots.figures import HUE_TITLE, MIB, _figure, _labels, _no_data, _palette


def speedup_heatmap(speedup_df: pd.DataFrame) -> Figure:
    """Speed-up over the baseline (from analysis.speedup_table): workloads x platform/precision, `*` = significant."""
    baseline = speedup_df["baseline"].iloc[0] if speedup_df is not None and len(speedup_df) else "baseline"
    title = f"Speed-up over {baseline}\n(ratio of median latencies; * = significant after Holm correction)"
    frame = pd.DataFrame() if speedup_df is None or speedup_df.empty else speedup_df[speedup_df["speedup"].notna()]
    if frame.empty:
        return _no_data(title, HUE_TITLE, "workload", "no data (no speed-up has a baseline)")
    frame = frame.assign(_col=frame["platform"] + " / " + frame["precision"])
    frame["_row"], described = _labels(frame, ("model", "size", "mode", "batch_size", "seq_len", "variant"))
    frame["_row"] = frame["_row"].str.replace("\n", ", ")
    frame["_text"] = [f"{s:.2f}x" + ("*" if sig else "") for s, sig in zip(frame["speedup"], frame["significant"],
                                                                           strict=True)]
    values = np.log2(frame.pivot_table(index="_row", columns="_col", values="speedup", aggfunc="first"))
    text = frame.pivot_table(index="_row", columns="_col", values="_text", aggfunc="first").reindex_like(values)
    fig = _figure(max(7.5, 1.4 * values.shape[1] + 5), max(3.0, 0.5 * values.shape[0] + 2))
    ax = fig.add_subplot()
    limit = max(1.0, float(np.nanmax(np.abs(values.to_numpy()))))
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 plans to deprecate
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(values, ax=ax, annot=text.fillna("").to_numpy(), fmt="", cmap="RdYlGn", center=0, vmin=-limit,
                    vmax=limit, linewidths=0.5, cbar_kws={"label": "log2 speed-up (+1 = twice as fast, -1 = half)"})
    ax.set(title=title, xlabel=HUE_TITLE, ylabel=f"workload ({described})")
    return fig


def speedup_chart(speedup_df: pd.DataFrame) -> Figure:
    """Speed-up of each candidate over the baseline (analysis.speedup_table) with its 95% bootstrap CI; filled
    markers are significant after Holm correction, and the dashed line is the baseline itself (1x)."""
    baseline = speedup_df["baseline"].iloc[0] if speedup_df is not None and len(speedup_df) else "baseline"
    title = f"Speed-up over {baseline}\n(bars: 95% bootstrap CI; filled marker = significant after Holm correction)"
    xlabel, ylabel = "speed-up (baseline median latency / candidate; log2 scale; >1 is faster)", "workload"
    frame = pd.DataFrame() if speedup_df is None or speedup_df.empty else speedup_df[speedup_df["speedup"].notna()]
    if len(frame):
        frame = frame[frame["platform"] + "/" + frame["precision"] != baseline]
    if frame.empty:
        return _no_data(title, xlabel, ylabel, "no data (no candidate besides the baseline)")
    frame = frame.assign(_hue=frame["platform"] + " / " + frame["precision"])
    frame["_row"], described = _labels(frame, ("model", "size", "mode", "batch_size", "seq_len", "variant"))
    frame = frame.assign(_row=frame["_row"].str.replace("\n", ", ") + "  (" + frame["_hue"] + ")")
    frame = frame.sort_values(["_row"], ascending=False).reset_index(drop=True)
    fig = _figure(9.0, max(3.0, 0.4 * len(frame) + 1.8))
    ax = fig.add_subplot()
    for hue, color in _palette(sorted(frame["_hue"].unique())).items():
        sub = frame[frame["_hue"] == hue]
        ax.errorbar(sub["speedup"], sub.index, xerr=_interval_widths(sub), fmt="none", ecolor=color, capsize=3)
        significant = sub["significant"].fillna(False).astype(bool)
        ax.scatter(sub["speedup"], sub.index, color=color, edgecolors=color, label=hue, zorder=3,
                   facecolors=[color if s else "white" for s in significant])
    _speedup_axes(ax, frame, baseline, HUE_TITLE)
    ax.set(title=title, xlabel=xlabel, ylabel=f"{ylabel} ({described})")
    return fig


def _interval_widths(rows: pd.DataFrame) -> np.ndarray:
    """Lower and upper error-bar lengths of speed-ups from their interval columns (0 where there is none)."""
    low = (rows["speedup"] - rows["speedup_ci_low"]).fillna(0).clip(lower=0)
    high = (rows["speedup_ci_high"] - rows["speedup"]).fillna(0).clip(lower=0)
    return np.vstack([low, high])


def _speedup_axes(ax: Any, frame: pd.DataFrame, baseline: str, legend_title: str) -> None:
    """The baseline's 1x line, a log2 speed-up axis, one labelled row per configuration, legend and grid."""
    ax.axvline(1.0, color="grey", linestyle="--", label=f"{baseline} (1x)")
    ax.set_xscale("log", base=2)
    ax.set_yticks(frame.index, frame["_row"])
    ax.legend(title=legend_title, fontsize="small")
    ax.grid(axis="x", alpha=0.3)


def machine_speedup_chart(table: pd.DataFrame) -> Figure:
    """Speed-up of each machine over the baseline machine per configuration (analysis.machine_speedups), with its
    interval between runs; the dashed line is the baseline machine (1x)."""
    baseline = table["baseline_machine"].iloc[0] if table is not None and len(table) else "the baseline machine"
    title = f"Speed-up over {baseline}\n(bars: 95% interval over each run's rounds; machines are runs apart)"
    xlabel, ylabel = "speed-up (baseline latency / this machine's; log2 scale; >1 is faster)", "configuration"
    frame = pd.DataFrame() if table is None or table.empty else table[table["speedup"].notna()]
    if frame.empty:
        return _no_data(title, xlabel, ylabel, "no data (no configuration measured on two machines)")
    frame = frame.assign(_row=frame["model"] + " " + frame["platform"] + "/" + frame["precision"] + ", batch "
                         + frame["batch_size"].astype(str)).sort_values("_row", ascending=False).reset_index(drop=True)
    fig = _figure(9.0, max(3.0, 0.4 * len(frame) + 1.8))
    ax = fig.add_subplot()
    for machine, color in _palette(sorted(frame["machine"].unique())).items():
        sub = frame[frame["machine"] == machine]
        ax.errorbar(sub["speedup"], sub.index, xerr=_interval_widths(sub), fmt="o", color=color, capsize=3,
                    label=machine)
    _speedup_axes(ax, frame, baseline, "machine")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig


HISTORY_UNITS = {"throughput_items_per_s": ("throughput (items/s)", 1.0), "peak_memory_bytes": ("peak memory (MiB)",
                 1 / MIB)}


def history_chart(history_df: pd.DataFrame) -> Figure:
    """One metric of a configuration across runs (analysis.metric_history), oldest first; points where the software
    or the commit changed since the previous run are annotated with what changed."""
    metric = history_df["metric"].iloc[0] if history_df is not None and len(history_df) else "metric"
    default = (f"{metric.removesuffix('_s').replace('_', ' ')} (ms)", 1e3) if metric.endswith("_s") else (metric, 1.0)
    ylabel, scale = HISTORY_UNITS.get(metric, default)
    title, xlabel = f"History of {metric} across runs", "run (oldest first)"
    if history_df is None or history_df.empty:
        return _no_data(title, xlabel, ylabel)
    frame = history_df.reset_index(drop=True)
    runs = list(dict.fromkeys(frame["run_id"]))
    stamps = dict(zip(frame["run_id"], pd.to_datetime(frame["started_at"]).dt.strftime("%Y-%m-%d %H:%M"), strict=True))
    fig = _figure(max(7.0, 1.3 * len(runs) + 3), 4.5)
    ax = fig.add_subplot()
    for (key, line), color in zip(frame.groupby("config_key", sort=False),
                                  sns.color_palette("colorblind", frame["config_key"].nunique()), strict=True):
        x = [runs.index(r) for r in line["run_id"]]
        y = line["value"].astype(float) * scale
        yerr = None
        if metric == "latency_p50_s":
            yerr = np.vstack([y - line["ci_low_s"] * scale, line["ci_high_s"] * scale - y]).clip(min=0)
        ax.errorbar(x, y, yerr=yerr, marker="o", color=color, capsize=3, label=key)
        for xi, yi, changes, commit in zip(x, y, line["software_changes"], line["commit_changed"], strict=True):
            changed = [changes if changes != "(first run)" else "", "new commit" if commit else ""]
            text = "; ".join(filter(None, changed))
            if text:
                ax.annotate(text[:60], (xi, yi), textcoords="offset points", xytext=(4, 8), fontsize="x-small")
    ax.set_xticks(range(len(runs)), [f"{r}\n{stamps[r]}" for r in runs], rotation=0 if len(runs) <= 4 else 30,
                  ha="center" if len(runs) <= 4 else "right", fontsize="small")
    ax.legend(title="configuration", fontsize="small")
    ax.grid(alpha=0.3)
    ax.set(title=title + (" (bars: 95% CI of the median)" if metric == "latency_p50_s" else ""), xlabel=xlabel,
           ylabel=ylabel)
    return fig
