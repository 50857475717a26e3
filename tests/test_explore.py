"""The explore view: filters, metric choice, errors that name the bad value, and widgets whose observers call update."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit import explore, storage
from kit.errors import ConfigError
from kit.records import Record, records_frame

ENV = {"env_id": "env-x", "git_commit": "c0ffee", "software": {},
       "hardware": {"hardware_id": "hw-x", "hostname": "box", "cpu_model": "Test CPU", "gpus": []}}


def _record(model: str, platform: str, precision: str, batch_size: int, median_s: float, run_id: str = "r1",
            status: str = "ok") -> Record:
    identity = dict(run_id=run_id, config_key=f"{model}|tiny|inference|{platform}|{precision}|bs{batch_size}",
                    model=model, family=model, size="tiny", mode="inference", platform=platform, device=platform,
                    precision=precision, batch_size=batch_size)
    if status != "ok":
        return Record.failure(status, "no device", **identity)
    samples = list(median_s * np.random.default_rng(batch_size).lognormal(0, 0.01, size=20))
    return Record.from_samples(samples, peak_memory_bytes=batch_size * 2**20, **identity)


RECORDS = [_record("bert", "cpu", "fp32", 1, 0.010), _record("bert", "cpu", "fp32", 2, 0.012),
           _record("bert", "cpu", "bf16", 1, 0.008), _record("bert", "openvino", "fp32", 1, 0.004),
           _record("vit", "cpu", "fp32", 1, 0.020), _record("bert", "cuda", "fp32", 1, 0.001, status="skipped")]


@pytest.fixture
def frame() -> pd.DataFrame:
    return records_frame(RECORDS)


def test_view_keeps_only_the_selected_model_platforms_and_precisions(frame):
    table, fig = explore.view(frame, "bert", ["cpu"], ["fp32"], "throughput_items_per_s")
    assert set(table["model"]) == {"bert"} and set(table["platform"]) == {"cpu"}
    assert set(table["precision"]) == {"fp32"} and sorted(table["batch_size"]) == [1, 2]
    assert table["throughput_items_per_s"].gt(0).all()
    everything, _ = explore.view(frame, "bert")  # None: every platform and precision with ok results
    assert len(everything) == 4 and "cuda" not in set(everything["platform"])  # the skipped record is not shown
    ax = fig.axes[0]
    assert ax.get_ylabel() == "throughput (items/s)" and "bert" in ax.get_title() and ax.get_legend()


def test_metric_choice_changes_the_plotted_column(frame):
    throughput, fig_t = explore.view(frame, "bert", ["cpu"], ["fp32"], "throughput_items_per_s")
    latency, fig_l = explore.view(frame, "bert", ["cpu"], ["fp32"], "latency_p50_s")
    assert "latency_p50_s" in latency and "throughput_items_per_s" not in latency
    assert fig_l.axes[0].get_ylabel() == "p50 latency (ms)" and "lower is better" in fig_l.axes[0].get_title()
    bars_ms = sorted(p.get_height() for p in fig_l.axes[0].patches)
    assert bars_ms == pytest.approx(sorted(latency["latency_p50_s"] * 1e3))  # the chart draws the chosen column
    bars_t = sorted(p.get_height() for p in fig_t.axes[0].patches)
    assert bars_t == pytest.approx(sorted(throughput["throughput_items_per_s"]))
    memory, fig_m = explore.view(frame, "bert", None, None, "peak_memory_bytes")
    assert fig_m.axes[0].get_ylabel() == "peak memory (MiB)"


def test_unknown_metric_model_or_platform_raise_config_error_naming_them(frame):
    with pytest.raises(ConfigError, match="unknown metric 'speed'.*throughput_items_per_s"):
        explore.view(frame, "bert", metric="speed")
    with pytest.raises(ConfigError, match="'gpt'.*available: bert, vit"):
        explore.view(frame, "gpt")
    with pytest.raises(ConfigError, match="'tpu'"):
        explore.view(frame, "bert", ["tpu"])
    with pytest.raises(ConfigError, match="no ok record"):
        explore.view(records_frame([RECORDS[-1]]))


def test_empty_selection_shows_no_data_instead_of_raising(frame):
    table, fig = explore.view(frame, "vit", ["cpu"], ["bf16"])
    assert table.empty and fig.axes[0].texts[0].get_text() == "no data"
    assert explore.summary(table, "throughput_items_per_s")["n_rows"] == 0


def test_widget_observers_call_update_with_the_new_values(frame):
    import ipywidgets

    calls = []
    box = explore.explorer(frame, "bert", metric="throughput_items_per_s", render=lambda t, f: calls.append((t, f)))
    assert isinstance(box, ipywidgets.VBox) and len(calls) == 1  # the default selection is shown at once
    controls = box.controls
    controls["metric"].value = "latency_p99_s"
    table, fig = calls[-1]
    assert len(calls) == 2 and "latency_p99_s" in table and fig.axes[0].get_ylabel() == "p99 latency (ms)"
    controls["platforms"].value = ("openvino",)
    assert len(calls) == 3 and set(calls[-1][0]["platform"]) == {"openvino"}
    controls["model"].value = "vit"
    assert calls[-1][0].empty  # vit was not measured on openvino
    controls["platforms"].value = ("cpu", "openvino")
    assert set(calls[-1][0]["model"]) == {"vit"} and len(calls) == 5
    controls["precisions"].value = ("bf16",)
    assert calls[-1][0].empty  # vit has no bf16 result: an empty view, not an error in the callback
    assert [o for o in controls["metric"].options if o[1] == "peak_memory_bytes"]


def test_load_frame_reads_the_database_and_names_an_unknown_run(tmp_path):
    path = tmp_path / "bench.duckdb"
    con = storage.connect(path)
    storage.start_run(con, "r1", {}, ENV)
    for record in RECORDS:
        storage.insert_record(con, record)
    con.close()
    frame = explore.load_frame(str(path))
    assert len(frame) == len(RECORDS) and explore.options(frame)["platforms"] == ["cpu", "openvino"]
    table, _ = explore.view(frame, "bert", ["cpu"], ["fp32"])
    assert len(table) == 2
    with pytest.raises(ConfigError, match="run_id 'nope'"):
        explore.load_frame(str(path), "nope")
    with pytest.raises(ConfigError, match="no benchkit database"):
        explore.load_frame(str(tmp_path / "missing.duckdb"))


def test_metrics_table_lists_every_metric_with_its_direction():
    table = explore.metrics_table()
    assert list(table["metric"]) == list(explore.METRICS)
    assert table.set_index("metric").loc["latency_p50_s", "better"] == "lower"


def test_the_widget_view_is_set_as_output_state(tmp_path):
    import ipywidgets as widgets
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    frame = pd.DataFrame({"model": ["bert"] * 2, "platform": ["cpu"] * 2, "precision": ["fp32"] * 2})
    output = widgets.Output()
    fig = Figure()
    fig.add_subplot().plot([1, 2])
    had_shell = InteractiveShell.initialized()
    try:  # formatting for the widget makes a global IPython shell: leave none behind for other tests
        explore._render_into(output)(frame, fig)
        kinds = [sorted(o["data"]) for o in output.outputs]
        assert len(kinds) == 2 and "text/html" in kinds[0]  # a kernel adds the figure's image/png; here text/plain
        explore._render_into(output)(frame.head(1), fig)
        assert len(output.outputs) == 2  # replaced, not appended
    finally:
        if not had_shell:
            InteractiveShell.clear_instance()
