"""`benchkit browser`: what each browser platform finds on this machine (browser, isolation, adapter, WebNN)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kit.browser.chromium import browser_binary, chromium_version
from kit.browser.page import PROVIDERS, ort_web_version, probe_browser


def add_browser_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `benchkit browser`."""
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS),
                        help="execution providers to probe (default: all)")
    parser.add_argument("--json", action="store_true", help="print the full probe of each provider as JSON")


def probe_summary(provider: str) -> dict[str, Any]:
    """One provider's probe reduced to what a person checks first; 'error' when the browser could not start."""
    binary = browser_binary(provider)
    summary: dict[str, Any] = {"provider": provider, "binary": binary, "version": chromium_version(binary),
                               "onnxruntime_web": ort_web_version()}
    try:
        probe = probe_browser(provider)
    except Exception as exc:  # reported per provider; the others are still probed
        return {**summary, "error": f"{type(exc).__name__}: {exc}"}
    summary.update(cross_origin_isolated=probe["crossOriginIsolated"], cores=probe["hardwareConcurrency"],
                   timer_resolution_s=probe["timerResolutionMs"] / 1000.0, probe=probe)
    if provider == "webgpu":
        summary["webgpu"] = probe["webgpu"]
    if provider == "webnn":
        summary["webnn"] = probe["webnn"]
    return summary


def _line(summary: dict[str, Any]) -> str:
    head = f"{summary['provider']:7s} {summary['version'] or summary['binary']}"
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
    """Probe each provider's browser and print one line per provider (or JSON); 1 if a browser failed to start."""
    summaries = [probe_summary(p) for p in args.providers]
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
    else:
        for summary in summaries:
            print(_line(summary))
    return 1 if any("error" in s for s in summaries) else 0
