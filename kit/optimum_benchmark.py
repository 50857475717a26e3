"""Results of HuggingFace optimum-benchmark as Records: a folder holding its `benchmark_config.json` and
`benchmark_report.json` becomes one ok Record with the raw latencies, percentiles, memory, load and first-forward
times, labelled with its origin and the tool's version.

The tool gives no confidence interval and no rounds, so an imported record is never marked converged (nor noisy): its
latencies are one block of calls, like a sequential sweep's. Throughput is recomputed as batch / mean latency from
the stored latencies; optimum-benchmark 0.6.0 reports training throughput multiplied by the number of steps, and
its reported value is kept in `extra` for reference only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.records import Record

PHASES = {"inference": "forward", "training": "train"}  # the report's section holding the measured calls
PRECISIONS = {None: "fp32", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
DEVICE_PLATFORMS = {"cpu": "cpu", "cuda": "cuda", "mps": "mps", "xpu": "xpu"}
MEMORY_UNITS = {"MB": 1e6, "MiB": 2**20, "GB": 1e9}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path.parent}: no {path.name} (an optimum-benchmark result folder holds "
                          "benchmark_config.json and benchmark_report.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _get(data: dict[str, Any], dotted: str, path: Path) -> Any:
    value: Any = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ConfigError(f"{path}: no {dotted!r}: not an optimum-benchmark 0.6 result")
        value = value[key]
    return value


def _shape(config: dict[str, Any], mode: str, path: Path) -> tuple[int, int | None]:
    """(batch size, sequence length) of the scenario."""
    if mode == "inference":
        shapes = _get(config, "scenario.input_shapes", path)
        return int(shapes["batch_size"]), shapes.get("sequence_length")
    batch = _get(config, "scenario.training_arguments.per_device_train_batch_size", path)
    return int(batch), config["scenario"].get("dataset_shapes", {}).get("sequence_length")


def _platform(backend: dict[str, Any]) -> str:
    device = str(backend.get("device", "cpu"))
    if backend.get("name") == "pytorch":
        return DEVICE_PLATFORMS.get(device, device)
    return f"{backend.get('name')}-{device}" if device != "cpu" else str(backend.get("name"))


def _seconds(section: dict[str, Any] | None) -> float | None:
    latency = (section or {}).get("latency") or {}
    return float(latency["mean"]) if latency.get("unit") == "s" and latency.get("mean") is not None else None


def read_optimum(folder: str | Path, run_id: str | None = None) -> Record:
    """The Record of one optimum-benchmark result folder; ConfigError naming the file and the key when it is not one."""
    folder = Path(folder)
    config, report = (_read_json(folder / name) for name in ("benchmark_config.json", "benchmark_report.json"))
    scenario = _get(config, "scenario.name", folder / "benchmark_config.json")
    if scenario not in PHASES:
        raise ConfigError(f"{folder}: scenario {scenario!r} is not imported (known: {', '.join(PHASES)})")
    phase = _get(report, PHASES[scenario], folder / "benchmark_report.json")
    latency = phase.get("latency") or {}
    if latency.get("unit") != "s" or not latency.get("values"):
        raise ConfigError(f"{folder}: the {PHASES[scenario]} phase has no latencies in seconds")
    backend = _get(config, "backend", folder / "benchmark_config.json")
    dtype = backend.get("torch_dtype")
    if dtype not in PRECISIONS:
        raise ConfigError(f"{folder}: torch_dtype {dtype!r} is not imported (known: {', '.join(map(str, PRECISIONS))})")
    batch, seq_len = _shape(config, scenario, folder / "benchmark_config.json")
    memory = phase.get("memory") or {}
    scale = MEMORY_UNITS.get(memory.get("unit"))
    peak = int(memory["max_ram"] * scale) if scale and memory.get("max_ram") else None
    environment = config.get("environment", {})
    platform, precision, model = _platform(backend), PRECISIONS[dtype], str(backend.get("model"))
    mode = "inference" if scenario == "inference" else "training"
    record = Record.from_samples(
        [float(v) for v in latency["values"]], run_id=run_id or f"optimum-{config.get('name', folder.name)}",
        config_key=f"{model}|external|{mode}|{platform}|{precision}|bs{batch}|seq{seq_len or 'default'}",
        model=model, family=str(backend.get("model_type") or "external"), size="external", mode=mode,
        platform=platform, device=str(backend.get("device", "")), precision=precision, batch_size=batch,
        seq_len=seq_len, startup_s=_seconds(report.get("load_model")),
        first_inference_s=_seconds(report.get("first_forward")), peak_memory_bytes=peak,
        memory_method="optimum-benchmark max_ram (process RSS)" if peak else "",
        threads=backend.get("intra_op_num_threads"), params_json=json.dumps(config, sort_keys=True),
        extra={"origin": "optimum-benchmark", "tool_version": environment.get("optimum_benchmark_version"),
               "source": str(folder), "benchmark_name": config.get("name"),
               "reported_throughput": (phase.get("throughput") or {}).get("value"),
               "environment": {k: environment.get(k) for k in ("cpu", "cpu_count", "cpu_ram_mb", "system",
                                                                "python_version", "transformers_version")}})
    return dataclasses.replace(record, converged=None)  # the tool gives no interval: neither converged nor noisy
