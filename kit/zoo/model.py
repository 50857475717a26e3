"""LoadedModel, a built model with its input maker and facts, and forward-FLOP counting."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

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
                "n_layers": getattr(primary, "num_hidden_layers", None),
                "hidden_size": getattr(primary, "hidden_size", None), "default_seq_len": self.default_seq_len,
                "config_json": self.config.to_json_string()}


def _to_device(inputs: Any, device: torch.device) -> Any:
    """Inputs (tensors, also inside DETR's label dicts) moved to the model's device."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, dict):
        return {k: _to_device(v, device) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return [_to_device(v, device) for v in inputs]
    return inputs


def flops_per_sample(loaded: LoadedModel, seq_len: int | None = None) -> float | None:
    """Forward FLOPs of one sample (batch 1), by FlopCounterMode on the model's device; None if counting fails."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        device = next(loaded.model.parameters()).device
        inputs = _to_device(loaded.make_inputs(1, seq_len), device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            loaded.model(**inputs)
    except Exception as exc:  # a count is a nice-to-have fact; the benchmark goes on without it
        log.warning("FLOP counting failed for %s: %s: %s", loaded.name, type(exc).__name__, exc)
        return None
    return float(counter.get_total_flops())
