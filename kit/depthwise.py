"""Depthwise convolutions on a torch platform: their time over a grid of shapes, fitted as costs per call, per output
element and per multiply-accumulate, and the time those costs give a model's depthwise convolutions.

A depthwise convolution (one input channel per group: MobileNet's 3x3, ConvNeXt's 7x7) does a few multiply-adds per
byte, and torch's CPU kernels for it run far below both the matmul peak and the copy bandwidth; neither the roofline
nor the zoo's families (which have none) say what it costs. The predictor adds the time these costs give as a fixed
term (`kit.predict.baselines.OverheadBaseline`), on the scale of the machine reference timed beside them.

Timed as the peaks are: the best of repeated calls after a warm-up. Before timing, a 30 MiB block is allocated and
freed: glibc then serves later allocations up to that size from its heap (its mmap threshold grows to the largest
block freed), as it does inside a model's forward once the first large activations were freed; without it, a lone
convolution with a 6 MiB output runs several times slower, on fresh pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

# (channels, output side, kernel side) of the timed convolutions, stride 1, batch 1: MobileNet's and ConvNeXt's range
GRID = tuple((channels, side, kernel) for channels in (32, 128, 512) for side in (7, 14, 28, 56) for kernel in (3, 7))
WARM_BYTES = 30 * 2**20  # below glibc's largest mmap threshold (32 MiB), so freeing it raises the threshold
COLUMN = "depthwise_costs"  # a peaks row's costs of its precision per thread count (microbench.stored_peaks)
COST_KEYS = ("call_s", "element_s", "mac_s")  # seconds per call, per output element, per multiply-accumulate
REFERENCE_CALLS = 50  # calls of the machine reference timed beside the grid (its 10th percentile is stored)
Timer = Callable[[Callable[[], Any], float, int], float]  # (call, budget_s, max_reps) -> best seconds per call


def _warm_allocator() -> None:
    import torch

    block = torch.empty(WARM_BYTES // 4)
    block.fill_(0.0)
    del block


def time_grid(device: str, precision: str, budget_s: float, best_time: Timer) -> list[dict[str, float]]:
    """The best time of each GRID convolution at the current thread count, within about budget_s in all."""
    import torch
    import torch.nn.functional as F

    from kit.backends.torch_backends import DTYPES

    dtype = DTYPES[precision]
    _warm_allocator()
    rows = []
    for channels, side, kernel in GRID:
        x = torch.randn(1, channels, side + kernel - 1, side + kernel - 1, device=device).to(dtype)
        w = torch.randn(channels, 1, kernel, kernel, device=device).to(dtype)
        with torch.inference_mode():
            seconds = best_time(lambda x=x, w=w, c=channels: F.conv2d(x, w, groups=c), budget_s / len(GRID), 5)
        elements = channels * side * side
        rows.append({"channels": channels, "side": side, "kernel": kernel, "elements": float(elements),
                     "macs": float(elements * kernel * kernel), "seconds": seconds})
    return rows


def fit_costs(rows: list[dict[str, float]]) -> dict[str, float]:
    """Non-negative costs per call, output element and multiply-accumulate fitted for relative error over timed
    convolutions (scipy's NNLS), with fit_mape: how far the fitted times lie from the timed ones."""
    from scipy.optimize import nnls

    design = np.array([[1.0, r["elements"], r["macs"]] for r in rows])
    seconds = np.array([r["seconds"] for r in rows])
    relative = design / seconds[:, None]
    norms = np.linalg.norm(relative, axis=0)
    coef, _ = nnls(relative / norms, np.ones(len(rows)))
    coef = coef / norms
    fitted = design @ coef
    return {**dict(zip(COST_KEYS, map(float, coef), strict=True)),
            "fit_mape": float(np.mean(np.abs(fitted / seconds - 1)))}


def reference_p10_s() -> float:
    """The machine reference (kit.runners.reference's matmul) timed now in this process: its 10th percentile call."""
    import time

    from kit.runners.reference import BUILDERS

    call = BUILDERS["matmul"]()
    for _ in range(5):
        call()
    samples = []
    for _ in range(REFERENCE_CALLS):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return float(np.quantile(samples, 0.1))


def measure_costs(device: str, precisions: tuple[str, ...], budget_s: float, best_time: Timer) -> dict[str, Any]:
    """Fitted costs per precision and thread count (one thread, and the default count when it is more), each with
    the reference's 10th percentile timed beside it on the CPU: {precision: {threads: {...}}}."""
    import torch

    default = torch.get_num_threads()
    out: dict[str, Any] = {precision: {} for precision in precisions}
    try:
        for threads in sorted({1, default}):
            torch.set_num_threads(threads)
            reference = reference_p10_s() if device == "cpu" else None
            for precision in precisions:
                costs = fit_costs(time_grid(device, precision, budget_s, best_time))
                out[precision][str(threads)] = {**costs, "reference_s": reference}
    finally:
        torch.set_num_threads(default)
    return out


def depthwise_convs(shapes: Any) -> np.ndarray:
    """The depthwise convolutions among a forward's stored conv_shapes (kit.zoo.model._shape_pairs: M, N, K, G at
    batch 1, then at batch 2, calls): one output channel per group and more than one group; an empty array when
    there are none or no shapes were stored."""
    if not isinstance(shapes, str) or not shapes:
        return np.zeros((0, 9))
    a = np.array(json.loads(shapes), dtype=float).reshape(-1, 9)
    return a[(a[:, 1] == 1) & (a[:, 3] > 1)]


def depthwise_seconds(shapes: Any, batch: float, costs: dict[str, float]) -> float:
    """Seconds the depthwise convolutions of one forward take at this batch size under fitted costs: per call, per
    output element (positions x channels, both grown linearly with the batch from batch 1 and 2) and per
    multiply-accumulate (elements x kernel positions); 0 without depthwise convolutions."""
    convs = depthwise_convs(shapes)
    if not len(convs):
        return 0.0
    positions = convs[:, 0] + (convs[:, 4] - convs[:, 0]) * (batch - 1)
    groups = convs[:, 3] + (convs[:, 7] - convs[:, 3]) * (batch - 1)
    elements = positions * groups
    calls = convs[:, 8]
    seconds = costs["call_s"] + costs["element_s"] * elements + costs["mac_s"] * elements * convs[:, 2]
    return float((calls * seconds).sum())


def costs_at(table: dict[str, Any] | None, threads: float | None) -> dict[str, float] | None:
    """The costs of one precision's table at a thread count: the measured count nearest to it (the largest measured
    where it is unknown); None without a table."""
    if not table:
        return None
    counts = sorted(int(t) for t in table)
    wanted = counts[-1] if threads is None or np.isnan(threads) else min(counts, key=lambda t: (abs(t - threads), -t))
    return table[str(wanted)]
