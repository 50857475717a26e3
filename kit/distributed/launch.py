"""Launching kit.distributed.worker under torchrun: the command, its environment, a timeout, and reading the ranks.

One launch is one attempt at one world size; its folder holds the config, torchrun's log and a `rank<R>.json` per rank.
`launch_failed` tells a failure of the launch itself (rendezvous, process-group set-up, a rank that died or hung
without reporting) from a rank's own error in the model or training code, which a second launch would only repeat.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.runners.isolation import PARENT_PID, die_with_parent

WORKER_MODULE = "kit.distributed.worker"
SETUP_PHASES = ("init",)  # the worker's phase while it starts the process group (worker.run_rank)


def launch_command(config_path: Path, out_dir: Path, nproc_per_node: int, *, nnodes: int = 1,
                   rdzv_endpoint: str | None = None, rdzv_id: str = "benchkit") -> list[str]:
    """The torchrun command: `--standalone` on one node, c10d rendezvous at rdzv_endpoint across nnodes."""
    if nnodes > 1 and not rdzv_endpoint:
        raise ConfigError(f"nnodes={nnodes} needs rdzv_endpoint (HOST:PORT of the rendezvous node)")
    rendezvous = ["--standalone"] if nnodes == 1 else [
        "--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", str(rdzv_endpoint), "--rdzv-id", rdzv_id]
    return [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--nproc-per-node", str(nproc_per_node),
            "-m", WORKER_MODULE, "--config", str(config_path), "--out", str(out_dir)]


def child_env(threads_per_rank: int) -> dict[str, str]:
    """This environment plus one intra-op thread count per rank, offline hub, and the kit importable."""
    root = str(Path(__file__).resolve().parents[2])
    threads = str(threads_per_rank)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, PARENT_PID: str(os.getpid()), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}


def launch(command: list[str], out: Path, env: dict[str, str], timeout_s: float) -> tuple[list[dict[str, Any]], str]:
    """Run torchrun in its own process group with a timeout; return the rank results and the launcher's complaint.
    `out` is the attempt's folder, made by the caller (it already holds the config)."""
    log = out / "launcher.log"
    reason = ""
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   preexec_fn=die_with_parent)
        try:
            code = process.wait(timeout=timeout_s)
            if code != 0:
                reason = f"torchrun exited with code {code}: {tail(log)}"
        except subprocess.TimeoutExpired:
            kill_group(process)
            reason = f"timed out after {timeout_s:g} s; torchrun and its workers killed; log: {tail(log)}"
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    return sorted(ranks, key=lambda r: r["rank"]), reason


def launch_failed(ranks: list[dict[str, Any]], world_size: int) -> bool:
    """True when the ranks did not all succeed and none reported an error past process-group set-up: the launch
    itself failed (rendezvous, connecting the ranks, a rank killed or hung before it could report)."""
    if len(ranks) == world_size and all(r.get("ok") for r in ranks):
        return False
    return all(r.get("ok") or r.get("phase") in SETUP_PHASES for r in ranks)


def tail(log: Path, lines: int = 6) -> str:
    """The last non-empty lines of a log, joined on one line."""
    text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:])


def kill_group(process: subprocess.Popen) -> None:
    """Stop the process group this launcher started (torchrun and its workers): SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
