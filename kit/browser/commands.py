"""`benchkit browser`: what each browser platform finds on this machine (browser, isolation, adapter, WebNN)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kit.browser.chromium import browser_binary, chromium_version
from kit.browser.page import PROVIDERS, ort_web_version, probe_browser


def add_browser_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `benchkit browser`."""
    parser.add_argument("--platforms", nargs="+", choices=PROVIDERS, default=list(PROVIDERS),
                        help="browser platforms to probe (default: all)")
    parser.add_argument("--json", action="store_true", help="print the full probe of each platform as JSON")


def probe_summary(platform: str) -> dict[str, Any]:
    """One browser platform's probe reduced to what a person checks first; 'error' when the browser could not start."""
    binary = browser_binary(platform)
    summary: dict[str, Any] = {"platform": platform, "binary": binary, "version": chromium_version(binary),
                               "onnxruntime_web": ort_web_version()}
    try:
        probe = probe_browser(platform)
    except Exception as exc:  # reported per platform; the others are still probed
        return {**summary, "error": f"{type(exc).__name__}: {exc}"}
    summary.update(cross_origin_isolated=probe["crossOriginIsolated"], cores=probe["hardwareConcurrency"],
                   timer_resolution_s=probe["timerResolutionMs"] / 1000.0, probe=probe)
    if platform == "webgpu":
        summary["webgpu"] = probe["webgpu"]
    if platform == "webnn":
        summary["webnn"] = probe["webnn"]
    return summary


def _line(summary: dict[str, Any]) -> str:
    head = f"{summary['platform']:7s} {summary['version'] or summary['binary']}"
    if "error" in summary:
        return f"{head}: {summary['error']}"
    text = (f"{head}, onnxruntime-web {summary['onnxruntime_web']}, isolated={summary['cross_origin_isolated']}, "
            f"cores={summary['cores']}, timer {summary['timer_resolution_s'] * 1e6:g} us")
    for key in ("webgpu", "webnn"):
        if key in summary:
            facts = summary[key]
            if not facts["available"]:
                text += f"; {key}: unavailable: {facts['error']}"
            elif key == "webgpu":
                text += f"; webgpu: {facts['vendor']} {facts['architecture']}" + (
                    " (emulated)" if facts["emulated"] else "")
            else:
                text += f"; webnn: {facts['deviceType']} context ok"
    return text


def cmd_browser(args: argparse.Namespace) -> int:
    """Probe each browser platform and print one line per platform (or JSON); 1 if a browser failed to start."""
    summaries = [probe_summary(p) for p in args.platforms]
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
    else:
        for summary in summaries:
            print(_line(summary))
    return 1 if any("error" in s for s in summaries) else 0
