"""The architectures transformers knows: every model type with an auto model class, its classes and its modality.

Only transformers' own auto mappings are read (model type -> class name inside the installed package); nothing is
looked up on the hub and no repository code is involved, so every class built here is transformers' own.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from kit.errors import ConfigError

# auto mapping (without MODEL_FOR_ and _MAPPING_NAMES) -> modality of its inputs; the first match in this order wins,
# so a type listed both as a speech seq2seq model and a text model counts as audio
MODALITY_OF_MAPPING: tuple[tuple[str, str], ...] = (
    ("SPEECH_SEQ_2_SEQ", "audio"), ("CTC", "audio"), ("AUDIO_CLASSIFICATION", "audio"),
    ("AUDIO_FRAME_CLASSIFICATION", "audio"), ("AUDIO_XVECTOR", "audio"), ("RNNT", "audio"), ("TDT", "audio"),
    ("TEXT_TO_SPECTROGRAM", "text-to-audio"), ("TEXT_TO_WAVEFORM", "text-to-audio"),
    ("VIDEO_CLASSIFICATION", "video"),
    ("IMAGE_TEXT_TO_TEXT", "vision-text"), ("VISUAL_QUESTION_ANSWERING", "vision-text"),
    ("MULTIMODAL_LM", "vision-text"), ("ZERO_SHOT_IMAGE_CLASSIFICATION", "vision-text"),
    ("ZERO_SHOT_OBJECT_DETECTION", "vision-text"), ("DOCUMENT_QUESTION_ANSWERING", "vision-text"),
    ("IMAGE_CLASSIFICATION", "vision"), ("OBJECT_DETECTION", "vision"), ("IMAGE_SEGMENTATION", "vision"),
    ("SEMANTIC_SEGMENTATION", "vision"), ("INSTANCE_SEGMENTATION", "vision"), ("UNIVERSAL_SEGMENTATION", "vision"),
    ("DEPTH_ESTIMATION", "vision"), ("BACKBONE", "vision"), ("IMAGE", "vision"), ("MASKED_IMAGE_MODELING", "vision"),
    ("IMAGE_TO_IMAGE", "vision"), ("KEYPOINT_DETECTION", "vision"), ("KEYPOINT_MATCHING", "vision"),
    ("IMAGE_MATTING", "vision"), ("MASK_GENERATION", "vision"), ("POSE_ESTIMATION", "vision"),
    ("NORMAL_ESTIMATION", "vision"), ("POINTMAP_ESTIMATION", "vision"), ("CAUSAL_IMAGE_MODELING", "vision"),
    ("TEXT_RECOGNITION", "vision"), ("TABLE_RECOGNITION", "vision"),
    ("TIME_SERIES_CLASSIFICATION", "time-series"), ("TIME_SERIES_PREDICTION", "time-series"),
    ("TIME_SERIES_REGRESSION", "time-series"),
)
MODALITIES: tuple[str, ...] = ("text", "vision", "audio", "vision-text", "video", "text-to-audio", "time-series")
BASE_MAPPING = "MODEL_MAPPING_NAMES"  # AutoModel: the bare model, preferred as it needs no labels nor head inputs


@dataclass(frozen=True)
class Architecture:
    """One model type: its config class, the auto model class built for it, and the modality of its inputs."""

    model_type: str
    config_class: str
    model_class: str
    auto_mapping: str
    modality: str
    mappings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (sent to child processes)."""
        return asdict(self)


def _auto_mappings() -> dict[str, dict[str, Any]]:
    """transformers' auto model mappings by name: model type -> class name (or a tuple of names)."""
    from transformers.models.auto import modeling_auto

    return {name: getattr(modeling_auto, name) for name in dir(modeling_auto)
            if name.startswith("MODEL_") and name.endswith("_MAPPING_NAMES")}


def _short(mapping: str) -> str:
    """MODEL_FOR_CAUSAL_LM_MAPPING_NAMES -> CAUSAL_LM; MODEL_MAPPING_NAMES -> BASE."""
    return mapping.removeprefix("MODEL_FOR_").removeprefix("MODEL_").removesuffix("_MAPPING_NAMES") or "BASE"


def modality_of(mappings: list[str]) -> str:
    """The modality of a model type from the auto mappings that list it (text when none says otherwise)."""
    short = {_short(m) for m in mappings}
    return next((modality for name, modality in MODALITY_OF_MAPPING if name in short), "text")


def _class_name(value: Any) -> str:
    """A mapping's class name (the first where it lists several, as funnel does)."""
    return value[0] if isinstance(value, list | tuple) else value


def all_architectures() -> list[Architecture]:
    """Every model type with an auto model class, sorted by type: AutoModel's class where it has one, else the
    class of the first other mapping (alphabetically) that lists it."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    mappings = _auto_mappings()
    by_type: dict[str, list[str]] = {}
    for name in sorted(mappings):
        for model_type in mappings[name]:
            by_type.setdefault(model_type, []).append(name)
    out = []
    for model_type, names in sorted(by_type.items()):
        if model_type not in CONFIG_MAPPING_NAMES:
            continue
        chosen = BASE_MAPPING if BASE_MAPPING in names else names[0]
        out.append(Architecture(model_type, CONFIG_MAPPING_NAMES[model_type],
                                _class_name(mappings[chosen][model_type]), _short(chosen), modality_of(names),
                                tuple(_short(n) for n in names)))
    return out


def select_architectures(*, modalities: list[str] | None = None, only: list[str] | None = None,
                         sample: int | None = None, seed: int = 0) -> list[Architecture]:
    """The architectures to attempt: those named in `only` (all otherwise), of the given modalities, then a seeded
    random sample of `sample` of them (kept in type order)."""
    known = all_architectures()
    by_type = {a.model_type: a for a in known}
    unknown = sorted(set(only or []) - set(by_type))
    if unknown:
        raise ConfigError(f"unknown model type(s) {', '.join(unknown)} for --only; known types are those with an auto "
                          f"model class, e.g. {', '.join(list(by_type)[:5])}")
    bad = sorted(set(modalities or []) - set(MODALITIES))
    if bad:
        raise ConfigError(f"unknown modality {', '.join(bad)}; known: {', '.join(MODALITIES)}")
    if sample is not None and sample < 1:
        raise ConfigError(f"sample must be a positive number of architectures, got {sample}")
    chosen = [by_type[t] for t in only] if only else known
    chosen = [a for a in chosen if not modalities or a.modality in modalities]
    if sample is not None and sample < len(chosen):
        picked = set(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [a for i, a in enumerate(chosen) if i in picked]
    return chosen
