"""The benchmark page: a loopback server plus headless Chromium showing page/index.html, driven over DevTools.

`BrowserPage(provider, work_dir)` starts both, waits for runner.mjs, and offers probe / load / run / last_output.
Each provider gets the flags it needs: WebGPU `--enable-unsafe-webgpu`, WebNN its feature (in one --enable-features).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kit.browser.chromium import BrowserError, Chromium, browser_binary
from kit.browser.server import StaticServer
from kit.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
PAGE_DIR = PACKAGE_DIR / "page"
NPM_DIR = PACKAGE_DIR / "node_modules"
PROVIDERS: tuple[str, ...] = ("wasm", "webgpu", "webnn")
PROVIDER_FEATURES: dict[str, list[str]] = {"wasm": [], "webgpu": [], "webnn": ["WebMachineLearningNeuralNetwork"]}
PROVIDER_FLAGS: dict[str, list[str]] = {"wasm": [], "webgpu": ["--enable-unsafe-webgpu"], "webnn": []}
# The bundle an application would ship for each provider: the wasm-only one avoids the JSEP build's asyncify cost.
PROVIDER_BUNDLES: dict[str, str] = {"wasm": "ort.wasm.min.mjs", "webgpu": "ort.webgpu.min.mjs", "webnn": "ort.min.mjs"}
READY_TIMEOUT_S = 120.0


def ort_dist_dir() -> Path:
    """onnxruntime-web's dist folder: $BENCHKIT_ORT_WEB_DIST, else kit/browser/node_modules/onnxruntime-web/dist."""
    default = NPM_DIR / "onnxruntime-web" / "dist"
    return Path(os.environ.get("BENCHKIT_ORT_WEB_DIST", default))


TRANSFORMERS_JS_DIST = NPM_DIR / "@huggingface" / "transformers" / "dist"  # served at /tjs/ for text generation


def ort_web_version() -> str:
    """The installed onnxruntime-web version from its package.json ('' when missing)."""
    package = ort_dist_dir().parent / "package.json"
    return json.loads(package.read_text()).get("version", "") if package.is_file() else ""


class BrowserPage:
    """Chromium showing the runner page for one execution provider; close() (or the with-block) ends both."""

    def __init__(self, provider: str, work_dir: Path | str, *, binary: str | None = None,
                 timeout_s: float = READY_TIMEOUT_S) -> None:
        if provider not in PROVIDERS:
            raise ConfigError(f"unknown browser provider {provider!r}; known: {', '.join(PROVIDERS)}")
        self.provider = provider
        self.server = StaticServer({"page": PAGE_DIR, "ort": ort_dist_dir(), "tjs": TRANSFORMERS_JS_DIST,
                                    "work": Path(work_dir)})
        try:
            self.chromium = Chromium(binary=binary or browser_binary(provider), features=PROVIDER_FEATURES[provider],
                                     extra_flags=PROVIDER_FLAGS[provider])
            self._open(timeout_s)
        except BaseException:
            self.server.close()
            if hasattr(self, "chromium"):
                self.chromium.close()
            raise

    def _open(self, timeout_s: float) -> None:
        target = self.chromium.send("Target.createTarget", {"url": "about:blank"})
        attached = self.chromium.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime"):
            self.chromium.send(f"{domain}.enable", session_id=self._session)
        self.bundle = PROVIDER_BUNDLES[self.provider]
        url = self.server.url("page", f"index.html?bundle={self.bundle}")
        self.chromium.send("Page.navigate", {"url": url}, session_id=self._session)
        self.chromium.wait_event("Page.loadEventFired", session_id=self._session, timeout_s=timeout_s)
        wait = "new Promise(r => { const t = () => window.bench ? r(true) : setTimeout(t, 20); t(); })"
        self.evaluate(wait, timeout_s=timeout_s)

    def evaluate(self, expression: str, *, timeout_s: float = 60.0) -> Any:
        """Value of a JavaScript expression (promises awaited); BrowserError with the page's message if it throws."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        reply = self.chromium.send("Runtime.evaluate", params, session_id=self._session, timeout_s=timeout_s)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            raise BrowserError(f"page error: {text}{self._console_tail()}")
        return reply.get("result", {}).get("value")

    def _console_tail(self, n: int = 5) -> str:
        lines = self.console_messages()
        return ("; console: " + " | ".join(lines[-n:])) if lines else ""

    def console_messages(self) -> list[str]:
        """Messages the page logged so far (onnxruntime-web warnings such as nodes falling back to the CPU)."""
        return [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", []))
                for e in self.chromium.events if e.get("method") == "Runtime.consoleAPICalled"]

    def probe(self, webnn_device_type: str = "cpu") -> dict[str, Any]:
        """Browser facts: isolation, cores, timer resolution, WebGPU adapter and WebNN context (or why not)."""
        return self.evaluate(f"window.bench.probe({json.dumps(webnn_device_type)})")

    def load(self, config: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """Create the onnxruntime-web session (model, inputs manifest, provider, threads); returns page facts."""
        return self.evaluate(f"window.bench.load({json.dumps(config)})", timeout_s=timeout_s)

    def run(self, *, timeout_s: float) -> float:
        """One inference; seconds measured in the page with performance.now()."""
        return float(self.evaluate("window.bench.run()", timeout_s=timeout_s)) / 1000.0

    def generate(self, config: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """One greedy generation in the page (runner.mjs generate): prefill, token stamps and total in ms."""
        return self.evaluate(f"window.bench.generate({json.dumps(config)})", timeout_s=timeout_s)

    def last_output(self, *, timeout_s: float = 300.0) -> np.ndarray:
        """The last run's output as a numpy array (base64 over the DevTools pipe: a large output takes a while)."""
        out = self.evaluate("window.bench.lastOutput()", timeout_s=timeout_s)
        dtype = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}[out["dtype"]]
        return np.frombuffer(base64.b64decode(out["b64"]), dtype=dtype).reshape(out["shape"]).copy()

    def close(self) -> None:
        """Quit the browser and stop the server."""
        try:
            self.chromium.close()
        finally:
            self.server.close()

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()




def probe_browser(provider: str, *, binary: str | None = None, webnn_device_type: str = "cpu") -> dict[str, Any]:
    """Start the page for a provider once and return its probe (WebGPU adapter, WebNN context, isolation...)."""
    with tempfile.TemporaryDirectory(prefix="benchkit-probe-") as work:
        with BrowserPage(provider, work, binary=binary) as page:
            return {**page.probe(webnn_device_type), "browser": page.chromium.version.get("product", "")}


__all__ = ["PROVIDERS", "BrowserError", "BrowserPage", "ort_dist_dir", "ort_web_version", "probe_browser"]
