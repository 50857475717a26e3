"""Text generation on OpenVINO: a decoder-only model exported with its KV cache as explicit inputs and outputs, run
by openvino-genai's LLMPipeline (kit.backends.openvino_genai), or by a greedy token loop around one infer request
where openvino-genai is not installed and for encoder-decoders.

- export: `DecoderWithPast` puts the past keys and values (one input pair per layer, [batch, kv heads, past, head
  size]) into a transformers DynamicCache, runs the model on the new tokens and returns the last position's logits
  (as `generate` computes them) and the present keys and values. ``openvino.convert_model`` traces it with a non-empty
  past; batch, new tokens and past length stay dynamic, so one model serves the prefill (the prompt, an empty past)
  and every decode step (one token, the past so far). The export is the kit's own: optimum-intel pins a transformers
  older than the kit's, while openvino-genai (which needs no transformers) runs the same export made stateful.
- the driver: the genai pipeline for decoder-only models (kit.backends.openvino_genai), the faster of the two by
  measurement (benchmarks/generation_drivers.py, figures in docs/generation.md); the record's
  extra["generation_driver"] says which ran, and extra["genai_unused"] why not the pipeline.
- the loop: prefill, then one infer per new token (greedy argmax of the logits, the token fed back with the grown
  mask, its position and the presents as the next past), stamping each token on the timer as the PyTorch path does.
  The KV cache is the presents' bytes.
- encoder-decoders (T5, Whisper): three models, the encoder, the first decoder step (computing the cross-attention
  keys and values) and the later steps (the self past and the cross keys and values in), in `Seq2SeqLoop`.
Vision-language models are not exported (their vision tower is not covered): they are skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import inspect
import time
import warnings
from typing import Any

import numpy as np
import torch

from kit.errors import ConversionError, UnsupportedConfiguration
from kit.memory.kv_cache import decoder_config

FIXED = ("input_ids", "attention_mask", "position_ids")
LOOP_DRIVER = "stateless loop"
SEQ2SEQ = ("text2text", "audio-text")  # encoder-decoder modalities exported as encoder + two decoder graphs


def genai_unusable() -> str | None:
    """Why openvino-genai's pipeline cannot run a decoder-only generation here (None when it can)."""
    return "openvino-genai is not installed" if importlib.util.find_spec("openvino_genai") is None else None


def check_exportable(loaded: Any, encoder_decoder: bool = False) -> None:
    """UnsupportedConfiguration unless the model is a decoder-only text model (or, with encoder_decoder, a text or
    speech encoder-decoder such as T5 or Whisper)."""
    if encoder_decoder and getattr(loaded.config, "is_encoder_decoder", False) and loaded.modality in SEQ2SEQ:
        return
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
        self.prompt_len: int | None = None

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


def seq2seq_shape(config: Any) -> tuple[int, int, int]:
    """(decoder layers, heads, head size) of an encoder-decoder config (T5's names, or Whisper's)."""
    layers = getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", None)
    heads = getattr(config, "num_heads", None) or config.decoder_attention_heads
    head_dim = getattr(config, "d_kv", None) or config.d_model // heads
    return layers, heads, head_dim


class EncoderOnly(torch.nn.Module):
    """The encoder of an encoder-decoder model: its inputs (positional, named in `names`) -> last hidden state."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """The encoder's output sequence."""
        return self.model.get_encoder()(**dict(zip(self.names, tensors, strict=True))).last_hidden_state


class DecoderStep(torch.nn.Module):
    """One decoder call of an encoder-decoder model with its caches as tensors. `first`: no past; the cross-attention
    keys and values are computed and returned. Otherwise: the self-attention past and the cross keys and values come
    in, the cross ones are reused (as generate does after its first step) and the self presents go out."""

    def __init__(self, model: torch.nn.Module, first: bool, masked: bool) -> None:
        super().__init__()
        self.model, self.first, self.masked = model, first, masked
        self.layers, self.heads, self.head_dim = seq2seq_shape(model.config)

    def _cache(self, self_kv: list[torch.Tensor], cross_kv: list[torch.Tensor], updated: bool) -> Any:
        from transformers import DynamicCache, EncoderDecoderCache

        caches = []
        for tensors in (self_kv, cross_kv):
            cache = DynamicCache(config=self.model.config)
            for index, layer in enumerate(cache.layers[:self.layers]):
                layer.keys, layer.values = tensors[2 * index], tensors[2 * index + 1]
                layer.device, layer.is_initialized = tensors[2 * index].device, True
            caches.append(cache)
        cache = EncoderDecoderCache(*caches)
        cache.is_updated = dict.fromkeys(range(self.layers), updated)
        return cache

    def forward(self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor,
                *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Last position's logits, the self presents, and (first step) the cross keys and values."""
        mask, past = (rest[0], rest[1:]) if self.masked else (None, rest)
        n = 2 * self.layers
        if self.first:
            empty = encoder_hidden_states.new_zeros((decoder_input_ids.shape[0], self.heads, 0, self.head_dim))
            cache = self._cache([empty] * n, [empty] * n, updated=False)
        else:
            cache = self._cache(list(past[:n]), list(past[n:]), updated=True)
        out = self.model(decoder_input_ids=decoder_input_ids, encoder_outputs=(encoder_hidden_states,),
                         attention_mask=mask, use_cache=True, **{_cache_argument(self.model): cache})
        present = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        own = [t for layer in present.self_attention_cache.layers[:self.layers] for t in (layer.keys, layer.values)]
        cross = [t for layer in present.cross_attention_cache.layers[:self.layers] for t in (layer.keys, layer.values)]
        return (out.logits[:, -1:], *own, *(cross if self.first else []))


def _cache_argument(model: torch.nn.Module) -> str:
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _convert(module: torch.nn.Module, example: tuple, shapes: list[Any], names: list[str]) -> Any:
    import openvino as ov

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ov_model = ov.convert_model(module.eval(), example_input=example, input=shapes)
    except Exception as exc:  # the converter raises its own types, with the failing ops
        raise ConversionError(f"OpenVINO could not convert {type(module).__name__}: "
                              f"{str(exc).strip().splitlines()[-1][:300]}") from exc
    for port, name in zip(ov_model.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    return ov_model


def export_seq2seq(model: torch.nn.Module, inputs: dict[str, Any]) -> list[Any]:
    """Three OpenVINO models of an encoder-decoder: the encoder, the first decoder step, the later steps."""
    import openvino as ov

    layers, heads, head_dim = seq2seq_shape(model.config)
    names = list(inputs)
    encoder_example = tuple(inputs[n] for n in names)
    encoder = _convert(EncoderOnly(model, names), encoder_example,
                       [ov.PartialShape([-1] * t.dim()) for t in encoder_example], names)
    with torch.no_grad():
        hidden = EncoderOnly(model, names)(*encoder_example)
    masked = "attention_mask" in inputs
    start = torch.full((hidden.shape[0], 1), model.config.decoder_start_token_id, dtype=torch.long)
    fixed = [start, hidden, *([inputs["attention_mask"]] if masked else [])]
    fixed_shapes = [ov.PartialShape([-1, -1]), ov.PartialShape([-1, -1, hidden.shape[-1]]),
                    *([ov.PartialShape([-1, -1])] if masked else [])]
    fixed_names = ["decoder_input_ids", "encoder_hidden_states", *(["attention_mask"] if masked else [])]
    first = _convert(DecoderStep(model, True, masked), tuple(fixed), fixed_shapes, fixed_names)
    pasts = [f"past_{part}_{kind}_{i}" for part in ("self", "cross") for i in range(layers)
             for kind in ("key", "value")]
    past_example = [torch.zeros(hidden.shape[0], heads, 3 if "self" in n else hidden.shape[1], head_dim)
                    for n in pasts]
    later = _convert(DecoderStep(model, False, masked), (*fixed, *past_example),
                     fixed_shapes + [ov.PartialShape([-1, heads, -1, head_dim])] * len(pasts), fixed_names + pasts)
    return [encoder, first, later]


class Seq2SeqLoop:
    """Greedy generation with an encoder-decoder's three compiled models: encoder, first step, later steps."""

    def __init__(self, compiled: list[Any], config: Any, prompt_len: int | None) -> None:
        from kit.backends.openvino_backend import port_name

        self.requests = [c.create_infer_request() for c in compiled]
        self.names = [[port_name(p) for p in c.inputs] for c in compiled]
        self.layers = seq2seq_shape(config)[0]
        self.start_token, self.prompt_len = config.decoder_start_token_id, prompt_len
        self.presents_bytes: list[int] = []

    def _infer(self, index: int, feeds: dict[str, np.ndarray]) -> tuple:
        return self.requests[index].infer([feeds[name] for name in self.names[index]]).to_tuple()

    def generate(self, encoder_feeds: dict[str, np.ndarray], new_tokens: int, timer: Any) -> np.ndarray:
        """The new tokens; the timer gets the start token, the prefill (encoder + first step) and each token."""
        batch = next(iter(encoder_feeds.values())).shape[0]
        timer.put(None)  # the decoder's start token, as generate hands it to a streamer
        start = time.perf_counter()
        hidden = self._infer(0, encoder_feeds)[0]
        feeds = {"encoder_hidden_states": hidden, "decoder_input_ids": np.full((batch, 1), self.start_token, np.int64)}
        if "attention_mask" in encoder_feeds:
            feeds["attention_mask"] = encoder_feeds["attention_mask"]
        out = self._infer(1, feeds)
        timer.prefill_took(time.perf_counter() - start)
        n = 2 * self.layers
        logits, own, cross = out[0], list(out[1:1 + n]), list(out[1 + n:])
        pasts = {**dict(zip(self._past_names("cross"), cross, strict=True))}
        cross_bytes = sum(t.nbytes for t in cross)
        generated = []
        for step in range(new_tokens):
            token = logits[:, -1, :].argmax(-1).astype(np.int64)[:, None]
            timer.put(token)
            generated.append(token)
            if step == 0:
                self.presents_bytes = [cross_bytes + sum(t.nbytes for t in own)]
            if step == new_tokens - 1:
                break
            out = self._infer(2, {**feeds, **pasts, **dict(zip(self._past_names("self"), own, strict=True)),
                                  "decoder_input_ids": token})
            logits, own = out[0], list(out[1:])
        self.presents_bytes.append(cross_bytes + sum(t.nbytes for t in own))
        timer.end()
        return np.concatenate(generated, axis=1)

    def _past_names(self, part: str) -> list[str]:
        return [f"past_{part}_{kind}_{i}" for i in range(self.layers) for kind in ("key", "value")]


def prepare_generation(backend: Any, loaded: Any, inputs: dict[str, Any], precision: str, new_tokens: int,
                       genai: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """Export and compile for the backend's device and precision: (the token loop, what its generate takes, facts);
    the loop's `prompt_len` is the prompt's tokens (None for speech). A decoder-only model runs in openvino-genai's
    pipeline when it is installed, unless genai is False (the stateless loop)."""
    from kit.backends.openvino_backend import compile_model, compiled_facts

    check_exportable(loaded, encoder_decoder=True)
    seq2seq = getattr(loaded.config, "is_encoder_decoder", False)
    if not seq2seq and "input_ids" not in inputs:
        raise UnsupportedConfiguration(f"{loaded.name}: no input_ids to prompt with")
    t0 = time.perf_counter()
    models = export_seq2seq(loaded.model, inputs) if seq2seq else [export_decoder(loaded.model)]
    facts: dict[str, Any] = {"convert_s": time.perf_counter() - t0,
                             "export": ("encoder, first decoder step, decoder with explicit self and cross past"
                                        if seq2seq else "decoder with explicit past") + " (f32 KV)"}
    if not seq2seq:
        prompt = inputs["input_ids"].numpy().astype(np.int64)
        why = genai_unusable() if genai else "the stateless loop was asked for"
        if why is None:
            from kit.backends.openvino_genai import prepare_genai

            return prepare_genai(backend, loaded, models[0], prompt, precision, facts), prompt, facts
        facts["genai_unused"] = why
    else:
        facts["genai_unused"] = "openvino-genai's LLMPipeline runs decoder-only models"
    facts["generation_driver"] = LOOP_DRIVER
    t0 = time.perf_counter()
    compiled = [compile_model(m, backend.ov_device, precision, backend.threads()) for m in models]
    facts["compile_s"] = time.perf_counter() - t0
    facts.update(compiled_facts(compiled[-1], backend.ov_device, precision))
    if seq2seq:
        feeds = {k: v.numpy() for k, v in inputs.items()}
        ids = feeds.get("input_ids")
        return Seq2SeqLoop(compiled, loaded.config, None if ids is None else ids.shape[-1]), feeds, facts
    loop = TokenLoop(compiled[0], loaded.config)
    loop.prompt_len = prompt.shape[-1]
    return loop, prompt, facts
