"""Model shapes for the memory estimator: parameter counts and transformer dimensions, built on the meta device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kit.errors import ConfigError

FAMILY_FORMULA = {"bert": "encoder", "vit": "encoder", "llama": "decoder", "qwen2": "decoder"}


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

    from kit.zoo.model import transformer_blocks

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
