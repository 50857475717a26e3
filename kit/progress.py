"""Sweep progress that a process outside the notebook kernel can read: `benchkit report` shows it in the terminal.

A sweep reports each stored configuration with `report`; when BENCHKIT_PROGRESS_FILE names a file (the report
command sets it for the kernels it starts), the state is written there as JSON, replacing the previous state
atomically. `Watcher` polls that file from another thread and prints each change as one line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROGRESS_ENV = "BENCHKIT_PROGRESS_FILE"


def report(task: str, done: int, total: int, current: str, started: float, fraction: float | None = None) -> None:
    """Write the state of a task (done of total, what it is doing now, an ETA from the pace so far: `fraction` of
    the work, default done / total) to the file BENCHKIT_PROGRESS_FILE names; nothing without it."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    elapsed = time.monotonic() - started
    fraction = done / total if fraction is None and total else fraction
    eta = elapsed / fraction * (1 - fraction) if fraction else None
    state = {"task": task, "done": done, "total": total, "current": current, "elapsed_s": elapsed, "eta_s": eta}
    partial = Path(f"{path}.{os.getpid()}.tmp")
    try:
        partial.write_text(json.dumps(state))
        partial.replace(path)
    except OSError:  # progress is a courtesy: never a reason for a sweep to fail
        partial.unlink(missing_ok=True)


def read(path: str | Path) -> dict[str, Any] | None:
    """The last state written to the file, or None (no file yet, or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def duration(seconds: float | None) -> str:
    """Seconds as '45 s', '3 min 20 s' or '1 h 05 min'; '?' for None."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe(state: dict[str, Any]) -> str:
    """One line for a state: task, done/total, what it is doing now, time left."""
    return (f"{state['task']}: {state['done']}/{state['total']} configurations done ({state['current']}), "
            f"about {duration(state.get('eta_s'))} left")


class Watcher:
    """Polls a progress file in a background thread and passes each new state's line to `echo`."""

    def __init__(self, path: str | Path, echo: Callable[[str], None], interval_s: float = 5.0) -> None:
        self.path, self.echo, self.interval_s = Path(path), echo, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last: dict[str, Any] | None = None

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # the last state, if it came after the last poll

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        state = read(self.path)
        if state and state != self._last:
            self._last = state
            self.echo(describe(state))
