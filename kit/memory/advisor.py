"""The distributed-training advisor (strategy and micro-batch that fit the GPUs) and `benchkit distributed-config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from kit.errors import ConfigError
from kit.memory.estimator import (
    OPTIMIZER_STATE_BYTES,
    PRECISION_SCHEMES,
    Calibration,
    MemoryEstimate,
    _check,
    _positive,
    estimate_memory,
)
from kit.memory.shapes import ModelShape, model_shape

GIB = 1024**3
# CUDA context measured at 0.65 GB on an H100 (torch 2.11, total minus free after the first allocation); the rest of
# the reserve, for NCCL and cuBLAS workspaces and allocator fragmentation, is assumed
GPU_RESERVED_BYTES = int(1.5 * GIB)
MIN_EFFICIENT_MICRO_BATCH = 4  # below this a GPU is usually under-used; accepted only when nothing larger fits
ADVISED_STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")  # by communication: DDP = ZeRO-1/2 (2Ψ) < ZeRO-3/FSDP (3Ψ)
STRATEGY_NAMES = {"single": "single GPU", "ddp": "DDP", "zero1": "ZeRO-1 (optimizer state sharded)",
                  "zero2": "ZeRO-2 (optimizer state + gradients sharded)",
                  "fsdp": "FSDP full shard / ZeRO-3 (weights too)"}


@dataclass(frozen=True)
class Advice:
    """A training configuration that the estimate says fits (fits=True), or why nothing does (fits=False)."""

    fits: bool
    usable_bytes: int
    reasons: tuple[str, ...]
    estimate: MemoryEstimate | None = None
    considered: tuple[tuple[str, int, bool], ...] = ()

    @property
    def settings(self) -> dict[str, Any]:
        """The advised settings (strategy, micro-batch, accumulation, checkpointing, offload); {} if none fits."""
        return dict(self.estimate.settings) if self.estimate else {}

    def summary(self) -> str:
        """Readable advice: the choice and the reasons, one per line."""
        return "\n".join(self.reasons)


def _describe(e: MemoryEstimate) -> str:
    s = e.settings
    flags = [f"micro-batch {s['batch_size']} x {s['accumulation_steps']} accumulation steps"]
    flags += ["gradient checkpointing"] if s["gradient_checkpointing"] else []
    flags += ["CPU offload"] if s["cpu_offload"] else []
    return f"{STRATEGY_NAMES[s['strategy']]}, {', '.join(flags)}"


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _candidates(n_gpus: int, per_gpu: int) -> list[list[tuple[str, bool, int, bool]]]:
    """Tiers of (strategy, checkpointing, micro-batch, offload), most preferred first; each tier in order."""
    strategies = ("single",) if n_gpus == 1 else ADVISED_STRATEGIES
    micros = [m for m in range(per_gpu, 0, -1) if per_gpu % m == 0]
    big = [m for m in micros if m >= min(per_gpu, MIN_EFFICIENT_MICRO_BATCH)]
    small = [m for m in micros if m not in big]
    offload = ("single",) if n_gpus == 1 else ("zero2", "fsdp")
    return [[(s, c, m, False) for s in strategies for m in big] for c in (False, True)] + [
        [(s, c, m, False) for c in (False, True) for s in strategies for m in small],
        [(s, True, m, True) for s in offload for m in micros]]


def check_advice_inputs(model: str | ModelShape, n_gpus: int, gpu_memory_bytes: int | float, global_batch: int,
                        precision: str = "bf16", *, size: str = "base", optimizer: str = "adamw",
                        headroom: float = 0.10) -> None:
    """ConfigError naming the first bad input of advise_distributed_config, before any model is built."""
    from kit.zoo.loading import REGISTRY, resolve_model, validate_size

    if not isinstance(model, ModelShape):
        _check("advisor model", resolve_model(model), REGISTRY)
        validate_size(size)
    _positive("n_gpus", n_gpus)
    _positive("global_batch", global_batch)
    _check("precision", precision, PRECISION_SCHEMES)
    _check("optimizer", optimizer, OPTIMIZER_STATE_BYTES)
    if not isinstance(gpu_memory_bytes, int | float) or isinstance(gpu_memory_bytes, bool) or gpu_memory_bytes <= 0:
        raise ConfigError(f"gpu_memory_bytes must be positive, got {gpu_memory_bytes!r}")
    if global_batch % n_gpus:
        raise ConfigError(f"global_batch {global_batch} must be a multiple of n_gpus {n_gpus}")
    if not 0 <= headroom < 1:
        raise ConfigError(f"headroom must be in [0, 1), got {headroom!r}")


def advise_distributed_config(model: str | ModelShape, n_gpus: int, gpu_memory_bytes: int, global_batch: int,
                              seq_len: int | None = None, precision: str = "bf16", *, size: str = "base",
                              overrides: dict[str, Any] | None = None, optimizer: str = "adamw",
                              headroom: float = 0.10, reserved_bytes: int = GPU_RESERVED_BYTES,
                              calibration: Calibration | None = None) -> Advice:
    """The least communication-heavy strategy whose estimate fits, with the largest micro-batch, and why.

    Order: no checkpointing with a micro-batch >= 4 (DDP, ZeRO-1, ZeRO-2, FSDP), then the same with checkpointing
    (~1/3 more compute), then smaller micro-batches, then CPU offload. A configuration is proposed only if its own
    estimate is at most gpu_memory x (1 - headroom) - reserved_bytes; otherwise fits=False says what was closest.
    """
    check_advice_inputs(model, n_gpus, gpu_memory_bytes, global_batch, precision, size=size, optimizer=optimizer,
                        headroom=headroom)
    shape = model if isinstance(model, ModelShape) else model_shape(model, size, overrides)
    usable = int(gpu_memory_bytes * (1 - headroom) - reserved_bytes)
    per_gpu = global_batch // n_gpus
    considered: list[tuple[str, int, bool]] = []
    smallest: MemoryEstimate | None = None
    for tier in _candidates(n_gpus, per_gpu):
        for strategy, checkpointing, micro, offload in tier:
            e = estimate_memory(shape, batch_size=micro, seq_len=seq_len, precision=precision, strategy=strategy,
                                world_size=n_gpus, gradient_checkpointing=checkpointing, optimizer=optimizer,
                                accumulation_steps=per_gpu // micro, cpu_offload=offload, calibration=calibration)
            considered.append((_describe(e), e.total_bytes, e.total_bytes <= usable))
            smallest = e if smallest is None or e.total_bytes < smallest.total_bytes else smallest
            if e.total_bytes <= usable:
                return Advice(True, usable, _reasons(e, usable, considered), e, tuple(considered))
    why = (f"nothing fits: the smallest estimate, {_describe(smallest)}, needs {_gib(smallest.total_bytes)} per GPU "
           f"but only {_gib(usable)} of {_gib(gpu_memory_bytes)} is usable ({headroom:.0%} headroom, "
           f"{_gib(reserved_bytes)} reserved); use more or larger GPUs, a shorter sequence or a smaller model")
    return Advice(False, usable, (why,), None, tuple(considered))


def advice_table(advice: Advice) -> pd.DataFrame:
    """The options the advisor tried, most preferred first: estimated GiB per GPU and whether each fits."""
    return pd.DataFrame([{"option": d, "estimated_gib_per_gpu": round(b / GIB, 2), "usable_gib": round(
        advice.usable_bytes / GIB, 2), "fits": ok} for d, b, ok in advice.considered])


def _reasons(e: MemoryEstimate, usable: int, considered: list[tuple[str, int, bool]]) -> tuple[str, ...]:
    terms = ", ".join(f"{k.removesuffix('_bytes')} {_gib(v)}" for k, v in e.terms().items()
                      if v and k not in ("total_bytes",))
    lines = [f"use {_describe(e)} on {e.settings['world_size']} GPU(s): estimated {_gib(e.total_bytes)} per GPU of "
             f"{_gib(usable)} usable ({terms})"]
    rejected = [(d, b) for d, b, ok in considered if not ok]
    if rejected:
        lines.append(f"{len(rejected)} preferred option(s) did not fit, e.g. {rejected[0][0]}: {_gib(rejected[0][1])}")
    return tuple(lines)


def add_distributed_config_args(parser: Any) -> None:
    """Arguments of `benchkit distributed-config`."""
    parser.add_argument("--model", required=True, help="zoo family, e.g. llama")
    parser.add_argument("--size", default="base")
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--gpu-memory-gb", type=float, required=True, help="memory per GPU in GiB")
    parser.add_argument("--global-batch", type=int, required=True)
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--precision", default="bf16", choices=sorted(PRECISION_SCHEMES))


def cmd_distributed_config(args: Any) -> int:
    """Print the advised configuration (0) or that nothing fits (1)."""
    advice = advise_distributed_config(args.model, args.gpus, int(args.gpu_memory_gb * GIB), args.global_batch,
                                       args.seq_len, args.precision, size=args.size)
    print(advice.summary())
    return 0 if advice.fits else 1
