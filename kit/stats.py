"""Latency statistics: percentiles, a distribution-free CI of the median, and two-sample comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of latency samples, in the samples' unit (seconds in the kit)."""

    n: int
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float
    ci_low: float
    ci_high: float

    @property
    def rel_halfwidth(self) -> float:
        """Half the width of the median's CI relative to the median: the adaptive stop's convergence measure."""
        return (self.ci_high - self.ci_low) / 2 / self.p50


def median_ci(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics; (min, max) when n is too small."""
    x = np.sort(np.asarray(samples, dtype=float))
    ci = sps.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence)
    low, high = float(ci.low), float(ci.high)
    if math.isnan(low) or math.isnan(high):
        return float(x[0]), float(x[-1])
    return low, high


def summarise(samples: list[float] | np.ndarray) -> Summary:
    """Mean, stdev, p50/p90/p95/p99 and the median's 95% CI of raw samples (needs at least one sample)."""
    x = np.sort(np.asarray(samples, dtype=float))
    if x.size == 0:
        raise ValueError("summarise needs at least one sample")
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    low, high = median_ci(x)
    return Summary(
        n=int(x.size),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        p50=float(p50),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
        ci_low=low,
        ci_high=high,
    )


MIN_CI_SAMPLES = 6  # below this the order-statistics CI of the median at 95% does not exist: (min, max) stands in


def converged(samples: list[float], target_rel_ci: float, min_samples: int) -> bool:
    """True once there are `min_samples` samples and the median's CI half-width is within `target_rel_ci`."""
    if len(samples) < max(min_samples, MIN_CI_SAMPLES):
        return False
    return summarise(samples).rel_halfwidth <= target_rel_ci


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline: ratio of medians (candidate / baseline), its CI, and a Mann-Whitney p-value."""

    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    p_value: float
    significant: bool


def compare(candidate: list[float], baseline: list[float], alpha: float = 0.05, seed: int = 0) -> Comparison:
    """Compare two latency sample sets: median ratio with a bootstrap CI, two-sided Mann-Whitney U test."""
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("compare needs samples on both sides")
    ratio = float(np.median(a) / np.median(b))
    rng = np.random.default_rng(seed)
    boot_a = np.median(rng.choice(a, size=(1000, a.size)), axis=1)
    boot_b = np.median(rng.choice(b, size=(1000, b.size)), axis=1)
    low, high = np.percentile(boot_a / boot_b, [2.5, 97.5])
    p_value = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue) if min(a.size, b.size) > 1 else 1.0
    return Comparison(ratio, float(low), float(high), p_value, p_value < alpha)
