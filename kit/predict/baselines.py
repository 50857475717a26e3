"""The analytic baselines the predictor builds on and is compared with: the roofline calibrated per group
(`Baseline`), and a time model of fixed, per-call, compute, traffic and overhead terms fitted per setting
(`OverheadBaseline`). Both are calibrated on measured rows of `kit.predict.features.feature_frame`; neither is a
measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from kit.errors import ConfigError
from kit.predict.features import KERNEL_COLUMN, TRAINING_FLOP_FACTOR, numeric_column

BASELINE_KINDS = ("overhead", "roofline")
N_OVERHEAD_TERMS = 10  # fixed, per op call, compute, traffic, attention scores, per Python call, extra conv compute,
#                        per conv call, thin matrix products, OpenVINO's slow data-movement kernels' traffic
MIN_FITTED_SHARE = 0.1  # of a row's time, left to the fitted terms whatever the depthwise convolutions' fixed time
BASELINE_LEVELS = (["platform", "precision", "mode", "has_peaks"], ["platform", "mode", "has_peaks"], ["has_peaks"])


def _roof_s(features: pd.DataFrame) -> pd.Series:
    """Roofline seconds per batch; without measured peaks, FLOPs per batch (a 1 FLOP/s machine) for calibration."""
    flops = features["flops_per_item"] * features["batch_size"].astype(float)
    return features["roofline_s"].where(features["roofline_s"] > 0, flops)


def _baseline_input(features: pd.DataFrame, target: str) -> pd.Series:
    """The uncalibrated analytic value: batch/roofline (throughput), roofline (latency), static bytes (memory)."""
    if target == "throughput":
        return np.log(features["batch_size"].astype(float) / _roof_s(features))
    if target == "latency":
        return np.log(_roof_s(features))
    return np.log(features["static_memory_bytes"].clip(lower=1.0))


@dataclass
class Baseline:
    """The roofline made honest by one calibration per group: median log offset (time) or extra bytes (memory)."""

    target: str
    offsets: dict[tuple, dict] = field(default_factory=dict)

    def fit(self, features: pd.DataFrame, y: pd.Series) -> Baseline:
        """Learn the per-group medians from measured rows."""
        data = features.assign(has_peaks=features["roofline_s"].notna())
        if self.target == "memory":
            data = data.assign(_offset=(y - features["static_memory_bytes"]).clip(lower=0))
        else:
            data = data.assign(_offset=np.log(y) - _baseline_input(features, self.target))
        for level in BASELINE_LEVELS:
            self.offsets[tuple(level)] = data.groupby(level)["_offset"].median().to_dict()
        self.offsets[()] = {(): float(data["_offset"].median())}
        return self

    def predict_log(self, features: pd.DataFrame) -> pd.Series:
        """Log of the calibrated baseline, from the most specific group seen in training."""
        data = features.assign(has_peaks=features["roofline_s"].notna())
        offset = pd.Series(self.offsets[()][()], index=features.index, dtype=float)
        for level in reversed(BASELINE_LEVELS):
            keys = list(data[level].itertuples(index=False, name=None))
            found = pd.Series([self.offsets[tuple(level)].get(k, np.nan) for k in keys], index=features.index)
            offset = found.where(found.notna(), offset)
        if self.target == "memory":
            return np.log(features["static_memory_bytes"] + offset)
        return _baseline_input(features, self.target) + offset


def call_count(frame: pd.DataFrame) -> pd.Series:
    """Calls one forward launches: OpenVINO's executed kernels where counted (it fuses the graph before it runs it:
    a convolution with its norm and activation is one kernel, a layout change one more), else torch's aten calls."""
    return numeric_column(frame, KERNEL_COLUMN).fillna(numeric_column(frame, "ops_per_forward"))


def _overhead_design(features: pd.DataFrame) -> np.ndarray:
    """Columns of the time model: fixed cost, cost per op call (x3 in training: forward and backward), roofline
    compute time, roofline traffic time, attention score elements (in units of 1e9) and Python calls of the model
    code (once per step: backward runs in C++), the roofline compute time of the convolutions once more (its
    coefficient is the extra cost of a conv FLOP over the rate of the rest: non-negative, never cheaper, so without
    convolutions in training it is simply zero), convolution calls (x3 in training), whose data oneDNN reorders
    on every call, the FLOPs that thin matrix products and thin convolutions lose (`thin_matmul_flops`,
    `thin_conv_flops`) at the compute rate, and the bytes OpenVINO's slow data-movement kernels (its reference,
    Transpose, Reorder and element-wise kernels) write at the measured bandwidth once more (its coefficient is their
    extra cost per byte; zero without them). The call count is OpenVINO's executed kernels where they were counted
    (`call_count`).

    Without measured peaks the compute and traffic columns are FLOPs and bytes (in units of 1e12), whose coefficients
    absorb the rates. Results stored without a forward profile have no op-call, score or Python-call column (zeros).
    """
    compute = features["compute_s"].where(features["compute_s"] > 0, features["flops_per_batch"] / 1e12)
    memory = features["memory_s"].where(features["memory_s"] > 0, features["traffic_bytes"] / 1e12)
    passes = np.where(features["training"] > 0, TRAINING_FLOP_FACTOR, 1.0)
    calls = call_count(features).fillna(0.0) * passes
    scores = (numeric_column(features, "attention_scores_per_sample").fillna(0.0) * features["batch_size"].astype(float)
              * passes / 1e9)
    python_calls = numeric_column(features, "python_calls_per_forward").fillna(0.0)
    conv = features["conv_compute_s"].where(features["compute_s"] > 0, features["conv_flops_per_batch"] / 1e12)
    conv_calls = numeric_column(features, "conv_calls_per_forward").fillna(0.0) * passes
    thin = features["thin_s"].where(features["compute_s"] > 0, features["thin_flops"] / 1e12)
    slow = features["slow_s"].where(features["compute_s"] > 0, features["slow_bytes"] / 1e12)
    return np.column_stack([np.ones(len(features)), calls, compute.astype(float), memory.astype(float), scores,
                            python_calls, conv.fillna(0.0).astype(float), conv_calls, thin.fillna(0.0).astype(float),
                            slow.fillna(0.0).astype(float)])


def fixed_seconds(features: pd.DataFrame) -> pd.Series:
    """The time the overhead baseline adds without fitting it: the depthwise convolutions' at their measured costs
    (`kit.predict.features.depthwise_time`; 0 where there are none or no costs were measured). The zoo's families
    have no depthwise convolutions, so no coefficient of theirs could learn what they cost."""
    return numeric_column(features, "depthwise_s").fillna(0.0)


def _scaled_nnls(design: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Non-negative least squares with every column scaled to unit norm first (the terms differ by many orders of
    magnitude, which can stall the solver); None when it still does not converge (the group then gets no model of its
    own and falls back to a broader one)."""
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    try:
        coef, _ = nnls(design / norms, target, maxiter=50 * design.shape[1])
    except RuntimeError:
        return None
    return coef / norms


@dataclass
class OverheadBaseline:
    """Seconds per batch = fixed + per-op-call overhead + roofline compute and traffic times + attention-score work
    + Python-call overhead + extra convolution compute + per-convolution-call overhead + the compute thin matrix
    products and convolutions lose + the traffic of OpenVINO's slow data-movement kernels, each with a non-negative
    coefficient fitted for relative error (NNLS) per platform, precision, mode and thread count (else per platform,
    mode and threads, else over all rows): the roofline plus the call overheads that dominate small models. The
    depthwise convolutions' time at their measured costs is added as it is (`fixed_seconds`).
    Throughput is batch / time; latency is the time."""

    target: str
    min_rows: int = 4
    coefs: dict[tuple, np.ndarray] = field(default_factory=dict)

    def fit(self, features: pd.DataFrame, y: pd.Series) -> OverheadBaseline:
        """Fit one coefficient vector per group of each level (`_overhead_groups`) with enough rows, and one for
        all."""
        seconds = features["batch_size"].astype(float) / y if self.target == "throughput" else y.astype(float)
        # the fitted terms explain what the depthwise convolutions leave (at least a tenth of the time)
        seconds = np.maximum(seconds - fixed_seconds(features), seconds * MIN_FITTED_SHARE)
        levels = _overhead_groups(features)
        keys = [None, *sorted({key for level in levels for key in level})]
        relative = _overhead_design(features) / seconds.to_numpy()[:, None]  # row-wise: each group takes its rows
        for key in keys:
            mask = (np.ones(len(features), bool) if key is None
                    else np.array([key in level for level in levels]))
            if mask.sum() >= self.min_rows:
                design = relative[mask]
                coef = _scaled_nnls(np.nan_to_num(design), np.ones(int(mask.sum())))
                if coef is not None and coef.any():
                    self.coefs[key] = coef
        return self

    def predict_log(self, features: pd.DataFrame) -> pd.Series:
        """Log throughput or log latency of the most specific group's time model seen in training (else the
        global one)."""
        design = np.nan_to_num(_overhead_design(features))
        fallback = self.coefs.get(None, np.zeros(N_OVERHEAD_TERMS))
        coefs = np.array([next((self.coefs[k] for k in level if k in self.coefs), fallback)
                          for level in _overhead_groups(features)])
        fitted = np.maximum((design * coefs).sum(axis=1), 1e-12)
        seconds = pd.Series(fitted, index=features.index) + fixed_seconds(features)
        if self.target == "throughput":
            return np.log(features["batch_size"].astype(float) / seconds)
        return np.log(seconds)


def _overhead_groups(features: pd.DataFrame) -> list[tuple[tuple, ...]]:
    """Per row, its groups from the most specific: (platform, mode, peaks known, intra-op threads or 0 when not
    recorded, precision), then the same without precision, then without mode (training rows are few; the design
    already scales calls, FLOPs and bytes for a step). One thread and two differ in every rate (the peaks are
    measured once, with the default threads); precisions differ in kernels (OpenVINO int8 is not its fp32)."""
    threads = numeric_column(features, "threads").fillna(0).astype(int)
    broad = list(zip(features["platform"].astype(str), features["mode"].astype(str), features["compute_s"].notna(),
                     threads, strict=True))
    precisions = features["precision"].astype(str)
    return [((*key, precision), key, ("any mode", key[0], *key[2:], precision))
            for key, precision in zip(broad, precisions, strict=True)]


def make_baseline(target: str, kind: str = "overhead") -> Baseline | OverheadBaseline:
    """The analytic baseline of a target: 'overhead' (fixed + per-call + roofline times) or 'roofline' (constant
    efficiency per group); memory always uses static bytes plus a per-group offset."""
    if kind not in BASELINE_KINDS:
        raise ConfigError(f"unknown baseline {kind!r}; known: {', '.join(BASELINE_KINDS)}")
    return OverheadBaseline(target) if kind == "overhead" and target != "memory" else Baseline(target)
