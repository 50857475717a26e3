"""Charts of benchmark results: each function takes a DataFrame and returns a matplotlib Figure.

Inputs are storage.results_frame or kit.records.records_frame frames (only status == 'ok' rows are drawn, the latest
result per configuration); an empty selection gives a Figure saying "no data" instead of raising. Figures are built
without pyplot, so they work under the Agg backend, in notebooks and in worker threads alike.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit import analysis

MIB = 2**20
LABEL_FIELDS = ("model", "size", "mode", "batch_size", "seq_len", "variant")
HUE_TITLE = "platform / precision"


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _no_data(title: str, xlabel: str, ylabel: str, reason: str = "no data") -> Figure:
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=14, color="grey", transform=ax.transAxes)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=[], yticks=[])
    return fig


def _ok(df: pd.DataFrame | None) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame()
    frame = analysis.latest_ok(analysis.results_with_samples(df, samples=False))
    return frame.assign(_hue=frame["platform"].astype(str) + " / " + frame["precision"].astype(str))


def _labels(frame: pd.DataFrame, fields: tuple[str, ...] = LABEL_FIELDS) -> tuple[pd.Series, str]:
    """A readable category per row naming only the fields that vary (the model always), and what it names."""
    shown = [f for f in fields if f == "model" or (f in frame and frame[f].astype(str).nunique() > 1)]
    names = {"batch_size": "bs", "seq_len": "seq", "variant": ""}

    def label(row: pd.Series) -> str:
        parts = [f"{names.get(f, '')}{'=' if names.get(f) else ''}{row[f]}" if f in names else str(row[f])
                 for f in shown]
        return "\n".join(p for p in parts if p and p != "<NA>")

    return frame.apply(label, axis=1), ", ".join("batch size" if f == "batch_size" else f for f in shown)


def _palette(hues: list[str]) -> dict[str, tuple]:
    return dict(zip(hues, sns.color_palette("colorblind", len(hues)), strict=True))


def _grouped_bars(ax, frame: pd.DataFrame, value: str, err: tuple[str, str] | None = None) -> None:
    """Bars of `value` per category label, one bar per platform/precision; `err` = (low, high) columns."""
    groups = list(dict.fromkeys(frame["_x"]))
    hues = sorted(frame["_hue"].unique())
    width = 0.8 / len(hues)
    for i, (hue, color) in enumerate(_palette(hues).items()):
        sub = frame[frame["_hue"] == hue].drop_duplicates("_x").set_index("_x").reindex(groups)
        yerr = None
        if err is not None:
            yerr = np.nan_to_num(np.vstack([sub[value] - sub[err[0]], sub[err[1]] - sub[value]]).clip(min=0))
        ax.bar(np.arange(len(groups)) + (i - (len(hues) - 1) / 2) * width, sub[value], width, yerr=yerr,
               capsize=3 if err else 0, label=hue, color=color)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=0 if len(groups) <= 6 else 45,
                  ha="center" if len(groups) <= 6 else "right")
    ax.legend(title=HUE_TITLE, fontsize="small")
    ax.grid(axis="y", alpha=0.3)


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


def throughput_by_platform(df: pd.DataFrame) -> Figure:
    """Throughput (items/s, higher is better) per configuration, one bar per platform and precision."""
    return _bar_chart(df, "throughput_items_per_s", 1.0, "Throughput by platform and precision (higher is better)",
                      "throughput (items/s)")


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


def training_vs_inference_chart(df: pd.DataFrame) -> Figure:
    """Left: training and inference throughput per configuration; right: a training step split into its phases."""
    title = "Training vs inference"
    if df is None or df.empty:
        return _no_data(title, "configuration", "throughput (items/s)")
    tvi = df if "throughput_ratio" in df else analysis.training_vs_inference(df)
    tvi = tvi[tvi["throughput_ratio"].notna()] if len(tvi) else tvi  # only configurations measured in both modes
    if tvi.empty:
        return _no_data(title, "configuration", "throughput (items/s)", "no data (no configuration in both modes)")
    tvi = tvi.assign(_label=tvi["model"] + "\n" + tvi["platform"] + " / " + tvi["precision"] + "\nbs="
                     + tvi["batch_size"].astype(str))
    fig = _figure(max(10.0, 2.2 * len(tvi) + 4), 4.8)
    left, right = fig.subplots(1, 2)
    long = tvi.melt(id_vars="_label", value_vars=["inference_throughput_items_per_s",
                                                  "training_throughput_items_per_s"], var_name="_hue", value_name="v")
    long = long.rename(columns={"_label": "_x"}).assign(_hue=lambda d: d["_hue"].str.split("_").str[0])
    _grouped_bars(left, long, "v")
    left.legend(title="mode", fontsize="small")
    left.set(title="Throughput (training: whole optimizer steps)", xlabel="configuration",
             ylabel="throughput (items/s)")
    phases = tvi.set_index("_label")[list(analysis.PHASES)].dropna(how="all").iloc[::-1] * 1e3  # top = first
    if phases.empty:
        right.text(0.5, 0.5, "no training phase timings", ha="center", va="center", transform=right.transAxes)
    else:
        phases.columns = [c.removesuffix("_s").replace("_", " ") for c in phases.columns]
        phases.plot.barh(stacked=True, ax=right, color=sns.color_palette("colorblind", len(phases.columns)))
        right.legend(title="training phase", fontsize="small", ncols=4, loc="upper center",
                     bbox_to_anchor=(0.5, -0.18))
    right.set(title="Mean training step split into phases", xlabel="time per step (ms)", ylabel="configuration")
    fig.suptitle(title)
    return fig


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
