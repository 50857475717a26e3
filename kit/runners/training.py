"""Training measurement: forward+loss, backward, optimizer step and zero_grad, each timed, plus the whole step.

Precision in training means mixed precision: fp32 master weights under torch.autocast (bf16/fp16), with a GradScaler
for fp16. With gradient accumulation, one sample is one optimizer step divided by the accumulation steps, so that
throughput = batch_size / mean sample = items per second. Memory is split into weights, gradients, optimizer state
(computed from the tensors) and activations (the measured peak minus the rest).
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import torch

from kit import zoo
from kit.backends.torch_backends import cast_inputs
from kit.config import TRAINING_OPTIONS, Job
from kit.errors import UnsupportedConfiguration
from kit.records import Record
from kit.runners.inference import apply_threads, check_supported, model_facts
from kit.timing import Clock, MarkingClock, load_average_1m, measure_adaptive

CONTRASTIVE = ("clip", "clap", "xclip")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PHASES = ("forward_s", "backward_s", "optimizer_s", "zero_grad_s")


def training_options(job: Job) -> dict[str, Any]:
    """The job's training options over the defaults; unknown keys are an error naming them."""
    unknown = sorted(set(job.training) - set(TRAINING_OPTIONS))
    if unknown:
        from kit.errors import ConfigError

        raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(TRAINING_OPTIONS)}")
    options = {**TRAINING_OPTIONS, **job.training}
    if int(options["accumulation_steps"]) < 1:
        from kit.errors import ConfigError

        raise ConfigError(f"accumulation_steps must be >= 1, got {options['accumulation_steps']!r}")
    return options


def make_optimizer(params: list[torch.nn.Parameter], lr: float, fused: bool) -> tuple[torch.optim.Optimizer, str]:
    """AdamW, fused where the platform supports it, else the foreach implementation; returns it and its kind."""
    if fused:
        try:
            return torch.optim.AdamW(params, lr=lr, fused=True), "fused"
        except (RuntimeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=lr, foreach=True), "foreach"


def tensor_bytes(tensors: list[torch.Tensor]) -> int:
    """Total storage bytes of tensors."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


def memory_split(model: torch.nn.Module, optimizer: torch.optim.Optimizer, gradients_bytes: int) -> dict[str, int]:
    """Bytes of weights and optimizer state computed from the live tensors, with the gradient bytes counted after a
    backward pass (each step ends with zero_grad(set_to_none=True), so none are live between steps)."""
    state = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return {
        "weights_bytes": tensor_bytes(list(model.parameters())),
        "gradients_bytes": gradients_bytes,
        "optimizer_state_bytes": tensor_bytes(state),
    }


@dataclass
class TrainingStep:
    """One optimizer step split in timed phases; keeps every phase's samples and the losses seen."""

    model: torch.nn.Module
    loaded: Any
    inputs: dict[str, Any]
    optimizer: torch.optim.Optimizer
    clock: Clock
    autocast: Callable[[], Any]
    scaler: Any
    accumulation_steps: int
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    losses: list[float] = field(default_factory=list)
    timed: bool = False  # set by MarkingClock: only timed steps keep their phases

    def __call__(self) -> None:
        """Run forward+loss and backward per micro-batch, then the optimizer step and zero_grad, timing each."""
        forward = backward = 0.0
        for _ in range(self.accumulation_steps):
            holder: dict[str, torch.Tensor] = {}
            forward += self.clock.time_call(functools.partial(self._forward, holder))
            backward += self.clock.time_call(functools.partial(self._backward, holder))
        self.losses.append(float(holder["loss"].detach().float()) * self.accumulation_steps)
        optimizer = self.clock.time_call(self._step)
        zero_grad = self.clock.time_call(lambda: self.optimizer.zero_grad(set_to_none=True))
        if self.timed:
            for name, seconds in zip(PHASES, (forward, backward, optimizer, zero_grad), strict=True):
                self.phases[name].append(seconds)

    def gradient_bytes(self) -> int:
        """Bytes of the gradients one untimed forward+backward leaves (parameters outside the loss get none)."""
        holder: dict[str, torch.Tensor] = {}
        self._forward(holder)
        self._backward(holder)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        self.optimizer.zero_grad(set_to_none=True)
        return tensor_bytes(grads)

    def _forward(self, holder: dict[str, torch.Tensor]) -> None:
        with self.autocast():
            holder["loss"] = self.loaded.loss(self.inputs) / self.accumulation_steps

    def _backward(self, holder: dict[str, torch.Tensor]) -> None:
        loss = holder["loss"]
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()


def _autocast(device: str, precision: str) -> Callable[[], Any]:
    if precision not in AMP_DTYPES:
        return contextlib.nullcontext
    device_type = device.split(":")[0]
    return lambda: torch.autocast(device_type=device_type, dtype=AMP_DTYPES[precision])


def _check_training_job(job: Job, loaded: Any, options: dict[str, Any]) -> None:
    if loaded.family in CONTRASTIVE and job.batch_size < 2:
        raise UnsupportedConfiguration(f"{loaded.family} trains on a contrastive loss, which needs batch_size >= 2")
    if options["gradient_checkpointing"] and not getattr(loaded.model, "supports_gradient_checkpointing", False):
        raise UnsupportedConfiguration(f"{loaded.family} does not support gradient checkpointing in transformers")


def measure_training(job: Job) -> Record:
    """Measure one training configuration and return an ok Record with phases, losses and a memory split."""
    apply_threads(job)
    options = training_options(job)
    backend, _ = check_supported(job)
    t0 = time.perf_counter()
    loaded = zoo.load_model(job.model, job.size, overrides=job.overrides or None)
    _check_training_job(job, loaded, options)
    build_s = time.perf_counter() - t0
    facts, profile = model_facts(loaded, job.seq_len)
    t1 = time.perf_counter()
    device = backend.device()
    model = loaded.model.to(device)
    model.train()
    if options["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()
    optimizer, optimizer_kind = make_optimizer([p for p in model.parameters() if p.requires_grad],
                                               float(options["lr"]), bool(options["fused_optimizer"]))
    inputs = cast_inputs(loaded.make_inputs(job.batch_size, job.seq_len, with_labels=True), device, torch.float32)
    scaler = torch.amp.GradScaler(device.split(":")[0]) if job.precision == "fp16" else None
    prepare_s = time.perf_counter() - t1
    # the process without the model: RSS once the model is built and moved (imports, libraries, allocator arenas
    # included) minus its weights; taken before it, the lazy imports of the model's classes counted as activations
    baseline_rss = psutil.Process().memory_info().rss - tensor_bytes(list(model.parameters()))
    step = TrainingStep(model, loaded, inputs, optimizer, backend.clock(), _autocast(device, job.precision), scaler,
                        int(options["accumulation_steps"]))
    clock = MarkingClock(backend.clock(), step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first_s = clock.time_call(step)
        for _ in range(job.warmup_iters):
            step()
        tracker = backend.memory_tracker()
        tracker.reset()
        skip = len(step.phases["forward_s"])  # the first call's phases; warm-up calls keep none
        measurement = measure_adaptive(step, clock, time_budget_s=job.time_budget_s, target_rel_ci=job.target_rel_ci,
                                       min_samples=job.min_samples, max_samples=job.max_samples)
    peak = tracker.peak_bytes()
    accumulation = int(options["accumulation_steps"])
    split = memory_split(model, optimizer, step.gradient_bytes())
    base = 0 if tracker.method.startswith("torch.cuda") else baseline_rss
    split["activations_bytes"] = max(0, peak - base - sum(split.values()))
    phases = {name: sum(values[skip:]) / len(values[skip:]) / accumulation for name, values in step.phases.items()}
    extra = {
        "phases_mean_s": phases, "first_loss": step.losses[0], "last_loss": step.losses[-1],
        "n_steps": len(step.losses), "loss_decreased": step.losses[-1] < step.losses[0],
        "optimizer": f"AdamW ({optimizer_kind})", "amp": job.precision != "fp32",
        "grad_scaler": scaler is not None, "accumulation_steps": accumulation,
        "gradient_checkpointing": bool(options["gradient_checkpointing"]), "lr": float(options["lr"]),
        "memory_split_bytes": split, "process_baseline_bytes": base, "build_s": build_s, "prepare_s": prepare_s,
        "sample_unit": "optimizer step time / accumulation_steps", "modality": loaded.modality,
        "seq_len_effective": job.seq_len or loaded.default_seq_len, "model_facts": loaded.describe(),
        "forward_profile": profile, "host_steal_share": measurement.steal_share,
        "precision_ran": f"autocast-{job.precision}" if job.precision != "fp32" else "fp32",
    }
    samples = [s / accumulation for s in measurement.samples_s]
    return Record.from_samples(
        samples, sample_rounds=measurement.rounds, target_rel_ci=job.target_rel_ci, **job.identity(),
        family=loaded.family, device=device,
        startup_s=build_s + prepare_s, first_inference_s=first_s, peak_memory_bytes=peak,
        memory_method=tracker.method, threads=backend.threads(), cpu_time_s=measurement.cpu_time_s,
        load_avg_1m=load_average_1m(), extra=extra, **facts,
    )
