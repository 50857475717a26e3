"""Charts of prediction and recommendation: predicted vs measured, importances, roofline, ranked configurations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit.plots.figures import MIB, _figure, _no_data, _palette

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
    """Achieved FLOP/s against arithmetic intensity (kit.predict.features.feature_frame rows), under each platform's
    measured compute and bandwidth roofs; the distance below the roof is the roofline efficiency."""
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


def error_by_family(df: pd.DataFrame, target: str = "throughput") -> Figure:
    """Each held-out family's absolute percentage errors (kit.predict.validation_frame rows of one target): a box
    per family with its points, its MAPE above it, and the 10 % goal as a line."""
    title = f"Leave-one-family-out {target} error per held-out family"
    sub = df[df["target"] == target] if df is not None and len(df) else pd.DataFrame()
    if sub.empty:
        return _no_data(title, "held-out family", "absolute error (%)")
    data = sub.assign(family=sub["group"].astype(str),
                      ape=100 * (sub["pred"] - sub["measured"]).abs() / sub["measured"])
    order = data.groupby("family")["ape"].mean().sort_values().index.tolist()
    fig = _figure(max(6.0, 0.9 * len(order) + 2.5), 4.4)
    ax = fig.add_subplot()
    sns.boxplot(data=data, x="family", y="ape", order=order, color="#dddddd", showfliers=False, ax=ax)
    sns.stripplot(data=data, x="family", y="ape", order=order, size=3, alpha=0.6, ax=ax,
                  color=sns.color_palette("colorblind")[0])
    for x, family in enumerate(order):
        mape = data.loc[data["family"] == family, "ape"].mean()
        ax.annotate(f"{mape:.0f} %", (x, mape), xytext=(0, 8), textcoords="offset points", ha="center",
                    fontsize="small")
    ax.axhline(10, color="black", lw=0.8, ls="--", label="10 % goal")
    ax.set(title=title, xlabel="held-out family", ylabel="absolute error (%)", yscale="symlog")
    ax.legend(fontsize="small", loc="upper left")
    return fig
