"""Name checks and model building: zoo families from explicit configs with random weights, or local folders."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from kit.errors import ConfigError
from kit.zoo.families import MODEL_TYPES, REGISTRY, Family
from kit.zoo.inputs import causal_lm, image_classification, maker_for
from kit.zoo.model import LoadedModel

try:  # transformers 5 configs are strict dataclasses that validate field types
    from huggingface_hub.errors import StrictDataclassError
except ImportError:  # older huggingface_hub
    StrictDataclassError = TypeError

FAMILIES: tuple[str, ...] = tuple(REGISTRY)
SIZES: tuple[str, ...] = ("tiny", "base")
ALIASES: dict[str, str] = {"llava_next": "llava-next", "llavanext": "llava-next", "x-clip": "xclip",
                           "x_clip": "xclip"}
LOCAL_SEQ_LEN = 128
LOCAL_MAKERS = {"text": causal_lm, "vision": image_classification}  # inputs of local folders of unknown families


def resolve_model(name: str) -> str:
    """Canonical model name: a zoo family (case-insensitive, with aliases) or a local HuggingFace folder's path."""
    if isinstance(name, str) and name.strip():
        key = name.strip().lower()
        key = ALIASES.get(key, key)
        if key in REGISTRY:
            return key
        path = Path(name).expanduser()
        if path.is_dir() and (path / "config.json").is_file():
            check_folder(path)
            return str(path.resolve())
    raise ConfigError(f"unknown model {name!r}; known: {', '.join(FAMILIES)} or a local HuggingFace folder "
                      "(a directory with config.json)")


def check_folder(path: Path) -> dict[str, Any]:
    """A local model folder's config.json, after checking it is a JSON object with a model_type that needs none of
    the folder's own code: Benchkit never runs code from a model folder (ConfigError naming the file otherwise)."""
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model folder {str(path)!r}: {config_file.name} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ConfigError(f"model folder {str(path)!r}: {config_file.name} must be a JSON object with a model_type")
    custom = sorted({str(ref).split(".")[0] + ".py" for ref in (config.get("auto_map") or {}).values()
                     if isinstance(ref, str)} | {p.name for p in path.glob("*.py")})
    if config.get("auto_map") or custom:
        raise ConfigError(f"model folder {str(path)!r} needs its own code ({', '.join(custom) or 'auto_map'}): "
                          "Benchkit never runs code from a model folder; use a model type transformers knows")
    return config


def validate_size(size: str) -> str:
    """The size, after checking it is one the zoo builds."""
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    return size


def _has_field(config: Any, name: str) -> bool:
    """Whether a config accepts the name: a dataclass field, an attribute alias, or a settable attribute."""
    cls = type(config)
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return name in fields or name in getattr(cls, "attribute_map", {}) or (
        hasattr(config, name) and not callable(getattr(config, name)))


def _check_path(config: Any, path: str, key: str) -> None:
    """Raise ConfigError unless the dotted path names a field of the config or of one of its sub-configs."""
    *subs, leaf = path.split(".")
    target = config
    for sub in subs:
        target = getattr(target, sub, None)
        if target is None or not hasattr(target, "to_dict"):
            raise ConfigError(f"unknown override {key!r}: {type(config).__name__} has no sub-config {sub!r}")
    if not _has_field(target, leaf):
        raise ConfigError(f"unknown override {key!r}: {type(target).__name__} has no field {leaf!r}")


def _set_path(kwargs: dict, path: str, value: Any) -> None:
    """Set a dotted path inside nested config kwargs."""
    *subs, leaf = path.split(".")
    for sub in subs:
        kwargs = kwargs.setdefault(sub, {})
    kwargs[leaf] = value


def apply_overrides(kwargs: dict, overrides: dict[str, Any] | None, family: Family | None, config: Any) -> dict:
    """Config kwargs with overrides applied; generic keys go to the family's fields, dotted keys to sub-configs."""
    kwargs = copy.deepcopy(kwargs)
    for key, value in (overrides or {}).items():
        paths = family.targets(key) if family else (key,)
        for path in paths:
            _check_path(config, path, key)
            _set_path(kwargs, path, value)
    return kwargs


def _finish_kwargs(family: Family, kwargs: dict) -> dict:
    """Fill in values derived from others: LLaVA's image token (last text token id) and grid of crops."""
    if family.name in ("llava", "llava-next"):
        kwargs.setdefault("image_token_index", kwargs["text_config"]["vocab_size"] - 1)
        vision = kwargs["vision_config"]
        kwargs.setdefault("image_seq_length", (vision["image_size"] // vision["patch_size"]) ** 2)
    if family.name == "llava-next":
        s = kwargs["vision_config"]["image_size"]
        kwargs.setdefault("image_grid_pinpoints", [[s, 2 * s], [2 * s, s], [2 * s, 2 * s], [3 * s, s], [s, 3 * s]])
    return kwargs


def build_config(family: Family, size: str, overrides: dict[str, Any] | None = None) -> Any:
    """The transformers config of a family at a size, with overrides; no weights are made."""
    import transformers

    config_class = getattr(transformers, family.config_class)
    kwargs = family.configs[size]
    base = config_class(**_finish_kwargs(family, copy.deepcopy(kwargs)))
    final = _finish_kwargs(family, apply_overrides(kwargs, overrides, family, base))
    try:
        return config_class(**final)
    except (TypeError, ValueError, StrictDataclassError) as exc:  # wrong types, values the config rejects
        raise ConfigError(f"invalid {family.name} config with overrides {overrides}: {exc}") from exc


def _build(head_class: str, config: Any) -> torch.nn.Module:
    """A model with random weights, seeded, fp32, in eval mode."""
    import transformers

    torch.manual_seed(0)
    try:
        model = getattr(transformers, head_class)(config)
    except (TypeError, ValueError) as exc:  # e.g. a hidden size that the heads do not divide
        raise ConfigError(f"cannot build {head_class} from this config: {exc}") from exc
    return model.float().eval()


def _load_local(path: str, overrides: dict[str, Any] | None) -> LoadedModel:
    """A local HuggingFace folder, with the family's head where its model_type is known."""
    import transformers

    check_folder(Path(path))
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    family = REGISTRY.get(MODEL_TYPES.get(config.model_type, ""))
    if overrides:
        config = type(config).from_dict(apply_overrides(config.to_dict(), overrides, family, config))
    head, modality = local_head(config, family)
    torch.manual_seed(0)  # parts missing from the checkpoint (e.g. a new head) start from seeded random values
    model = head.from_pretrained(path, config=config, local_files_only=True, trust_remote_code=False).float().eval()
    name = family.name if family else config.model_type
    seq_len = _local_seq_len(config, family) if modality == "text" or family else None
    maker = maker_for(name, "local") if family else LOCAL_MAKERS[modality]
    return LoadedModel(path, name, "local", modality, model, config, seq_len, maker,
                       family.primary if family else None)


def _local_seq_len(config: Any, family: Family | None) -> int | None:
    """The family's base default length, shortened to what the folder's text positions allow."""
    seq_len = family.seq_len["base"] if family else LOCAL_SEQ_LEN
    text = getattr(config, "text_config", config)
    limit = getattr(text, "max_position_embeddings", None)
    if seq_len is None or not isinstance(limit, int):
        return seq_len
    if family is REGISTRY["clap"]:
        limit -= text.pad_token_id + 1  # RoBERTa positions start after padding_idx
    return max(1, min(seq_len, limit))


def local_head(config: Any, family: Family | None) -> tuple[Any, str]:
    """The head class and modality: the family's; for unknown types a causal-LM head (text) where transformers has
    one, else an image-classification head (vision, e.g. ResNet, ConvNeXt, Swin), else AutoModel with text inputs."""
    import transformers

    if family:
        return getattr(transformers, family.head_class), family.modality
    if type(config) in transformers.AutoModelForCausalLM._model_mapping:
        return transformers.AutoModelForCausalLM, "text"
    if type(config) in transformers.AutoModelForImageClassification._model_mapping:
        return transformers.AutoModelForImageClassification, "vision"
    return transformers.AutoModel, "text"


def load_model(name: str, size: str = "tiny", *, overrides: dict[str, Any] | None = None) -> LoadedModel:
    """Build a zoo model with random weights (or load a local folder, size 'local'), in eval mode on CPU.

    `overrides` sets config fields before building: the generic keys num_hidden_layers, hidden_size,
    num_attention_heads and intermediate_size go to the family's own fields (see families.py), any other key must be a
    field of the config, and dotted keys such as "vision_config.image_size" reach sub-configs.
    """
    canonical, size = resolve_model(name), validate_size(size)
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a mapping of config fields to values, got {overrides!r}")
    if canonical not in REGISTRY:
        return _load_local(canonical, overrides)
    family = REGISTRY[canonical]
    config = build_config(family, size, overrides)
    model = _build(family.head_class, config)
    return LoadedModel(canonical, family.name, size, family.modality, model, config, family.seq_len[size],
                       maker_for(family.name, size), family.primary)
