"""The child's side of an interleaved sweep: measure one configuration in the bursts the parent grants.

The child builds and prepares its configuration as usual (kit.runners.worker), then its timed loop
(kit.timing.measure_in_rounds) says "ready" and blocks on the pipe until the parent grants a burst: a round index and
a number of seconds. It runs calls for those seconds, sends the samples back and blocks again. A "stop" ends the loop,
and the child finishes its record as in a sequential sweep and sends it. Blocked children use no CPU, so exactly one
configuration runs at a time.

The same protocol runs under another Python interpreter (`python -m kit.runners.burst FD`), which is how `benchkit ab`
measures two environments side by side.

Messages, child to parent: ("ready", rss_bytes), ("burst", samples_s), then ("ok", value) or ("error", reason).
Parent to child: ("burst", round_idx, seconds) or ("stop",).
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection
from typing import Any

import psutil

from kit.runners.isolation import enter_child, failure_message, resolve
from kit.timing import install_round_driver


class PipeDriver:
    """A RoundDriver over the pipe to the parent."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._ready = False

    def next_burst(self) -> tuple[int, float] | None:
        """Say ready (the first time), then wait for the parent's next grant; None once it says stop."""
        if not self._ready:
            self._conn.send(("ready", psutil.Process().memory_info().rss))
            self._ready = True
        message = self._conn.recv()  # EOFError when the parent died: the child ends with it
        if message[0] == "stop":
            return None
        _, round_idx, seconds = message
        return int(round_idx), float(seconds)

    def burst_done(self, samples_s: list[float]) -> None:
        """Send the burst's samples back, handing the machine to the next child."""
        self._conn.send(("burst", samples_s))


def serve(conn: Connection, target: str, payload: Any, memory_limit_bytes: int | None,
          environment: dict[str, str], cwd: str) -> None:
    """Run `module:function`(payload) with the round driver installed and send its value or why it failed."""
    enter_child(environment, cwd, memory_limit_bytes)
    install_round_driver(PipeDriver(conn))
    try:
        value = resolve(target)(payload)
        conn.send(("ok", value))
    except EOFError:
        return  # the parent is gone: nobody to tell
    except BaseException as exc:  # everything, so that the parent gets the message instead of a dead pipe
        conn.send(("error", failure_message(exc, memory_limit_bytes)))
    finally:
        conn.close()


def main(argv: list[str]) -> None:
    """Entry point under another interpreter: the pipe is file descriptor argv[0]; the first message holds the
    arguments of `serve`."""
    conn = Connection(int(argv[0]))
    target, payload, memory_limit_bytes, environment, cwd = conn.recv()
    serve(conn, target, payload, memory_limit_bytes, environment, cwd)


if __name__ == "__main__":
    main(sys.argv[1:])
