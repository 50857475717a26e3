import math

import numpy as np
import pytest

from kit import stats
from kit.stats import compare, converged, median_ci, summarise
from kit.timing import measure_adaptive


class FakeClock:
    """A clock that returns seeded noisy durations instead of timing anything."""

    def __init__(self, base_s=0.01, rel_noise=0.01, seed=0):
        self.rng = np.random.default_rng(seed)
        self.base_s = base_s
        self.rel_noise = rel_noise
        self.calls = 0

    def time_call(self, fn):
        fn()
        self.calls += 1
        return float(self.base_s * (1 + self.rel_noise * abs(self.rng.standard_normal())))


def test_summarise_known_values():
    s = summarise([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s.n == 5 and s.mean == 3.0 and s.p50 == 3.0
    assert s.p90 == pytest.approx(4.6) and s.p99 == pytest.approx(4.96)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    assert s.p50 <= s.p90 <= s.p95 <= s.p99


def test_median_ci_contains_median_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.lognormal(0, 0.1, 30), rng.lognormal(0, 0.1, 3000)
    lo_s, hi_s = median_ci(small)
    lo_l, hi_l = median_ci(large)
    assert lo_s <= np.median(small) <= hi_s
    assert (hi_l - lo_l) < (hi_s - lo_s)


def test_median_ci_falls_back_to_range_for_tiny_samples():
    assert median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)


def test_median_ci_coverage_is_about_95_percent():
    rng = np.random.default_rng(2)
    hits = sum(lo <= 1.0 <= hi for lo, hi in (median_ci(rng.lognormal(0, 0.2, 50)) for _ in range(400)))
    assert 0.9 <= hits / 400 <= 0.99


def test_summarise_rejects_empty():
    with pytest.raises(ValueError):
        summarise([])


def test_converged_needs_min_samples_and_tight_ci():
    tight = [1.0 + 1e-4 * i for i in range(50)]
    assert converged(tight, 0.02, 10)
    assert not converged(tight[:5], 0.02, 3)
    wide = list(np.random.default_rng(3).lognormal(0, 1.0, 50))
    assert not converged(wide, 0.02, 10)


def test_adaptive_loop_stops_early_when_quiet():
    clock = FakeClock(rel_noise=0.001)
    m = measure_adaptive(lambda: None, clock, time_budget_s=60, target_rel_ci=0.02, min_samples=10)
    assert m.converged and 10 <= len(m.samples_s) < 100


def test_adaptive_loop_runs_to_budget_when_noisy():
    clock = FakeClock(rel_noise=5.0)
    m = measure_adaptive(lambda: None, clock, time_budget_s=0.2, target_rel_ci=0.001, min_samples=10, max_samples=500)
    assert not m.converged
    assert len(m.samples_s) == clock.calls >= 10


def test_adaptive_loop_respects_max_samples():
    m = measure_adaptive(lambda: None, FakeClock(rel_noise=5.0), time_budget_s=60, target_rel_ci=1e-6, max_samples=40)
    assert len(m.samples_s) == 40


def test_compare_detects_planted_slowdown_and_not_noise():
    rng = np.random.default_rng(4)
    base = rng.lognormal(np.log(0.01), 0.05, 200)
    slow = rng.lognormal(np.log(0.013), 0.05, 200)
    same = rng.lognormal(np.log(0.01), 0.05, 200)
    c = compare(slow, base)
    assert c.significant and c.ratio == pytest.approx(1.3, rel=0.05) and c.ratio_ci_low > 1.2
    assert not compare(same, base).significant


def test_paired_ratio_matches_a_hand_computed_paired_t():
    # log ratios ln 2, ln 2.2, ln 1.8: mean 0.68980, sd 0.10038, se 0.05795; t(0.975, 2 df) = 4.30265
    estimate = stats.paired_ratio({0: 2.0, 1: 2.2, 2: 1.8, 3: 9.0}, {0: 1.0, 1: 1.0, 2: 1.0}, trim=0)
    assert estimate.n == 3 and estimate.df == 2
    assert estimate.ratio == pytest.approx(1.99331, rel=1e-5)
    assert estimate.se_log == pytest.approx(0.057953, rel=1e-4)
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((1.55340, 2.55780), rel=1e-4)


def test_trimming_keeps_one_disturbed_round_from_deciding():
    x = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.9]
    mean, var, df = stats.trimmed_mean_var(np.asarray(x), 0.1)
    assert (mean, df) == (pytest.approx(0.045), 7) and var == pytest.approx(0.00011875)
    assert stats.trimmed_mean_var(np.asarray(x), 0)[1] == pytest.approx(np.var(x, ddof=1) / 10)


def test_paired_ratio_cancels_a_drift_shared_by_both_sides():
    drift = {r: 1 + 0.05 * r for r in range(10)}  # the machine slows by half over ten rounds
    rng = np.random.default_rng(0)
    base = {r: 0.010 * drift[r] * rng.lognormal(0, 0.005) for r in drift}
    same = {r: 0.010 * drift[r] * rng.lognormal(0, 0.005) for r in drift}
    slower = {r: 0.0112 * drift[r] * rng.lognormal(0, 0.005) for r in drift}
    null = stats.paired_ratio(same, base)
    assert null.ci_low < 1 < null.ci_high and null.detectable_change() < 0.02
    hit = stats.paired_ratio(slower, base)
    assert hit.ci_low > 1.08 and hit.p_value < 1e-6
    unpaired = stats.unpaired_ratio(list(same.values()), list(base.values()))
    assert unpaired.ci_high - unpaired.ci_low > 5 * (null.ci_high - null.ci_low)  # drift left in: wide


def test_round_medians_and_drift_index():
    assert stats.round_medians([3, 1, 2, 10, 30], [0, 0, 0, 1, 1]) == {0: 2.0, 1: 20.0}
    assert stats.drift_index({0: 1.0, 1: 1.0}) == 0 and stats.drift_index([1.0, 3.0]) == pytest.approx(0.7413, 1e-3)
    assert stats.drift_index([1.0, 1.02, 0.98, 1.0, 50.0]) == pytest.approx(1.4826 * 0.02)  # one wild round aside
    with pytest.raises(ValueError, match="round indices"):
        stats.round_medians([1.0], [0, 1])


def test_round_quantiles_interpolate_within_each_round():
    # round 0: 1, 2, 3, 4, 5 -> p10 = 1.4 (numpy's linear interpolation); round 1: one sample is its own p10
    assert stats.round_quantiles([5, 1, 4, 2, 3, 7], [0, 0, 0, 0, 0, 1], 0.1) == pytest.approx({0: 1.4, 1: 7.0})
    assert stats.statistic_quantile("p10") == 0.1 and stats.statistic_quantile("median") == 0.5
    with pytest.raises(ValueError, match="unknown statistic 'p5'"):
        stats.statistic_quantile("p5")


def test_a_single_round_is_no_evidence():
    estimate = stats.paired_ratio({0: 2.0}, {0: 1.0})
    assert estimate.p_value == 1.0 and estimate.ci_high == float("inf") and estimate.detectable_change() == float("inf")


def test_replicated_ratio_is_a_t_interval_over_pairs_of_processes():
    from kit.stats import RatioEstimate, replicated_ratio

    pairs = [RatioEstimate(math.exp(x), 0, 0, 1, 10, 0.01, 9) for x in (0.1, 0.2, 0.3)]
    estimate = replicated_ratio(pairs)
    se = 0.1 / math.sqrt(3)  # sd of the three log ratios is 0.1
    half = 4.302653 * se  # t(0.975, 2 df)
    assert estimate.n == 3 and estimate.df == 2 and estimate.se_log == pytest.approx(se)
    assert estimate.ratio == pytest.approx(math.exp(0.2))
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((math.exp(0.2 - half), math.exp(0.2 + half)), rel=1e-5)
    assert replicated_ratio(pairs[:1]) is pairs[0]
