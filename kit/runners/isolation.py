"""Run one function in a child process with a timeout and an optional memory limit, without busy-waiting.

Children are forked from a fork server that imported torch and transformers once (kit.runners.preload), so a child
starts in a fraction of a second instead of importing them again; the fork server itself never runs torch ops, so its
children start with no thread pool or CUDA context to inherit. Each child takes the parent's current environment and
working directory, as a spawned one would. BENCHKIT_CHILD_START=spawn starts every child from scratch instead.

The parent blocks in `Connection.poll(timeout)` (a select() on the pipe), so it takes no CPU from the measured child.
A child that raises, hangs, is killed (e.g. by the OOM killer) or exits early becomes a `ChildOutcome` with a reason.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import signal
import traceback
from dataclasses import dataclass
from typing import Any

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


def _child_main(conn: Any, target: str, payload: Any, memory_limit_bytes: int | None,
                environment: dict[str, str], cwd: str) -> None:
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        value = resolve(target)(payload)
        conn.send(("ok", value))
    except MemoryError:
        conn.send(("error", f"MemoryError: the child ran out of memory (limit {memory_limit_bytes} bytes)"))
    except BaseException as exc:  # everything, so that the parent gets the message instead of a dead pipe
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{tail}"))
    finally:
        conn.close()


def _death_reason(exitcode: int | None, memory_limit_bytes: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (likely out of memory: the OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"child process killed by {name}{hint}"
    limit = f" under a {memory_limit_bytes}-byte memory limit" if memory_limit_bytes else ""
    return f"child process exited with code {exitcode} before sending a result{limit}"


def run_in_child(target: str, payload: Any, *, timeout_s: float, memory_limit_bytes: int | None = None) -> ChildOutcome:
    """Call `module:function`(payload) in a fresh child process and return its value or why it failed."""
    context = _context()
    parent_conn, child_conn = context.Pipe(duplex=False)
    args = (child_conn, target, payload, memory_limit_bytes, dict(os.environ), os.getcwd())
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
