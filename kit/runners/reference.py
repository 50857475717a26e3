"""The machine reference: a fixed workload measured in every round beside a group of configurations.

Its per-round medians say how fast the machine was in that round. A configuration's speed relative to it (normalised
throughput) cancels the drift that moves both; its spread across rounds is the run's drift index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from kit.errors import MeasurementError
from kit.timing import PerfCounterClock, measure_adaptive

REFERENCES = ("matmul", "copy", "bert")
MATMUL_SIZE = 256  # fp32 256x256x256: ~34 MFLOP, about 0.3 ms on one current core
COPY_BYTES = 8 * 2**20  # beyond a typical L2, within L3 on servers: a memory-bound call of about a millisecond


def _matmul() -> Callable[[], Any]:
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=torch.Generator().manual_seed(0))
    out = torch.empty_like(a)
    return lambda: torch.mm(a, a, out=out)


def _copy() -> Callable[[], Any]:
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def _bert() -> Callable[[], Any]:
    from kit import zoo

    loaded = zoo.load_model("bert", "tiny")
    inputs = loaded.make_inputs(1, None)
    model = loaded.model.eval()

    def call() -> None:
        with torch.inference_mode():
            model(**inputs)

    return call


BUILDERS: dict[str, Callable[[], Callable[[], Any]]] = {"matmul": _matmul, "copy": _copy, "bert": _bert}


def measure_reference(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the named reference workload, warm it up, and time it (in rounds when a driver is installed)."""
    if payload.get("threads"):
        torch.set_num_threads(int(payload["threads"]))
    call = BUILDERS[payload["name"]]()
    for _ in range(5):
        call()
    measurement = measure_adaptive(call, PerfCounterClock(), time_budget_s=float(payload.get("time_budget_s", 1.0)))
    return {"name": payload["name"], "samples_s": measurement.samples_s, "rounds": measurement.rounds,
            "threads": torch.get_num_threads()}


def reference_now(threads: int, name: str = "matmul", seconds: float = 1.0, processes: int = 2,
                  timeout_s: float = 120.0) -> dict[str, float]:
    """The machine reference measured now at this thread count, in fresh processes as the rounds run it: each of
    `processes` children times it for `seconds`; the fastest child's (by 10th percentile, the rounds' rule) 10th
    percentile and median, seconds per call, as {'p10': ..., 'median': ...}. MeasurementError when no child
    measured."""
    from kit.runners.isolation import run_in_child
    from kit.runners.rounds import REFERENCE_TARGET

    levels, reasons = [], []
    for _ in range(processes):
        outcome = run_in_child(REFERENCE_TARGET, {"name": name, "threads": threads, "time_budget_s": seconds},
                               timeout_s=timeout_s)
        if outcome.ok:
            samples = np.asarray(outcome.value["samples_s"], dtype=float)
            levels.append({"p10": float(np.quantile(samples, 0.1)), "median": float(np.median(samples))})
        else:
            reasons.append(outcome.reason)
    if not levels:
        raise MeasurementError(f"the {name} reference could not be measured now: {'; '.join(reasons)}")
    return min(levels, key=lambda level: level["p10"])
