"""A config at a tiny size: the size fields it has (layers, width, heads, kv heads, feed-forward, experts, image,
patch and audio sizes, vocabulary, convolution widths), shrunk in it and in its nested sub-configs.

Values only shrink, never grow. Lists that hold one entry per layer (layer_types...) are cut to the new layer count,
special token ids beyond the new vocabulary are moved inside it (distinct ids, from the top), and stage lists of
staged nets (depths, hidden_sizes, per-stage heads) keep their number of stages.

Fields derived from others are kept in step, so that the tiny config agrees with itself: rotary sizes and multimodal
RoPE sections (the modeling code's fallback sections too) follow the head size, convolution groups and dimensions
equal to a width follow that width (a neck's follow its backbone's), a staged net's channel lists scale together and a
detector's encoder reads its backbone's shrunk channels, Mamba-2 head sizes and groups fit the expanded width, layer
indices, offsets and periods stay within the layers (a plain backbone keeps a layer per output its neck reads),
windows fit the last stage's grid, and a head size or forecast horizon the config leaves unset (None) is made
explicit.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import math
import re
from typing import Any

TINY_WIDTH = 32
TINY_FFN = 64
TINY_HEAD_DIM = 8
TINY_VOCAB = 1000
TINY_POSITIONS = 512
TINY_IMAGE = 64
TINY_PATCH = 8
TINY_HORIZON = 8

LAYER_FIELDS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
                "num_encoder_layers", "num_decoder_layers", "num_text_layers", "num_vision_layers",
                "num_cross_layers", "num_self_layers", "depth", "num_stacks")
WIDTH_FIELDS = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "projection_dim", "text_embed_dim",
                "vision_embed_dim", "word_embed_proj_dim", "embedding_size", "d_embed", "out_hidden_size",
                "text_hidden_size", "audio_hidden_size", "codebook_dim", "condition_dim")
HEAD_FIELDS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
               "decoder_attention_heads")
KV_HEAD_FIELDS = ("num_key_value_heads", "num_kv_heads", "multi_query_group_num", "n_head_kv")
HEAD_DIM_FIELDS = ("head_dim", "d_kv", "d_head", "kv_channels", "attention_head_dim", "qk_rope_head_dim",
                   "qk_nope_head_dim", "v_head_dim")
FFN_FIELDS = ("intermediate_size", "d_ff", "encoder_ffn_dim", "decoder_ffn_dim", "ffn_dim", "n_inner", "hidden_dim",
              "moe_intermediate_size", "shared_expert_intermediate_size", "decoder_intermediate_size")
EXPERT_FIELDS = {"num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "moe_num_experts": 4,
                 "num_experts_per_tok": 2, "moe_topk": 2, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
                 "num_experts_per_token": 2, "moe_k": 2, "top_k_experts": 2}
IMAGE_FIELDS = ("image_size", "img_size", "crop_size")
PATCH_FIELDS = ("patch_size",)
POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len")
AUDIO_FIELDS = {"max_source_positions": 16}
CONV_WIDTH_FIELDS = ("conv_dim", "hidden_sizes", "embed_dims", "dims", "channels")
STAGE_DEPTH_FIELDS = ("depths", "num_layers_per_stage")
STAGE_HEAD_FIELDS = ("num_heads", "num_attention_heads")
TOKEN_SUFFIXES = ("_token_id", "_token_index")
STAGE_LISTS = (*STAGE_DEPTH_FIELDS, *CONV_WIDTH_FIELDS)  # one entry per stage, never per layer
ROTARY_DIM_FIELDS = ("rotary_dim",)
MAMBA_EXPAND_FIELDS = ("mamba_expand", "expand")
MAMBA_HEAD_FIELDS = ("mamba_n_heads", "n_mamba_heads", "mamba_num_heads", "num_heads")
MAMBA_HEAD_DIM_FIELDS = ("mamba_d_head", "mamba_head_dim", "mamba_headdim", "head_dim")
MAMBA_GROUP_FIELDS = ("mamba_n_groups", "n_groups")
OTHER_HEAD_SUFFIX = "_heads"  # head counts of other blocks (mamba_n_heads, ...): as many as the attention's
DIMENSION_WORDS = ("dim", "hidden")  # a field named so, equal to a width before shrinking, is that width
GROUP_SUFFIX = "groups"  # convolution groups (upsample_groups, num_conv_pos_embedding_groups...): divide a width
# the modeling code's own multimodal RoPE sections where the config leaves them out
# (rope_parameters.get("mrope_section", [16, 24, 24]) in qwen2_vl, glm4v...)
CODE_MROPE_DEFAULT = re.compile(r"""rope_(?:parameters|scaling)\.get\(\s*["']mrope_section["']\s*,\s*(\[[\d,\s]+\])""")


def _shrink_int(value: Any, limit: int) -> Any:
    """min(value, limit) for a positive int; anything else unchanged."""
    return min(value, limit) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else value


def _heads(value: Any) -> Any:
    """4, 2 or 1 heads (the largest not above the current count), so they divide the tiny width."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return value
    return 4 if value >= 4 else 2 if value >= 2 else 1


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                           for v in value)


def _scaled_width(value: int, scale: float) -> int:
    return max(8, int(value / scale) // 8 * 8)


def _shrink_list_widths(values: list) -> list:
    """A stage list of widths scaled so its first entry is 16 (ratios kept, at least 8 each)."""
    if not _is_int_list(values):
        return values
    scale = max(values[0] / 16, 1)
    return [_scaled_width(v, scale) for v in values]


def _scale_channel_lists(config: dict, old: dict) -> None:
    """Other channel lists of a staged net (stage_in_channels, stage_out_channels, stem_channels...) scaled as its
    stage widths were, the input channels left as they are; and channel lists that name a sub-config's channels
    (encoder_in_channels of a detector) mapped as the sub-config mapped them."""
    key = next((f for f in CONV_WIDTH_FIELDS if _is_int_list(old.get(f)) and config.get(f) != old[f]), None)
    if key:
        scale = max(old[key][0] / 16, 1)
        inputs = old.get("num_channels", 3)
        for name, value in config.items():
            if "channels" in name and name not in CONV_WIDTH_FIELDS and _is_int_list(value) and value == old[name]:
                config[name] = [v if i == 0 and v == inputs else _scaled_width(v, scale) for i, v in enumerate(value)]
    mapped: dict[int, int] = {}
    for name, sub in old.items():
        if _is_sub_config(sub):
            for field, value in sub.items():
                if "channels" in field and _is_int_list(value) and _is_int_list(config[name].get(field)):
                    mapped.update(zip(value, config[name][field], strict=False))
    for name, value in config.items():
        if (name.endswith("in_channels") and _is_int_list(value) and value == old.get(name)
                and all(v in mapped for v in value)):
            config[name] = [mapped[v] for v in value]


def _is_sub_config(value: Any) -> bool:
    return isinstance(value, dict) and "model_type" in value


def _old_layers(config: dict) -> set[int]:
    return {v for f in LAYER_FIELDS if isinstance(v := config.get(f), int) and not isinstance(v, bool) and v > 2}


def _stage_count(config: dict) -> int | None:
    """The number of stages of a staged net (its depths list), whose layer-count field must keep that number."""
    depths = next((config[f] for f in STAGE_DEPTH_FIELDS if isinstance(config.get(f), list)), None)
    return len(depths) if depths else None


def _cut_per_layer(value: list, layers: int) -> list:
    """A per-layer list cut to `layers` entries, keeping every distinct kind it held (a hybrid's attention layer)."""
    cut = list(value[:layers])
    kinds = dict.fromkeys(v for v in value if isinstance(v, str | int))
    missing = [v for v in kinds if v not in cut]
    for i, kind in enumerate(missing[:layers]):
        cut[layers - 1 - i] = kind
    return cut


def _cut_per_stage_layers(config: dict, old: dict) -> None:
    """Lists of per-layer lists, one per stage (dilations...), cut to the shrunk depth of each stage."""
    depths = next((config[f] for f in STAGE_DEPTH_FIELDS if isinstance(config.get(f), list)), None)
    old_depths = next((old[f] for f in STAGE_DEPTH_FIELDS if isinstance(old.get(f), list)), None)
    if not depths or old_depths is None or len(depths) != len(old_depths):
        return
    for key, value in config.items():
        if (key not in STAGE_LISTS and isinstance(value, list) and len(value) == len(depths)
                and all(isinstance(v, list) and len(v) == d for v, d in zip(value, old_depths, strict=True))):
            config[key] = [v[:d] for v, d in zip(value, depths, strict=True)]


def _wanted_outputs(config: dict) -> int:
    """How many layers a plain (unstaged) backbone's outputs name (out_indices), which it must keep."""
    indices = config.get("out_indices")
    if _stage_count(config) or not isinstance(indices, list) or not all(isinstance(i, int) for i in indices):
        return 0
    return len(indices)


def _cut_layer_references(config: dict, layers: int) -> None:
    """Backbone outputs that name layers beyond the new count: a plain backbone's move to its last layers (as many as
    it had), a staged net's are dropped; layer offsets and periods, and per-layer settings, are cut likewise."""
    indices = config.get("out_indices")
    if isinstance(indices, list) and any(isinstance(i, int) and i > layers for i in indices):
        if _wanted_outputs(config) and len(indices) <= layers:
            config["out_indices"] = list(range(layers - len(indices) + 1, layers + 1))
            if config.get("out_features"):
                config["out_features"] = [f"stage{i}" for i in config["out_indices"]]
        else:
            config["out_indices"], config["out_features"] = None, None
    stages = [int(f[5:]) for f in config.get("out_features") or [] if str(f).startswith("stage") and f[5:].isdigit()]
    if any(n > layers for n in stages):
        config["out_indices"], config["out_features"] = None, None
    for key, value in config.items():  # layer indices (attn_layer_indices...): those left, else the last layer
        if ("layer" in key and "ind" in key and isinstance(value, list) and value
                and all(isinstance(i, int) for i in value) and max(value) >= layers):
            config[key] = [i for i in value if i < layers] or [layers - 1]
    for key, value in list(config.items()):  # a hybrid's attention or expert layers every period from an offset
        if "layer" in key and isinstance(value, int) and not isinstance(value, bool):
            if key.endswith("_offset") and value >= layers:
                config[key] = layers - 1
            elif key.endswith("_period") and value > layers:
                config[key] = layers
    per_layer = config.get("per_layer_config")
    if isinstance(per_layer, dict):
        config["per_layer_config"] = {k: v for k, v in per_layer.items() if str(k).isdigit() and int(k) < layers}


def _shrink_tokens(config: dict, vocab: int) -> None:
    """Special token ids beyond the vocabulary get distinct ids from its top."""
    free = vocab - 1
    taken = {v for k, v in config.items() if k.endswith(TOKEN_SUFFIXES) and isinstance(v, int) and 0 <= v < vocab}
    for key in sorted(config):
        value = config[key]
        if key.endswith(TOKEN_SUFFIXES) and isinstance(value, int) and not isinstance(value, bool) and value >= vocab:
            while free in taken:
                free -= 1
            config[key], free = free, free - 1
        elif key.endswith(TOKEN_SUFFIXES) and isinstance(value, list):
            config[key] = [v if not isinstance(v, int) or v < vocab else vocab - 1 for v in value]


def _head_dim(config: dict) -> int:
    """The attention head size of a shrunk config dict: its head_dim, else its width over its heads."""
    head_dim = config.get("head_dim")
    if isinstance(head_dim, int) and head_dim > 0:
        return head_dim
    width = next((v for f in WIDTH_FIELDS if isinstance(v := config.get(f), int) and v > 0), None)
    heads = next((v for f in HEAD_FIELDS if isinstance(v := config.get(f), int) and v > 0), None)
    return width // heads if width and heads else TINY_HEAD_DIM


def _shrink_rope(config: dict, head_dim: int) -> None:
    """A multimodal RoPE's sections (summing to half the rotated size: the head size times the partial rotary
    factor) rescaled to the tiny head size."""
    for key in ("rope_parameters", "rope_scaling"):
        rope = config.get(key)
        section = rope.get("mrope_section") if isinstance(rope, dict) else None
        if isinstance(section, list) and section and all(isinstance(s, int) for s in section):
            factor = rope.get("partial_rotary_factor") or config.get("partial_rotary_factor") or 1.0
            half, total = int(head_dim * factor) // 2, sum(section)
            scaled = [max(1 if half >= len(section) else 0, s * half // total) for s in section]
            scaled[0] += half - sum(scaled)
            rope["mrope_section"] = scaled


def _fit_in_step(config: dict, old: dict, head_dim: int) -> None:
    """Fields derived from others kept consistent with the shrunk sizes: a rotary size within the head size, a head
    size the config leaves unset (None) made explicit, a forecast horizon where a forecaster leaves it unset,
    convolution groups that divide the shrunk width (a depthwise
    group count equal to a width follows that width), and other dimensions equal to a width follow that width."""
    _apply(config, ROTARY_DIM_FIELDS, lambda v: _shrink_int(v, head_dim))
    if "head_dim" in config and config["head_dim"] is None:
        config["head_dim"] = head_dim
    _fit_window(config)
    if "prediction_length" in config and config["prediction_length"] is None:  # forecasters that require one
        config["prediction_length"] = TINY_HORIZON
    widths = {old[f]: config[f] for f in WIDTH_FIELDS if isinstance(old.get(f), int) and isinstance(config.get(f), int)}
    for name, sub in old.items():  # then the widths of its sub-configs (a neck reading its backbone's width)
        for f in WIDTH_FIELDS if _is_sub_config(sub) else ():
            if isinstance(sub.get(f), int) and isinstance(config[name].get(f), int):
                widths.setdefault(sub[f], config[name][f])
    width = next((v for f in WIDTH_FIELDS if isinstance(v := config.get(f), int) and v > 0), TINY_WIDTH)
    stage_widths = [v for f in CONV_WIDTH_FIELDS if isinstance(config.get(f), list) for v in config[f]
                    if isinstance(v, int) and v > 0]
    width = min([width, *stage_widths])
    for key, value in config.items():
        if "channels" in key and _is_int_list(value) and value == old.get(key) and all(v in widths for v in value):
            config[key] = [widths[v] for v in value]  # channels that a width fed (decoder_in_channels)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 1 or old.get(key) != value:
            continue
        if key.endswith(GROUP_SUFFIX):
            config[key] = widths.get(value) or (math.gcd(value, width) if value > width else value)
        elif any(word in key for word in DIMENSION_WORDS) and value in widths:
            config[key] = widths[value]


def _fit_mamba(config: dict) -> None:
    """A Mamba-2 mixer's sizes in step: head size = expand x width / heads, and groups that divide the heads."""
    expand = next((v for f in MAMBA_EXPAND_FIELDS if isinstance(v := config.get(f), int) and v > 0), None)
    heads = next((v for f in MAMBA_HEAD_FIELDS if isinstance(v := config.get(f), int) and v > 0), None)
    width = next((v for f in WIDTH_FIELDS if isinstance(v := config.get(f), int) and v > 0), None)
    if not (expand and heads and width):
        return
    if isinstance(config.get("mamba_d_ssm"), int):  # the mixer's inner width, when not expand x width
        config["mamba_d_ssm"] = expand * width
    key = next((f for f in MAMBA_HEAD_DIM_FIELDS if isinstance(config.get(f), int)), None)
    if key:
        config[key] = max(expand * width // heads, 1)
    _apply(config, MAMBA_GROUP_FIELDS, lambda v: math.gcd(v, heads) if isinstance(v, int) and v > 0 else v)


def _fit_window(config: dict) -> None:
    """A windowed vision net's attention window (counted in patches) no larger than its last stage's grid of patches
    (the tiny image shrinks that grid, and a window larger than the grid is cut at run time while its position table
    is not)."""
    window, image = config.get("window_size"), config.get("image_size")
    image = image[0] if isinstance(image, list) and image else image
    patch = config.get("patch_size")
    patch = patch[0] if isinstance(patch, list) and patch else patch
    if "spatial_merge_size" in config:  # a Qwen2.5-VL-style tower counts its window in pixels, merged patches apart
        return
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (window, image, patch)):
        return
    stages = _stage_count(config) or 1
    grid = max(image // patch // 2 ** (stages - 1), 1)
    if window > grid:
        config["window_size"] = grid


def _code_mrope_section(config: Any) -> list[int] | None:
    """The multimodal RoPE sections the config's modeling module falls back to when the config has none."""
    module = type(config).__module__.replace(".configuration_", ".modeling_")
    try:
        source = inspect.getsource(importlib.import_module(module))
    except (ImportError, OSError, TypeError):
        return None
    match = CODE_MROPE_DEFAULT.search(source)
    return ast.literal_eval(match.group(1)) if match else None


def _with_code_defaults(config: Any) -> None:
    """The config's text configs (those with a vocabulary) given the RoPE sections their modeling code would fall
    back to, so that shrinking rescales them with the head size."""
    from transformers import PretrainedConfig

    rope = getattr(config, "rope_parameters", None)
    if getattr(config, "vocab_size", None) and isinstance(rope, dict) and "mrope_section" not in rope:
        section = _code_mrope_section(config)
        if section:
            rope["mrope_section"] = section
    for value in vars(config).values():
        if isinstance(value, PretrainedConfig):
            _with_code_defaults(value)


def _apply(config: dict, keys: Any, change: Any) -> None:
    """Replace the value of each key the config has by change(value)."""
    for key in keys:
        if key in config:
            config[key] = change(config[key])


def _scalar(change: Any) -> Any:
    """change for single values; lists are left alone (per-stage lists have their own rules)."""
    return lambda value: value if isinstance(value, list) else change(value)


def shrink_dict(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict (PretrainedConfig.to_dict()) with its size fields, and those of its sub-configs, shrunk."""
    out = {k: shrink_dict(v) if _is_sub_config(v) else v for k, v in config.items()}
    old_layers, stages = _old_layers(out), _stage_count(out)
    _apply(out, LAYER_FIELDS, lambda v: v if v == stages else _shrink_int(v, 2))
    _apply(out, WIDTH_FIELDS, lambda v: _shrink_int(v, TINY_WIDTH))
    _apply(out, HEAD_FIELDS, _scalar(_heads))
    old_heads, heads = (next((c[f] for f in HEAD_FIELDS if isinstance(c.get(f), int)), None) for c in (config, out))
    # as many kv heads as heads where the config had as many (some architectures require it), else at most 2
    _apply(out, KV_HEAD_FIELDS, lambda v: heads if heads and v == old_heads else _shrink_int(v, 2))
    _apply(out, HEAD_DIM_FIELDS, lambda v: _shrink_int(v, TINY_HEAD_DIM))
    _apply(out, FFN_FIELDS, lambda v: _shrink_int(v, TINY_FFN))
    for key, limit in {**EXPERT_FIELDS, **AUDIO_FIELDS}.items():
        _apply(out, (key,), lambda v, limit=limit: _shrink_int(v, limit))
    _apply(out, POSITION_FIELDS, lambda v: _shrink_int(v, TINY_POSITIONS))
    _apply(out, IMAGE_FIELDS, lambda v: [_shrink_int(x, TINY_IMAGE) for x in v] if isinstance(v, list)
           else _shrink_int(v, TINY_IMAGE))
    _apply(out, PATCH_FIELDS, lambda v: _shrink_int(v, TINY_PATCH))
    _apply(out, CONV_WIDTH_FIELDS, lambda v: _shrink_list_widths(v) if isinstance(v, list) else v)
    _scale_channel_lists(out, config)
    _apply(out, STAGE_DEPTH_FIELDS, lambda v: [min(d, 1) if isinstance(d, int) else d for d in v]
           if isinstance(v, list) else v)
    _apply(out, STAGE_HEAD_FIELDS, lambda v: [_heads(min(h, 2)) if isinstance(h, int) else h for h in v]
           if isinstance(v, list) else v)
    layers = min((v for f in LAYER_FIELDS if isinstance(v := out.get(f), int) and not isinstance(v, bool)), default=2)
    if layers < _wanted_outputs(out) <= min(old_layers, default=0):  # a backbone keeps a layer per output it names
        layers = _wanted_outputs(out)
        for field in LAYER_FIELDS:
            if isinstance(out.get(field), int) and out[field] < layers <= config[field]:
                out[field] = layers
    _cut_per_stage_layers(out, config)
    for key, value in out.items():
        if isinstance(value, list) and len(value) in old_layers and key not in STAGE_LISTS:
            out[key] = _cut_per_layer(value, layers)
    if old_layers:
        _cut_layer_references(out, layers)
    _apply(out, [k for k in out if k.endswith("vocab_size") and k != "type_vocab_size"],
           lambda v: _shrink_int(v, TINY_VOCAB))
    vocab = out.get("vocab_size")
    _shrink_tokens(out, vocab if isinstance(vocab, int) and vocab > 0 else TINY_VOCAB)
    handled = {*HEAD_FIELDS, *KV_HEAD_FIELDS}
    _apply(out, [k for k in out if k.endswith(OTHER_HEAD_SUFFIX) and k not in handled], _scalar(_heads))
    _fit_mamba(out)
    head_dim = _head_dim(out)
    _fit_in_step(out, config, head_dim)
    _shrink_rope(out, head_dim)
    return out


def shrink_config(config: Any) -> Any:
    """A new config of the same class at a tiny size (see the module docstring)."""
    config = copy.deepcopy(config)
    _with_code_defaults(config)
    return type(config).from_dict(shrink_dict(config.to_dict()))
