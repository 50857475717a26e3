"""Training-memory estimator per rank: weights, gradients, optimizer state, activations, transients, overhead.

Formula terms, exact given the parameter count Ψ (counted on a meta-device build, shared tensors once):
weights Ψ·p, gradients Ψ·g, optimizer state Ψ·(o + m), with p/g/m from the precision scheme (fp32 4/4/0; autocast over
fp32 weights, as kit's training runner does, 4/4/0; ZeRO-style mixed bf16/fp16 2/2/4, so mixed Adam is 2Ψ+2Ψ+12Ψ) and
o from the optimizer (AdamW 8, 8-bit AdamW 2, SGD 0). ZeRO-1 divides the optimizer state by N, ZeRO-2 the gradients
too, ZeRO-3/FSDP the weights too (plus gathered blocks as a transient); CPU offload moves the sharded state to host.
DDP keeps its gradient buckets (one more gradient-sized buffer, measured: +1x gradients over single-process peaks).
Activations: bytes saved for backward per layer and token, per family (`ACTIVATION_COEFFS`), counted with autograd
saved-tensor hooks (`saved_activation_bytes`) on transformers' SDPA models with dropout off. Like Korthikanti et al.
(2022) but without their 5·a·s² term (fused attention keeps only a log-sum-exp) and without dropout masks; with
`attention="eager"` the softmax output a·s²·b is added. Checkpointing keeps each layer's input plus one layer's
activations. Decoders add the fp32 gradients of the logits (2·s·b·V·4 bytes) as a transient at the start of backward.
Measured terms (`Calibration`, per platform and family): the process's memory growth during training beyond the
formula terms (autograd and thread-pool state, allocator arenas), above a baseline read once the model is built (RSS
minus weights, so imports are not counted), and a factor k on activations for allocator retention and backward
transients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kit.errors import ConfigError
from kit.memory.shapes import FAMILY_FORMULA, ModelShape, model_shape

# name -> (weight bytes, gradient bytes, master-copy bytes, activation mode)
PRECISION_SCHEMES = {"fp32": (4, 4, 0, "fp32"), "amp-bf16": (4, 4, 0, "amp"), "amp-fp16": (4, 4, 0, "amp"),
                     "bf16": (2, 2, 4, "half"), "fp16": (2, 2, 4, "half")}
OPTIMIZER_STATE_BYTES = {"adamw": 8.0, "adamw8bit": 2.0 + 8 / 2048, "sgd": 0.0, "sgd-momentum": 4.0}  # 8-bit: blockwise
STRATEGIES = ("single", "ddp", "zero1", "zero2", "zero3", "fsdp")
SHARDED = {"single": (), "ddp": (), "zero1": ("optimizer",), "zero2": ("optimizer", "gradients"),
           "zero3": ("optimizer", "gradients", "weights"), "fsdp": ("optimizer", "gradients", "weights")}
# bytes per (layer x token x hidden), (layer x token x ffn width), (token x hidden, outside the layers),
# (token x vocab: the log-softmax kept by the loss), (weight of each nn.Linear: autocast's saved low-precision copy)
ACTIVATION_COEFFS = {
    ("encoder", "fp32"): (32, 8, 8, 0, 0), ("encoder", "amp"): (24, 4, 4, 0, 2), ("encoder", "half"): (16, 4, 4, 0, 0),
    ("decoder", "fp32"): (36, 16, 12.5, 4, 0), ("decoder", "amp"): (32, 8, 10.5, 4, 2),
    ("decoder", "half"): (18, 8, 6, 4, 0),
}
RESIDUAL_BYTES = {"fp32": 4, "amp": 4, "half": 2}  # bytes of a layer input kept under gradient checkpointing


def activation_bytes(shape: ModelShape, batch_size: int, tokens: int, mode: str, *, checkpointing: bool = False,
                     attention: str = "sdpa") -> int:
    """Bytes saved for backward by one micro-batch (formula; see the module docstring for its assumptions)."""
    per_h, per_i, fixed_h, per_v, per_lin = ACTIVATION_COEFFS[(shape.formula, mode)]
    bs = batch_size * tokens
    layer = bs * (per_h * shape.hidden_size + per_i * shape.intermediate_size)
    if attention == "eager":
        layer += batch_size * shape.n_heads * tokens * tokens * RESIDUAL_BYTES[mode]
    layers = shape.n_layers * layer
    if checkpointing:
        layers = shape.n_layers * bs * shape.hidden_size * RESIDUAL_BYTES[mode] + layer
    inputs = batch_size * shape.input_elements * RESIDUAL_BYTES[mode]
    return int(layers + bs * (fixed_h * shape.hidden_size + per_v * shape.vocab_size)
               + per_lin * shape.linear_weight_params + inputs)


@dataclass(frozen=True)
class Calibration:
    """Measured constants of a platform: overhead bytes and activation factor by family, else formula, else default."""

    platform: str
    overhead_bytes: dict[str, float]
    activation_factor: dict[str, float]
    source: str

    @staticmethod
    def _lookup(table: dict[str, float], family: str, fallback: float) -> float:
        for key in (family, FAMILY_FORMULA.get(family, "encoder"), "default"):
            if key in table:
                return table[key]
        return fallback

    def overhead(self, family: str) -> float:
        """Process overhead above the pre-model baseline for a family."""
        return self._lookup(self.overhead_bytes, family, 0.0)

    def factor(self, family: str) -> float:
        """Measured peak activations over the formula's saved activations for a family."""
        return self._lookup(self.activation_factor, family, 1.0)


UNCALIBRATED = Calibration("any", {"default": 0.0}, {"default": 1.0}, "not calibrated: overhead 0, activation factor 1")


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes per rank by term; `total_bytes` is what must fit on one device (offloaded bytes excluded)."""

    weights_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    activations_bytes: int
    transient_bytes: int
    overhead_bytes: int
    offloaded_bytes: int
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """Bytes on one rank's device: the sum of every term but the offloaded one."""
        return (self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes + self.activations_bytes
                + self.transient_bytes + self.overhead_bytes)

    def terms(self) -> dict[str, int]:
        """Every term and the total, in bytes."""
        names = ("weights", "gradients", "optimizer_state", "activations", "transient", "overhead", "offloaded")
        return {**{f"{n}_bytes": getattr(self, f"{n}_bytes") for n in names}, "total_bytes": self.total_bytes}


def _check(name: str, value: Any, allowed: Any) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_settings(precision: str, strategy: str, optimizer: str, world_size: int, batch_size: int,
                   accumulation_steps: int, cpu_offload: bool) -> None:
    """ConfigError naming the first bad setting of an estimate."""
    _check("precision", precision, PRECISION_SCHEMES)
    _check("strategy", strategy, STRATEGIES)
    _check("optimizer", optimizer, OPTIMIZER_STATE_BYTES)
    for name, value in (("world_size", world_size), ("batch_size", batch_size),
                        ("accumulation_steps", accumulation_steps)):
        _positive(name, value)
    if strategy == "single" and world_size != 1:
        raise ConfigError(f"strategy 'single' runs on one device, got world_size={world_size}")
    if cpu_offload and strategy == "ddp":
        raise ConfigError("cpu_offload needs a ZeRO stage or FSDP (or 'single' for optimizer offload), not 'ddp'")


def estimate_memory(model: str | ModelShape, *, batch_size: int, seq_len: int | None = None,
                    precision: str = "fp32", strategy: str = "single", world_size: int = 1,
                    gradient_checkpointing: bool = False, optimizer: str = "adamw", accumulation_steps: int = 1,
                    cpu_offload: bool = False, size: str = "tiny", overrides: dict[str, Any] | None = None,
                    calibration: Calibration | None = None, attention: str = "sdpa") -> MemoryEstimate:
    """Estimated peak memory per rank for one training configuration; batch_size is the per-rank micro-batch.

    Gradient accumulation does not change the peak (gradients persist across micro-batches and are counted anyway);
    it is what lets a smaller micro-batch reach the same global batch.
    """
    check_settings(precision, strategy, optimizer, world_size, batch_size, accumulation_steps, cpu_offload)
    _check("attention", attention, ("sdpa", "eager"))
    shape = model if isinstance(model, ModelShape) else model_shape(model, size, overrides)
    tokens = shape.tokens_per_sample if shape.input_elements else seq_len or shape.tokens_per_sample or 1  # ViT: fixed
    w_bytes, g_bytes, master, mode = PRECISION_SCHEMES[precision]
    sharded = SHARDED[strategy]
    n = world_size

    def shard(term: str, total: float) -> int:
        return int(total / n) if term in sharded else int(total)

    weights = shard("weights", shape.n_params * w_bytes)
    gradients = shard("gradients", shape.n_params * g_bytes)
    optimizer_state = shard("optimizer", shape.n_params * (OPTIMIZER_STATE_BYTES[optimizer] + master))
    calibration = calibration or UNCALIBRATED
    factor = calibration.factor(shape.family)
    activations = int(factor * activation_bytes(shape, batch_size, tokens, mode,
                                                 checkpointing=gradient_checkpointing, attention=attention))
    transient = 2 * batch_size * tokens * shape.vocab_size * 4 if shape.formula == "decoder" else 0
    if "weights" in sharded:  # two gathered blocks (current + prefetched) and one block's unsharded gradients
        transient += shape.block_params * (2 * (2 if mode == "half" else 4) + g_bytes)
    if strategy == "ddp":  # the reducer's gradient buckets stay allocated while backward produces new gradients
        transient += gradients
    offloaded = 0
    if cpu_offload:
        offloaded, optimizer_state = optimizer_state, 0
        if "weights" in sharded:
            offloaded += weights + gradients
            weights = gradients = 0
    settings = {"model": shape.name, "family": shape.family, "n_params": shape.n_params, "batch_size": batch_size,
                "tokens_per_sample": tokens, "precision": precision, "strategy": strategy, "world_size": world_size,
                "gradient_checkpointing": gradient_checkpointing, "optimizer": optimizer,
                "accumulation_steps": accumulation_steps, "cpu_offload": cpu_offload, "attention": attention}
    sources = {"weights": "formula", "gradients": "formula", "optimizer_state": "formula",
               "activations": f"formula ({shape.formula}{'' if shape.family in FAMILY_FORMULA else ', not counted'}"
                              f" for {shape.family}) x measured factor {factor:.3g}",
               "transient": "formula", "overhead": f"measured ({calibration.source})"}
    return MemoryEstimate(weights, gradients, optimizer_state, activations, transient,
                          int(calibration.overhead(shape.family)), offloaded, settings, sources)


def saved_activation_bytes(loaded: Any, batch_size: int, seq_len: int | None = None, precision: str = "fp32") -> int:
    """Bytes of distinct non-parameter storages autograd saves in one forward+loss (dropout off): the counted truth."""
    import torch

    model = loaded.model.train()
    for layer in model.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    inputs = loaded.make_inputs(batch_size, seq_len, with_labels=True)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    dtype = {"amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}.get(precision)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loaded.loss(inputs)
    return sum(nbytes for ptr, nbytes in seen.items() if ptr not in params)


def terms_table(estimate: MemoryEstimate) -> pd.DataFrame:
    """One row per term of an estimate: bytes, MiB and whether it comes from a formula or a measurement."""
    sources = {**estimate.sources, "offloaded": "formula (host memory, not on the device)", "total": "sum"}
    return pd.DataFrame([{"term": k.removesuffix("_bytes"), "bytes": v, "MiB": round(v / 2**20, 2),
                          "source": sources.get(k.removesuffix("_bytes"), "")} for k, v in estimate.terms().items()])
