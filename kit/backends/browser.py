"""Browser platforms: onnxruntime-web in headless Chromium on the wasm, webgpu and webnn execution providers.

The model is exported to ONNX with fixed shapes, served from 127.0.0.1 and run in the page; each timed call is ONE
inference whose duration is measured in the page (performance.now()). Text generation runs in the page through
transformers.js on the same onnxruntime-web (kit.browser.generation), each token stamped there. WebGPU without a GPU
runs on SwiftShader and is labelled emulated; WebNN needs a Chromium built with a WebNN backend (Debian's is not: such
runs are skipped).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from kit.backends import register_backend
from kit.backends.base import Backend, Runnable
from kit.errors import UnsupportedConfiguration
from kit.timing import Clock, MemoryTracker

PYTHON_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
PRECISIONS_RUN = ("fp32",)


def _static_check(provider: str = "wasm") -> tuple[bool, str]:
    """Chromium, onnxruntime-web's files and the Python export packages, without starting anything."""
    from kit.browser.chromium import browser_binary, chromium_version
    from kit.browser.page import ort_dist_dir, ort_web_version

    binary = browser_binary(provider)
    if not (Path(binary).is_file() and os.access(binary, os.X_OK)):
        return False, f"chromium not found at {binary}; run `make browser`"
    dist = ort_dist_dir()
    if not (dist / "ort.all.min.mjs").is_file():
        return False, f"onnxruntime-web not found at {dist}; run `make browser`"
    missing = [p for p in PYTHON_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        return False, f"python package(s) {', '.join(missing)} missing; run `make browser`"
    return True, f"{chromium_version(binary) or binary}, onnxruntime-web {ort_web_version()}"


@functools.cache
def _probe(provider: str) -> tuple[bool, str]:
    """Start the page once per process and ask the browser whether the provider works (WebGPU adapter, WebNN)."""
    from kit.browser.page import probe_browser
    from kit.browser.session import check_provider

    ok, what = _static_check(provider)
    if not ok:
        return ok, what
    try:
        facts = check_provider(provider, probe_browser(provider))
    except UnsupportedConfiguration as exc:
        return False, f"{exc} ({what})"
    except Exception as exc:  # a browser that cannot start is an unavailable platform, with the reason
        return False, f"browser probe failed: {type(exc).__name__}: {exc}"
    if provider == "webgpu":
        adapter = facts["webgpu_adapter"]
        label = " (emulated: no GPU, SwiftShader on the CPU)" if facts["emulated"] else ""
        return True, f"{what}; WebGPU adapter {adapter['vendor']} {adapter['architecture']}{label}"
    return True, what


class BrowserBackend(Backend):
    """onnxruntime-web in headless Chromium on one execution provider."""

    provider = "wasm"

    def __init__(self) -> None:
        self._run: Any = None
        self._generation: Any = None

    def available(self) -> tuple[bool, str]:
        """Chromium and onnxruntime-web installed (and, for webgpu/webnn, the browser offering the provider)."""
        return _static_check() if self.provider == "wasm" else _probe(self.provider)

    def supports(self, precision: str, mode: str) -> tuple[bool, str]:
        """fp32 inference only: the exported graph is fp32, and onnxruntime-web does not train."""
        if mode == "training":
            return False, f"{self.name}: onnxruntime-web runs inference only; training in the browser is not supported"
        if mode == "generation" and self.provider == "webnn":
            return False, (f"{self.name}: generation in the page runs on wasm and WebGPU; WebNN's graphs have "
                           "static shapes, and a growing KV cache needs dynamic ones")
        if precision not in PRECISIONS_RUN:
            return False, f"{self.name}: only fp32 is measured (the ONNX export is fp32; {precision} needs a " \
                          "converted graph, not done by the kit)"
        return True, ""

    def device(self) -> str:
        """'chromium/<provider>', with the WebGPU adapter (and 'emulated') once prepared."""
        device = f"chromium/{self.provider}"
        run = self._generation or self._run
        if run is not None and "webgpu_adapter" in run.facts:
            adapter = run.facts["webgpu_adapter"]
            device += f":{adapter['vendor']}-{adapter['architecture']}"
        if run is not None and run.facts.get("emulated"):
            device += " (emulated)"
        return device

    def prepare(
        self, loaded: Any, inputs: dict[str, Any], precision: str, mode: str
    ) -> tuple[Runnable, dict[str, Any]]:
        """Export to ONNX, start server and browser, load the model in the page; the call runs ONE inference."""
        import torch

        from kit.browser.measures import audio_duration_s
        from kit.browser.session import start_browser_run

        ok, reason = self.supports(precision, mode)
        if not ok:
            raise UnsupportedConfiguration(reason)
        self._run = start_browser_run(loaded.model, inputs, self.provider, threads=torch.get_num_threads())
        facts = self._run.facts
        facts["precision_ran"] = "fp32"
        audio_s = audio_duration_s(loaded.family, inputs)
        if audio_s is not None:
            facts["audio_duration_s"] = audio_s  # per item; real_time_factor_p50 = p50 / (batch * this)
            self._items_audio_s = audio_s * _batch(inputs)
        return self._run.call, facts

    def start_generation(self, loaded: Any, inputs: dict[str, Any], new_tokens: int) -> Any:
        """Export the decoder with its KV cache as a model folder, start the page and load it with transformers.js
        (kit.browser.generation); the record's extra says which driver ran (generation_driver)."""
        import torch

        from kit.browser.generation import start_generation_run

        self._generation = start_generation_run(loaded, inputs, self.provider, threads=torch.get_num_threads(),
                                                new_tokens=new_tokens)
        return self._generation

    def clock(self) -> Clock:
        """In-page time of each call (performance.now()), not the Python round trip."""
        from kit.browser.measures import InPageClock

        if self._generation is not None:
            return PageTotalClock()
        if self._run is None:
            raise UnsupportedConfiguration(f"{self.name}: clock() needs prepare() first")
        return InPageClock(self._run.facts, getattr(self, "_items_audio_s", None))

    def memory_tracker(self) -> MemoryTracker:
        """Summed resident memory of the browser's processes."""
        from kit.browser.measures import ChromiumTreeTracker

        run = self._generation or self._run
        if run is None:
            raise UnsupportedConfiguration(f"{self.name}: memory_tracker() needs prepare() first")
        return ChromiumTreeTracker(run.page.chromium.pids)

    def threads(self) -> int | None:
        """onnxruntime-web's wasm thread count as the page reported it."""
        run = self._generation or self._run
        return run.facts.get("num_threads") if run is not None else None

    def close(self) -> None:
        """Quit the browser and delete the exported model (also done at exit)."""
        for run in (self._run, self._generation):
            if run is not None:
                run.close()


class PageTotalClock:
    """The in-page time of one generation (performance.now() around the page's generate call)."""

    def time_call(self, fn: Any) -> float:
        """Seconds the page measured for the call."""
        return float(fn()["totalMs"]) / 1000.0


def _batch(inputs: dict[str, Any]) -> int:
    """Batch size: the first dimension of the first tensor input."""
    return next(int(v.shape[0]) for v in inputs.values() if hasattr(v, "shape"))


@register_backend("wasm")
class WasmBackend(BrowserBackend):
    """onnxruntime-web's WebAssembly provider (SIMD, threads when the page is cross-origin isolated)."""

    provider = "wasm"


@register_backend("webgpu")
class WebGpuBackend(BrowserBackend):
    """onnxruntime-web's WebGPU provider; on a machine without GPU, SwiftShader (emulated, very slow)."""

    provider = "webgpu"


@register_backend("webnn")
class WebNnBackend(BrowserBackend):
    """onnxruntime-web's WebNN provider (CPU device); needs a Chromium with a WebNN backend."""

    provider = "webnn"
