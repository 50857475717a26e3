"""Charts of text generation: time to first token against prompt length, decode throughput against batch size, and
the KV cache against context, from kit.analysis.generation_table."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from kit.plots.figures import _figure, _no_data


def generation_chart(table: pd.DataFrame) -> Figure:
    """Three panels of a generation table: TTFT (ms) against prompt length, decode tokens/s against batch size, and
    KV-cache MiB against context (prompt + new tokens); one line per model, platform and precision."""
    title = "Text generation"
    if table is None or table.empty:
        return _no_data(title, "prompt length (tokens)", "TTFT (ms)", "no generation results")
    data = table.assign(
        configuration=table["model"] + " " + table["platform"] + "/" + table["precision"] + " " + table["kv_cache"],
        context=table["prompt_len"] + table["new_tokens"])
    fig = _figure(15.0, 4.6)
    axes = fig.subplots(1, 3)
    panels = [("prompt_len", "ttft_ms", "prompt length (tokens)", "TTFT (ms, median)", "Time to first token"),
              ("batch_size", "decode_tokens_per_s", "batch size", "decode tokens/s (all sequences)",
               "Decode throughput"),
              ("context", "kv_cache_mb", "context (prompt + new tokens)", "KV cache (MiB)", "KV cache")]
    for ax, (x, y, xlabel, ylabel, name) in zip(axes, panels, strict=True):
        sns.lineplot(data=data, x=x, y=y, hue="configuration", style="batch_size" if x != "batch_size" else None,
                     marker="o", errorbar=None, ax=ax, legend=ax is axes[0])
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
    if axes[0].get_legend() is not None:
        axes[0].legend(fontsize="small", title=None)
    fig.suptitle(title)
    return fig
