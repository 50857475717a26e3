"""Provenance of a run: hardware, software versions and git commit, with stable ids to key them in the store."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import psutil

PACKAGES = ("benchkit", "torch", "transformers", "accelerate", "numpy", "duckdb", "pandas", "scikit-learn",
            "openvino", "nncf", "onnx", "onnxruntime")


def _stable_id(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's brand name from py-cpuinfo, falling back to platform.processor()."""
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info().get("brand_raw") or platform.processor()
    except Exception as exc:  # py-cpuinfo shells out and can fail in odd sandboxes
        return f"{platform.processor() or 'unknown'} (cpuinfo failed: {type(exc).__name__})"


def gpu_devices() -> list[dict[str, Any]]:
    """Accelerators torch can see (CUDA or ROCm), with name, memory and driver/runtime versions; [] when none.

    Reading device properties creates a CUDA context (hundreds of MiB of GPU memory, held until the process ends), so
    the properties are read in a short-lived child; the calling process (a sweep's parent) never touches the GPU."""
    try:
        import torch
    except ImportError:
        return []
    if torch.cuda.device_count() == 0:  # NVML-based where available: no context is created
        return []
    from kit.runners.isolation import run_in_child

    outcome = run_in_child("kit.environment:gpu_properties", None, timeout_s=120)
    return outcome.value if outcome.ok else [{"error": outcome.reason.splitlines()[0]}]


def gpu_properties(_: Any = None) -> list[dict[str, Any]]:
    """Name, memory, capability and runtime of each visible GPU (creates a CUDA context: call it in a child)."""
    import torch

    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append({
            "index": index,
            "name": props.name,
            "memory_bytes": int(props.total_memory),
            "capability": f"{props.major}.{props.minor}",
            "runtime": torch.version.hip or torch.version.cuda,
            "kind": "rocm" if torch.version.hip else "cuda",
        })
    return devices


def hardware_info() -> dict[str, Any]:
    """The machine: host, CPU model, cores, memory, GPUs; `hardware_id` is a fingerprint of the stable parts."""
    info = {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_model": cpu_model(),
        "cores_physical": psutil.cpu_count(logical=False) or 0,
        "cores_logical": psutil.cpu_count(logical=True) or 0,
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": int(psutil.virtual_memory().total),
        "gpus": gpu_devices(),
        "driver": _nvidia_driver(),
    }
    fingerprint = {k: info[k] for k in ("hostname", "machine", "cpu_model", "cores_logical", "memory_bytes")}
    fingerprint["gpus"] = [g.get("name", "unknown") for g in info["gpus"]]
    info["hardware_id"] = _stable_id(fingerprint)
    return info


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def software_versions() -> dict[str, str]:
    """Python and the versions of the packages that shape the numbers (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: str | Path | None = None) -> str:
    """The git commit of the working tree (with '-dirty' when it has changes), or '' outside a repository."""
    cwd = Path(path) if path else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return ""


def collect_environment() -> dict[str, Any]:
    """Hardware, software and commit of this process; `env_id` hashes them so identical setups share one id."""
    hardware = hardware_info()
    software = software_versions()
    commit = git_commit()
    env_id = _stable_id({"hardware_id": hardware["hardware_id"], "software": software, "git_commit": commit})
    return {"env_id": env_id, "hardware": hardware, "software": software, "git_commit": commit}
