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


def median_throughput(df: pd.DataFrame) -> pd.DataFrame:
    """Adds throughput at the median latency (batch / p50) and its 95% CI (batch / the median's CI bounds)."""
    batch = df["batch_size"].astype(float)
    p50 = df["latency_p50_s"].astype(float).fillna(df["latency_mean_s"].astype(float))
    return df.assign(throughput_p50_items_per_s=batch / p50, throughput_ci_low=batch / df["ci_high_s"].astype(float),
                     throughput_ci_high=batch / df["ci_low_s"].astype(float))


def throughput_by_platform(df: pd.DataFrame) -> Figure:
    """Throughput at the median latency (items/s, higher is better) with its 95% CI, per platform and precision."""
    frame = median_throughput(_ok(df)) if df is not None and not _ok(df).empty else df
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


def scaling_chart(table: pd.DataFrame) -> Figure:
    """Distributed scaling (kit.distributed.scaling_table): global samples/s, scaling efficiency and comm share."""
    title, xlabel = "Distributed training scaling at equal per-rank batch", "world size (processes)"
    frame = table[table["status"] == "ok"] if table is not None and len(table) else pd.DataFrame()
    if frame.empty:
        return _no_data(title, xlabel, "global throughput (samples/s)")
    frame = frame.assign(_line=frame["model"].astype(str) + " / " + frame["strategy"].astype(str) + " / "
                         + frame["backend"].astype(str)).sort_values("world_size")
    fig = _figure(14, 4.2)
    left, middle, right = fig.subplots(1, 3)
    palette = _palette(sorted(frame["_line"].unique()))
    for line, sub in frame.groupby("_line"):
        color, ws = palette[line], sub["world_size"].astype(int)
        left.plot(ws, sub["throughput_items_per_s"], marker="o", color=color, label=f"{line}: measured")
        base = sub.loc[ws == 1, "throughput_items_per_s"]
        if len(base):  # the linear ideal N x throughput(1); efficiency at N = 1 is 1 by definition
            left.plot(ws, ws * float(base.iloc[0]), ls="--", color=color, alpha=0.6, label=f"{line}: ideal N x T(1)")
        efficiency = sub["scaling_efficiency"].astype(float).where(ws != 1, 1.0 if len(base) else np.nan)
        middle.plot(ws, efficiency, marker="o", color=color, label=line)
        right.plot(ws, sub["comm_share"].astype(float), marker="o", color=color, label=line)
    middle.axhline(1.0, color="grey", ls=":", label="perfect scaling (1.0)")
    sizes = sorted(frame["world_size"].astype(int).unique())
    for ax, ylabel, name in ((left, "global throughput (samples/s)", "Global throughput"),
                             (middle, "scaling efficiency = T(N) / (N x T(1))", "Scaling efficiency"),
                             (right, "communication share of step time", "Communication share (profiled)")):
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, xticks=sizes)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(title="model / strategy / backend", fontsize="x-small")
    fig.suptitle(title)
    return fig


MEMORY_TERMS = ("weights", "gradients", "optimizer_state", "activations", "transient", "overhead")


def memory_validation_chart(validation: pd.DataFrame) -> Figure:
    """Estimated peak per rank (stacked by term) beside the measured peak, per configuration (kit.memory)."""
    title, ylabel = "Memory estimator vs measured peak per rank (label: signed error)", "memory per rank (MiB)"
    if validation is None or validation.empty:
        return _no_data(title, "configuration", ylabel)
    labels = [f"{r.model} {r.strategy} N={r.world_size}\nbs={r.batch_size} tokens={r.tokens}"
              for r in validation.itertuples()]
    x = np.arange(len(validation))
    fig = _figure(max(7.0, 1.6 * len(validation) + 3), 4.8)
    ax = fig.add_subplot()
    bottom = np.zeros(len(validation))
    for term, color in zip(MEMORY_TERMS, sns.color_palette("colorblind", len(MEMORY_TERMS)), strict=True):
        values = validation[f"estimated_{term}_bytes"].astype(float).to_numpy() / MIB
        ax.bar(x - 0.2, values, 0.4, bottom=bottom, color=color, label=f"estimated: {term.replace('_', ' ')}")
        bottom += values
    measured = validation["measured_bytes"].astype(float).to_numpy() / MIB
    ax.bar(x + 0.2, measured, 0.4, color="0.35", hatch="//", label="measured peak above baseline")
    for xi, top, err in zip(x, np.maximum(bottom, measured), validation["signed_error_pct"], strict=True):
        ax.annotate(f"{err:+.1f}%", (xi, top), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(x, labels, fontsize="small")
    ax.set(title=title, xlabel="configuration (model, strategy, world size, per-rank batch, tokens per sample)",
           ylabel=ylabel)
    ax.margins(y=0.12)
    fig.legend(fontsize="x-small", loc="outside right upper")
    ax.grid(axis="y", alpha=0.3)
    return fig


def metric_chart(df: pd.DataFrame, metric: str, ylabel: str, scale: float = 1.0, title: str | None = None) -> Figure:
    """Any numeric result column per configuration, one bar per platform/precision (scale converts units)."""
    return _bar_chart(df, metric, scale, title or f"{ylabel} by platform and precision", ylabel)


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
        low = (sub["speedup"] - sub["speedup_ci_low"]).fillna(0).clip(lower=0)
        high = (sub["speedup_ci_high"] - sub["speedup"]).fillna(0).clip(lower=0)
        ax.errorbar(sub["speedup"], sub.index, xerr=np.vstack([low, high]), fmt="none", ecolor=color, capsize=3)
        significant = sub["significant"].fillna(False).astype(bool)
        ax.scatter(sub["speedup"], sub.index, color=color, edgecolors=color, label=hue, zorder=3,
                   facecolors=[color if s else "white" for s in significant])
    ax.axvline(1.0, color="grey", linestyle="--", label=f"{baseline} (1x)")
    ax.set_xscale("log", base=2)
    ax.set_yticks(frame.index, frame["_row"])
    ax.legend(title=HUE_TITLE, fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    ax.set(title=title, xlabel=xlabel, ylabel=f"{ylabel} ({described})")
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


MEMORY_PART_LABELS = {"process_baseline_bytes": "process without the model", "weights_bytes": "weights",
                      "gradients_bytes": "gradients", "optimizer_state_bytes": "optimizer state",
                      "activations_bytes": "activations and the rest"}


def training_memory_chart(memory_df: pd.DataFrame) -> Figure:
    """Training peak memory stacked by part (analysis.training_memory), beside the inference peak of the same
    configuration, in MiB."""
    title, xlabel, ylabel = "Training peak memory by part, and the inference peak", "configuration", "memory (MiB)"
    if memory_df is None or memory_df.empty:
        return _no_data(title, xlabel, ylabel)
    frame = memory_df.reset_index(drop=True)
    labels = (frame["model"] + "\n" + frame["platform"] + " / " + frame["precision"] + "\nbs="
              + frame["batch_size"].astype(str))
    x = np.arange(len(frame))
    fig = _figure(max(7.0, 1.8 * len(frame) + 3), 5.5)
    ax = fig.add_subplot()
    bottom = np.zeros(len(frame))
    colors = sns.color_palette("colorblind", len(MEMORY_PART_LABELS) + 1)
    for (part, label), color in zip(MEMORY_PART_LABELS.items(), colors, strict=False):
        height = frame[part].astype(float).fillna(0).to_numpy() / MIB
        ax.bar(x - 0.2, height, 0.4, bottom=bottom, color=color, label=f"training: {label}")
        bottom += height
    ax.bar(x + 0.2, frame["inference_peak_memory_bytes"].astype(float).fillna(0) / MIB, 0.4, color=colors[-1],
           hatch="//", label="inference: whole peak")
    ax.set_xticks(x, labels)
    fig.legend(title="memory part (left bar: training, right bar: inference)", fontsize="small", ncols=3,
               loc="outside lower center")
    ax.grid(axis="y", alpha=0.3)
    method = ", ".join(sorted(set(frame["memory_method"].dropna().astype(str)) - {""})) or "unknown"
    freed = frame["note"].astype(str).str.contains(analysis.GRADIENTS_FREED, regex=False).any()
    caveat = ";\ngradients not counted in this run: inside activations" if freed else ""
    ax.set(title=f"{title}\n(measured by {method}{caveat})", xlabel=xlabel, ylabel=ylabel)
    return fig


def show_figures_as_png() -> bool:
    """Under IPython (notebooks, papermill) display these pyplot-free Figures as PNG, as `%matplotlib inline` would.

    Without it a kernel that never imported pyplot shows a Figure only as its text repr, and the HTML has no chart.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(
        Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return True


show_figures_as_png()


TARGET_AXES = {"throughput": ("throughput", "items/s", 1.0), "latency": ("p50 latency", "ms", 1e3),
               "memory": ("peak memory", "MiB", 1 / MIB)}


def _legend_outside(fig: Figure, title: str) -> None:
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, title=title, loc="outside right upper", fontsize="small")


def predicted_vs_measured(df: pd.DataFrame) -> Figure:
    """Held-out predictions (kit.predict.validation_frame) against measurements, log-log, one panel per target;
    bars are prediction intervals (clipped at the panel's edge when unbounded)."""
    title = "Leave-one-family-out: predicted vs measured (bars: prediction interval; at the edge: unbounded)"
    if df is None or df.empty:
        return _no_data(title, "measured", "predicted")
    targets = list(dict.fromkeys(df["target"]))
    palette = _palette(sorted(df["group"].astype(str).unique()))
    fig = _figure(4.4 * len(targets) + 2.5, 4.6)
    for i, target in enumerate(targets):
        name, unit, scale = TARGET_AXES.get(target, (target, "", 1.0))
        sub = df[df["target"] == target]
        values = sub[["measured", "pred"]].to_numpy(float) * scale
        limits = np.array([np.nanmin(values) / 1.5, np.nanmax(values) * 1.5])
        ax = fig.add_subplot(1, len(targets), i + 1)
        ax.fill_between(limits, limits * 0.9, limits * 1.1, color="grey", alpha=0.25, label="within ±10%")
        ax.plot(limits, limits, color="black", lw=1, label="predicted = measured")
        for group, g in sub.groupby(sub["group"].astype(str)):
            y = g["pred"] * scale
            low, high = (g["low"] * scale).clip(lower=limits[0]), (g["high"] * scale).clip(upper=limits[1])
            ax.errorbar(g["measured"] * scale, y, yerr=[(y - low).clip(lower=0), (high - y).clip(lower=0)], fmt="o",
                        capsize=2, alpha=0.8, color=palette[group], label=group)
        ax.set(xscale="log", yscale="log", xlim=limits, ylim=limits, title=name, xlabel=f"measured {name} ({unit})",
               ylabel=f"predicted {name} ({unit})")
        ax.grid(alpha=0.3)
    _legend_outside(fig, "held-out family")
    fig.suptitle(title)
    return fig


def feature_importances(table: pd.DataFrame, target: str = "throughput", top: int = 15) -> Figure:
    """Permutation importances (Predictor.importances) of the predictor's inputs, largest first, bars = 1 std."""
    title, xlabel = f"What the {target} predictor uses (permutation importance)", "mean drop in R² when shuffled"
    if table is None or table.empty:
        return _no_data(title, xlabel, "input feature")
    shown = table.sort_values("importance", ascending=False).head(top).iloc[::-1]
    fig = _figure(7.5, 0.32 * len(shown) + 1.8)
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["importance"], xerr=shown["std"], capsize=2,
            color=sns.color_palette("colorblind")[0], label="importance ± 1 std over repeats")
    ax.axvline(0, color="black", lw=0.8)
    ax.set(title=title, xlabel=xlabel, ylabel="input feature")
    ax.legend(fontsize="small", loc="lower right")
    return fig


def roofline_chart(features: pd.DataFrame) -> Figure:
    """Achieved FLOP/s against arithmetic intensity (kit.features.feature_frame rows), under each platform's measured
    compute and bandwidth roofs; the distance below the roof is the roofline efficiency."""
    title, xlabel = "Roofline: achieved FLOP/s vs measured peaks", "arithmetic intensity (FLOP per byte of weights)"
    ylabel = "achieved FLOP/s (FLOPs per item x items/s)"
    frame = pd.DataFrame() if features is None or features.empty else features[features["peak_flops_per_s"] > 0]
    if frame.empty:
        return _no_data(title, xlabel, ylabel, "no data (no result with measured peaks)")
    frame = frame.assign(_x=frame["flops_per_batch"] / frame["traffic_bytes"],
                         _y=frame["flops_per_item"] * frame["throughput_items_per_s"])
    fig = _figure(8.5, 4.8)
    ax = fig.add_subplot()
    for (family, color) in _palette(sorted(frame["family"].astype(str).unique())).items():
        sub = frame[frame["family"].astype(str) == family]
        ax.scatter(sub["_x"], sub["_y"], color=color, label=f"{family} (measured)", alpha=0.8)
    x = np.geomspace(frame["_x"].min() / 3, frame["_x"].max() * 3, 200)
    roofs = frame.drop_duplicates(["platform", "precision"])
    for (_, roof), style in zip(roofs.iterrows(), ["-", "--", ":", "-."] * 4, strict=False):
        ax.plot(x, np.minimum(roof["peak_flops_per_s"], roof["mem_bandwidth_bytes_per_s"] * x), style, color="grey",
                label=f"roof {roof['platform']} / {roof['precision']} (microbenchmark)")
    ax.set(xscale="log", yscale="log", title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


RECOMMEND_AXES = {"throughput": ("throughput_items_per_s", "throughput_low", "throughput_high", 1.0, "items/s"),
                  "latency": ("latency_s", "latency_low_s", "latency_high_s", 1e3, "ms per batch"),
                  "memory": ("peak_memory_bytes", "peak_memory_bytes", "memory_high_bytes", 1 / MIB, "MiB"),
                  "cost": ("cost_per_million", "throughput_high", "throughput_low", 1.0, "USD per million items")}


def recommendation_chart(table: pd.DataFrame, objective: str = "throughput", top: int = 12) -> Figure:
    """The ranked candidates of kit.recommend.recommend on the objective (log axis), rank 1 on top; hatched bars are
    predictions, error bars their intervals (clipped at the edge when unbounded)."""
    value, low, high, scale, unit = RECOMMEND_AXES[objective]
    title, xlabel = f"Ranked configurations by {objective} (hatched: predicted)", f"{objective} ({unit}, log scale)"
    if table is None or table.empty:
        return _no_data(title, xlabel, "configuration", "no feasible configuration")
    shown = table.head(top).iloc[::-1]
    v = shown[value].astype(float) * scale
    if objective == "cost":  # cost scales with 1 / throughput, so its bounds come from the throughput bounds
        lo, hi = v * shown["throughput_items_per_s"] / shown[low], v * shown["throughput_items_per_s"] / shown[high]
    else:
        lo, hi = shown[low].astype(float) * scale, shown[high].astype(float) * scale
    left, right = float(np.nanmin(v)) / 10, float(np.nanmax(v)) * 10
    err = np.vstack([(v - lo.clip(lower=left)).clip(lower=0), (hi.clip(upper=right) - v).clip(lower=0)])
    fig = _figure(9.0, 0.4 * len(shown) + 2)
    ax = fig.add_subplot()
    for source, color in _palette(["measured", "predicted"]).items():
        mask = (shown["source"] == source).to_numpy()
        ax.barh(np.flatnonzero(mask), v[mask], xerr=np.nan_to_num(err[:, mask]), capsize=2, color=color,
                hatch="//" if source == "predicted" else None, label=source)
    labels = [f"#{r.rank} {r.platform} / {r.precision} / bs={r.batch_size}" for r in shown.itertuples()]
    ax.set_yticks(range(len(shown)), labels)
    ax.set(title=title, xlabel=xlabel, ylabel="rank, platform / precision / batch", xscale="log", xlim=(left, right))
    ax.legend(title="source (bars: interval)", fontsize="small")
    return fig
