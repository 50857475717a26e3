"""Each notebook's answer: the values its tests read and the formatted figures its published page leads with."""

from __future__ import annotations

import pandas as pd

from kit import headlines
from kit.notebook import MIME
from kit.records import Record


def identity(platform: str, batch_size: int = 1) -> dict:
    return dict(run_id="r", config_key=f"bert|{platform}|{batch_size}", model="bert", family="bert", size="tiny",
                mode="inference", platform=platform, device=platform, precision="fp32", batch_size=batch_size)


def test_benchmark_headline_counts_statuses_and_formats_the_best_with_units():
    records = [Record.from_samples([0.002, 0.001, 0.003], **identity("cpu")),
               Record.from_samples([0.004, 0.004, 0.005], **identity("cpu", 8)),
               Record.failure("skipped", "CUDA is not available", **identity("cuda"))]
    answer = headlines.benchmark("r", records, pd.DataFrame({"drift_index": [0.031]}))
    assert (answer.values["n_ok"], answer.values["n_skipped"], answer.values["n_failed"]) == (2, 1, 0)
    assert answer.values["best_throughput_items_per_s"] == records[1].throughput_items_per_s
    assert answer.values["percentiles_ordered"] is True and answer.values["drift_index"] == 0.031
    assert answer.figures["configurations"] == "2 measured, 1 skipped, 0 failed"
    assert answer.figures["highest throughput"].endswith("items/s (bert cpu/fp32, batch 8)")
    assert answer.figures["lowest median latency"] == "2 ms (bert cpu/fp32, batch 1)"
    assert answer.figures["machine drift during the run"] == "3.1 %"


def test_a_run_without_ok_results_has_a_headline_without_figures_that_need_one():
    answer = headlines.benchmark("r", [Record.failure("failed", "boom", **identity("cpu"))], pd.DataFrame())
    assert answer.values["n_ok"] == 0 and answer.values["best_throughput_items_per_s"] is None
    assert answer.figures["highest throughput"] is None and answer.figures["machine drift during the run"] is None


def test_publish_records_every_value_and_shows_the_figures_given(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    from kit import notebook

    notebook.publish(notebook.Headline({"n_ok": 2, "ratio": 1.5, "rows": [{"floor": float("nan")}]},
                                       {"speed": "1.5x", "left out": None}))
    recorded = {o[MIME]["name"]: o[MIME]["value"] for o in shown if isinstance(o, dict) and MIME in o}
    assert recorded == {"n_ok": 2, "ratio": 1.5, "rows": [{"floor": None}],  # NaN is not JSON: None
                        "headline_figures": {"speed": "1.5x"}}
    html = [o.data for o in shown if hasattr(o, "data")]
    assert len(html) == 1 and "speed: <b>1.5x</b>" in html[0] and "left out" not in html[0]
