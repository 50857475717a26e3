"""Run one function in a child process with a timeout and an optional memory limit, without busy-waiting.

Children are forked from a fork server that imported torch and transformers once (kit.runners.preload), so a child
starts in a fraction of a second instead of importing them again; the fork server itself never runs torch ops, so its
children start with no thread pool or CUDA context to inherit. Each child takes the parent's current environment and
working directory, as a spawned one would. BENCHKIT_CHILD_START=spawn starts every child from scratch instead.

The parent blocks in `Connection.poll(timeout)` (a select() on the pipe), so it takes no CPU from the measured child.
A child that raises, hangs, is killed (e.g. by the OOM killer) or exits early becomes a `ChildOutcome` with a reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import psutil

START_METHODS = ("forkserver", "spawn")
PRELOAD = ["kit.runners.preload"]


def start_method() -> str:
    """How children start: BENCHKIT_CHILD_START (forkserver or spawn), forkserver by default where the OS has it."""
    method = os.environ.get("BENCHKIT_CHILD_START", "forkserver")
    if method not in START_METHODS:
        raise ValueError(f"BENCHKIT_CHILD_START={method!r}: expected one of {', '.join(START_METHODS)}")
    if method == "forkserver" and method not in mp.get_all_start_methods():
        return "spawn"
    return method


def _context() -> Any:
    method = start_method()
    context = mp.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


@dataclass(frozen=True)
class ChildOutcome:
    """What came back from the child: ok with a value, or failed with a reason."""

    ok: bool
    value: Any = None
    reason: str = ""
    exitcode: int | None = None


def resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


PARENT_PID = "BENCHKIT_PARENT_PID"  # set in a child's environment: the process whose death ends the child
WATCH_INTERVAL_S = 0.5


def child_environment() -> dict[str, str]:
    """The environment a child gets: the parent's, plus the parent's pid for guard_parent."""
    return {**os.environ, PARENT_PID: str(os.getpid())}


def guard_parent() -> None:
    """End this child soon after the sweep's parent is gone, however it died (kill -9 included).

    PR_SET_PDEATHSIG covers the direct parent; a child forked by multiprocessing's fork server has the fork server as
    its parent, which lives as long as any child holds its 'alive' pipe. So the child closes its copy of that pipe
    (the fork server then ends with the sweep's parent) and a daemon thread checks every half second that the sweep's
    parent (BENCHKIT_PARENT_PID) still runs, killing the child when it does not."""
    die_with_parent()
    from multiprocessing import forkserver

    alive_fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        with contextlib.suppress(OSError):
            os.close(alive_fd)
        forkserver._forkserver._forkserver_alive_fd = None
    pid = int(os.environ.get(PARENT_PID, "0"))
    if pid <= 0:
        return

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            try:
                gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="benchkit-parent-watch", daemon=True).start()


def limit_text(memory_limit_bytes: int) -> str:
    """'a 0.30 GiB memory limit (--memory-limit-gb)': how a failure names the limit it ran under."""
    return f"a {memory_limit_bytes / 2**30:.2f} GiB memory limit (--memory-limit-gb, memory_limit_bytes)"


def failure_message(exc: BaseException, memory_limit_bytes: int | None) -> str:
    """What the parent stores for a child's exception: its type and message, the last frames, and, first, the
    memory limit when one was set (under a limit, an import or an allocation fails with messages that never say so)."""
    tail = "".join(traceback.format_exception(exc)[-3:]).strip()
    limit = f"under {limit_text(memory_limit_bytes)}: " if memory_limit_bytes else ""
    return f"{limit}{type(exc).__name__}: {exc}\n{tail}"


def enter_child(environment: dict[str, str], cwd: str, memory_limit_bytes: int | None) -> None:
    """In a fresh child: the parent's environment and folder, death with the parent, and the memory limit."""
    os.environ.clear()
    os.environ.update(environment)
    guard_parent()
    os.chdir(cwd)
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


def _child_main(conn: Any, target: str, payload: Any, memory_limit_bytes: int | None,
                environment: dict[str, str], cwd: str) -> None:
    enter_child(environment, cwd, memory_limit_bytes)
    try:
        value = resolve(target)(payload)
        conn.send(("ok", value))
    except BaseException as exc:  # everything, so that the parent gets the message instead of a dead pipe
        conn.send(("error", failure_message(exc, memory_limit_bytes)))
    finally:
        conn.close()


def _death_reason(exitcode: int | None, memory_limit_bytes: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (likely out of memory: the OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"child process killed by {name}{hint}"
    limit = f" under {limit_text(memory_limit_bytes)}" if memory_limit_bytes else ""
    return f"child process exited with code {exitcode} before sending a result{limit}"


def run_in_child(target: str, payload: Any, *, timeout_s: float, memory_limit_bytes: int | None = None) -> ChildOutcome:
    """Call `module:function`(payload) in a fresh child process and return its value or why it failed."""
    context = _context()
    parent_conn, child_conn = context.Pipe(duplex=False)
    args = (child_conn, target, payload, memory_limit_bytes, child_environment(), os.getcwd())
    process = context.Process(target=_child_main, args=args, daemon=True)
    process.start()
    child_conn.close()  # so that the parent sees EOF if the child dies
    try:
        if not parent_conn.poll(timeout_s):
            _stop(process)
            return ChildOutcome(False, reason=f"timed out after {timeout_s:g} s; child process killed")
        try:
            kind, value = parent_conn.recv()
        except EOFError:
            process.join(10)
            return ChildOutcome(False, reason=_death_reason(process.exitcode, memory_limit_bytes),
                                exitcode=process.exitcode)
        process.join(30)
        if process.is_alive():
            _stop(process)
        if kind == "ok":
            return ChildOutcome(True, value=value, exitcode=process.exitcode)
        return ChildOutcome(False, reason=value, exitcode=process.exitcode)
    finally:
        parent_conn.close()


def _stop(process: Any) -> None:
    process.terminate()
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)
