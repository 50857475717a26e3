"""The machine reference: a fixed workload measured in every round beside a group of configurations.

Its per-round medians say how fast the machine was in that round. A configuration's speed relative to it (normalised
throughput) cancels the drift that moves both; its spread across rounds is the run's drift index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

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
