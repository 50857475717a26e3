"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe), with only the stdlib.

Chromium reads commands on its fd 3 and writes replies on its fd 4, one JSON message per NUL-terminated frame. The
browser runs in its own process group with a parent-death signal (setpriv), and it also quits when the pipe closes,
so it cannot outlive the Python process that started it; `close()` kills the group and removes the profile.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import KitError

DEFAULT_CHROMIUM = "/usr/bin/chromium"
WEBNN_CHROMIUM = Path(__file__).resolve().parent / "webnn" / "node_modules" / ".chromium" / "chromium"
# Quiet, offline, reproducible: no first-run UI, no background traffic, no extensions; only loopback is resolvable.
BASE_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-breakpad", "--disable-crash-reporter", "--mute-audio", "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class BrowserError(KitError):
    """The browser failed to start, answered a command with an error, crashed, or did not answer in time."""


class BrowserTimeout(BrowserError):
    """The browser did not answer a command within its timeout (it may still be computing)."""


def chromium_path() -> str:
    """The Chromium binary to use: $BENCHKIT_CHROMIUM, else /usr/bin/chromium."""
    return os.environ.get("BENCHKIT_CHROMIUM", DEFAULT_CHROMIUM)


def webnn_chromium_path() -> str:
    """The Chromium for WebNN: $BENCHKIT_WEBNN_CHROMIUM, else the build `install_browser.sh --webnn` unpacked, else
    the default one (Debian's, which has no WebNN backend: its runs are skipped with the browser's message)."""
    if "BENCHKIT_WEBNN_CHROMIUM" in os.environ:
        return os.environ["BENCHKIT_WEBNN_CHROMIUM"]
    return str(WEBNN_CHROMIUM) if WEBNN_CHROMIUM.is_file() else chromium_path()


def browser_binary(provider: str) -> str:
    """The Chromium binary a provider runs in."""
    return webnn_chromium_path() if provider == "webnn" else chromium_path()


def chromium_version(binary: str | None = None) -> str:
    """`chromium --version` text (e.g. 'Chromium 156.0.8078.79 built on Debian ...'), '' when it cannot run."""
    try:
        out = subprocess.run([binary or chromium_path(), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def launch_flags(features: list[str], extra: list[str], user_data_dir: str) -> list[str]:
    """The command-line flags: base flags, a fresh profile, the pipe, and all features in ONE --enable-features."""
    flags = [*BASE_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", *extra]
    if features:
        flags.append("--enable-features=" + ",".join(features))
    return flags


def private_temp_dir(kind: str) -> str:
    """A new temporary folder named for this process (benchkit-<kind>-<pid>-...), after removing the folders of
    processes that no longer exist (killed with SIGKILL, when no cleanup could run)."""
    import psutil

    for stale in Path(tempfile.gettempdir()).glob(f"benchkit-{kind}-*-*"):
        pid = stale.name.split("-")[2]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"benchkit-{kind}-{os.getpid()}-")


def _high_fd(fd: int) -> int:
    """A duplicate of fd numbered 10 or more (so that bash can move it to 3 or 4 without clobbering)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


@dataclass
class _Pipes:
    to_browser: int
    from_browser: int
    child_read: int
    child_write: int


def _make_pipes() -> _Pipes:
    child_read, to_browser = os.pipe()
    from_browser, child_write = os.pipe()
    return _Pipes(to_browser, from_browser, _high_fd(child_read), _high_fd(child_write))


class Chromium:
    """One headless Chromium process with a DevTools pipe; use as a context manager or call close()."""

    def __init__(self, *, binary: str | None = None, features: list[str] | None = None,
                 extra_flags: list[str] | None = None, start_timeout_s: float = 60.0) -> None:
        self.binary = binary or chromium_path()
        if not (Path(self.binary).is_file() and os.access(self.binary, os.X_OK)):
            raise BrowserError(f"chromium not found at {self.binary}; run `make browser`")
        self._profile = private_temp_dir("chromium")
        self.flags = launch_flags(list(features or []), list(extra_flags or []), self._profile)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self._closed = False
        pipes = _make_pipes()
        self._start(pipes)
        atexit.register(self.close)
        self.version = self.send("Browser.getVersion", timeout_s=start_timeout_s)

    def _start(self, pipes: _Pipes) -> None:
        prefix = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
        script = (f"exec 3<&{pipes.child_read} 4>&{pipes.child_write} {pipes.child_read}<&- {pipes.child_write}>&-;"
                  ' exec "$@"')
        self._log = tempfile.TemporaryFile(prefix="benchkit-chromium-log-")
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", script, "chromium", *prefix, self.binary, *self.flags],
            pass_fds=(pipes.child_read, pipes.child_write), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        os.close(pipes.child_read)
        os.close(pipes.child_write)
        self._to, self._from = pipes.to_browser, pipes.from_browser

    def log_tail(self, n_chars: int = 2000) -> str:
        """The end of the browser's stdout/stderr, for error messages."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n_chars:]

    def send(self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None,
             timeout_s: float = 60.0) -> dict[str, Any]:
        """Send one DevTools command and wait for its reply; events arriving meanwhile go to `events`."""
        if self._closed:
            raise BrowserError("the browser was closed")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read_message(deadline, method, timeout_s)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')} {reply['error'].get('data', '')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, *, session_id: str | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for (and consume) the first event named `method`, from the page session when one is given."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and (session_id is None or event.get("sessionId") == session_id):
                    return self.events.pop(i).get("params", {})
            self.events.append(self._read_message(deadline, method, timeout_s))

    def _read_message(self, deadline: float, method: str, timeout_s: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserTimeout(f"{method}: no answer from the browser within {timeout_s:g} s")
            ready, _, _ = select.select([self._from], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                raise BrowserError(f"{method}: the browser exited (code {self.process.poll()}): {self.log_tail()}")
            self._buffer += chunk
        frame, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(frame)

    def pids(self) -> list[int]:
        """Process ids of the browser and all its helper processes (renderer, GPU, utility)."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            return [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def close(self) -> None:
        """Quit the browser, kill its process group if it lingers, and remove the temporary profile."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for fd in (self._to, self._from):
            try:
                os.close(fd)  # a closed pipe makes Chromium quit by itself
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # helpers (zygote, renderer, GPU) share the group
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
