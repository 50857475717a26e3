"""Latency statistics: percentiles, a distribution-free CI of the median, and two-sample comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of latency samples, in the samples' unit (seconds in the kit)."""

    n: int
    mean: float
    std: float
    p10: float
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
    """Mean, stdev, p10/p50/p90/p95/p99 and the median's 95% CI of raw samples (needs at least one sample)."""
    x = np.sort(np.asarray(samples, dtype=float))
    if x.size == 0:
        raise ValueError("summarise needs at least one sample")
    p10, p50, p90, p95, p99 = np.percentile(x, [10, 50, 90, 95, 99])
    low, high = median_ci(x)
    return Summary(
        n=int(x.size),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        p10=float(p10),
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


# --- statistics between rounds: the unit of evidence is a round (or a run), never a single sample ---------------------


STATISTICS = {"p10": 0.1, "median": 0.5}  # per-round statistics a comparison can use, as quantiles
STATISTIC = "p10"  # the default: interference on a shared machine only ever adds time, so a round's fastest calls
# repeat from round to round and run to run far better than its median (docs/methodology.md)


def round_quantiles(samples: list[float] | tuple[float, ...], rounds: list[int] | tuple[int, ...],
                    q: float) -> dict[int, float]:
    """The q-quantile (linear interpolation) of each round's samples, keyed by round index."""
    if len(samples) != len(rounds):
        raise ValueError(f"{len(samples)} samples but {len(rounds)} round indices")
    by_round: dict[int, list[float]] = {}
    for value, index in zip(samples, rounds, strict=True):
        by_round.setdefault(int(index), []).append(float(value))
    return {index: float(np.quantile(values, q)) for index, values in sorted(by_round.items())}


def round_medians(samples: list[float] | tuple[float, ...], rounds: list[int] | tuple[int, ...]) -> dict[int, float]:
    """The median sample of each round, keyed by round index."""
    return round_quantiles(samples, rounds, 0.5)


def statistic_quantile(statistic: str) -> float:
    """The quantile of a per-round statistic's name (p10, median); ConfigError-style ValueError naming a bad one."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
    return STATISTICS[statistic]


def drift_index(medians: dict[int, float] | list[float]) -> float:
    """Robust coefficient of variation of per-round medians (1.4826 x MAD / median, the standard deviation's
    estimate for normal data): how much the machine's speed moved across the rounds, one wild round aside."""
    x = np.asarray(list(medians.values()) if isinstance(medians, dict) else medians, dtype=float)
    if x.size < 2:
        return 0.0
    centre = float(np.median(x))
    return float(1.4826 * np.median(np.abs(x - centre)) / centre)


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio (candidate / baseline) with its CI and the p-value of 'no change', from n units (rounds or runs)."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    se_log: float  # standard error of log(ratio)
    df: float

    def detectable_change(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The smallest relative change this design detects with `power` at two-sided `alpha` (0.05 = 5 %)."""
        if not (self.se_log > 0 and math.isfinite(self.se_log) and self.df > 0):
            return math.inf
        t = sps.t.ppf(1 - alpha / 2, self.df) + sps.t.ppf(power, self.df)
        return float(math.exp(t * self.se_log) - 1)


def _t_ratio(mean_log: float, se_log: float, df: float, n: int, confidence: float) -> RatioEstimate:
    ratio = math.exp(mean_log)
    if not (math.isfinite(se_log) and df > 0):  # a single unit: no spread, no evidence
        return RatioEstimate(ratio, 0.0, math.inf, 1.0, n, math.inf, 0.0)
    if se_log == 0:
        return RatioEstimate(ratio, ratio, ratio, 1.0 if mean_log == 0 else 0.0, n, 0.0, df)
    half = sps.t.ppf(0.5 + confidence / 2, df) * se_log
    p = float(2 * sps.t.sf(abs(mean_log) / se_log, df))
    return RatioEstimate(ratio, math.exp(mean_log - half), math.exp(mean_log + half), p, n, se_log, df)


TRIM = 0.2  # share of rounds trimmed from each end: one burst the host disturbed does not decide a comparison


def trimmed_mean_var(x: np.ndarray, trim: float = TRIM) -> tuple[float, float, int]:
    """Trimmed mean of x, the variance of that mean (from the winsorized variance, Tukey-McLaughlin / Yuen) and its
    degrees of freedom; trim 0 gives the plain mean, var/n and n-1."""
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    g = int(math.floor(trim * n))
    h = n - 2 * g
    if h < 2:
        return float(np.median(x)), math.inf, 0
    winsorized = np.clip(x, x[g], x[n - g - 1])
    var = (n - 1) * winsorized.var(ddof=1) / (h * (h - 1))
    return float(x[g:n - g].mean()), float(var), h - 1


def paired_ratio(candidate: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE,
                 trim: float = TRIM) -> RatioEstimate:
    """Ratio candidate / baseline from rounds where both ran: the trimmed geometric mean of the per-round ratios,
    with a trimmed t interval over rounds (a paired test on log ratios: the round's shared drift cancels in each
    pair, and trimming keeps one disturbed burst from deciding it)."""
    common = sorted(set(candidate) & set(baseline))
    if not common:
        raise ValueError("paired_ratio needs at least one round measured on both sides")
    d = np.log([candidate[r] / baseline[r] for r in common])
    mean, var, df = trimmed_mean_var(d, trim)
    return _t_ratio(mean, math.sqrt(var), df, d.size, confidence)


def replicated_ratio(estimates: list[RatioEstimate], confidence: float = CONFIDENCE) -> RatioEstimate:
    """Ratio from several independent pairs of processes (each pair's own round-paired estimate): the geometric mean
    of the pairs' ratios with a t interval over pairs (k - 1 degrees of freedom). A process keeps its speed offset
    (memory placement, thread layout) for as long as it lives, so the spread between pairs is what says how far
    another pair of processes would land; one pair alone is returned as it is."""
    if not estimates:
        raise ValueError("replicated_ratio needs at least one estimate")
    if len(estimates) == 1:
        return estimates[0]
    logs = np.log([e.ratio for e in estimates])
    k = logs.size
    return _t_ratio(float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(k)), k - 1, k, confidence)


def unpaired_ratio(candidate: list[float], baseline: list[float], confidence: float = CONFIDENCE,
                   extra_var_log: float = 0.0, extra_df: int = 0, trim: float = TRIM) -> RatioEstimate:
    """Ratio of trimmed geometric means of two independent sets of units (per-round values of two runs), with
    Yuen's trimmed Welch interval on logs; extra_var_log adds the variance of a run's level (the spread between
    repeated baseline runs, estimated with extra_df degrees of freedom), which bounds the degrees of freedom too."""
    (ma, va, dfa), (mb, vb, dfb) = (trimmed_mean_var(np.log(np.asarray(x, dtype=float)), trim)
                                    for x in (candidate, baseline))
    if not (dfa > 0 and dfb > 0):
        return _t_ratio(ma - mb, math.inf, 0, min(len(candidate), len(baseline)), confidence)
    var = va + vb + extra_var_log
    df = (va + vb) ** 2 / (va**2 / dfa + vb**2 / dfb) if va + vb > 0 else dfa + dfb
    if extra_var_log > 0 and extra_df > 0:
        df = min(df, extra_df)
    return _t_ratio(ma - mb, math.sqrt(var), float(df), min(len(candidate), len(baseline)), confidence)


def holm(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The table with `p_holm` (Holm-adjusted `p_value` over the rows that have one, NaN elsewhere) and
    `significant` (p_holm below alpha) columns."""
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"].astype(float), alpha, "holm")[1]
    table["significant"] = table["p_holm"].lt(alpha)
    return table
