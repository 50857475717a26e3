"""Text generation on OpenVINO: a decoder-only model exported with its KV cache as explicit inputs and outputs, and a
greedy token loop around one infer request.

- export: `DecoderWithPast` puts the past keys and values (one input pair per layer, [batch, kv heads, past, head
  size]) into a transformers DynamicCache, runs the model on the new tokens and returns the last position's logits
  (as `generate` computes them) and the present keys and values. ``openvino.convert_model`` traces it with a non-empty
  past; batch, new tokens and past length stay dynamic, so one model serves the prefill (the prompt, an empty past)
  and every decode step (one token, the past so far). No optimum-intel or openvino-genai: neither installs beside the
  transformers the kit uses, and neither is needed for a stateless export.
- the loop: prefill, then one infer per new token (greedy argmax of the logits, the token fed back with the grown
  mask, its position and the presents as the next past), stamping each token on the timer as the PyTorch path does.
  The KV cache is the presents' bytes.
Encoder-decoder, speech and vision-language models are not exported (an encoder and a decoder with cross-attention
past would be needed): they are skipped with the reason.
"""

from __future__ import annotations

import inspect
import time
import warnings
from typing import Any

import numpy as np
import torch

from kit.errors import ConversionError, UnsupportedConfiguration
from kit.memory.kv_cache import decoder_config, kv_bytes_per_token

FIXED = ("input_ids", "attention_mask", "position_ids")


def check_exportable(loaded: Any) -> None:
    """UnsupportedConfiguration unless the model is a decoder-only text model."""
    if getattr(loaded.config, "is_encoder_decoder", False) or loaded.modality != "text":
        raise UnsupportedConfiguration(
            f"generation outside PyTorch (OpenVINO, the browser) exports decoder-only text models; {loaded.name} is a "
            f"{loaded.modality} model ({type(loaded.model).__name__}), whose encoder or vision tower the export "
            "does not cover")


def kv_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head size) of a decoder config."""
    config = decoder_config(config)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


class DecoderWithPast(torch.nn.Module):
    """(input_ids, attention_mask, position_ids, *past) -> (last logits, *presents): the KV cache as tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits of the last position and every layer's keys and values after these tokens."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for index, layer in enumerate(cache.layers):
            layer.keys, layer.values = past[2 * index], past[2 * index + 1]
            layer.device, layer.is_initialized = past[2 * index].device, True
        # transformers names the cache argument `cache` (older releases: `past_key_values`)
        name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, logits_to_keep=1, **{name: cache})
        present = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        return (out.logits, *[t for layer in present.layers for t in (layer.keys, layer.values)])


def export_decoder(model: torch.nn.Module) -> Any:
    """The OpenVINO model of DecoderWithPast, with named inputs and dynamic batch, token and past dimensions."""
    import openvino as ov

    layers, kv_heads, head_dim = kv_shape(model.config)
    batch, new, past_len = 2, 4, 3
    example = (torch.randint(0, 8, (batch, new)), torch.ones(batch, past_len + new, dtype=torch.long),
               torch.arange(past_len, past_len + new).expand(batch, new),
               *[torch.zeros(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)])
    shapes = [ov.PartialShape([-1, -1])] * 3 + [ov.PartialShape([-1, kv_heads, -1, head_dim])] * (2 * layers)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python conditions it fixes at the example's shapes
            ov_model = ov.convert_model(DecoderWithPast(model.eval()), example_input=example, input=shapes)
    except Exception as exc:  # the converter raises its own types, with the failing ops
        raise ConversionError(f"OpenVINO could not convert the decoder with its KV cache: "
                              f"{str(exc).strip().splitlines()[-1][:300]}") from exc
    names = [*FIXED, *[f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]]
    for port, name in zip(ov_model.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    return ov_model


class TokenLoop:
    """Greedy generation of a fixed number of tokens through one infer request of the exported decoder."""

    def __init__(self, compiled: Any, config: Any) -> None:
        self.request = compiled.create_infer_request()
        self.layers, self.kv_heads, self.head_dim = kv_shape(config)
        self.presents_bytes: list[int] = []  # after the prompt, after the run: of the last call

    def generate(self, input_ids: np.ndarray, new_tokens: int, timer: Any) -> np.ndarray:
        """The new tokens [batch, new_tokens]; the timer gets the prompt, the prefill's seconds and each token."""
        batch, length = input_ids.shape
        past = [np.zeros((batch, self.kv_heads, 0, self.head_dim), np.float32) for _ in range(2 * self.layers)]
        tokens, mask = input_ids, np.ones((batch, length), np.int64)
        positions = np.broadcast_to(np.arange(length, dtype=np.int64), (batch, length))
        timer.put(input_ids)
        generated = []
        for step in range(new_tokens):
            start = time.perf_counter()
            outputs = self.request.infer([tokens, mask, positions, *past]).to_tuple()
            if step == 0:
                timer.prefill_took(time.perf_counter() - start)
            logits, past = outputs[0], list(outputs[1:])
            token = logits[:, -1, :].argmax(-1).astype(np.int64)[:, None]
            timer.put(token)
            generated.append(token)
            if step == 0:
                self.presents_bytes = [sum(p.nbytes for p in past)]
            done = mask.shape[1]
            tokens, mask = token, np.ones((batch, done + 1), np.int64)
            positions = np.full((batch, 1), done, np.int64)
        self.presents_bytes.append(sum(p.nbytes for p in past))
        timer.end()
        return np.concatenate(generated, axis=1)


def prepare_generation(backend: Any, loaded: Any, inputs: dict[str, Any], precision: str,
                       new_tokens: int) -> tuple[TokenLoop, np.ndarray, dict[str, Any]]:
    """Export and compile the decoder for the backend's device and precision: the token loop, the prompt, facts."""
    from kit.backends.openvino_backend import compile_model, compiled_facts

    check_exportable(loaded)
    if "input_ids" not in inputs:
        raise UnsupportedConfiguration(f"{loaded.name}: no input_ids to prompt with")
    t0 = time.perf_counter()
    ov_model = export_decoder(loaded.model)
    facts: dict[str, Any] = {"convert_s": time.perf_counter() - t0, "export": "decoder with explicit past (f32 KV)"}
    t0 = time.perf_counter()
    compiled = compile_model(ov_model, backend.ov_device, precision, backend.threads())
    facts["compile_s"] = time.perf_counter() - t0
    facts.update(compiled_facts(compiled, backend.ov_device, precision))
    return TokenLoop(compiled, loaded.config), inputs["input_ids"].numpy().astype(np.int64), facts


def loop_kv_facts(loop: TokenLoop, config: Any, batch_size: int, new_tokens: int) -> dict[str, Any]:
    """The presents' bytes after the prompt and after the run, their growth per token, and the estimate."""
    after_prompt, after_run = loop.presents_bytes
    return {"kv_cache_bytes_after_prompt": after_prompt, "kv_cache_bytes": after_run,
            "kv_growth_bytes_per_token": (after_run - after_prompt) / (new_tokens - 1),
            "kv_estimate_bytes_per_token": kv_bytes_per_token(config, batch_size, torch.float32)}
