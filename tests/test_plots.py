"""Every chart returns a titled, labelled Figure from results or records frames, and a "no data" Figure when empty."""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from kit import analysis, plots, storage
from kit.records import Record, records_frame

matplotlib.use("Agg")
PHASES = {"forward_s": 0.004, "backward_s": 0.008, "optimizer_s": 0.003, "zero_grad_s": 0.001}


def rec(platform: str = "cpu", precision: str = "fp32", *, model: str = "bert-tiny", mode: str = "inference",
        batch_size: int = 2, scale: float = 1.0, seed: int = 0, **fields) -> Record:
    """An ok record with seeded samples in 10 rounds (synthetic, for drawing only) and a peak memory."""
    samples = np.random.default_rng(seed).lognormal(math.log(0.01 * scale * batch_size ** 0.5), 0.05, size=40)
    fields.setdefault("sample_rounds", [i // 4 for i in range(40)])
    key = f"{model}|tiny|{mode}|{platform}|{precision}|bs{batch_size}|seqdefault"
    fields.setdefault("peak_memory_bytes", int(200 * 2**20 * scale))
    return Record.from_samples(list(samples), run_id="r", config_key=key, model=model, family="bert", size="tiny",
                               mode=mode, platform=platform, device=platform, precision=precision,
                               batch_size=batch_size, **fields)


RECORDS = [rec(batch_size=b, seed=b) for b in (1, 2, 4)] + [
    rec("cuda", "fp16", batch_size=b, scale=0.2, seed=10 + b) for b in (1, 2, 4)] + [
    rec(model="gpt2-tiny", batch_size=2, seed=20), rec(mode="training", scale=3, seed=30,
                                                       extra={"phases_mean_s": PHASES}),
    Record.failure("skipped", "platform rocm unavailable", run_id="r", config_key="x", model="bert-tiny",
                   family="bert", size="tiny", mode="inference", platform="rocm", device="", precision="fp32",
                   batch_size=2)]
FRAME_CHARTS = [plots.throughput_by_platform, plots.latency_by_platform, plots.memory_by_platform,
                plots.batch_scaling, plots.training_vs_inference_chart]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> pd.DataFrame:
    con = storage.connect(tmp_path_factory.mktemp("db") / "bench.duckdb")
    storage.start_run(con, "r", {}, {"env_id": "e", "software": {}, "hardware": {}})
    for record in RECORDS:
        storage.insert_record(con, record)
    frame = storage.results_frame(con)
    con.close()
    return frame


def check_figure(fig: Figure) -> None:
    """A Figure with a title, labelled axes, and a legend where more than one series is drawn; it renders."""
    assert isinstance(fig, Figure)
    titles = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
    assert any(t.strip() for t in titles)
    main = fig.axes[0]
    assert main.get_xlabel().strip() and main.get_ylabel().strip()
    fig.savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize("chart", FRAME_CHARTS, ids=lambda f: f.__name__)
def test_charts_from_results_and_records_frames(chart, results):
    for frame in (results, records_frame(RECORDS)):
        fig = chart(frame)
        check_figure(fig)
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
        assert legends and all(leg.get_title().get_text() for leg in legends)


@pytest.mark.parametrize("chart", [*FRAME_CHARTS, plots.speedup_heatmap], ids=lambda f: f.__name__)
def test_empty_frame_gives_no_data_figure(chart):
    for empty in (pd.DataFrame(), records_frame([])):
        fig = chart(empty)
        check_figure(fig)
        assert any("no data" in t.get_text() for t in fig.axes[0].texts)


def test_units_in_axis_labels(results):
    assert "(items/s)" in plots.throughput_by_platform(results).axes[0].get_ylabel()
    assert "(ms)" in plots.latency_by_platform(results).axes[0].get_ylabel()
    assert "(MiB)" in plots.memory_by_platform(results).axes[0].get_ylabel()
    assert plots.batch_scaling(results).axes[0].get_xscale() == "log"


def test_latency_error_bars_are_the_median_ci_in_ms(results):
    ax = plots.latency_by_platform(results[results["status"] == "ok"].head(1)).axes[0]
    height = ax.patches[0].get_height()
    assert height == pytest.approx(results["latency_p50_s"].iloc[0] * 1e3)


def test_throughput_bars_are_batch_over_median_latency_with_ci(results):
    row = results[results["status"] == "ok"].head(1)
    ax = plots.throughput_by_platform(row).axes[0]
    batch, p50 = float(row["batch_size"].iloc[0]), float(row["latency_p50_s"].iloc[0])
    assert ax.patches[0].get_height() == pytest.approx(batch / p50)
    (_, low), (_, high) = ax.collections[0].get_segments()[0]  # the error bar of the one bar
    assert low == pytest.approx(batch / float(row["ci_high_s"].iloc[0]))
    assert high == pytest.approx(batch / float(row["ci_low_s"].iloc[0]))


def test_speedup_heatmap_marks_significance(results):
    fig = plots.speedup_heatmap(analysis.speedup_table(RECORDS))
    check_figure(fig)
    assert any(t.get_text().endswith("x*") for t in fig.axes[0].texts)
    assert "cpu/fp32" in fig.axes[0].get_title()
    only_missing = analysis.speedup_table([rec("cuda")])
    assert "no data" in plots.speedup_heatmap(only_missing).axes[0].texts[0].get_text()


def test_speedup_chart_draws_candidates_with_their_ci():
    speedups = analysis.speedup_table(RECORDS)
    fig = plots.speedup_chart(speedups)
    check_figure(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "cpu/fp32" in ax.get_title() and ax.get_legend().get_title().get_text()
    assert len(ax.get_yticks()) == int((speedups["note"] != "baseline").sum() - speedups["speedup"].isna().sum())
    only_baseline = analysis.speedup_table([rec()])
    assert "no candidate" in plots.speedup_chart(only_baseline).axes[0].texts[0].get_text()
    assert "no data" in plots.speedup_chart(pd.DataFrame()).axes[0].texts[0].get_text()


def test_history_chart_annotates_software_changes():
    history = pd.DataFrame({"run_id": ["a", "b"], "started_at": pd.to_datetime(["2026-01-01", "2026-01-02"]),
                            "config_key": ["k", "k"], "metric": "latency_p50_s", "value": [0.010, 0.012],
                            "ci_low_s": [0.009, 0.011], "ci_high_s": [0.011, 0.013], "commit_changed": [False, True],
                            "software_changes": ["(first run)", "torch 2.4.0 -> 2.5.0"]})
    fig = plots.history_chart(history)
    check_figure(fig)
    ax = fig.axes[0]
    assert "(ms)" in ax.get_ylabel() and ax.get_legend().get_title().get_text() == "configuration"
    assert any("torch 2.4.0 -> 2.5.0; new commit" in t.get_text() for t in ax.texts)
    throughput = history.assign(metric="throughput_items_per_s", value=[100.0, 90.0])
    assert "(items/s)" in plots.history_chart(throughput).axes[0].get_ylabel()
    assert "no data" in plots.history_chart(history.iloc[:0]).axes[0].texts[0].get_text()


def test_training_memory_chart_stacks_parts_to_the_peak():
    split = {"weights_bytes": 4 * 2**20, "gradients_bytes": 4 * 2**20, "optimizer_state_bytes": 8 * 2**20,
             "activations_bytes": 16 * 2**20}
    extra = {"phases_mean_s": PHASES, "memory_split_bytes": split, "process_baseline_bytes": 100 * 2**20}
    records = [rec(peak_memory_bytes=110 * 2**20), rec(mode="training", peak_memory_bytes=132 * 2**20, extra=extra)]
    fig = plots.training_memory_chart(analysis.training_memory(records))
    check_figure(fig)
    ax = fig.axes[0]
    tops = [p.get_y() + p.get_height() for p in ax.patches]
    assert max(tops) == pytest.approx(132) and 110 in [pytest.approx(t) for t in tops]
    assert fig.legends and "(MiB)" in ax.get_ylabel()
    assert "no data" in plots.training_memory_chart(pd.DataFrame()).axes[0].texts[0].get_text()
