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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError

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
FAMILY_FORMULA = {"bert": "encoder", "vit": "encoder", "llama": "decoder", "qwen2": "decoder"}
RESIDUAL_BYTES = {"fp32": 4, "amp": 4, "half": 2}  # bytes of a layer input kept under gradient checkpointing


@dataclass(frozen=True)
class ModelShape:
    """What the estimator needs from a model: exact parameter counts and the transformer dimensions."""

    name: str
    family: str
    n_params: int
    n_layers: int
    hidden_size: int
    intermediate_size: int
    n_heads: int
    vocab_size: int = 0
    tokens_per_sample: int | None = None
    linear_weight_params: int = 0
    block_params: int = 0
    input_elements: int = 0
    size: str = ""

    @property
    def formula(self) -> str:
        """The activation formula used: counted for bert/vit (encoder) and llama/qwen2 (decoder), else encoder."""
        return FAMILY_FORMULA.get(self.family, "encoder")


def _primary(config: Any, family: str) -> Any:
    from kit.zoo.loading import REGISTRY

    sub = REGISTRY[family].primary if family in REGISTRY else None
    if sub is None and not hasattr(config, "hidden_size"):
        sub = next((s for s in ("text_config", "vision_config", "audio_config") if hasattr(config, s)), None)
    return getattr(config, sub) if sub else config


def shape_of_module(name: str, family: str, module: Any, config: Any, default_seq_len: int | None,
                    size: str = "") -> ModelShape:
    """A ModelShape from a built module (real or on the meta device) and its transformers config."""
    import torch

    from kit.runners.ddp_worker import transformer_blocks

    primary = _primary(config, family)
    blocks = transformer_blocks(module)
    tokens, pixels = default_seq_len, 0
    if family == "vit":  # tokens are the patches plus [CLS]; the patch convolution keeps the image
        tokens = (primary.image_size // primary.patch_size) ** 2 + 1
        pixels = primary.num_channels * primary.image_size ** 2
    return ModelShape(
        name=name, family=family, size=size, n_params=sum(p.numel() for p in module.parameters()),
        n_layers=int(getattr(primary, "num_hidden_layers", len(blocks))),
        hidden_size=int(getattr(primary, "hidden_size", 0)),
        intermediate_size=int(getattr(primary, "intermediate_size", 4 * getattr(primary, "hidden_size", 0))),
        n_heads=int(getattr(primary, "num_attention_heads", 1)), vocab_size=int(getattr(primary, "vocab_size", 0)),
        tokens_per_sample=tokens, input_elements=pixels,
        linear_weight_params=sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear)),
        block_params=max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0))


def model_shape(model: str, size: str = "tiny", overrides: dict[str, Any] | None = None) -> ModelShape:
    """The shape of a zoo model, built on the meta device so that no weights are allocated (fast even for 1B)."""
    import torch
    import transformers

    from kit.zoo.loading import REGISTRY, build_config, resolve_model, validate_size

    name = resolve_model(model)
    if name not in REGISTRY:
        raise ConfigError(f"model_shape needs a zoo family, got {model!r}; use shape_of_module for local models")
    family = REGISTRY[name]
    config = build_config(family, validate_size(size), overrides)
    with torch.device("meta"):
        module = getattr(transformers, family.head_class)(config)
    return shape_of_module(name, family.name, module, config, family.seq_len[size], size)


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
# fit_calibration on run memval-cpu2: kit's training runner, 1 thread, fp32 AdamW, on the 2-core development machine
# (torch 2.13 CPU, glibc malloc; 2026-12-01), from 2 sizes per family: tiny b2 s16, and h256 L4 ffn1024 b8 s128, with
# the process baseline read once the model is built (RSS minus weights; the earlier fit read it before the build, so
# its overhead of ~133 MB was mostly the lazy imports of the model's classes). Held out (b4 and b16 at h256/s128, b4
# at tiny/s16, both families): signed errors -7.6% to +3.8%. Valid for VmHWM peaks above that baseline on a similar
# machine; re-fit elsewhere.
CPU_CALIBRATION = Calibration(
    "cpu", {"bert": 6.68e6, "llama": 5.11e6, "encoder": 6.68e6, "decoder": 5.11e6, "default": 5.90e6},
    {"bert": 2.081, "llama": 1.271, "encoder": 2.081, "decoder": 1.271, "default": 1.676},
    "CPU RSS above the built-model baseline, fitted on 4 records of run memval-cpu2 (bert, llama; tiny and h256/L4)")
# The same fit on kit.distributed's worker (DDP under torchrun, gloo, world size 1, dropout off, baseline read before
# the DDP wrap), same sizes and machine: a larger overhead (the process group and DDP's reducer) and, with dropout
# off, bert's factor near the counted formula's 1. Held out (world size 2 at the fitted sizes, b4 at h256/s128 and at
# tiny/s16): signed errors -5.1% to +7.4%.
CPU_DISTRIBUTED_CALIBRATION = Calibration(
    "cpu", {"bert": 17.96e6, "llama": 13.17e6, "encoder": 17.96e6, "decoder": 13.17e6, "default": 15.57e6},
    {"bert": 1.141, "llama": 1.249, "encoder": 1.141, "decoder": 1.249, "default": 1.195},
    "CPU RSS above the built-model baseline in kit.distributed's DDP worker, fitted on 4 world-size-1 records "
    "(bert, llama; tiny and h256/L4)")
HARNESSES = ("training", "distributed")  # kit's training runner, kit.distributed's torchrun worker


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


def _record_params(record: Any) -> dict[str, Any]:
    try:
        return json.loads(record.params_json or "{}")
    except json.JSONDecodeError:
        return {}


def record_settings(record: Any) -> dict[str, Any]:
    """estimate_memory keyword arguments for a training Record (kit's training runner or kit.distributed)."""
    params, extra = _record_params(record), record.extra
    strategy = extra.get("strategy", "single")
    precision = record.precision if record.precision in ("fp32",) else f"amp-{record.precision}"
    if strategy == "fsdp" and record.precision in ("bf16", "fp16"):
        precision = record.precision  # FSDP2's MixedPrecisionPolicy runs the blocks in bf16
    return {"batch_size": int(extra.get("batch_per_rank", record.batch_size)), "seq_len": record.seq_len,
            "precision": precision, "strategy": strategy, "world_size": int(extra.get("world_size", 1)),
            "gradient_checkpointing": bool(extra.get("gradient_checkpointing", False)),
            "optimizer": str(extra.get("optimizer_name", "adamw")),
            "accumulation_steps": int(extra.get("accumulation_steps", 1)),
            "size": record.size, "overrides": params.get("overrides") or None}


def measured_peak_bytes(record: Any) -> int | None:
    """A record's measured peak per rank above the process's pre-model baseline (the largest rank's), if any."""
    extra = record.extra
    if "per_rank_peak_above_baseline_bytes" in extra:
        return int(max(extra["per_rank_peak_above_baseline_bytes"]))
    if record.peak_memory_bytes is None or "process_baseline_bytes" not in extra:
        return None
    return int(record.peak_memory_bytes - extra["process_baseline_bytes"])


def _usable(records: list[Any]) -> list[Any]:
    return [r for r in records if r.status == "ok" and r.mode == "training" and measured_peak_bytes(r) is not None]


def _shape_for(record: Any, cache: dict[str, ModelShape]) -> ModelShape:
    settings = record_settings(record)
    key = json.dumps([record.model, record.size, settings["overrides"]], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = model_shape(record.model, record.size, settings["overrides"])
    return cache[key]


def estimate_for_record(record: Any, calibration: Calibration | Callable[[Any], Calibration] | None = None,
                        cache: dict[str, ModelShape] | None = None) -> MemoryEstimate:
    """The estimate for the configuration a training Record measured (its model, batch, precision and strategy);
    calibration is a Calibration or a function of the record (e.g. record_calibration)."""
    calibration = calibration(record) if callable(calibration) else calibration
    settings = record_settings(record)
    shape = _shape_for(record, {} if cache is None else cache)
    return estimate_memory(shape, calibration=calibration,
                           **{k: v for k, v in settings.items() if k not in ("size", "overrides")})


def calibration_for(platform: str, harness: str = "training") -> Calibration:
    """The measured calibration of a platform and harness (CPU: training runner or DDP worker), else UNCALIBRATED."""
    _check("harness", harness, HARNESSES)
    if platform != "cpu":
        return UNCALIBRATED
    return CPU_DISTRIBUTED_CALIBRATION if harness == "distributed" else CPU_CALIBRATION


def record_calibration(record: Any) -> Calibration:
    """The calibration for the platform and harness that measured a record (distributed records name a launcher)."""
    return calibration_for(record.platform, "distributed" if "launcher" in record.extra else "training")


def terms_table(estimate: MemoryEstimate) -> pd.DataFrame:
    """One row per term of an estimate: bytes, MiB and whether it comes from a formula or a measurement."""
    sources = {**estimate.sources, "offloaded": "formula (host memory, not on the device)", "total": "sum"}
    return pd.DataFrame([{"term": k.removesuffix("_bytes"), "bytes": v, "MiB": round(v / 2**20, 2),
                          "source": sources.get(k.removesuffix("_bytes"), "")} for k, v in estimate.terms().items()])


TARGET_ERROR_PCT = 10.0  # the estimator's accuracy target for single-process training on a calibrated platform


def error_summary(validation: pd.DataFrame) -> dict[str, Any]:
    """Signed errors of validate_estimates, the largest absolute ones overall and for single-process records."""
    if validation.empty:
        return {"n": 0, "signed_error_pct": [], "max_abs_error_pct": None, "single_max_abs_error_pct": None,
                "single_within_target": None, "target_pct": TARGET_ERROR_PCT}
    errors = validation["signed_error_pct"].astype(float)
    single = errors[validation["world_size"] == 1].abs()
    worst = float(single.max()) if len(single) else None
    return {"n": len(validation), "signed_error_pct": [round(e, 2) for e in errors],
            "max_abs_error_pct": float(errors.abs().max()), "single_max_abs_error_pct": worst,
            "single_within_target": None if worst is None else worst <= TARGET_ERROR_PCT,
            "target_pct": TARGET_ERROR_PCT}


def fit_calibration(records: list[Any], platform: str = "cpu", source: str = "") -> Calibration:
    """Per family, fit measured − (weights+gradients+optimizer+transient) = overhead + k × formula activations."""
    cache: dict[str, ModelShape] = {}
    points: dict[str, list[tuple[float, float]]] = {}
    for record in _usable(records):
        shape = _shape_for(record, cache)
        estimate = estimate_for_record(record, cache=cache)
        rest = estimate.total_bytes - estimate.activations_bytes
        points.setdefault(shape.family, []).append((estimate.activations_bytes, measured_peak_bytes(record) - rest))
    overhead, factor = {}, {}
    for family, xy in points.items():
        x, y = np.array(xy, dtype=float).T
        if len(set(x)) >= 2:
            factor[family], overhead[family] = (float(v) for v in np.polyfit(x, y, 1))
        else:
            factor[family], overhead[family] = 1.0, float(np.mean(y - x))
    if not points:
        raise ConfigError("fit_calibration needs ok training records with a measured peak and baseline")
    for table in (overhead, factor):
        fitted = dict(table)
        for formula in ("encoder", "decoder"):
            values = [v for f, v in fitted.items() if FAMILY_FORMULA.get(f, "encoder") == formula]
            if values:
                table[formula] = float(np.mean(values))
        table["default"] = float(np.mean(list(fitted.values())))
    return Calibration(platform, overhead, factor, source or f"fitted on {sum(map(len, points.values()))} records")


def validate_estimates(records: list[Any],
                       calibration: Calibration | Callable[[Any], Calibration] | None = None) -> pd.DataFrame:
    """Estimated vs measured peak per rank for each ok training record, with the signed error in percent.

    calibration is one Calibration for all records, or a function of the record (e.g. record_calibration).
    """
    cache: dict[str, ModelShape] = {}
    rows = []
    for record in _usable(records):
        settings = record_settings(record)
        shape = _shape_for(record, cache)
        chosen = calibration(record) if callable(calibration) else calibration
        estimate = estimate_for_record(record, chosen, cache)
        measured = measured_peak_bytes(record)
        split = record.extra.get("memory_split_bytes") or {}
        rows.append({"model": record.model, "size": record.size, "family": shape.family, "n_params": shape.n_params,
                     "config_key": record.config_key, "batch_size": settings["batch_size"],
                     "tokens": estimate.settings["tokens_per_sample"], "precision": settings["precision"],
                     "strategy": settings["strategy"], "world_size": settings["world_size"],
                     "calibration": (chosen or UNCALIBRATED).source,
                     "measured_bytes": measured, "estimated_bytes": estimate.total_bytes,
                     "signed_error_pct": 100.0 * (estimate.total_bytes - measured) / measured,
                     **{f"estimated_{k}": v for k, v in estimate.terms().items() if k != "total_bytes"},
                     **{f"measured_{k}": v for k, v in split.items()}})
    return pd.DataFrame(rows)


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
