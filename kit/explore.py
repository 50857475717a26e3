"""Explore stored results: pick a model, platforms, precisions and a metric; the chart and the table follow.

`view` is the pure function (results frame in, table and Figure out) that tests and the static notebook cells call;
`explorer` wires ipywidgets controls to it, so every change of a control calls `view` again. Only ok results are
shown, the latest one per configuration when several runs measured it (all runs, or one run_id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from kit import analysis
from kit.errors import ConfigError

MIB = 2**20
# column -> (axis label with its unit, scale from the stored unit to the shown one)
METRICS: dict[str, tuple[str, float]] = {
    "throughput_items_per_s": ("throughput (items/s)", 1.0),
    "latency_p50_s": ("p50 latency (ms)", 1e3),
    "latency_p99_s": ("p99 latency (ms)", 1e3),
    "latency_mean_s": ("mean latency (ms)", 1e3),
    "peak_memory_bytes": ("peak memory (MiB)", 1 / MIB),
    "first_inference_s": ("first iteration (ms)", 1e3),
    "startup_s": ("start-up: build and load (s)", 1.0),
}
DEFAULT_METRIC = "throughput_items_per_s"
LOWER_IS_BETTER = {"latency_p50_s", "latency_p99_s", "latency_mean_s", "peak_memory_bytes", "first_inference_s",
                   "startup_s"}
TABLE_COLUMNS = ("model", "size", "mode", "platform", "precision", "batch_size", "seq_len", "variant", "run_id")
Render = Callable[[pd.DataFrame, Figure], None]


def check_metric(metric: str) -> str:
    """The metric if it is one `view` can chart, else ConfigError naming it and the allowed ones."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    return metric


def metrics_table() -> pd.DataFrame:
    """The metrics one can pick: stored column, what the chart shows, and which direction is better."""
    return pd.DataFrame([{"metric": m, "shown as": label, "better": "lower" if m in LOWER_IS_BETTER else "higher"}
                         for m, (label, _) in METRICS.items()])


def load_frame(db_path: str, run_id: str | None = None) -> pd.DataFrame:
    """Results of every status from the database, read-only (run_id None: all runs); ConfigError for an unknown run."""
    from kit import storage

    con = storage.connect(db_path, read_only=True)
    try:
        frame = analysis.results_with_samples(con, run_id, samples=False)
    finally:
        con.close()
    if run_id is not None and frame.empty:
        raise ConfigError(f"run_id {run_id!r} has no results in {db_path}")
    return frame


def options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The models, platforms and precisions that have ok results, sorted."""
    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    return {name: sorted(ok[column].dropna().astype(str).unique()) if len(ok) else []
            for name, column in (("models", "model"), ("platforms", "platform"), ("precisions", "precision"))}


def _chosen(name: str, values: list[str] | tuple[str, ...] | str | None, allowed: list[str]) -> list[str]:
    if values is None:
        return list(allowed)
    values = [values] if isinstance(values, str) else list(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ConfigError(f"{name} {unknown} have no ok results here; available: {', '.join(allowed) or 'none'}")
    return values


def resolve_selection(frame: pd.DataFrame, model: str | None = None, platforms: list[str] | None = None,
                      precisions: list[str] | None = None, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """A concrete selection (None: the first model, every platform, every precision), checked against the data."""
    check_metric(metric)
    available = options(frame)
    if not available["models"]:
        raise ConfigError("the results hold no ok record to explore; run `benchkit bench` (or 01_benchmark) first")
    model = model if model is not None else available["models"][0]
    _chosen("model", [model], available["models"])
    return {"model": model, "platforms": _chosen("platforms", platforms, available["platforms"]),
            "precisions": _chosen("precisions", precisions, available["precisions"]), "metric": metric}


def plan(db_path: str, run_id: str | None = None, *, model: str | None = None, platforms: list[str] | None = None,
         precisions: list[str] | None = None, metric: str = DEFAULT_METRIC) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The notebook's parameters checked (the metric before the store is read): the results frame and the concrete
    selection (resolve_selection) to view."""
    check_metric(metric)
    frame = load_frame(db_path, run_id)
    return frame, resolve_selection(frame, model, platforms, precisions, metric)


def view(frame: pd.DataFrame, model: str | None = None, platforms: list[str] | None = None,
         precisions: list[str] | None = None, metric: str = DEFAULT_METRIC) -> tuple[pd.DataFrame, Figure]:
    """The selected model's latest ok results on the chosen platforms and precisions: a table and a chart of metric."""
    from kit import plots

    s = resolve_selection(frame, model, platforms, precisions, metric)
    ok = analysis.latest_ok(frame)
    chosen = ok[(ok["model"] == s["model"]) & ok["platform"].isin(s["platforms"]) & ok["precision"].isin(
        s["precisions"]) & ok[metric].notna()]
    chosen = chosen.sort_values(["mode", "platform", "precision", "batch_size", "_seq"], kind="stable")
    label, scale = METRICS[metric]
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    fig = plots.metric_chart(chosen, metric, label, scale,
                             f"{s['model']}: {label.split(' (')[0]} by platform and precision ({better} is better)")
    table = chosen[[*TABLE_COLUMNS, metric]].reset_index(drop=True)
    return table, fig


def summary(table: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Headline values of a view for the record cell: rows shown and the metric's range."""
    values = table[metric].astype(float) if len(table) else pd.Series(dtype=float)
    return {"n_rows": len(table), "metric": metric, "metric_min": float(values.min()) if len(values) else None,
            "metric_max": float(values.max()) if len(values) else None,
            "platforms": sorted(table["platform"].unique()) if len(table) else []}


def _render_into(output: Any) -> Render:
    """Replace the Output widget's content by setting its `outputs` state, not by capturing display messages: a
    capture (`with output:` after `clear_output(wait=True)`) can leave a headless executor (nbclient, under papermill)
    waiting forever for the cell's reply."""

    def render(table: pd.DataFrame, fig: Figure) -> None:
        output.outputs = ()
        output.append_display_data(table)
        output.append_display_data(fig)

    return render


def explorer(frame: pd.DataFrame, model: str | None = None, platforms: list[str] | None = None,
             precisions: list[str] | None = None, metric: str = DEFAULT_METRIC, *,
             render: Render | None = None) -> Any:
    """An ipywidgets.VBox: a model and a metric dropdown, platform and precision lists, and the view they select.

    Every change of a control calls `view` again and hands its table and Figure to `render` (default: the box's
    Output area); `box.update()` does the same on demand.
    """
    import ipywidgets as widgets

    s = resolve_selection(frame, model, platforms, precisions, metric)
    available = options(frame)
    controls = {
        "model": widgets.Dropdown(options=available["models"], value=s["model"], description="model"),
        "metric": widgets.Dropdown(options=[(label, m) for m, (label, _) in METRICS.items()], value=s["metric"],
                                   description="metric"),
        "platforms": widgets.SelectMultiple(options=available["platforms"], value=tuple(s["platforms"]),
                                            description="platforms"),
        "precisions": widgets.SelectMultiple(options=available["precisions"], value=tuple(s["precisions"]),
                                             description="precisions"),
    }
    output = widgets.Output()
    show = render or _render_into(output)

    def update(_change: Any = None) -> None:
        show(*view(frame, controls["model"].value, list(controls["platforms"].value),
                   list(controls["precisions"].value), controls["metric"].value))

    for control in controls.values():
        control.observe(update, names="value")
    box = widgets.VBox([widgets.HBox([controls["model"], controls["metric"]]),
                        widgets.HBox([controls["platforms"], controls["precisions"]]), output])
    box.controls, box.update = controls, update
    update()
    return box
