"""Intervals of measured figures from the spread between runs: pairs, pooling, coverage of a later run, recommend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from kit import recommend
from kit.recommend.core import ONE_RUN_NOTE
from kit.recommend.repeats import (
    INTERVAL_FROM,
    MIN_PAIRS,
    QUANTILE_PAIRS,
    measured_intervals,
    repeat_pairs,
    repeat_width,
    repeat_widths,
)
from tests.test_predict import fast_predictor, synthetic_frame
from tests.test_recommend import VARIANT


def rows(values: list[tuple[str, str, float]], platform: str = "cpu", threads: float = 1.0,
         hardware: str = "hw") -> pd.DataFrame:
    """Result rows (configuration, run, throughput) of one setting; the median CI is +-1 % within the run."""
    frame = pd.DataFrame(values, columns=["config_key", "run_id", "throughput_items_per_s"])
    latency = 1 / frame["throughput_items_per_s"]
    return frame.assign(platform=platform, threads=threads, hardware_id=hardware, latency_p50_s=latency,
                        ci_low_s=latency * 0.99, ci_high_s=latency * 1.01)


def test_pairs_are_consecutive_runs_of_one_configuration() -> None:
    frame = rows([("a", "r1", 100.0), ("a", "r3", 121.0), ("a", "r2", 110.0), ("a", "r3", 200.0),
                  ("b", "r1", 50.0)]).assign(created_at=["t1", "t3", "t2", "t4", "t1"])
    pairs = repeat_pairs(frame, "throughput_items_per_s")
    # r1-r2 and r2-r3, in time order; r3's later measurement stands for r3; b has no repeat
    assert np.allclose(sorted(pairs["size"]), sorted(abs(np.log([110 / 100, 200 / 110]))))
    assert repeat_pairs(frame.drop(columns="run_id"), "throughput_items_per_s").empty
    # a configuration tracked over many runs gives one pair per run, not one per two runs
    tracked = rows([("c", f"r{i:03d}", 100.0 + i % 3) for i in range(300)])
    assert len(repeat_pairs(tracked, "throughput_items_per_s")) == 299


def test_a_setting_uses_its_own_pairs_else_its_machines() -> None:
    many = rows([(f"c{i}", run, 100.0 * (1.1 if run == "r2" else 1.0)) for i in range(MIN_PAIRS)
                 for run in ("r1", "r2")])
    few = rows([("d", "r1", 10.0), ("d", "r2", 20.0)], threads=2.0)
    elsewhere = rows([("e", "r1", 10.0), ("e", "r2", 10.0)], threads=2.0, hardware="other")
    lone = rows([("f", "r1", 10.0)], hardware="third")
    widths = repeat_widths(pd.concat([many, few, elsewhere, lone]), "throughput_items_per_s")
    # eight pairs: the t bound from their spread (8 degrees of freedom), here all of one size
    assert widths.loc["cpu|threads1|hw", "width"] == pytest.approx(sps.t.ppf(0.95, MIN_PAIRS) * np.log(1.1))
    assert widths.loc["cpu|threads1|hw", "interval_from"] == f"{INTERVAL_FROM['setting']} ({MIN_PAIRS} pairs)"
    machine = widths.loc["cpu|threads2|hw"]  # one pair of its own: the machine's nine pairs instead
    assert machine["interval_from"] == f"{INTERVAL_FROM['machine']} ({MIN_PAIRS + 1} pairs)"
    assert widths.loc["cpu|threads2|other", "interval_from"] == f"{INTERVAL_FROM['machine']} (1 pair)"
    assert widths.loc["cpu|threads2|other", "width"] == 0.0  # its machine's only pair repeated exactly
    assert "cpu|threads1|third" not in widths.index  # nothing measured twice on that machine


@pytest.mark.parametrize("n_pairs", [1, 3, QUANTILE_PAIRS - 1, QUANTILE_PAIRS, 200])
def test_the_width_holds_a_new_pair_nine_times_in_ten(n_pairs: int) -> None:
    """Normal run levels: from one pair to many, a new pair's log ratio is within the width about 90 % of the time
    (the t bound is exact for few pairs, the conformal quantile at least 90 % for many)."""
    rng = np.random.default_rng(n_pairs)
    trials = 4000
    sizes = np.abs(rng.normal(0, 0.1, (trials, n_pairs)))
    widths = np.array([repeat_width(pd.Series(row)) for row in sizes])
    new = np.abs(rng.normal(0, 0.1, trials))
    assert abs((new <= widths).mean() - 0.9) <= 0.02


def test_a_later_run_lands_inside_the_repeat_interval_nine_times_in_ten() -> None:
    """Runs that differ by a level of 8 % (log sd) per configuration: the within-run CI (+-1 %) misses most later
    runs, the interval from the store's repeats holds about 90 % of them."""
    rng = np.random.default_rng(0)
    true = rng.uniform(10, 1000, 1000)
    runs = {run: true * np.exp(rng.normal(0, 0.08, true.size)) for run in ("r1", "r2", "r3", "later")}
    store = rows([(f"c{i}", run, runs[run][i]) for run in ("r1", "r2", "r3") for i in range(true.size)])
    latest = store[store["run_id"] == "r3"]
    intervals = measured_intervals(latest, store)
    later = pd.Series(runs["later"], index=latest.index)
    inside = (intervals["throughput_low"] <= later) & (later <= intervals["throughput_high"])
    assert 0.87 <= inside.mean() <= 0.93
    latency = 1 / later
    assert 0.87 <= ((intervals["latency_low"] <= latency) & (latency <= intervals["latency_high"])).mean() <= 0.93
    within_run = (latest["ci_low_s"] <= latency) & (latency <= latest["ci_high_s"])
    assert within_run.mean() < 0.25
    assert (intervals["interval_from"] == f"{INTERVAL_FROM['setting']} (2000 pairs)").all()


def test_without_repeats_the_interval_is_the_runs_own_and_says_so() -> None:
    store = rows([("a", "r1", 100.0), ("b", "r1", 50.0)])
    intervals = measured_intervals(store, store)
    assert np.allclose(intervals["latency_low"], store["ci_low_s"])
    assert np.allclose(intervals["throughput_high"], 100.0 / 0.99 * np.array([1, 0.5]))
    assert (intervals["interval_from"] == INTERVAL_FROM["run"]).all()


def test_recommend_gives_measured_figures_the_spread_between_runs() -> None:
    frame = synthetic_frame(n_families=3)
    frame = frame.assign(config_key=frame["model"] + "|" + frame["precision"] + "|" + frame["batch_size"].astype(str)
                         + "|" + frame["params_json"] + "|" + frame["seq_len"].astype(str))
    again = frame.assign(run_id="synthetic-again", created_at="2026-01-02T00:00:00",
                         throughput_items_per_s=frame["throughput_items_per_s"] * 1.2,
                         latency_p50_s=frame["latency_p50_s"] / 1.2, ci_low_s=frame["ci_low_s"] / 1.2,
                         ci_high_s=frame["ci_high_s"] / 1.2)
    both = pd.concat([frame, again], ignore_index=True)
    both = both[~((both["model"] == "fam0") & (both["batch_size"] == 16))]  # predicted
    predictor = fast_predictor().fit(frame)
    table = recommend.recommend(both, "fam0", predictor=predictor, **VARIANT)
    measured = table[table["source"] == "measured"]
    assert len(measured) and measured["interval_from"].str.startswith(INTERVAL_FROM["setting"]).all()
    # every configuration ran 20 % faster the second time: the latest figure's interval reaches back to the first
    assert np.allclose(measured["throughput_low"], measured["throughput_items_per_s"] / 1.2)
    assert np.allclose(measured["latency_high_s"], measured["latency_s"] * 1.2)
    predicted = table[table["source"] == "predicted"]
    assert len(predicted) and (predicted["interval_from"] == INTERVAL_FROM["predicted"]).all()
    assert ONE_RUN_NOTE not in table.attrs["notes"]
    one_run = recommend.recommend(frame, "fam0", predictor=predictor, **VARIANT)
    assert (one_run.loc[one_run["source"] == "measured", "interval_from"] == INTERVAL_FROM["run"]).all()
    assert ONE_RUN_NOTE in one_run.attrs["notes"]
