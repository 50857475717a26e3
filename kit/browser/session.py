"""One model in one browser: export to ONNX, serve it, load it on an execution provider, and time single runs.

`start_browser_run(...)` does everything up to a loaded session and returns a `BrowserRun` whose `call()` triggers
ONE inference in the page. The first call also fetches the page's output and records its deviation from onnxruntime
(Python) on the same file. `close()` (also run when the BrowserRun is garbage, at exit, and on SIGTERM) quits the
browser and deletes the files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kit.browser.chromium import BrowserTimeout, chromium_version, private_temp_dir
from kit.browser.export import deviation, export_onnx, reference_output, write_inputs
from kit.browser.measures import PageCall
from kit.browser.page import BrowserPage, ort_web_version
from kit.errors import UnsupportedConfiguration
from kit.timing import load_average_1m

LOAD_TIMEOUT_S = float(os.environ.get("BENCHKIT_BROWSER_LOAD_TIMEOUT_S", 300))
RUN_TIMEOUT_S = float(os.environ.get("BENCHKIT_BROWSER_RUN_TIMEOUT_S", 300))
# SwiftShader runs WebGPU 50-200x slower than wasm: a model that is slow there becomes a skipped record, not a hang
EMULATED_TIMEOUT_S = float(os.environ.get("BENCHKIT_EMULATED_WEBGPU_TIMEOUT_S", 120))
DEVIATION_TOLERANCE = 1e-3  # rel_l2 of an fp32 result against onnxruntime on the CPU


@dataclass
class BrowserRun:
    """A loaded model in a page; `call()` runs it once, `facts` holds everything recorded about the run."""

    page: BrowserPage
    work_dir: Path
    reference: np.ndarray
    output_name: str
    facts: dict[str, Any] = field(default_factory=dict)
    run_timeout_s: float = RUN_TIMEOUT_S
    _checked: bool = False

    def call(self) -> PageCall:
        """One inference in the page: in-page seconds, the Python round trip around it, and the output on demand."""
        start = time.perf_counter()
        with _emulation_limit(self.facts, self.run_timeout_s, "one inference"):
            in_page_s = self.page.run(timeout_s=self.run_timeout_s)
        round_trip_s = time.perf_counter() - start
        if not self._checked:
            self._checked = True
            self.check_output()
        return PageCall(in_page_s, round_trip_s, self.output_name, self.page.last_output)

    def check_output(self) -> dict[str, float]:
        """Compare the page's last output with onnxruntime (Python) on the same file and inputs.

        Stored as facts['deviation_vs_onnxruntime']; the runner's extra['deviation'] compares with fp32 torch.
        """
        found = deviation(self.page.last_output().astype(np.float32), self.reference.astype(np.float32))
        self.facts["deviation_vs_onnxruntime"] = {**found, "reference": "onnxruntime python cpu, same ONNX file",
                                                  "tolerance_rel_l2": DEVIATION_TOLERANCE,
                                                  "ok": found["rel_l2"] <= DEVIATION_TOLERANCE}
        return found

    def __post_init__(self) -> None:
        # Closes the browser when the run is garbage (e.g. after an in-process measurement) or at exit, whichever
        # comes first; the finalizer holds the page, not the run, so it does not keep the run alive.
        self._finalizer = weakref.finalize(self, cleanup, self.page, self.work_dir)

    def close(self) -> None:
        """Quit the browser, stop the server and delete the exported files."""
        self._finalizer()


def cleanup(page: BrowserPage, work_dir: Path) -> None:
    """Quit the page's browser and server and delete the run's exported files."""
    try:
        page.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@contextlib.contextmanager
def _emulation_limit(facts: dict[str, Any], timeout_s: float, what: str) -> Iterator[None]:
    """Turn a timeout on an emulated adapter into UnsupportedConfiguration (a skipped record with the reason)."""
    try:
        yield
    except BrowserTimeout as exc:
        if not facts.get("emulated"):
            raise
        raise UnsupportedConfiguration(
            f"emulated WebGPU (SwiftShader, no GPU) needed over {timeout_s:g} s for {what} of this model; skipped "
            "(BENCHKIT_EMULATED_WEBGPU_TIMEOUT_S sets the limit)") from exc


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit (so atexit cleanup runs) when nobody else handles it, e.g. in a sweep child."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def check_provider(provider: str, probe: dict[str, Any]) -> dict[str, Any]:
    """Provider facts from a page probe; UnsupportedConfiguration with the browser's own message when absent."""
    if provider == "webgpu":
        gpu = probe["webgpu"]
        if not gpu["available"]:
            raise UnsupportedConfiguration(f"this browser offers no WebGPU adapter: {gpu['error']}")
        return {"webgpu_adapter": gpu, "emulated": bool(gpu["emulated"])}
    if provider == "webnn":
        nn = probe["webnn"]
        if not nn["available"]:
            raise UnsupportedConfiguration(f"this browser has no usable WebNN: {nn['error']}")
        return {"webnn": nn, "emulated": False}
    return {"emulated": False}


def browser_facts(page: BrowserPage, probe: dict[str, Any]) -> dict[str, Any]:
    """Browser and runtime provenance: versions, isolation, cores, timer resolution, load average."""
    return {"browser": page.chromium.version.get("product", ""), "browser_binary": page.chromium.binary,
            "browser_build": chromium_version(page.chromium.binary), "user_agent": probe["userAgent"],
            "onnxruntime_web": probe["ortVersions"].get("web", ort_web_version()), "provider": page.provider,
            "onnxruntime_web_bundle": page.bundle,
            "cross_origin_isolated": probe["crossOriginIsolated"], "hardware_concurrency": probe["hardwareConcurrency"],
            "timer_resolution_s": probe["timerResolutionMs"] / 1000.0, "load_avg_1m_at_prepare": load_average_1m(),
            "browser_flags": [f for f in page.chromium.flags if not f.startswith("--user-data-dir")]}


def start_browser_run(model: Any, inputs: dict[str, Any], provider: str, *, threads: int,
                      binary: str | None = None, webnn_device_type: str = "cpu",
                      load_timeout_s: float = LOAD_TIMEOUT_S, run_timeout_s: float = RUN_TIMEOUT_S) -> BrowserRun:
    """Export the model, start server and browser, check the provider, and load the model in the page."""
    work_dir = Path(private_temp_dir("browser"))
    page = None
    try:
        info = export_onnx(model, inputs, work_dir / "model.onnx")
        reference = reference_output(info.path, inputs)
        write_inputs(inputs, work_dir, "/work/")
        _exit_on_sigterm()
        page = BrowserPage(provider, work_dir, binary=binary)
        probe = page.probe(webnn_device_type)
        facts = {**browser_facts(page, probe), **check_provider(provider, probe), **info.facts()}
        config = {"model": "/work/model.onnx", "inputs": "/work/inputs.json", "provider": provider,
                  "numThreads": threads, "webnnDeviceType": webnn_device_type,
                  "externalData": [{"path": f, "data": f"/work/{f}"} for f in info.external_data]}
        if facts["emulated"]:
            load_timeout_s = min(load_timeout_s, EMULATED_TIMEOUT_S)
            run_timeout_s = min(run_timeout_s, EMULATED_TIMEOUT_S)
        facts.update(load_timeout_s=load_timeout_s, run_timeout_s=run_timeout_s)
        t0 = time.perf_counter()
        with _emulation_limit(facts, load_timeout_s, "loading"):
            loaded = page.load(config, timeout_s=load_timeout_s)
        facts.update(page_load_s=time.perf_counter() - t0, session_create_s=loaded["sessionCreateMs"] / 1000.0,
                     num_threads=loaded["numThreads"], wasm_files=[Path(f).name for f in loaded["wasmFiles"]])
        run = BrowserRun(page, work_dir, reference, info.output_name, facts, run_timeout_s)
    except BaseException:
        if page is not None:
            page.close()
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return run
