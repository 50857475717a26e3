"""Functions run in child processes by the isolation and sweep tests (importable by module path)."""

import os
import signal
import time


def echo(payload):
    return {"echo": payload}


def hang(payload):
    time.sleep(3600)


def allocate_until_death(payload):
    chunks = []
    while True:
        chunks.append(bytearray(64 * 2**20))


def killed_like_oom(payload):
    os.kill(os.getpid(), signal.SIGKILL)


def raise_error(payload):
    raise RuntimeError(f"broken on purpose: {payload}")


def exit_early(payload):
    os._exit(3)
