"""Synthetic, seeded inputs for one forward pass of each family, with the labels its head needs for a loss.

Meaning of ``seq_len`` per family (``None`` means the model's ``default_seq_len``):

- bert, llama, qwen2: tokens per sample.
- t5: encoder tokens; the decoder gets the same number of tokens (``decoder_input_ids``, or ``labels``).
- clip, xclip, clap: text tokens; images, video frames and spectrograms are fixed by the config.
- llava, llava-next: text tokens, on top of the image tokens the vision tower produces.
- wav2vec2: audio samples (16 kHz raw waveform, 16000 for base); CTC labels are a quarter as long as the output
  frames (one frame per 320 samples for base), and at least mask_time_length (10) frames are needed.
- vit, detr, whisper, local image classifiers: ignored. Images are ``image_size`` (else 224) squared, DETR
  images 800x1066 (64x64 for tiny), Whisper takes ``2 * max_source_positions`` mel frames (3000 for base) and a
  fixed decoder prompt of up to 32 tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kit.errors import ConfigError

Inputs = dict[str, Any]
Maker = Callable[[Any, int, int | None, bool, torch.Generator], Inputs]
WHISPER_DECODER_TOKENS = 32
DETR_IMAGE_HW = {"tiny": (64, 64), "other": (800, 1066)}  # DETR's processor: short side 800 on a 4:3 COCO image
DEFAULT_IMAGE_SIDE = 224  # the usual ImageNet side, for vision configs that name none


def _check_seq_len(seq_len: int | None, limit: int | None, what: str) -> int:
    """The sequence length, after checking it is a positive int within the model's limit."""
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ConfigError(f"seq_len must be a positive integer for {what}, got {seq_len!r}")
    if limit is not None and seq_len > limit:
        raise ConfigError(f"seq_len {seq_len} exceeds the {limit} positions of {what}")
    return seq_len


def _tokens(gen: torch.Generator, batch: int, seq_len: int, high: int, eos: int | None = None) -> torch.Tensor:
    """Random token ids in [3, high), ending with eos where given (contrastive text towers pool there)."""
    ids = torch.randint(3, max(high, 4), (batch, seq_len), generator=gen)
    if eos is not None:
        ids[:, -1] = eos
    return ids


def _image(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Normalised-looking random pixels."""
    return torch.randn(*shape, generator=gen)


def text_classification(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """BERT: input_ids + attention_mask; labels are class ids."""
    seq_len = _check_seq_len(seq_len, config.max_position_embeddings, config.model_type)
    out: Inputs = {"input_ids": _tokens(gen, batch, seq_len, config.vocab_size),
                   "attention_mask": torch.ones(batch, seq_len, dtype=torch.long)}
    if labels:
        out["labels"] = torch.randint(0, config.num_labels, (batch,), generator=gen)
    return out


def causal_lm(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """Decoder-only LMs (and the fallback for unknown local models): labels are the input ids."""
    seq_len = _check_seq_len(seq_len, getattr(config, "max_position_embeddings", None), config.model_type)
    ids = _tokens(gen, batch, seq_len, getattr(config, "vocab_size", 1000))
    out: Inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if labels:
        out["labels"] = ids.clone()
    return out


def text2text(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """T5: encoder tokens, and as many decoder tokens (decoder_input_ids, or labels that the model shifts)."""
    seq_len = _check_seq_len(seq_len, None, "t5")
    ids = _tokens(gen, batch, seq_len, config.vocab_size)
    target = _tokens(gen, batch, seq_len, config.vocab_size)
    out: Inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if labels:
        out["labels"] = target
    else:
        target[:, 0] = config.decoder_start_token_id
        out["decoder_input_ids"] = target
    return out


def image_side(config: Any) -> int:
    """The square image side of a vision config: its image_size (an int, or the first of a pair), else 224 (e.g.
    ResNet configs, which have none)."""
    size = getattr(config, "image_size", None)
    size = size[0] if isinstance(size, list | tuple) and size else size
    return size if isinstance(size, int) and size > 0 else DEFAULT_IMAGE_SIDE


def image_classification(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """ViT, or a local image classifier: square images of image_side(config); labels are class ids."""
    side = image_side(config)
    out: Inputs = {"pixel_values": _image(gen, batch, config.num_channels, side, side)}
    if labels:
        out["labels"] = torch.randint(0, config.num_labels, (batch,), generator=gen)
    return out


def detection(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator,
              hw: tuple[int, int] = DETR_IMAGE_HW["other"]) -> Inputs:
    """DETR: images and pixel mask; labels are one dict per image with 3 class_labels and (cx, cy, w, h) boxes."""
    out: Inputs = {"pixel_values": _image(gen, batch, config.num_channels, *hw),
                   "pixel_mask": torch.ones(batch, *hw, dtype=torch.long)}
    if labels:
        out["labels"] = [{"class_labels": torch.randint(0, config.num_labels, (3,), generator=gen),
                          "boxes": torch.cat([0.25 + 0.5 * torch.rand(3, 2, generator=gen),
                                              0.1 + 0.3 * torch.rand(3, 2, generator=gen)], dim=1)}
                         for _ in range(batch)]
    return out


def tiny_detection(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """DETR at the tiny size: 64x64 images."""
    return detection(config, batch, seq_len, labels, gen, DETR_IMAGE_HW["tiny"])


def _contrastive_text(config: Any, batch: int, seq_len: int | None, gen: torch.Generator, offset: int = 0) -> Inputs:
    """Text half of a contrastive pair; `offset` reserves positions (RoBERTa starts positions after padding_idx)."""
    text = config.text_config
    limit = text.max_position_embeddings - offset
    seq_len = _check_seq_len(seq_len, limit, f"{config.model_type} text")
    eos = text.eos_token_id if isinstance(text.eos_token_id, int) and text.eos_token_id < text.vocab_size else None
    ids = _tokens(gen, batch, seq_len, text.vocab_size - 1, eos)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def vision_text(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """CLIP: texts and images; with labels, return_loss=True (the batch's pairs are the positives)."""
    vision = config.vision_config
    out = _contrastive_text(config, batch, seq_len, gen)
    out["pixel_values"] = _image(gen, batch, vision.num_channels, vision.image_size, vision.image_size)
    return {**out, "return_loss": True} if labels else out


def video_text(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """X-CLIP: texts and videos shaped (batch, frames, 3, H, W)."""
    vision = config.vision_config
    out = _contrastive_text(config, batch, seq_len, gen)
    out["pixel_values"] = _image(gen, batch, vision.num_frames, vision.num_channels, vision.image_size,
                                 vision.image_size)
    return {**out, "return_loss": True} if labels else out


def audio_text(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """CLAP: texts and log-mel spectrograms (batch, 1, spec_size * freq_ratio, num_mel_bins)."""
    audio = config.audio_config
    out = _contrastive_text(config, batch, seq_len, gen, offset=config.text_config.pad_token_id + 1)
    frames = audio.spec_size * (audio.spec_size // audio.num_mel_bins)
    out["input_features"] = _image(gen, batch, 1, frames, audio.num_mel_bins)
    if audio.enable_fusion:
        out["is_longer"] = torch.zeros(batch, 1, dtype=torch.bool)
    return {**out, "return_loss": True} if labels else out


def speech2text(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """Whisper: mel features of 2 * max_source_positions frames and a fixed-length decoder prompt."""
    frames = 2 * config.max_source_positions
    tokens = min(WHISPER_DECODER_TOKENS, config.max_target_positions)
    target = _tokens(gen, batch, tokens, config.vocab_size)
    out: Inputs = {"input_features": _image(gen, batch, config.num_mel_bins, frames)}
    if labels:
        out["labels"] = target
    else:
        target[:, 0] = config.decoder_start_token_id
        out["decoder_input_ids"] = target
        # an explicit (all-ones) mask: without one, transformers probes position ids for packed sequences with
        # torch.diff, an op OpenVINO's PyTorch frontend cannot convert
        out["decoder_attention_mask"] = torch.ones_like(target)
    return out


def ctc_frames(config: Any, samples: int) -> int:
    """Output frames of the wav2vec2 feature encoder for a waveform of `samples` samples."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        samples = (samples - kernel) // stride + 1
    return samples


def speech_ctc(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """wav2vec2: raw waveforms of seq_len samples; CTC labels (no blank) a quarter as long as the output frames."""
    samples = _check_seq_len(seq_len, None, "wav2vec2")
    frames = ctc_frames(config, samples)
    # training masks spans of mask_time_length frames (SpecAugment), which fails on shorter outputs
    needed = max(4, config.mask_time_length if config.apply_spec_augment and config.mask_time_prob > 0 else 0)
    if frames < needed:
        raise ConfigError(f"seq_len {samples} samples gives {frames} wav2vec2 frames; at least {needed} are needed")
    out: Inputs = {"input_values": torch.randn(batch, samples, generator=gen)}
    if labels:
        out["labels"] = torch.randint(1, config.vocab_size, (batch, frames // 4), generator=gen)
    return out


def _llava_text(config: Any, batch: int, seq_len: int | None, n_image: int, labels: bool,
                gen: torch.Generator) -> Inputs:
    """Token ids with n_image image placeholders after a first token; labels ignore the placeholders."""
    text = config.text_config
    seq_len = _check_seq_len(seq_len, text.max_position_embeddings - n_image - 1, f"{config.model_type} text")
    ids = _tokens(gen, batch, seq_len + n_image, config.image_token_id)
    ids[:, 1:1 + n_image] = config.image_token_id
    out: Inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if labels:
        out["labels"] = ids.masked_fill(ids == config.image_token_id, -100)
    return out


def _patches_per_side(vision: Any) -> int:
    """Vision-tower patches along one side of an image."""
    return vision.image_size // vision.patch_size


def _check_default_strategy(config: Any) -> None:
    """The token counts below assume the CLS token is dropped, as in every released LLaVA."""
    if config.vision_feature_select_strategy != "default":
        raise ConfigError(f"{config.model_type}: only vision_feature_select_strategy='default' is supported")


def llava(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """LLaVA-1.5: one image per sample, (image_size / patch_size)**2 image tokens."""
    _check_default_strategy(config)
    vision = config.vision_config
    out = _llava_text(config, batch, seq_len, _patches_per_side(vision) ** 2, labels, gen)
    out["pixel_values"] = _image(gen, batch, vision.num_channels, vision.image_size, vision.image_size)
    return out


def llava_next_layout(config: Any) -> tuple[tuple[int, int], int, int]:
    """Image size (the largest grid pinpoint, so no padding), crops per image (tiles + base) and image tokens."""
    side = config.vision_config.image_size
    height, width = max(config.image_grid_pinpoints, key=lambda hw: (hw[0] * hw[1], hw[0]))
    rows, cols = height // side, width // side
    p = _patches_per_side(config.vision_config)
    tokens = p * p + (rows * p) * (cols * p) + rows * p  # base image + tiles + one newline per feature row
    return (height, width), rows * cols + 1, tokens


def llava_next(config: Any, batch: int, seq_len: int | None, labels: bool, gen: torch.Generator) -> Inputs:
    """LLaVA-NeXT: one image per sample at the largest pinpoint, as (batch, crops, 3, S, S) plus image_sizes."""
    _check_default_strategy(config)
    vision = config.vision_config
    (height, width), crops, n_image = llava_next_layout(config)
    out = _llava_text(config, batch, seq_len, n_image, labels, gen)
    out["pixel_values"] = _image(gen, batch, crops, vision.num_channels, vision.image_size, vision.image_size)
    out["image_sizes"] = torch.tensor([[height, width]] * batch, dtype=torch.long)
    return out


MAKERS: dict[str, Maker] = {"bert": text_classification, "t5": text2text, "llama": causal_lm, "qwen2": causal_lm,
                            "vit": image_classification, "detr": detection, "clip": vision_text,
                            "whisper": speech2text, "wav2vec2": speech_ctc, "clap": audio_text, "llava": llava,
                            "llava-next": llava_next, "xclip": video_text}


def maker_for(family: str, size: str) -> Maker:
    """The input maker of a family at a size (DETR picks its image size by size); unknown families get text."""
    if family == "detr" and size == "tiny":
        return tiny_detection
    return MAKERS.get(family, causal_lm)
