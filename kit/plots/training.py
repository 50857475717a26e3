"""Charts of training against inference: throughput and step phases, and the training peak memory by part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit import analysis
from kit.plots.figures import MIB, _figure, _grouped_bars, _no_data


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
