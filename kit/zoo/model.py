"""LoadedModel, a built model with its input maker and facts, and forward profiling (FLOPs, op calls, traffic)."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._python_dispatch
import torch.utils._pytree

from kit.errors import ConfigError
from kit.zoo.inputs import Maker, causal_lm

log = logging.getLogger(__name__)


def _primary(config: Any, sub: str | None) -> Any:
    """The (sub-)config whose layer count and width describe the model."""
    if sub is None:
        sub = next((s for s in ("text_config", "vision_config", "audio_config") if not hasattr(config, "hidden_size")
                    and hasattr(config, s)), None)
    return getattr(config, sub) if sub and hasattr(config, sub) else config


@dataclass
class LoadedModel:
    """A model with a training head in eval mode (fp32, CPU), its config, and what is needed to feed it."""

    name: str
    family: str
    size: str
    modality: str
    model: torch.nn.Module
    config: Any
    default_seq_len: int | None
    maker: Maker = field(default=causal_lm, repr=False)
    primary_config: str | None = field(default=None, repr=False)

    def make_inputs(self, batch_size: int, seq_len: int | None = None, *, with_labels: bool = False,
                    seed: int = 0) -> dict[str, Any]:
        """Deterministic synthetic CPU inputs for one forward pass; see kit.zoo.inputs for seq_len per family."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        gen = torch.Generator().manual_seed(seed)
        return self.maker(self.config, batch_size, self.default_seq_len if seq_len is None else seq_len,
                          with_labels, gen)

    def loss(self, inputs: dict[str, Any]) -> torch.Tensor:
        """The head's scalar training loss for inputs made with with_labels=True."""
        loss = self.model(**inputs).loss
        if loss is None:
            raise ConfigError(f"{self.name} gave no loss: inputs made without with_labels=True, or no training head")
        return loss

    def n_params(self) -> int:
        """Number of parameters (shared tensors counted once)."""
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict[str, Any]:
        """Facts about the model for the results store."""
        primary = _primary(self.config, self.primary_config)
        return {"family": self.family, "size": self.size, "modality": self.modality, "n_params": self.n_params(),
                "n_layers": _layers(primary), "hidden_size": _width(primary), "default_seq_len": self.default_seq_len,
                "config_json": self.config.to_json_string()}


def _layers(config: Any) -> int | None:
    """Layer count: num_hidden_layers, else the blocks of all stages of a staged net (ResNet, ConvNeXt, Swin)."""
    depths = getattr(config, "depths", None)
    layers = getattr(config, "num_hidden_layers", None)
    return layers if isinstance(layers, int) else sum(depths) if isinstance(depths, list | tuple) else None


def _width(config: Any) -> int | None:
    """Width: hidden_size, else the last stage's width of a staged net."""
    hidden, sizes = getattr(config, "hidden_size", None), getattr(config, "hidden_sizes", None)
    return hidden if isinstance(hidden, int) else sizes[-1] if isinstance(sizes, list | tuple) and sizes else None


def _to_device(inputs: Any, device: torch.device) -> Any:
    """Inputs (tensors, also inside DETR's label dicts) moved to the model's device."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, dict):
        return {k: _to_device(v, device) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return [_to_device(v, device) for v in inputs]
    return inputs


PROFILE_KEYS = ("flops_per_sample", "ops_per_forward", "activation_bytes_per_sample", "activation_bytes_fixed",
                "attention_scores_per_sample", "python_calls_per_forward", "conv_flops_per_sample",
                "conv_calls_per_forward", "grouped_conv_flops_per_sample", "grouped_conv_bytes_per_sample",
                "matmul_shapes", "conv_shapes")
_MM = {torch.ops.aten.mm.default: 0, torch.ops.aten.addmm.default: 1}  # argument index of the left operand
_BMM = {torch.ops.aten.bmm.default: 0, torch.ops.aten.baddbmm.default: 1}


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel, which torch's FlopCounterMode registers only for the GPU kernels."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _storage(tensor: torch.Tensor) -> int:
    """The address of a tensor's storage: outputs that share an input's (views such as a weight's transpose) are not
    new bytes."""
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # a tensor without storage (e.g. sparse) counts as new
        return id(tensor)


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts aten calls, the bytes of the tensors they return, the score elements of fused attention (batch x
    heads x queries x keys: the softmax's work, which FLOPs miss when heads are small; eager attention stores its
    scores, so they are in the returned bytes instead), convolution calls (oneDNN reorders their data on each), and
    the FLOPs and the bytes read and written (input and output) of grouped convolutions (depthwise ones included):
    little work per byte, so their time follows the memory's rate rather than the compute's."""

    def __init__(self) -> None:
        super().__init__()
        self.ops, self.out_bytes, self.owned_bytes, self.scores = 0, 0, 0, 0
        self.conv_calls, self.grouped_conv_flops, self.grouped_conv_bytes = 0, 0, 0
        self.matmuls: list[tuple[int, int, int, int]] = []  # (rows M, columns N, inner K, batch G) per product
        self.convs: list[tuple[int, int, int, int]] = []  # the same per convolution, as the product it computes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's protocol)
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        if func is torch.ops.aten.convolution.default:
            self._convolution(args, out)
        if func in _MM:
            a, b = args[_MM[func]], args[_MM[func] + 1]
            self.matmuls.append((a.shape[0], b.shape[1], a.shape[1], 1))
        elif func in _BMM:
            a, b = args[_BMM[func]], args[_BMM[func] + 1]
            self.matmuls.append((a.shape[1], b.shape[2], a.shape[2], a.shape[0]))
        if "scaled_dot_product" in str(func) and len(args) >= 2 and args[0].dim() == 4:
            q, k = args[0], args[1]
            self.scores += q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2]
        tensors = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.out_bytes += sum(t.numel() * t.element_size() for t in tensors)
        inputs = {_storage(t) for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        self.owned_bytes += sum(t.numel() * t.element_size() for t in tensors if _storage(t) not in inputs)
        return out

    def _convolution(self, args: tuple, out: torch.Tensor) -> None:
        """Count one aten.convolution call (input, weight, bias, stride, padding, dilation, transposed, output
        padding, groups), and its FLOPs and traffic when it is grouped."""
        from torch.utils.flop_counter import conv_flop_count

        self.conv_calls += 1
        x, weight, transposed, groups = args[0], args[1], args[6], args[8]
        self.convs.append(_conv_product(x.shape, weight.shape, out.shape, transposed, groups))
        if groups > 1:
            self.grouped_conv_flops += conv_flop_count(x.shape, weight.shape, out.shape, transposed=transposed)
            self.grouped_conv_bytes += (x.numel() * x.element_size() + out.numel() * out.element_size())


def _conv_product(x: Any, weight: Any, out: Any, transposed: bool, groups: int) -> tuple[int, int, int, int]:
    """(M, N, K, G) of the matrix product a convolution computes per group (im2col): rows are the batch times the
    output positions (the input ones when transposed), columns the output channels per group (times the kernel
    positions when transposed), the inner dimension the input channels per group (times the kernel positions)."""
    kernel = math.prod(weight[2:])
    if transposed:  # weight: (in, out / groups, *kernel)
        return x[0] * math.prod(x[2:]), weight[1] * kernel, weight[0] // groups, groups
    return out[0] * math.prod(out[2:]), weight[0] // groups, weight[1] * kernel, groups  # (out, in / groups, *k)


def _count(loaded: LoadedModel, batch: int, seq_len: int | None, device: torch.device) -> tuple[Any, _OpCounter]:
    inputs = _to_device(loaded.make_inputs(batch, seq_len), device)
    flops, ops = _flop_counter(), _OpCounter()
    with torch.no_grad(), flops, ops:
        loaded.model(**inputs)
    return flops, ops


def _python_calls(loaded: LoadedModel, seq_len: int | None, device: torch.device) -> int:
    """Python function calls of one forward at batch 1 (sys.setprofile 'call' events, after a warm-up forward): the
    interpreter work of the model code (masks, caches, module plumbing), which aten call counts miss."""
    inputs = _to_device(loaded.make_inputs(1, seq_len), device)
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    with torch.no_grad():
        loaded.model(**inputs)
        previous = sys.getprofile()  # a profiler of the user's gets its hook back
        sys.setprofile(count)
        try:
            loaded.model(**inputs)
        finally:
            sys.setprofile(previous)
    return calls


def forward_profile(loaded: LoadedModel, seq_len: int | None = None) -> dict[str, float | str | None]:
    """Per-forward facts of the model, counted once outside any timing (values None if counting fails):

    flops_per_sample (FlopCounterMode at batch 1, CPU attention included), ops_per_forward (aten calls: the per-call
    overhead that dominates small models), activation_bytes_per_sample (bytes of returned tensors that grow with the
    batch: batch 2 minus batch 1), activation_bytes_fixed (new tensors, not views, that do not grow with it, e.g. T5's
    position bias over all token pairs: batch 1 minus the per-sample part), attention_scores_per_sample and
    python_calls_per_forward (`_python_calls`), conv_flops_per_sample (the part of the FLOPs in convolutions,
    whose kernels run at other rates than matrix products), conv_calls_per_forward (each also reorders its data
    for oneDNN), grouped_conv_flops_per_sample and grouped_conv_bytes_per_sample (the part of the convolutions that
    is grouped or depthwise, and the bytes it reads and writes per sample: batch 2 minus batch 1), matmul_shapes
    (`_shape_pairs`: thin products run far below the peak) and conv_shapes (the same for the products the
    convolutions compute, `_conv_product`: convolutions with few channels are thin products too).
    """
    try:
        device = next(loaded.model.parameters()).device
        flops, one = _count(loaded, 1, seq_len, device)
        _, two = _count(loaded, 2, seq_len, device)
        python_calls = _python_calls(loaded, seq_len, device)
    except Exception as exc:  # counts are nice-to-have facts; the benchmark goes on without them
        log.warning("forward profiling failed for %s: %s: %s", loaded.name, type(exc).__name__, exc)
        return dict.fromkeys(PROFILE_KEYS)
    return {"flops_per_sample": float(flops.get_total_flops()), "ops_per_forward": float(one.ops),
            "activation_bytes_per_sample": float(max(two.out_bytes - one.out_bytes, 0)),
            "activation_bytes_fixed": float(max(2 * one.owned_bytes - two.owned_bytes, 0)),
            "attention_scores_per_sample": float(one.scores), "python_calls_per_forward": float(python_calls),
            "conv_flops_per_sample": _conv_flops(flops), "conv_calls_per_forward": float(one.conv_calls),
            "grouped_conv_flops_per_sample": float(one.grouped_conv_flops),
            "grouped_conv_bytes_per_sample": float(max(two.grouped_conv_bytes - one.grouped_conv_bytes, 0)),
            "matmul_shapes": _shape_pairs(one.matmuls, two.matmuls),
            "conv_shapes": _shape_pairs(one.convs, two.convs)}


def _shape_pairs(one: list[tuple[int, int, int, int]], two: list[tuple[int, int, int, int]]) -> str | None:
    """The matrix products (or convolutions, `_conv_product`) of a forward as JSON text: [M, N, K, G at batch 1, then
    at batch 2, calls] per distinct pair, so the shapes at any batch size follow (M or G grow with the batch; CLIP's
    similarity grows N); None when the two forwards differ in their number of products."""
    if len(one) != len(two):
        return None
    shapes = Counter((*a, *b) for a, b in zip(one, two, strict=True))
    return json.dumps([[*shape, n] for shape, n in sorted(shapes.items())])


def _conv_flops(counter: Any) -> float:
    """FLOPs of the convolution ops a FlopCounterMode counted (aten.convolution and its variants)."""
    totals = counter.get_flop_counts().get("Global", {})
    return float(sum(n for op, n in totals.items() if "convolution" in str(op)))


def flops_per_sample(loaded: LoadedModel, seq_len: int | None = None) -> float | None:
    """Forward FLOPs of one sample (batch 1, CPU attention included); None if counting fails."""
    return forward_profile(loaded, seq_len)["flops_per_sample"]


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks (children of any nn.ModuleList that hold parameters): what FSDP shards one by one and
    the memory estimator counts per layer."""
    return [block for m in model.modules() if isinstance(m, torch.nn.ModuleList) for block in m
            if any(True for _ in block.parameters())]
