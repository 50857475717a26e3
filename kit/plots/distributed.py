"""Charts of distributed training: scaling with world size, and the memory estimator against measured peaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit.plots.figures import MIB, _figure, _no_data, _palette


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
