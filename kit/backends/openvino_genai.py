"""Text generation on OpenVINO through openvino-genai's LLMPipeline, for decoder-only models.

- the model: the decoder exported with explicit past (kit.backends.openvino_generation.export_decoder) made
  stateful as optimum-intel's exporter makes it: a `beam_idx` input gathers the past along the batch before it is
  used, `apply_make_stateful_transformation` turns each past input and present output into a variable, and every
  variable starts as zeros of [batch, kv heads, 0, head size]. The folder the pipeline reads holds that IR
  (openvino_model.xml), config.json and generation_config.json, and no tokenizer: the prompt goes in as
  TokenizedInputs and the new tokens come back as ids, so neither tokenizer nor detokenizer runs.
- the call: greedy, exactly `new_tokens` tokens (with an end-of-sequence token, min = max suppresses it as
  PyTorch's `generate` does; without one, ignore_eos), any batch size. The token times are the pipeline's own
  (perf_metrics.raw_metrics.m_new_token_times, one stamp per generated token, in ms), taken on the monotonic clock
  time.perf_counter reads on Linux: every call checks that they fall between its start and end. A streamer is not
  used: genai calls it from a worker thread, so its stamps trail the tokens (by 0.07 ms, and under load several come
  at once) and genai refuses it beyond batch size 1. TTFT is the call's start to the first stamp, the ITLs the gaps
  between stamps; the prefill is the pipeline's duration of its first infer (raw_metrics.token_infer_durations).
- the pipeline runs paged attention (ATTENTION_BACKEND=PA), compiled with the stateless path's properties and the KV
  cache in the inference precision (the CPU plugin would otherwise compress it to u8).
- the KV cache: the pipeline does not expose its block cache, so the bytes are those of the same IR's states in a
  request of its own (query_state after the prompt and after the run, read back in f32): the keys and values the
  pipeline keeps in its paged blocks, not the blocks' allocation (whole blocks, grown as the pipeline sees fit).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino_genai as ov_genai

from kit.backends.openvino_backend import PERFORMANCE_HINT, PRECISION_HINTS, compiled_facts, core
from kit.backends.openvino_generation import kv_shape
from kit.errors import MeasurementError

ATTENTION_BACKEND = "PA"  # against SDPA (tiny llama, qwen2, prompt 32, batch 1): the same TPOT, a third of the TTFT
DRIVER = "openvino-genai LLMPipeline"


def make_stateful(ov_model: Any, kv_heads: int, head_dim: int) -> Any:
    """The exported decoder with its past as internal state and a `beam_idx` input (in place; returned)."""
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    ov_model.outputs[0].get_tensor().set_names({"logits"})
    pasts = [port.get_any_name() for port in ov_model.inputs[3:]]
    presents = [name.replace("past_", "present_") for name in pasts]
    for port, name in zip(ov_model.outputs[1:], presents, strict=True):
        port.get_tensor().set_names({name})
    ids = ov_model.input("input_ids")
    beam_idx = ops.parameter(ov.PartialShape([ids.get_partial_shape()[0]]), ov.Type.i32, name="beam_idx")
    beam_idx.output(0).get_tensor().set_names({"beam_idx"})
    ov_model.add_parameters([beam_idx])
    for name in pasts:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        reordered = ops.gather(port, beam_idx, ops.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(reordered.output(0))
    ov_model.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(ov_model, dict(zip(pasts, presents, strict=True)))
    batch = ops.gather(ops.shape_of(ov_model.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    empty = ops.concat([batch, ops.constant(np.array([kv_heads, 0, head_dim], np.int64))], 0)
    for op in ov_model.get_ops():
        if op.get_type_name() == "ReadValue":  # genai reads the sequence axis from this zero dimension
            op.set_arguments([ops.broadcast(ops.constant(0.0, dtype=op.get_output_element_type(0)), empty)])
    ov_model.validate_nodes_and_infer_types()
    return ov_model


def write_folder(folder: Path, ov_model: Any, loaded: Any) -> None:
    """What LLMPipeline(folder) reads: the IR, config.json and generation_config.json."""
    ov.save_model(ov_model, folder / "openvino_model.xml")
    loaded.config.to_json_file(folder / "config.json")
    loaded.model.generation_config.to_json_file(folder / "generation_config.json")


def pipeline_properties(device: str, precision: str, threads: int | None) -> dict[str, Any]:
    """The compile properties of the stateless path (precision hint, LATENCY, torch's threads) and the KV cache in
    the inference precision (the CPU's default would compress it to u8)."""
    properties = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": PERFORMANCE_HINT,
                  "KV_CACHE_PRECISION": PRECISION_HINTS[precision]}
    if threads and device == "CPU":
        properties["INFERENCE_NUM_THREADS"] = threads
    return properties


class GenAILoop:
    """Greedy generation of a fixed number of tokens through an LLMPipeline, its token stamps handed to the timer."""

    def __init__(self, ov_model: Any, loaded: Any, device: str, properties: dict[str, Any], prompt_len: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="benchkit-genai-"))
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        write_folder(self.folder, ov_model, loaded)
        self.pipeline = ov_genai.LLMPipeline(self.folder, device, ATTENTION_BACKEND=ATTENTION_BACKEND, **properties)
        self.device, self.properties, self.prompt_len = device, properties, prompt_len
        self._last: tuple[np.ndarray, int] | None = None
        self._presents_bytes: dict[tuple[int, ...], list[int]] = {}

    def config(self, new_tokens: int) -> Any:
        """Greedy decoding of exactly new_tokens tokens, the end-of-sequence token handled as generate does."""
        config = self.pipeline.get_generation_config()
        config.max_new_tokens, config.do_sample, config.num_beams = new_tokens, False, 1
        if config.eos_token_id >= 0:
            config.min_new_tokens = new_tokens  # the end token's logit suppressed until then, as in generate
        else:  # no end token (qwen2's config): genai wants a non-negative id, ignored here and never suppressed
            config.eos_token_id, config.stop_token_ids, config.ignore_eos, config.min_new_tokens = 0, set(), True, 0
        return config

    def generate(self, input_ids: np.ndarray, new_tokens: int, timer: Any) -> np.ndarray:
        """The new tokens [batch, new_tokens]; the timer gets the prefill, the token stamps and the total, from the
        start of this call (the inputs and the generation config are part of it, as in PyTorch's generate)."""
        start = time.perf_counter()
        inputs = ov_genai.TokenizedInputs(ov.Tensor(input_ids), ov.Tensor(np.ones_like(input_ids)))
        out = self.pipeline.generate(inputs, self.config(new_tokens))
        end = time.perf_counter()
        raw = out.perf_metrics.raw_metrics
        stamps = np.asarray(raw.m_new_token_times) / 1e3  # ms on the monotonic clock
        if len(stamps) and not start <= stamps[0] <= stamps[-1] <= end:
            raise MeasurementError(f"genai's token times ({stamps[0]:.6f}..{stamps[-1]:.6f} s) fall outside the call "
                                   f"({start:.6f}..{end:.6f} s on time.perf_counter): not the same clock")
        timer.take_page_stamps(raw.token_infer_durations[0] / 1e6, (stamps - start).tolist(), end - start)
        self._last = (input_ids, new_tokens)
        return np.asarray(out.tokens, dtype=np.int64)

    @property
    def presents_bytes(self) -> list[int]:
        """The KV cache's bytes after the prompt and after the last call's run, read from the IR's states (compiled
        again when asked, after the timed calls, so that a second copy of the model is not resident while they run)."""
        if self._last is None:
            raise RuntimeError("presents_bytes is read after a generate call")
        input_ids, new_tokens = self._last
        key = (*input_ids.shape, new_tokens)
        if key not in self._presents_bytes:
            compiled = core().compile_model(self.folder / "openvino_model.xml", self.device, self.properties)
            self._presents_bytes[key] = state_bytes(compiled, input_ids, new_tokens)
        return self._presents_bytes[key]


def state_bytes(compiled: Any, input_ids: np.ndarray, new_tokens: int) -> list[int]:
    """Bytes of the stateful IR's states (as read back) after the prompt and after new_tokens - 1 greedy steps: the
    contexts the pipeline's first and last infers leave."""
    request = compiled.create_infer_request()
    batch = input_ids.shape[0]
    tokens, done, sizes = input_ids, 0, []
    for step in range(new_tokens):
        positions = np.arange(done, done + tokens.shape[1], dtype=np.int64)[None].repeat(batch, 0)
        done += tokens.shape[1]
        logits = request.infer({"input_ids": tokens, "attention_mask": np.ones((batch, done), np.int64),
                                "position_ids": positions, "beam_idx": np.arange(batch, dtype=np.int32)})["logits"]
        tokens = logits[:, -1].argmax(-1).astype(np.int64)[:, None]
        if step in (0, new_tokens - 1):
            sizes.append(sum(s.state.data.nbytes for s in request.query_state()))
    return sizes


def prepare_genai(backend: Any, loaded: Any, ov_model: Any, prompt: np.ndarray, precision: str,
                  facts: dict[str, Any]) -> GenAILoop:
    """The pipeline around the exported decoder made stateful; facts get the driver, the compile and its facts."""
    _, kv_heads, head_dim = kv_shape(loaded.config)
    make_stateful(ov_model, kv_heads, head_dim)
    properties = pipeline_properties(backend.ov_device, precision, backend.threads())
    t0 = time.perf_counter()
    compiled = core().compile_model(ov_model, backend.ov_device, properties)
    facts["compile_s"] = time.perf_counter() - t0
    facts.update(compiled_facts(compiled, backend.ov_device, precision))  # the same IR and properties as the pipeline
    del compiled
    t0 = time.perf_counter()
    loop = GenAILoop(ov_model, loaded, backend.ov_device, properties, prompt.shape[-1])
    facts.update(generation_driver=DRIVER, genai_version=ov_genai.get_version(), pipeline_s=time.perf_counter() - t0,
                 genai_properties={**properties, "ATTENTION_BACKEND": ATTENTION_BACKEND},
                 export="decoder with its past as state (beam_idx input); no tokenizer: token ids in and out")
    return loop
