"""Text generation in the browser: the decoder exported to ONNX with its KV cache as inputs and outputs (dynamic
batch, token and past lengths, named as transformers.js expects), served as a model folder (config.json,
generation_config.json, onnx/model.onnx) and run in the page by one of two drivers, every token stamped there with
performance.now():
- "transformers.js" (the default): @huggingface/transformers' `model.generate` on the page's onnxruntime-web, fed the
  prompt's token ids (no tokenizer), with a streamer stamping each token as generate hands it over;
- "loop": runner.mjs's own greedy token loop around an onnxruntime-web session of the same file.

`start_generation_run` exports (TorchScript exporter: the torch.export one does not trace the cache's Python
objects), computes what onnxruntime in Python generates from the same file (the record says whether the page's
tokens equal it), starts the page and loads the model with the driver; `BrowserGeneration.call` runs one generation
and hands the page's stamps to the token timer, as the PyTorch and OpenVINO paths do. `compare_drivers` times both
drivers in one page, in alternating bursts.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kit.backends.openvino_generation import DecoderWithPast, check_exportable, kv_shape
from kit.browser.chromium import private_temp_dir
from kit.browser.export import OPSET, write_inputs
from kit.browser.page import TRANSFORMERS_JS_DIST, BrowserPage
from kit.browser.session import (
    EMULATED_TIMEOUT_S,
    LOAD_TIMEOUT_S,
    RUN_TIMEOUT_S,
    _emulation_limit,
    browser_facts,
    check_provider,
    cleanup,
)
from kit.errors import ConfigError, ConversionError, UnsupportedConfiguration
from kit.stats import paired_ratio

FIXED = ("input_ids", "attention_mask", "position_ids")
DRIVERS = ("transformers.js", "loop")
DEFAULT_DRIVER = "transformers.js"  # what a web application ships; "loop" is the runtime alone, without its JS layer
TRANSFORMERS_JS_DIR = TRANSFORMERS_JS_DIST.parent
TRANSFORMERS_JS_BUILD = "transformers.web.js"  # served at /tjs/; its onnxruntime-web imports resolve by the import map
MODEL_ID = "model"  # the model folder under /work/: what transformers.js's from_pretrained is given


def transformers_js_version() -> str:
    """The installed @huggingface/transformers version ('' when it is not installed)."""
    package = TRANSFORMERS_JS_DIR / "package.json"
    return json.loads(package.read_text()).get("version", "") if package.is_file() else ""


def export_decoder_onnx(model: torch.nn.Module, path: Path) -> list[str]:
    """DecoderWithPast as ONNX with dynamic batch, token and past axes, under transformers.js's names (input_ids,
    attention_mask, position_ids, past_key_values.N.key/value -> logits, present.N.key/value); returns the pasts."""
    layers, kv_heads, head_dim = kv_shape(model.config)
    pasts = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    presents = [name.replace("past_key_values", "present") for name in pasts]
    batch, new, past_len = 2, 4, 3
    example = (torch.randint(0, 8, (batch, new)), torch.ones(batch, past_len + new, dtype=torch.long),
               torch.arange(past_len, past_len + new).expand(batch, new),
               *[torch.zeros(batch, kv_heads, past_len, head_dim) for _ in pasts])
    # transformers.js sizes the first call's empty past from these axis names (batch_size; any other name is 0)
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"}, "logits": {0: "batch_size"},
            **{n: {0: "batch_size", 2: "past_sequence_length"} for n in pasts},
            **{n: {0: "batch_size", 2: "total_sequence_length"} for n in presents}}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(DecoderWithPast(model.eval()), example, str(path), input_names=[*FIXED, *pasts],
                              output_names=["logits", *presents], dynamic_axes=axes, dynamo=False,
                              opset_version=min(OPSET, 17))
    except Exception as exc:  # the exporter raises many types; the message says which op
        raise ConversionError(f"ONNX export of the decoder with its KV cache failed: {str(exc)[:300]}") from exc
    return pasts


def write_model_folder(model: torch.nn.Module, folder: Path) -> Path:
    """The folder transformers.js loads: config.json and generation_config.json from the model, onnx/model.onnx the
    exported decoder; returns the ONNX file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(model.config.to_json_string())
    generation = getattr(model, "generation_config", None)
    (folder / "generation_config.json").write_text(generation.to_json_string() if generation is not None else "{}")
    onnx_path = folder / "onnx" / "model.onnx"
    export_decoder_onnx(model, onnx_path)
    return onnx_path


def onnxruntime_tokens(path: Path, prompt: np.ndarray, kv: tuple[int, int, int], new_tokens: int) -> np.ndarray:
    """Greedy tokens of the exported decoder under onnxruntime in Python: the reference for the page."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    layers, kv_heads, head_dim = kv
    batch, length = prompt.shape
    pasts = [i.name for i in session.get_inputs() if i.name.startswith("past_key_values.")]
    feeds = {"input_ids": prompt, "attention_mask": np.ones((batch, length), np.int64),
             "position_ids": np.tile(np.arange(length, dtype=np.int64), (batch, 1)),
             **{n: np.zeros((batch, kv_heads, 0, head_dim), np.float32) for n in pasts}}
    tokens = []
    for _ in range(new_tokens):
        out = session.run(None, feeds)
        token = out[0][:, -1].argmax(-1).astype(np.int64)[:, None]
        tokens.append(token)
        done = feeds["attention_mask"].shape[1]
        feeds = {"input_ids": token, "attention_mask": np.ones((batch, done + 1), np.int64),
                 "position_ids": np.full((batch, 1), done, np.int64), **dict(zip(pasts, out[1:], strict=True))}
    return np.concatenate(tokens, axis=1)


@dataclass
class BrowserGeneration:
    """A decoder loaded in a page by a driver; `call(timer)` runs one generation there."""

    page: BrowserPage
    work_dir: Path
    config: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    presents_bytes: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    def call(self, timer: Any) -> dict[str, Any]:
        """One generation in the page; the timer gets the page's prefill and token stamps (seconds)."""
        out = self.generate()
        timer.take_page_stamps(out["prefillMs"] / 1e3, [s / 1e3 for s in out["stampsMs"]], out["totalMs"] / 1e3)
        return out

    def generate(self, driver: str | None = None) -> dict[str, Any]:
        """One generation by the driver (default: the one the run loaded first), in milliseconds from its start."""
        timeout_s = EMULATED_TIMEOUT_S if self.facts.get("emulated") else RUN_TIMEOUT_S
        with _emulation_limit(self.facts, timeout_s, "one generation"):
            out = self.page.generate({**self.config, "driver": driver or self.facts["generation_driver"]},
                                     timeout_s=timeout_s)
        self.presents_bytes, self.tokens = out["bytes"], out["tokens"]
        return out

    def load_driver(self, driver: str) -> dict[str, Any]:
        """Load the model with a driver in this page (the other one stays loaded); returns the page's facts."""
        _check_driver(driver)
        load_timeout_s = EMULATED_TIMEOUT_S if self.facts.get("emulated") else LOAD_TIMEOUT_S
        config = {"provider": self.page.provider, "numThreads": self.config["numThreads"],
                  "inputs": "/work/inputs.json"}
        with _emulation_limit(self.facts, load_timeout_s, "loading"):
            if driver == "loop":
                return self.page.load({**config, "model": f"/work/{MODEL_ID}/onnx/model.onnx",
                                       "webnnDeviceType": "cpu"}, timeout_s=load_timeout_s)
            config = {**config, "modelRoot": "/work/", "modelId": MODEL_ID}
            return self.page.evaluate(f"window.bench.loadGenerator({json.dumps(config)})", timeout_s=load_timeout_s)

    def __post_init__(self) -> None:
        # Closes the browser when the run is garbage (after an in-process measurement) or at exit, as a BrowserRun
        # does; the finalizer holds the page, not the run.
        self._finalizer = weakref.finalize(self, cleanup, self.page, self.work_dir)

    def close(self) -> None:
        """Quit the browser and delete the exported files."""
        self._finalizer()


def _check_driver(driver: str) -> None:
    if driver not in DRIVERS:
        raise ConfigError(f"unknown generation driver {driver!r}; known: {', '.join(DRIVERS)}")
    if driver == "transformers.js" and not (TRANSFORMERS_JS_DIST / TRANSFORMERS_JS_BUILD).is_file():
        raise UnsupportedConfiguration(f"transformers.js not found at {TRANSFORMERS_JS_DIR}; run `make browser`")


def start_generation_run(loaded: Any, inputs: dict[str, Any], provider: str, *, threads: int, new_tokens: int,
                         driver: str = DEFAULT_DRIVER) -> BrowserGeneration:
    """Export the decoder, check it against onnxruntime, start the page and load the model with the driver."""
    _check_driver(driver)
    check_exportable(loaded)
    if "input_ids" not in inputs:
        raise UnsupportedConfiguration(f"{loaded.name}: no input_ids to prompt with")
    work_dir = Path(private_temp_dir("browser-generation"))
    page = None
    try:
        t0 = time.perf_counter()
        onnx_path = write_model_folder(loaded.model, work_dir / MODEL_ID)
        facts: dict[str, Any] = {"onnx_export_s": time.perf_counter() - t0, "onnx_exporter": "torchscript",
                                 "export": "decoder with explicit past (f32 KV)", "generation_driver": driver}
        if driver == "transformers.js":
            facts["transformers_js_version"] = transformers_js_version()
        prompt = inputs["input_ids"].numpy().astype(np.int64)
        batch, length = prompt.shape
        feeds = {"input_ids": inputs["input_ids"], "attention_mask": torch.ones(batch, length, dtype=torch.long),
                 "position_ids": torch.arange(length).expand(batch, length).contiguous()}
        write_inputs(feeds, work_dir, "/work/")
        kv = kv_shape(loaded.config)
        facts["reference_tokens"] = onnxruntime_tokens(onnx_path, prompt, kv, new_tokens)[0].tolist()
        page = BrowserPage(provider, work_dir)
        probe = page.probe()
        facts.update(browser_facts(page, probe), **check_provider(provider, probe))
        run = BrowserGeneration(page, work_dir, {"newTokens": new_tokens, "kvHeads": kv[1], "headDim": kv[2],
                                                 "numThreads": threads}, facts)
        loaded_page = run.load_driver(driver)
        facts.update(session_create_s=loaded_page["sessionCreateMs"] / 1000.0, num_threads=loaded_page["numThreads"])
        return run
    except BaseException:
        if page is not None:
            page.close()
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def compare_drivers(run: BrowserGeneration, *, bursts: int = 20, calls_per_burst: int = 3) -> dict[str, Any]:
    """transformers.js over the hand loop, both loaded in the run's page, timed in alternating bursts (the order flips
    every burst; each burst's first call is a warm-up): TTFT, TPOT (mean ITL), median ITL and end to end as per-burst
    medians paired by burst (kit.stats.paired_ratio), and whether each driver's tokens equal onnxruntime's."""
    for driver in DRIVERS:
        if driver != run.facts["generation_driver"]:
            run.load_driver(driver)
    metrics = {"ttft": lambda s, total: s[0], "tpot": lambda s, total: (s[-1] - s[0]) / (len(s) - 1),
               "itl_median": lambda s, total: statistics.median(np.diff(s)), "e2e": lambda s, total: total}
    per_burst: dict[str, dict[str, dict[int, float]]] = {d: {m: {} for m in metrics} for d in DRIVERS}
    tokens_match = dict.fromkeys(DRIVERS, True)
    for burst in range(bursts):
        for driver in (DRIVERS if burst % 2 == 0 else DRIVERS[::-1]):
            outs = [run.generate(driver) for _ in range(calls_per_burst + 1)][1:]
            tokens_match[driver] &= all(o["tokens"] == run.facts["reference_tokens"] for o in outs)
            for name, metric in metrics.items():
                per_burst[driver][name][burst] = statistics.median(metric(o["stampsMs"], o["totalMs"]) for o in outs)
    result: dict[str, Any] = {"bursts": bursts, "calls_per_burst": calls_per_burst, "tokens_match": tokens_match}
    for name in metrics:
        ratio = paired_ratio(per_burst["transformers.js"][name], per_burst["loop"][name])
        result[name] = {"ratio": ratio.ratio, "ci_low": ratio.ci_low, "ci_high": ratio.ci_high,
                        **{f"{d}_ms": statistics.median(per_burst[d][name].values()) for d in DRIVERS}}
    return result
