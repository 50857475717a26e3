"""Open pages of the report in headless Chromium and list what a reader would find broken: uncaught exceptions and
console errors, resources of the report that failed to load, links to files that do not exist, images that did not
load. Resources on other hosts (a CDN's MathJax or require.js) are not the report's: their failures are left out,
since a machine without internet cannot tell a broken page from a missing network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from kit.browser.chromium import Chromium

LOAD_TIMEOUT_S = 60.0
IMAGES = "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
LINKS = "[...document.querySelectorAll('a[href]')].map(a => a.href)"


def _external(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https")


def _event_problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and failed loads among a page's DevTools events."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            problems.append(f"uncaught exception: {text.splitlines()[0] if text else '?'}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            problems.append(f"console error: {args[:200]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            if not _external(entry.get("url", "")):
                text = f"{entry.get('text', '')[:200]} {entry.get('url', '')}".strip()
                problems.append(f"{entry.get('source', 'log')} error: {text}")
    return problems


def _link_problems(links: list[str]) -> list[str]:
    """Links to local files that do not exist."""
    missing = []
    for link in links:
        parsed = urlparse(link)
        if parsed.scheme == "file" and not Path(unquote(parsed.path)).exists():
            missing.append(f"broken link: {unquote(parsed.path)}")
    return missing


def _page_problems(browser: Chromium, path: Path, timeout_s: float) -> list[str]:
    """What is broken in one page, opened in a tab of its own."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable", session_id=session)
    browser.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session_id=session)
    browser.wait_event("Page.loadEventFired", session_id=session, timeout_s=timeout_s)

    def evaluate(expression: str) -> Any:
        reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session_id=session)
        return reply.get("result", {}).get("value")

    found = [f"image not loaded: {src}" for src in evaluate(IMAGES) or []]
    found += _link_problems(evaluate(LINKS) or [])
    found += _event_problems([e for e in browser.events if e.get("sessionId") == session])
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    browser.send("Target.closeTarget", {"targetId": target})
    return found


def check_pages(paths: list[Path], *, binary: str | None = None, timeout_s: float = LOAD_TIMEOUT_S) -> list[str]:
    """'page: problem' for everything broken in the given HTML files, opened one after the other (empty: all good)."""
    with Chromium(binary=binary) as browser:
        return [f"{Path(path).name}: {problem}" for path in paths
                for problem in _page_problems(browser, Path(path), timeout_s)]
