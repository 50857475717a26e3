"""Local HuggingFace folders with seeded random weights for any transformers architecture, made offline from a config:
models outside the zoo (ResNet, ConvNeXt, Swin, GPT-2, ...) to benchmark as local folders, e.g. families the
predictor has never seen. Weights are random, so the folders are for performance, never for accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from kit.errors import ConfigError
from kit.zoo.loading import local_head


def save_random_checkpoint(model_type: str, folder: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Build `model_type` (a transformers config name) from `config` fields with random weights (seed 0) and the
    head kit loads it with (kit.zoo.loading.local_head), and save it to `folder`; returns the folder."""
    import transformers

    _check_entry(model_type, config)
    try:
        built = transformers.AutoConfig.for_model(model_type, **(config or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {model_type} config {config}: {exc}") from exc
    head, _ = local_head(built, None)
    # the head's class itself, not head.from_config: that fails on a config without `architectures` whose head maps
    # to several classes (DeiT's); the first is the plain head
    model_class = head._model_mapping[type(built)]
    model_class = model_class[0] if isinstance(model_class, tuple | list) else model_class
    torch.manual_seed(0)
    model = model_class(built)
    folder = Path(folder)
    model.save_pretrained(folder)
    return folder


def _check_entry(model_type: Any, config: Any) -> None:
    """ConfigError unless model_type is a transformers config name and config a mapping (or None)."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ConfigError(f"unknown model_type {model_type!r}; e.g. {', '.join(sorted(CONFIG_MAPPING)[:8])}, ...")
    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"config of {model_type} must be a mapping of fields to values, got {config!r}")


def make_checkpoints(spec: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """One folder per entry of spec['checkpoints'] ({name: {model_type, config}}) under out_dir; all entries are
    checked before any folder is written."""
    entries = spec.get("checkpoints") if isinstance(spec, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError("a checkpoint spec needs a non-empty 'checkpoints' mapping of name -> {model_type, config}")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or "model_type" not in entry or set(entry) - {"model_type", "config"}:
            raise ConfigError(f"checkpoint {name!r} must have model_type and optionally config, got {entry!r}")
        _check_entry(entry["model_type"], entry.get("config"))
    return [save_random_checkpoint(e["model_type"], Path(out_dir) / name, e.get("config"))
            for name, e in entries.items()]


def add_make_checkpoints_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="YAML file with a 'checkpoints' mapping (see "
                                                "parameters/local_checkpoints.yaml)")
    parser.add_argument("--out", type=Path, default=Path("outputs/checkpoints"), help="folder to write them under")


def cmd_make_checkpoints(args: argparse.Namespace) -> int:
    """Write the spec's random-weight folders and print their paths."""
    from kit.config import load_parameters

    for folder in make_checkpoints(load_parameters(args.spec), args.out):
        print(folder)
    return 0
