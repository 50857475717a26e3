"""Text generation in the browser: the decoder exported to ONNX with its KV cache as inputs and outputs (dynamic
batch, token and past lengths), loaded in onnxruntime-web, and a greedy token loop run inside the page
(runner.mjs `generate`), every token stamped there with performance.now().

`start_generation_run` exports (TorchScript exporter: the torch.export one does not trace the cache's Python
objects), checks that onnxruntime in Python generates the tokens PyTorch does from the same file, starts the page and
loads the model; `BrowserGeneration.call` runs one generation and hands the page's stamps to the token timer, as the
PyTorch and OpenVINO paths do.
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kit.backends.openvino_generation import DecoderWithPast, check_exportable, kv_shape
from kit.browser.chromium import private_temp_dir
from kit.browser.export import OPSET, write_inputs
from kit.browser.page import BrowserPage
from kit.browser.session import (
    EMULATED_TIMEOUT_S,
    LOAD_TIMEOUT_S,
    RUN_TIMEOUT_S,
    _emulation_limit,
    browser_facts,
    check_provider,
)
from kit.errors import ConversionError, UnsupportedConfiguration

FIXED = ("input_ids", "attention_mask", "position_ids")


def export_decoder_onnx(model: torch.nn.Module, path: Path) -> list[str]:
    """DecoderWithPast as ONNX with dynamic batch, token and past axes; returns the past input names."""
    layers, kv_heads, head_dim = kv_shape(model.config)
    pasts = [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    presents = [name.replace("past_", "present_") for name in pasts]
    batch, new, past_len = 2, 4, 3
    example = (torch.randint(0, 8, (batch, new)), torch.ones(batch, past_len + new, dtype=torch.long),
               torch.arange(past_len, past_len + new).expand(batch, new),
               *[torch.zeros(batch, kv_heads, past_len, head_dim) for _ in pasts])
    axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"},
            **{n: {0: "batch", 2: "past"} for n in pasts}, **{n: {0: "batch", 2: "total"} for n in presents}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(DecoderWithPast(model.eval()), example, str(path), input_names=[*FIXED, *pasts],
                              output_names=["logits", *presents], dynamic_axes=axes, dynamo=False,
                              opset_version=min(OPSET, 17))
    except Exception as exc:  # the exporter raises many types; the message says which op
        raise ConversionError(f"ONNX export of the decoder with its KV cache failed: {str(exc)[:300]}") from exc
    return pasts


def onnxruntime_tokens(path: Path, prompt: np.ndarray, kv: tuple[int, int, int], new_tokens: int) -> np.ndarray:
    """Greedy tokens of the exported decoder under onnxruntime in Python: the reference for the page."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    layers, kv_heads, head_dim = kv
    batch, length = prompt.shape
    pasts = [i.name for i in session.get_inputs() if i.name.startswith("past_")]
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
    """A decoder loaded in a page; `call(timer)` runs one generation there."""

    page: BrowserPage
    work_dir: Path
    config: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    presents_bytes: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    def call(self, timer: Any) -> dict[str, Any]:
        """One generation in the page; the timer gets the page's prefill and token stamps (seconds)."""
        timeout_s = EMULATED_TIMEOUT_S if self.facts.get("emulated") else RUN_TIMEOUT_S
        with _emulation_limit(self.facts, timeout_s, "one generation"):
            out = self.page.generate(self.config, timeout_s=timeout_s)
        timer.take_page_stamps(out["prefillMs"] / 1e3, [s / 1e3 for s in out["stampsMs"]], out["totalMs"] / 1e3)
        self.presents_bytes, self.tokens = out["bytes"], out["tokens"]
        return out

    def close(self) -> None:
        """Quit the browser and delete the exported files."""
        try:
            self.page.close()
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def start_generation_run(loaded: Any, inputs: dict[str, Any], provider: str, *, threads: int,
                         new_tokens: int) -> BrowserGeneration:
    """Export the decoder, check it against onnxruntime, start the page and load the model on the provider."""
    check_exportable(loaded)
    if "input_ids" not in inputs:
        raise UnsupportedConfiguration(f"{loaded.name}: no input_ids to prompt with")
    work_dir = Path(private_temp_dir("browser-generation"))
    page = None
    try:
        t0 = time.perf_counter()
        export_decoder_onnx(loaded.model, work_dir / "decoder.onnx")
        facts: dict[str, Any] = {"onnx_export_s": time.perf_counter() - t0, "onnx_exporter": "torchscript",
                                 "export": "decoder with explicit past (f32 KV)"}
        prompt = inputs["input_ids"].numpy().astype(np.int64)
        batch, length = prompt.shape
        feeds = {"input_ids": inputs["input_ids"], "attention_mask": torch.ones(batch, length, dtype=torch.long),
                 "position_ids": torch.arange(length).expand(batch, length).contiguous()}
        write_inputs(feeds, work_dir, "/work/")
        kv = kv_shape(loaded.config)
        facts["reference_tokens"] = onnxruntime_tokens(work_dir / "decoder.onnx", prompt, kv, new_tokens)[0].tolist()
        page = BrowserPage(provider, work_dir)
        probe = page.probe()
        facts.update(browser_facts(page, probe), **check_provider(provider, probe))
        load_timeout_s = EMULATED_TIMEOUT_S if facts["emulated"] else LOAD_TIMEOUT_S
        with _emulation_limit(facts, load_timeout_s, "loading"):
            loaded_page = page.load({"model": "/work/decoder.onnx", "inputs": "/work/inputs.json",
                                     "provider": provider, "numThreads": threads, "webnnDeviceType": "cpu"},
                                    timeout_s=load_timeout_s)
        facts.update(session_create_s=loaded_page["sessionCreateMs"] / 1000.0, num_threads=loaded_page["numThreads"])
        config = {"newTokens": new_tokens, "kvHeads": kv[1], "headDim": kv[2]}
        return BrowserGeneration(page, work_dir, config, facts)
    except BaseException:
        if page is not None:
            page.close()
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
