"""Charts of a coverage run: the ok share by modality x platform, and each platform's speed relative to the CPU,
from kit.coverage.tables."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit.plots.figures import _figure, _no_data


def coverage_heatmap(table: pd.DataFrame) -> Figure:
    """The share of architectures that ran per modality (rows, with their count) and platform (columns)."""
    title = "Architectures that run, by modality and platform"
    shares = table.drop(columns="n", errors="ignore") if table is not None else None
    if shares is None or shares.empty:
        return _no_data(title, "platform", "modality", "no coverage results")
    labelled = shares.set_axis([f"{m} ({int(n)})" for m, n in table["n"].items()], axis=0)
    fig = _figure(2.0 + 1.6 * labelled.shape[1], 1.2 + 0.5 * labelled.shape[0])
    ax = fig.add_subplot()
    sns.heatmap(labelled, annot=True, fmt=".0%", vmin=0, vmax=1, cmap="RdYlGn", cbar=False, ax=ax)
    ax.set(title=title, xlabel="platform", ylabel="modality (architectures)")
    return fig


def speedup_strip(speed: pd.DataFrame) -> Figure:
    """Each architecture's speed-up over PyTorch on the CPU, one point per architecture, per platform (log scale)."""
    title = "Speed relative to PyTorch on the CPU (median latency ratio)"
    if speed is None or speed.empty:
        return _no_data(title, "platform", "speed-up over CPU", "no architecture ran on two platforms")
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    sns.stripplot(data=speed, x="platform", y="speedup_vs_cpu", hue="modality", ax=ax, jitter=0.25, size=5)
    sns.boxplot(data=speed, x="platform", y="speedup_vs_cpu", ax=ax, showfliers=False, fill=False, color="grey")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set(yscale="log", title=title, xlabel="platform", ylabel="speed-up over CPU (x, log)")
    ax.legend(fontsize="small", title="modality")
    return fig
