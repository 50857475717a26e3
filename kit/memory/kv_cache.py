"""The KV cache of text generation: its bytes as measured on a transformers cache object, and as estimated.

Estimate: every decoder layer keeps a key and a value of kv_heads x head_dim per token and sequence, so each new
token adds 2 x layers x kv_heads x head_dim x batch x dtype bytes (grouped-query attention: kv_heads < heads). An
encoder-decoder model's cross-attention cache holds the encoder's length and does not grow during decoding.
"""

from __future__ import annotations

from typing import Any

import torch

LAYER_KEYS = ("num_decoder_layers", "decoder_layers", "num_hidden_layers", "num_layers")
KV_HEAD_KEYS = ("decoder_attention_heads", "num_key_value_heads", "num_heads", "num_attention_heads")
HEAD_KEYS = ("decoder_attention_heads", "num_attention_heads", "num_heads")
WIDTH_KEYS = ("d_model", "hidden_size")


def _first(config: Any, keys: tuple[str, ...]) -> int:
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"{type(config).__name__} has none of {', '.join(keys)}")


def decoder_config(config: Any) -> Any:
    """The config of the part that decodes: a vision-language model's text config, else the config itself."""
    text = getattr(config, "text_config", None)
    return text if text is not None else config


def kv_bytes_per_token(config: Any, batch_size: int, dtype: torch.dtype) -> int:
    """Bytes one new token adds to the self-attention KV cache of `batch_size` sequences in `dtype`."""
    config = decoder_config(config)
    layers, kv_heads = _first(config, LAYER_KEYS), _first(config, KV_HEAD_KEYS)
    head_dim = getattr(config, "head_dim", None) or getattr(config, "d_kv", None)
    if not head_dim:
        head_dim = _first(config, WIDTH_KEYS) // _first(config, HEAD_KEYS)
    return 2 * layers * kv_heads * int(head_dim) * batch_size * torch.empty((), dtype=dtype).element_size()


def _tensors(obj: Any, depth: int = 0) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > 4 or obj is None or isinstance(obj, str | int | float | bool):
        return []
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in _tensors(item, depth + 1)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item, depth + 1)]
    if hasattr(obj, "__dict__"):
        return [t for item in vars(obj).values() for t in _tensors(item, depth + 1)]
    return []


def cache_bytes(cache: Any) -> int:
    """Bytes of the key and value tensors a transformers cache holds (each storage once); 0 for no cache."""
    layers = []
    for part in (cache, getattr(cache, "self_attention_cache", None), getattr(cache, "cross_attention_cache", None)):
        layers += list(getattr(part, "layers", None) or [])
    seen, total = set(), 0
    for layer in layers:
        for name in ("keys", "values"):
            for tensor in _tensors(getattr(layer, name, None)):
                key = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
                if key not in seen:
                    seen.add(key)
                    total += tensor.untyped_storage().nbytes()
    return total


def kv_facts(after_prompt: int, after_run: int, new_tokens: int, config: Any, batch_size: int,
             dtype: torch.dtype) -> dict[str, Any]:
    """What a generation record stores of its KV cache: the bytes measured after the prompt and after the run, the
    growth per new token between them, and the estimate of that growth."""
    return {"kv_cache_bytes_after_prompt": after_prompt, "kv_cache_bytes": after_run,
            "kv_growth_bytes_per_token": (after_run - after_prompt) / (new_tokens - 1),
            "kv_estimate_bytes_per_token": kv_bytes_per_token(config, batch_size, dtype)}
