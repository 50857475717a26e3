"""Building blocks shared by the charts: blank and "no data" Figures, ok rows, labels, palette, grouped bars."""

from __future__ import annotations

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
