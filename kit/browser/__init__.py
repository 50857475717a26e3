"""Browser platforms' machinery: ONNX export, a loopback server, headless Chromium over DevTools, the runner page.

`kit.backends.browser` registers the platforms wasm, webgpu and webnn on top of `start_browser_run`.
"""

from kit.browser.chromium import BrowserError, Chromium, chromium_path, chromium_version
from kit.browser.export import deviation, export_onnx, reference_output
from kit.browser.measures import ChromiumTreeTracker, InPageClock, PageCall, audio_duration_s
from kit.browser.page import PROVIDERS, BrowserPage, ort_dist_dir, ort_web_version, probe_browser
from kit.browser.session import BrowserRun, start_browser_run

__all__ = ["PROVIDERS", "BrowserError", "BrowserPage", "BrowserRun", "Chromium", "ChromiumTreeTracker",
           "InPageClock", "PageCall", "audio_duration_s", "chromium_path", "chromium_version", "deviation",
           "export_onnx", "ort_dist_dir", "ort_web_version", "probe_browser", "reference_output",
           "start_browser_run"]
