"""Text generation inside one (child) process: greedy `generate` of exactly `new_tokens` tokens, timed per token.

One timed call is one `generate` call (its seconds are the record's samples: end-to-end latency). Inside it:
- the **prefill** is the prompt's forward pass (for encoder-decoder models the encoder plus the first decoder step),
  timed by forward hooks that only look at the first forward of the call;
- each new token is stamped when `generate` hands it to the streamer (on GPUs the hand-over copies it to the host,
  so the stamp waits for the device); **TTFT** is the call's start to the first token, the **inter-token latencies**
  (ITL) the times between successive tokens, and **TPOT** their mean;
- the **KV cache** is read from the cache object `generate` returns: its bytes after the prompt (a one-token run) and
  after the whole run, so its growth per token is measured, and set beside the estimate (kit.memory.kv_cache).
Only the calls the clock times keep their stamps, so warm-up calls (also those at the start of an interleaved burst)
never enter the figures, and the per-call figures line up with the samples and their rounds.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kit import zoo
from kit.config import GENERATION_OPTIONS, Job
from kit.errors import MeasurementError, UnsupportedConfiguration
from kit.memory.kv_cache import cache_bytes, kv_facts
from kit.records import Record
from kit.runners.inference import apply_threads, check_supported, model_facts, timed_loop
from kit.stats import summarise
from kit.timing import MarkingClock, load_average_1m

DECODER_ONLY_DROP = ("labels",)
ENCODER_DECODER_DROP = ("labels", "decoder_input_ids", "decoder_attention_mask")


@dataclass
class CallTimes:
    """The stamps of one timed `generate` call, in seconds from its start."""

    prefill_s: float
    ttft_s: float
    itl_s: list[float]
    total_s: float


@dataclass
class TokenTimer:
    """A streamer stamping each new token, with forward hooks timing a call's first forward (the prefill).

    `timed` is set by kit.timing.MarkingClock while the clock times a call; only those calls are kept in `calls`."""

    sync: Any
    timed: bool = False
    calls: list[CallTimes] = field(default_factory=list)
    tokens_seen: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Begin a call: its clock, token stamps and prefill timing start afresh."""
        self._t0, self._stamps, self._puts, self._total_s = time.perf_counter(), [], 0, None
        self._encoder_s, self._forward_s, self._forward_start = 0.0, None, None

    def put(self, value: torch.Tensor) -> None:
        """Streamer protocol: the first put is the prompt (or the decoder's start token), later ones new tokens."""
        self._puts += 1
        if self._puts > 1:
            self._stamps.append(time.perf_counter() - self._t0)

    def end(self) -> None:
        """Streamer protocol: generation finished."""

    def take_page_stamps(self, prefill_s: float, stamps_s: list[float], total_s: float) -> None:
        """A call timed by the engine that ran it (a browser page, openvino-genai's pipeline) rather than by this
        timer: its prefill, token stamps and total, in seconds from its start."""
        self._puts, self._stamps, self._forward_s, self._total_s = len(stamps_s) + 1, list(stamps_s), prefill_s, total_s

    def prefill_took(self, seconds: float) -> None:
        """The prompt's forward, timed by a token loop of its own (OpenVINO) rather than by hooks."""
        if self._forward_s is None:
            self._forward_s = seconds

    def finish(self) -> None:
        """End a call: keep its stamps when the clock timed it."""
        self.tokens_seen.append(len(self._stamps))
        if not self.timed:
            return
        if len(self._stamps) < 2 or self._forward_s is None:
            raise MeasurementError(f"generate streamed {len(self._stamps)} tokens and ran "
                                   f"{'no' if self._forward_s is None else 'a'} forward pass; cannot time it")
        stamps = np.asarray(self._stamps)
        total = self._total_s if self._total_s is not None else time.perf_counter() - self._t0
        self.calls.append(CallTimes(prefill_s=self._encoder_s + self._forward_s, ttft_s=float(stamps[0]),
                                    itl_s=np.diff(stamps).tolist(), total_s=total))

    def hook(self, model: torch.nn.Module) -> None:
        """Time the model's first forward of each call, and its encoder's (encoder-decoder models)."""
        model.register_forward_pre_hook(self._forward_pre)
        model.register_forward_hook(self._forward_post)
        if getattr(model.config, "is_encoder_decoder", False):
            encoder = model.get_encoder()
            encoder.register_forward_pre_hook(self._encoder_pre)
            encoder.register_forward_hook(self._encoder_post)

    def _forward_pre(self, *_: Any) -> None:
        if self._forward_s is None:
            self.sync()
            self._forward_start = time.perf_counter()

    def _forward_post(self, *_: Any) -> None:
        if self._forward_s is None and self._forward_start is not None:
            self.sync()
            self._forward_s = time.perf_counter() - self._forward_start

    def _encoder_pre(self, *_: Any) -> None:
        self.sync()
        self._encoder_start = time.perf_counter()

    def _encoder_post(self, *_: Any) -> None:
        self.sync()
        self._encoder_s += time.perf_counter() - self._encoder_start


def generation_options(job: Job) -> dict[str, Any]:
    """The job's generation options over the defaults."""
    return {**GENERATION_OPTIONS, **job.generation}


def generation_inputs(loaded: zoo.LoadedModel, batch_size: int, prompt_len: int | None) -> dict[str, Any]:
    """The zoo's inputs for the prompt: a decoder-only model's prompt tokens, an encoder-decoder model's encoder
    inputs (its decoder starts from the start token), a vision-language model's image and text."""
    inputs = loaded.make_inputs(batch_size, prompt_len)
    drop = ENCODER_DECODER_DROP if getattr(loaded.config, "is_encoder_decoder", False) else DECODER_ONLY_DROP
    return {k: v for k, v in inputs.items() if k not in drop}


CONTEXT_KEYS = ("max_target_positions", "max_position_embeddings", "n_positions")


def check_context(loaded: zoo.LoadedModel, inputs: dict[str, Any], new_tokens: int) -> None:
    """UnsupportedConfiguration when the decoder cannot hold the prompt and the new tokens (its position limit)."""
    from kit.memory.kv_cache import decoder_config

    config = decoder_config(loaded.config)
    limit = next((getattr(config, k) for k in CONTEXT_KEYS if isinstance(getattr(config, k, None), int)), None)
    encoder_decoder = getattr(loaded.config, "is_encoder_decoder", False)
    prompt = 1 if encoder_decoder else int(inputs["input_ids"].shape[-1]) if "input_ids" in inputs else 0
    if limit is not None and prompt + new_tokens > limit:
        what = "its start token" if encoder_decoder else f"a prompt of {prompt} tokens"
        raise UnsupportedConfiguration(f"{loaded.name} ({loaded.size}) holds {limit} decoder positions: {new_tokens} "
                                       f"new tokens after {what} do not fit")


def generate_kwargs(model: torch.nn.Module, new_tokens: int, kv_cache: str) -> dict[str, Any]:
    """Greedy decoding of exactly new_tokens tokens (min = max, so an end-of-sequence token cannot stop it early),
    as a copy of the model's generation config (its start, end and special tokens kept)."""
    config = copy.deepcopy(model.generation_config)
    pad = config.pad_token_id if config.pad_token_id is not None else (config.eos_token_id or 0)
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "num_beams": 1,
                "pad_token_id": pad[0] if isinstance(pad, list) else pad, "return_dict_in_generate": True,
                "cache_implementation": "static" if kv_cache == "static" else None}
    for key, value in settings.items():
        setattr(config, key, value)
    return {"generation_config": config}


def summary_of(values: list[float]) -> dict[str, float]:
    """Mean, p10, p50, p90, p99 and the median's 95 % CI of a list of seconds."""
    s = summarise(values)
    return {"n": len(values), "mean_s": s.mean, "p10_s": s.p10, "p50_s": s.p50, "p90_s": s.p90, "p99_s": s.p99,
            "ci_low_s": s.ci_low, "ci_high_s": s.ci_high}


def generation_facts(calls: list[CallTimes], batch_size: int, new_tokens: int) -> dict[str, Any]:
    """extra["generation"]'s timing part: per-call prefill, TTFT and TPOT (aligned with the samples), their
    summaries, the inter-token latencies pooled, and decode tokens/s."""
    itl = [x for call in calls for x in call.itl_s]
    tpot = [float(np.mean(call.itl_s)) for call in calls]
    return {
        "prefill_s": [c.prefill_s for c in calls], "ttft_s": [c.ttft_s for c in calls], "tpot_s": tpot,
        "prefill": summary_of([c.prefill_s for c in calls]), "ttft": summary_of([c.ttft_s for c in calls]),
        "tpot": summary_of(tpot), "itl": summary_of(itl),
        "decode_tokens_per_s": batch_size / float(np.mean(tpot)),
        "e2e_tokens_per_s": batch_size * new_tokens / float(np.mean([c.total_s for c in calls])),
    }


def torch_kv_facts(model: torch.nn.Module, moved: dict[str, Any], kwargs: dict[str, Any], new_tokens: int,
                   batch_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """The KV cache's bytes after the prompt and after the whole run (from the caches generate returns), its growth
    per new token, and the estimate of that growth."""
    one = copy.deepcopy(kwargs["generation_config"])
    one.max_new_tokens = one.min_new_tokens = 1
    with torch.inference_mode():
        first = model.generate(**moved, generation_config=one)
        whole = model.generate(**moved, **kwargs)
    after_prompt, after_run = (cache_bytes(_cache_of(out)) for out in (first, whole))
    return kv_facts(after_prompt, after_run, new_tokens, model.config, batch_size, dtype)


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)  # transformers' name; older releases: past_key_values
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _stamped(timer: TokenTimer, generate: Any) -> Any:
    """One generation call as the clock sees it: the timer starts before `generate` and keeps its stamps after."""

    def call() -> Any:
        timer.start()
        out = generate()
        timer.finish()
        return out

    return call


def _torch_generation(backend: Any, loaded: zoo.LoadedModel, inputs: dict[str, Any], precision: str,
                      options: dict[str, Any], timer: TokenTimer) -> tuple[Any, dict[str, Any], Any]:
    """PyTorch: (one timed generate call, facts, a function giving the KV facts) for the prepared model."""
    model, moved, facts = backend.prepare_model(loaded, inputs, precision)
    kwargs = generate_kwargs(model, options["new_tokens"], options["kv_cache"])
    timer.hook(model)

    def generate() -> Any:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.generate(**moved, **kwargs, streamer=timer)

    dtype = next(model.parameters()).dtype
    facts["prompt_len"] = _prompt_len(moved)
    return (_stamped(timer, generate), facts,
            lambda batch: torch_kv_facts(model, moved, kwargs, options["new_tokens"], batch, dtype))


def _openvino_generation(backend: Any, loaded: zoo.LoadedModel, inputs: dict[str, Any], precision: str,
                         options: dict[str, Any], timer: TokenTimer) -> tuple[Any, dict[str, Any], Any]:
    """OpenVINO: the same, around the exported decoder's driver: openvino-genai's pipeline or the stateless token loop
    (kit.backends.openvino_generation)."""
    from kit.backends.openvino_generation import prepare_generation

    if options["kv_cache"] != "dynamic":
        raise UnsupportedConfiguration("OpenVINO generation passes the KV cache as growing tensors (dynamic); "
                                       "a static cache is a PyTorch option")
    new_tokens = options["new_tokens"]
    loop, prompt, facts = prepare_generation(backend, loaded, inputs, precision, new_tokens)

    facts["prompt_len"] = loop.prompt_len
    return (_stamped(timer, lambda: loop.generate(prompt, new_tokens, timer)), facts,  # presents are f32 outputs
            lambda batch: kv_facts(*loop.presents_bytes, new_tokens, loaded.config, batch, torch.float32))


def _browser_generation(backend: Any, loaded: zoo.LoadedModel, inputs: dict[str, Any], precision: str,
                        options: dict[str, Any], timer: TokenTimer) -> tuple[Any, dict[str, Any], Any]:
    """The browser: the same, around the page's token loop (kit.browser.generation)."""
    if options["kv_cache"] != "dynamic":
        raise UnsupportedConfiguration("generation in the page passes the KV cache as growing tensors (dynamic); "
                                       "a static cache is a PyTorch option")
    new_tokens = options["new_tokens"]
    run = backend.start_generation(loaded, inputs, new_tokens)

    def kv(batch: int) -> dict[str, Any]:
        # the page's last call generated what onnxruntime in Python does from the same file
        return {**kv_facts(*run.presents_bytes, new_tokens, loaded.config, batch, torch.float32),
                "tokens_match_onnxruntime": run.tokens == run.facts["reference_tokens"]}

    facts = {**run.facts, "precision_ran": "fp32", "prompt_len": int(inputs["input_ids"].shape[-1])}
    return _stamped(timer, lambda: run.call(timer)), facts, kv


def measure_generation(job: Job) -> Record:
    """Measure one generation configuration and return an ok Record (exceptions propagate to the caller)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # generate's advice on its arguments, once per call: noise in a sweep's log
    apply_threads(job)
    backend, _ = check_supported(job)
    options = generation_options(job)
    new_tokens = options["new_tokens"]
    t0 = time.perf_counter()
    loaded = zoo.load_model(job.model, job.size, overrides=job.overrides or None)
    build_s = time.perf_counter() - t0
    if not loaded.model.can_generate():
        raise UnsupportedConfiguration(f"{job.model}: a {type(loaded.model).__name__} does not generate text")
    facts, _ = model_facts(loaded, job.seq_len)
    inputs = generation_inputs(loaded, job.batch_size, job.seq_len)
    check_context(loaded, inputs, new_tokens)
    timer = TokenTimer(sync=getattr(backend, "synchronize", lambda: None))
    prepare = (_torch_generation if hasattr(backend, "prepare_model") else
               _browser_generation if hasattr(backend, "start_generation") else _openvino_generation)
    t1 = time.perf_counter()
    call, prep_facts, kv = prepare(backend, loaded, inputs, job.precision, options, timer)
    prepare_s = time.perf_counter() - t1
    # only the loop's calls keep their stamps: the first call is timed by the plain clock
    first_s, measurement, tracker, peak = timed_loop(call, MarkingClock(backend.clock(), timer), backend, job,
                                                     first_clock=backend.clock())
    if len(timer.calls) != len(measurement.samples_s):
        raise MeasurementError(f"{len(timer.calls)} timed generate calls stamped for {len(measurement.samples_s)} "
                               "samples")
    if set(timer.tokens_seen) != {new_tokens}:
        raise MeasurementError(f"asked for {new_tokens} new tokens, generate gave {sorted(set(timer.tokens_seen))}")
    generation = {**options, "prompt_len": prep_facts.pop("prompt_len"), "tokens_generated": new_tokens,
                  **generation_facts(timer.calls, job.batch_size, new_tokens), **kv(job.batch_size)}
    extra = {**prep_facts, "build_s": build_s, "prepare_s": prepare_s, "warmup_iters": job.warmup_iters,
             "wall_time_s": measurement.wall_time_s, "host_steal_share": measurement.steal_share,
             "modality": loaded.modality, "seq_len_effective": job.seq_len or loaded.default_seq_len,
             "model_facts": loaded.describe(), "generation": generation}
    return Record.from_samples(
        measurement.samples_s, sample_rounds=measurement.rounds, target_rel_ci=job.target_rel_ci, **job.identity(),
        family=loaded.family, device=backend.device(), startup_s=build_s + prepare_s, first_inference_s=first_s,
        peak_memory_bytes=peak, memory_method=tracker.method, threads=backend.threads(),
        cpu_time_s=measurement.cpu_time_s, load_avg_1m=load_average_1m(), extra=extra, **facts,
    )


def _prompt_len(moved: dict[str, Any]) -> int | None:
    """Tokens in the prompt (input_ids' length), None for inputs without tokens (speech)."""
    ids = moved.get("input_ids")
    return int(ids.shape[-1]) if ids is not None else None
