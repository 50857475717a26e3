"""Charts of prediction and recommendation (kit.plots): titled, labelled, log axes where values span decades, and a
"no data" Figure when there is nothing to draw. Frames here are synthetic test data, drawn only."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from kit import plots, predict, recommend
from kit.predict import features
from tests.test_predict import fast_predictor, synthetic_frame

matplotlib.use("Agg")


def check(fig: Figure) -> None:
    """A titled Figure whose first axes are labelled, with a legend; it renders to PNG."""
    assert isinstance(fig, Figure)
    assert any(t.strip() for t in [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)])
    assert fig.axes[0].get_xlabel().strip() and fig.axes[0].get_ylabel().strip()
    assert fig.legends or any(ax.get_legend() for ax in fig.axes)
    fig.savefig(io.BytesIO(), format="png")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(n_families=3, platforms=("cpu", "cuda"), batch_sizes=(1, 4))


def test_predicted_vs_measured_is_log_log_per_target(frame) -> None:
    validations = predict.validate_targets(frame, fast_predictor(targets=("throughput", "latency"), coverage=0.8))
    long = predict.validation_frame(validations)
    long.loc[long.index[0], "high"] = np.inf  # an unbounded interval is clipped, not dropped
    fig = plots.predicted_vs_measured(long)
    check(fig)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"
    assert "(items/s)" in fig.axes[0].get_xlabel() and "(ms)" in fig.axes[1].get_ylabel()
    errors = plots.error_by_family(long)
    check(errors)
    throughput = long[long["target"] == "throughput"]
    expected = (100 * (throughput["pred"] - throughput["measured"]).abs() / throughput["measured"]).groupby(
        throughput["group"].astype(str)).mean()
    labels = sorted(t.get_text() for t in errors.axes[0].texts)
    assert labels == sorted(f"{v:.0f} %" for v in expected)  # each family's MAPE, written above its box


def test_feature_importances_and_roofline(frame) -> None:
    fitted = fast_predictor(targets=("throughput",)).fit(frame)
    fig = plots.feature_importances(fitted.importances(frame, n_repeats=2))
    check(fig)
    roof = plots.roofline_chart(features.feature_frame(frame))
    check(roof)
    assert roof.axes[0].get_xscale() == "log" and len(roof.axes[0].lines) == 4  # one roof per platform/precision


def test_recommendation_chart_marks_predictions(frame) -> None:
    data = frame[~((frame["model"] == "fam0") & (frame["batch_size"] == 4))]
    table = recommend.recommend(data, "fam0", predictor=fast_predictor().fit(data), hourly_prices={"cpu": 0.1},
                                overrides={"num_hidden_layers": 2, "hidden_size": 64}, seq_len=64)
    assert set(table["source"]) == {"measured", "predicted"}
    for objective in ("throughput", "latency", "memory"):
        fig = plots.recommendation_chart(table, objective)
        check(fig)
        assert fig.axes[0].get_xscale() == "log"
    check(plots.recommendation_chart(recommend.rank(table, "cost"), "cost"))


@pytest.mark.parametrize("chart", [plots.predicted_vs_measured, plots.feature_importances, plots.roofline_chart,
                                   plots.recommendation_chart, plots.error_by_family, plots.generation_chart],
                         ids=lambda f: f.__name__)
def test_empty_input_gives_a_no_data_figure(chart) -> None:
    fig = chart(pd.DataFrame())
    assert isinstance(fig, Figure) and fig.axes[0].get_title()
    assert any("no" in t.get_text() for t in fig.axes[0].texts)
