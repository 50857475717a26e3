"""Valid synthetic inputs for any architecture: the zoo's input maker where the model type is a zoo family, else
inputs built from the model's `main_input_name`, its forward signature and its config's shapes (no processor, no
download): tokens, images, waveforms (with a channel where the model does not add it), spectrograms laid out as the
first convolution reads them, time series, embeddings, layout boxes, and the flattened patches and grid of
Qwen2-VL-style vision towers.

Each maker returns tensors for one forward of the bare (or first auto) model class at batch `batch_size`; a forward
argument that the model requires and no maker provides is an error of the input stage, named.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch

from kit.errors import ConfigError
from kit.zoo import inputs as zoo_inputs
from kit.zoo.families import MODEL_TYPES, REGISTRY

DEFAULT_SEQ_LEN = 16
AUDIO_SAMPLES = 16000  # 1 s at 16 kHz: enough frames after the usual conv feature encoders (x320) for masking
FEATURE_FRAMES = 64
DEFAULT_FRAMES = 2
ADDS_CHANNEL = ("input_values[:, None]", "input_values.unsqueeze(1)")  # a model that makes (batch, 1, samples) itself


class InputError(Exception):
    """No valid input can be made for this model: the message names the argument or the field missing."""


def _int(config: Any, *names: str, default: int | None = None) -> int | None:
    """The first of the config's fields that holds a positive int."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _sub(config: Any, *names: str) -> Any:
    """The first sub-config the config has among `names`, else the config itself."""
    return next((getattr(config, n) for n in names if getattr(config, n, None) is not None), config)


def text_config(config: Any) -> Any:
    """The config that holds the vocabulary (the text decoder's for multimodal models)."""
    try:
        return config.get_text_config(decoder=True)
    except (AttributeError, TypeError, ValueError):
        return _sub(config, "text_config", "decoder")


def tokens(config: Any, batch_size: int, seq_len: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """input_ids within the text vocabulary and an all-ones attention_mask."""
    text = text_config(config)
    vocab = _int(text, "vocab_size", default=None) or _int(config, "vocab_size", default=1000)
    limit = _int(text, "max_position_embeddings", "n_positions", "max_seq_len", default=seq_len)
    ids = torch.randint(3, max(vocab, 4), (batch_size, min(seq_len, limit)), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def pixels(config: Any, batch_size: int, gen: torch.Generator, frames: int | None = None) -> torch.Tensor:
    """Images (batch, channels, side, side) of the vision config; with frames, a video (batch, frames, ...)."""
    vision = _sub(config, "vision_config", "backbone_config", "encoder")
    side = zoo_inputs.image_side(vision) if hasattr(vision, "image_size") else zoo_inputs.image_side(config)
    channels = _int(vision, "num_channels", "in_channels", "in_chans", default=None) or _int(
        config, "num_channels", default=3)
    shape = (batch_size, frames, channels, side, side) if frames else (batch_size, channels, side, side)
    return torch.randn(*shape, generator=gen)


def waveform(config: Any, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    """Raw audio (batch, samples), or (batch, channels, samples) for codecs with audio_channels."""
    channels = _int(config, "audio_channels", default=None)
    shape = (batch_size, channels, AUDIO_SAMPLES) if channels else (batch_size, AUDIO_SAMPLES)
    return torch.randn(*shape, generator=gen)


def features(config: Any, batch_size: int, gen: torch.Generator, model: torch.nn.Module | None = None) -> torch.Tensor:
    """Spectrogram features: Whisper-like (batch, mel bins, frames) where the config counts num_mel_bins and has
    source positions (2 x max_source_positions frames) or the model's first Conv1d reads the mel bins as channels,
    else (batch, frames, feature size)."""
    audio = _sub(config, "audio_config", "encoder_config")
    mels = _int(audio, "num_mel_bins", default=None)
    bins = mels or _int(audio, "feature_size", "input_feat_per_channel", "n_mels", "input_dim", default=80)
    positions = _int(audio, "max_source_positions", default=None)
    if mels and positions:
        return torch.randn(batch_size, bins, 2 * positions, generator=gen)
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear)),
                 None) if model is not None else None
    if mels and isinstance(first, torch.nn.Conv1d) and first.in_channels == bins:
        return torch.randn(batch_size, bins, FEATURE_FRAMES, generator=gen)
    return torch.randn(batch_size, FEATURE_FRAMES, bins, generator=gen)


def boxes(batch_size: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    """Layout boxes (batch, tokens, 4): x0, y0, x1, y1 on the 0-1000 page grid, each corner before its opposite."""
    start = torch.randint(0, 500, (batch_size, seq_len, 2), generator=gen)
    return torch.cat([start, start + torch.randint(1, 500, (batch_size, seq_len, 2), generator=gen)], dim=-1)


def patch_grid(config: Any, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A vision tower's flattened patches (patches, channels x temporal patch x patch x patch) and their grid
    (images, 3: frames, rows, columns), one image of a 4 x 4 grid of merged patches, as the Qwen2-VL-style vision
    encoders take them."""
    vision = _sub(config, "vision_config")
    merge = _int(vision, "spatial_merge_size", "merge_size", default=1)
    patch = _first_int(getattr(vision, "patch_size", None)) or 14
    temporal = _first_int(getattr(vision, "temporal_patch_size", None)) or 1
    channels = _int(vision, "in_channels", "num_channels", "in_chans", default=3)
    side = 4 * merge
    grid = torch.tensor([[1, side, side]])
    return {"hidden_states": torch.randn(side * side, channels * temporal * patch * patch, generator=gen),
            "grid_thw": grid}


def series(config: Any, batch_size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A time series of the config's context length: past values (batch, length[, channels]) with their observed
    mask; for lag-based forecasters (lags_sequence) the context plus the largest lag, time features, and the future
    values and time features of prediction_length steps that the decoder reads."""
    context = _int(config, "context_length", default=32)
    lags = getattr(config, "lags_sequence", None)
    if not lags:
        channels = _int(config, "num_input_channels", default=None)
        shape = (batch_size, context, channels) if channels else (batch_size, context)
        return {"past_values": torch.randn(*shape, generator=gen)}
    length, horizon = context + max(lags), _int(config, "prediction_length", default=1)
    size = _int(config, "input_size", default=1)
    extra = (size,) if size > 1 else ()
    features = (_int(config, "num_time_features", default=0) or 0) + (_int(config, "num_dynamic_real_features",
                                                                           default=0) or 0)
    return {"past_values": torch.randn(batch_size, length, *extra, generator=gen),
            "past_observed_mask": torch.ones(batch_size, length, *extra),
            "past_time_features": torch.randn(batch_size, length, features, generator=gen),
            "future_values": torch.randn(batch_size, horizon, *extra, generator=gen),
            "future_time_features": torch.randn(batch_size, horizon, features, generator=gen)}


def _first_int(value: Any) -> int | None:
    """An int, or the first of a list or tuple of ints."""
    value = value[0] if isinstance(value, list | tuple) and value else value
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _has_image_tokens(config: Any) -> bool:
    """Whether images reach the model as placeholder tokens in its text (LLaVA-style), which text alone satisfies."""
    return any("image_token" in key or "vision_token" in key or "image_start" in key for key in config.to_dict())


def _arguments(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """The forward's named arguments, and those of them without a default."""
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    return [p.name for p in params], [p.name for p in params if p.default is inspect.Parameter.empty]


def _zoo_inputs(config: Any, batch_size: int, seq_len: int, gen: torch.Generator) -> dict[str, Any] | None:
    """The zoo's inputs for a model type that is a zoo family: seq_len text tokens, or the zoo's base-size audio
    length for audio families (the shrunk feature encoder keeps the base-size strides)."""
    family = MODEL_TYPES.get(config.model_type)
    if family is None:
        return None
    length = REGISTRY[family].seq_len["base"] if REGISTRY[family].modality == "audio" else seq_len
    return zoo_inputs.maker_for(family, "tiny")(config, batch_size, length, False, gen)


def _mono_channel(model: torch.nn.Module) -> bool:
    """Whether the model reads its waveform as (batch, 1, samples): its first layer is a 1-channel Conv1d and its
    modeling code does not add that channel itself (input_values[:, None], as wav2vec2 and Moonshine do)."""
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Linear)), None)
    if not isinstance(first, torch.nn.Conv1d) or first.in_channels != 1:
        return False
    try:
        source = inspect.getsource(sys.modules[type(model).__module__])
    except (KeyError, OSError, TypeError):
        return True
    return not any(form in source for form in ADDS_CHANNEL)


def _main_input(name: str, config: Any, modality: str, batch_size: int, seq_len: int,
                gen: torch.Generator, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """The model's main input (and its mask) by name."""
    if name == "input_ids":
        return tokens(config, batch_size, seq_len, gen)
    if name == "pixel_values":
        frames = _int(_sub(config, "vision_config"), "num_frames", default=DEFAULT_FRAMES) if modality == "video" \
            else None
        return {"pixel_values": pixels(config, batch_size, gen, frames)}
    if name == "inputs_embeds":
        width = _int(text_config(config), "hidden_size", "d_model", default=None) or _int(config, "hidden_size",
                                                                                          default=32)
        return {"inputs_embeds": torch.randn(batch_size, seq_len, width, generator=gen)}
    if name == "input_values":
        if all(hasattr(config, f) for f in ("conv_kernel", "conv_stride", "apply_spec_augment")):
            return zoo_inputs.speech_ctc(config, batch_size, AUDIO_SAMPLES, False, gen)
        bins, frames = _int(config, "num_mel_bins", default=None), _int(config, "max_length", default=None)
        if bins and frames:  # a spectrogram transformer (AST): (batch, frames, mel bins)
            return {"input_values": torch.randn(batch_size, frames, bins, generator=gen)}
        values = waveform(config, batch_size, gen)
        if values.dim() == 2 and model is not None and _mono_channel(model):
            values = values[:, None]
        return {"input_values": values}
    if name == "input_features":
        return {"input_features": features(config, batch_size, gen, model)}
    if name == "past_values":
        return series(config, batch_size, gen)
    raise InputError(f"no input maker for main input {name!r} of {type(config).__name__}")


def make_inputs(model: torch.nn.Module, config: Any, modality: str, *, batch_size: int = 1,
                seq_len: int = DEFAULT_SEQ_LEN, seed: int = 0) -> dict[str, Any]:
    """Seeded inputs for one forward of the model: the zoo's where it knows the type and they fit, else the main
    input, the decoder's first tokens for encoder-decoders, images for dual encoders (CLIP-style: both towers run),
    boxes for layout models, and any other required token, feature, image or patch-grid input."""
    gen = torch.Generator().manual_seed(seed)
    try:
        out = _zoo_inputs(config, batch_size, seq_len, gen)
    except ConfigError:  # the zoo maker assumes the zoo's own tiny config (e.g. LLaVA-NeXT's image grid)
        out = None
    if out is not None:
        return out
    out = _main_input(getattr(model, "main_input_name", "input_ids"), config, modality, batch_size, seq_len, gen,
                      model)
    accepted, required = _arguments(model)
    if "decoder_input_ids" in required or (getattr(config, "is_encoder_decoder", False)
                                           and "decoder_input_ids" in accepted):
        out["decoder_input_ids"] = tokens(config, batch_size, seq_len, gen)["input_ids"]
    if "input_ids" in required and "input_ids" not in out:
        out.update(tokens(config, batch_size, seq_len, gen))
    dual = modality == "vision-text" or getattr(config, "vision_config", None) is not None
    for name in required:  # other token inputs (qformer_input_ids...) are tokens of the same vocabulary and length
        if name.endswith("input_ids") and name not in out:
            out[name] = tokens(config, batch_size, seq_len, gen)["input_ids"]
    if "input_features" in required and "input_features" not in out:
        out["input_features"] = features(config, batch_size, gen, model)
    if "pixel_values" not in out and ("pixel_values" in required or (
            "pixel_values" in accepted and dual and not _has_image_tokens(config))):
        out["pixel_values"] = pixels(config, batch_size, gen)  # a dual encoder (CLIP-style) needs both inputs
    if "bbox" in accepted and "input_ids" in out:
        out["bbox"] = boxes(*out["input_ids"].shape, gen)
    if "past_values" in out and "past_values_padding" in accepted:  # nothing padded, one frequency class
        out["past_values_padding"] = torch.zeros(out["past_values"].shape[:2])
        if "freq" in accepted:
            out["freq"] = torch.zeros(batch_size, 1, dtype=torch.long)
    grid = next((n for n in required if n.endswith("grid_thw")), None)
    if grid:  # a vision tower of flattened patches: they go in hidden_states or pixel_values
        patches = patch_grid(config, gen)
        out[next((n for n in ("hidden_states", "pixel_values") if n in required), "hidden_states")] = \
            patches.pop("hidden_states")
        out[grid] = patches["grid_thw"]
    missing = [name for name in required if name not in out]
    if missing:
        raise InputError(f"forward of {type(model).__name__} requires {', '.join(missing)}, which no input maker "
                         "makes")
    return out
