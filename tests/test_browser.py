"""Browser platforms: unit checks everywhere, real runs in headless Chromium where it is installed (`make browser`)."""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from kit.backends import get_backend
from kit.backends.browser import _probe, _static_check
from kit.browser.chromium import DEFAULT_CHROMIUM, chromium_version
from kit.browser.commands import cmd_browser
from kit.browser.measures import InPageClock, PageCall, RunningMedian, audio_duration_s
from kit.browser.server import StaticServer
from kit.config import Job
from kit.runners.worker import run_job

BROWSER_OK, BROWSER_WHY = _static_check()
needs_browser = pytest.mark.skipif(not BROWSER_OK, reason=f"browser platforms unavailable: {BROWSER_WHY}")
FAST = {"time_budget_s": 0.3, "min_samples": 5, "warmup_iters": 1}


def _job(model: str, platform: str, **kwargs) -> Job:
    return Job(run_id="test-browser", model=model, size="tiny", mode="inference", platform=platform,
               precision="fp32", batch_size=1, **{**FAST, **kwargs})


def _chromium_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]


def test_supports_fp32_inference_only():
    backend = get_backend("wasm")
    assert backend.supports("fp32", "inference") == (True, "")
    ok, reason = backend.supports("fp16", "inference")
    assert not ok and "only fp32" in reason
    ok, reason = backend.supports("fp32", "training")
    assert not ok and "inference only" in reason


def test_unavailable_without_chromium_names_path_and_fix(monkeypatch):
    monkeypatch.setenv("BENCHKIT_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("BENCHKIT_WEBNN_CHROMIUM", "/nonexistent/chromium")
    _probe.cache_clear()
    try:
        for name in ("wasm", "webgpu", "webnn"):
            ok, reason = get_backend(name).available()
            assert not ok and reason == "chromium not found at /nonexistent/chromium; run `make browser`"
    finally:
        _probe.cache_clear()


def test_server_is_loopback_with_isolation_headers_and_mime_types(tmp_path):
    (tmp_path / "a.mjs").write_text("export {}")
    (tmp_path / "b.wasm").write_bytes(b"\0asm")
    with StaticServer({"work": tmp_path}) as server:
        assert server.origin.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url("work", "a.mjs")) as reply:
            assert reply.headers["Content-Type"] == "text/javascript"
            assert reply.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert reply.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(server.url("work", "b.wasm")) as reply:
            assert reply.headers["Content-Type"] == "application/wasm"


def test_running_median_matches_statistics():
    values = list(np.random.default_rng(0).exponential(size=101))
    running = RunningMedian()
    for i, v in enumerate(values, 1):
        assert running.add(v) == pytest.approx(statistics.median(values[:i]))


def test_in_page_clock_returns_page_time_and_keeps_overhead_and_rtf():
    facts: dict = {}
    clock = InPageClock(facts, items_audio_s=2.0)
    calls = [PageCall(0.010, 0.013, "logits", lambda: np.zeros(1)), PageCall(0.020, 0.021, "logits", np.ones),
             PageCall(0.030, 0.035, "logits", np.ones)]
    assert [clock.time_call(lambda c=c: c) for c in calls] == [0.010, 0.020, 0.030]
    assert facts["timed_calls_after_first"] == 2  # the cold first call is left out of both statistics
    assert facts["python_round_trip_overhead_p50_s"] == pytest.approx(0.003)
    assert facts["real_time_factor_p50"] == pytest.approx(0.025 / 2.0)
    with pytest.raises(TypeError, match="PageCall"):
        clock.time_call(lambda: 0.5)


def test_page_call_fetches_output_only_when_read():
    fetched = []
    call = PageCall(0.001, 0.002, "logits", lambda: fetched.append(1) or np.arange(3.0))
    assert not fetched and list(call) == ["logits"]
    assert dict(call)["logits"].tolist() == [0.0, 1.0, 2.0] and fetched == [1]


def test_audio_duration_is_samples_over_sampling_rate():
    assert audio_duration_s("wav2vec2", {"input_values": torch.zeros(2, 1600)}) == pytest.approx(0.1)
    assert audio_duration_s("whisper", {"input_features": torch.zeros(1, 80, 3000)}) == pytest.approx(30.0)
    assert audio_duration_s("bert", {"input_ids": torch.zeros(1, 16)}) is None


@needs_browser
def test_wasm_runs_bert_end_to_end_with_in_page_timing():
    record = run_job(_job("bert", "wasm").to_dict())
    assert record["status"] == "ok", record["reason"]
    extra = record["extra"]
    assert record["device"] == "chromium/wasm"
    assert len(record["samples_s"]) == record["n_samples"] >= 5
    assert extra["deviation_vs_onnxruntime"]["ok"] and extra["deviation"]["rel_l2"] < 1e-4
    assert extra["browser"].startswith("Chrome/") and extra["onnxruntime_web"] == "1.30.0"
    assert extra["cross_origin_isolated"] is True and extra["num_threads"] == record["threads"] >= 1
    assert extra["emulated"] is False and extra["python_round_trip_overhead_p50_s"] > 0
    assert record["memory_method"] == "chromium-process-tree-rss-sampler" and record["peak_memory_bytes"] > 0
    assert not _chromium_children()


@needs_browser
def test_wasm_audio_model_records_real_time_factor():
    record = run_job(_job("wav2vec2", "wasm").to_dict())
    assert record["status"] == "ok", record["reason"]
    extra = record["extra"]
    assert extra["audio_duration_s"] == pytest.approx(1600 / 16000)
    rtf = extra["real_time_factor_p50"]
    assert rtf == pytest.approx(statistics.median(record["samples_s"]) / 0.1, rel=0.5)
    assert extra["deviation"]["rel_l2"] < 1e-4


@needs_browser
@pytest.mark.skipif("Debian" not in chromium_version(DEFAULT_CHROMIUM), reason="needs Debian's chromium (no WebNN)")
def test_webnn_in_debians_chromium_is_skipped_with_the_browsers_message(monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEBNN_CHROMIUM", DEFAULT_CHROMIUM)
    _probe.cache_clear()
    try:
        record = run_job(_job("bert", "webnn").to_dict())
    finally:
        _probe.cache_clear()
    assert record["status"] == "skipped"
    assert "NotSupportedError: Failed to execute 'createContext' on 'ML'" in record["reason"]


@needs_browser
def test_webnn_runs_a_vision_model_where_the_browser_has_webnn():
    ok, reason = get_backend("webnn").available()
    if not ok:
        pytest.skip(f"no WebNN-capable Chromium (scripts/install_browser.sh --webnn): {reason}")
    record = run_job(_job("vit", "webnn").to_dict())
    assert record["status"] == "ok", record["reason"]
    assert record["extra"]["webnn"]["available"] and record["extra"]["deviation"]["rel_l2"] < 1e-4


@needs_browser
def test_browser_dies_with_the_process_that_started_it():
    script = ("import tempfile, time; from kit.browser.page import BrowserPage; "
              "p = BrowserPage('wasm', tempfile.mkdtemp()); print(p.chromium.process.pid, flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
    pid = int(child.stdout.readline())
    helpers = psutil.Process(pid).children(recursive=True)
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 15
    alive = [pid, *(h.pid for h in helpers)]
    while time.monotonic() < deadline and (alive := [p for p in alive if _running(p)]):
        time.sleep(0.2)
    assert not alive, f"browser processes left running: {alive}"


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@needs_browser
def test_webgpu_runs_and_labels_an_emulated_adapter():
    ok, reason = get_backend("webgpu").available()
    if not ok:
        pytest.skip(reason)
    record = run_job(_job("bert", "webgpu", time_budget_s=0.2).to_dict())
    assert record["status"] == "ok", record["reason"]
    extra = record["extra"]
    adapter = extra["webgpu_adapter"]
    assert extra["emulated"] == adapter["emulated"]
    if adapter["architecture"] == "swiftshader":
        assert extra["emulated"] is True and record["device"].endswith("(emulated)")
    assert extra["deviation"]["rel_l2"] < 1e-3


def test_browser_command_reports_a_missing_chromium(monkeypatch, capsys):
    monkeypatch.setenv("BENCHKIT_CHROMIUM", "/nonexistent/chromium")
    assert cmd_browser(argparse.Namespace(platforms=["wasm"], json=False)) == 1
    assert "chromium not found at /nonexistent/chromium; run `make browser`" in capsys.readouterr().out


@needs_browser
def test_browser_command_probes_the_wasm_page(capsys):
    assert cmd_browser(argparse.Namespace(platforms=["wasm"], json=False)) == 0
    assert "isolated=True" in capsys.readouterr().out


def test_a_model_neither_exporter_handles_is_a_conversion_error_naming_both(tmp_path, monkeypatch):
    from kit.browser import export
    from kit.errors import ConversionError

    def refuse(wrapper, args, names, path, dynamo):
        raise RuntimeError(f"no rule ({'dynamo' if dynamo else 'torchscript'})")

    monkeypatch.setattr(export, "_export", refuse)
    model = torch.nn.Linear(4, 2)
    with pytest.raises(ConversionError, match=r"torch.export \(dynamo\): RuntimeError: no rule .*torchscript: Runtime"):
        export.export_onnx(model, {"input": torch.ones(1, 4)}, tmp_path / "m.onnx")


def test_an_export_failure_names_its_real_cause_and_prints_nothing(tmp_path, capfd):
    """torch.histc has no ONNX translation: the reason names the operator and the innermost cause of each exporter
    (not torch.onnx's coloured 'step 3/3' advice), on one line, and the graph the TorchScript exporter dumps on
    failure does not reach the terminal."""
    from kit.browser import export
    from kit.errors import ConversionError

    class Histogram(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.histc(x, bins=4) + 1

    with pytest.raises(ConversionError) as failure:
        export.export_onnx(Histogram(), {"x": torch.randn(8)}, tmp_path / "m.onnx")
    message = str(failure.value)
    assert "\n" not in message and "\x1b" not in message and "step 3/3" not in message
    assert "torch.export (dynamo): aten.histc" in message and "torchscript: UnsupportedOperatorError" in message
    out, err = capfd.readouterr()
    assert "graph" not in out + err and "aten::histc" not in out + err


def test_export_error_is_the_innermost_cause_after_the_failing_operator():
    from kit.browser.export import export_error

    try:
        try:
            raise NotImplementedError("no kernel\nsecond line")
        except NotImplementedError as inner:
            raise ValueError("call_function[target=torch.ops.aten.diff.default]") from inner
    except ValueError as outer:
        assert export_error(outer) == "aten.diff.default: NotImplementedError: no kernel"
    assert export_error(RuntimeError("\x1b[96mplain\x1b[0m")) == "RuntimeError: plain"


def test_the_report_check_finds_what_a_reader_would_see_broken(tmp_path):
    from kit.browser.chromium import chromium_path
    from kit.browser.report_check import check_pages

    if not Path(chromium_path()).is_file():
        pytest.skip(f"no Chromium at {chromium_path()}")
    good, bad = tmp_path / "good.html", tmp_path / "bad.html"
    good.write_text('<html><body><a href="bad.html">next</a><a href="https://example.org/">out</a></body></html>')
    bad.write_text('<html><body><img src="missing.png"><a href="gone.html">gone</a>'
                   '<script>console.error("planted"); throw new Error("thrown");</script></body></html>')
    problems = check_pages([good, bad])
    assert [p.split(":")[0] for p in problems] == ["bad.html"] * 5, problems
    text = "\n".join(problems)
    for expected in ("image not loaded: ", "broken link: ", "console error: planted", "uncaught exception: Error: "
                     "thrown", "ERR_FILE_NOT_FOUND"):
        assert expected in text
