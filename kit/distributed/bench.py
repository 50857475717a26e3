"""Distributed training benchmarks (DDP, FSDP2) under torchrun, turned into Records, and their scaling analysis.

One machine: `python -m torch.distributed.run --standalone --nproc-per-node N -m kit.distributed.worker --config C
--out D` (what `run_distributed_benchmark` runs, gloo on CPU, NCCL on CUDA with one GPU per LOCAL_RANK). Several
machines: the same command on every node with `--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID`
instead of `--standalone` (see `launch_command`): run the same benchmark on every node with `nnodes` and `rdzv_endpoint`
set (`benchkit distributed-bench --nnodes 2 --rdzv-endpoint HOST:PORT` on each); ranks gather their results, so every
node writes every rank's file and stores the same global record in its own database.

A record's samples are global step times (the slowest rank's time for each step), its batch_size the global batch, so
throughput_items_per_s is global samples/s. Scaling efficiency = throughput(N) / (N x throughput(1)) at equal per-rank
batch, against the world-size-1 run of the same call. The configuration advisor is kit.memory.advise_distributed_config.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from kit.distributed.launch import child_env, launch, launch_command, launch_failed
from kit.errors import ConfigError
from kit.records import Record

STRATEGIES = ("ddp", "fsdp")
PLATFORMS = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("sgd", "adamw")
COMM_METHOD = ("torch.profiler over profiled forward+backward steps after the timed ones: union of the intervals of "
               "gloo collectives (CPU) or NCCL kernels (CUDA) over the profiled wall time; includes waiting for the "
               "slower rank")
EXPOSED_METHOD = "DDP only: median forward+backward time with gradient sync minus under no_sync(), over the mean step"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
             f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class DistributedSpec:
    """One distributed benchmark: a model, a strategy and the world sizes to run, validated on construction."""

    model: str
    size: str = "tiny"
    strategy: str = "ddp"
    world_sizes: tuple[int, ...] = (1, 2)
    batch_per_rank: int = 2
    steps: int = 10
    warmup_steps: int = 2
    seq_len: int | None = None
    precision: str = "fp32"
    optimizer: str = "sgd"
    lr: float = 0.01
    threads_per_rank: int = 1
    platform: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 300.0
    seed: int = 0
    profile_steps: int = 2
    disable_dropout: bool = True
    gradient_checkpointing: bool = False
    nnodes: int = 1  # machines; each world size is split evenly over them (world_size / nnodes processes per node)
    rdzv_endpoint: str | None = None  # HOST:PORT of the c10d rendezvous, the same on every node, when nnodes > 1
    retries: int = 1  # one node: launches again after a failed launch (kit.distributed.launch.launch_failed)

    def __post_init__(self) -> None:
        from kit import zoo

        object.__setattr__(self, "model", zoo.resolve_model(self.model))
        zoo.validate_size(self.size)
        for name, allowed in (("strategy", STRATEGIES), ("platform", PLATFORMS), ("precision", PRECISIONS),
                              ("optimizer", OPTIMIZERS)):
            value = getattr(self, name)
            _require(value in allowed, f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        sizes = self.world_sizes if isinstance(self.world_sizes, list | tuple) else [self.world_sizes]
        _require(len(sizes) > 0, "world_sizes must not be empty")
        for n in sizes:
            _positive_int("world_sizes entries", n)
        object.__setattr__(self, "world_sizes", tuple(sorted(set(sizes))))
        for name in ("batch_per_rank", "steps", "threads_per_rank"):
            _positive_int(name, getattr(self, name))
        for name in ("warmup_steps", "seed", "profile_steps", "retries"):
            _positive_int(name, getattr(self, name), minimum=0)
        _require(self.seq_len is None or (isinstance(self.seq_len, int) and self.seq_len > 0),
                 f"seq_len must be a positive integer or None, got {self.seq_len!r}")
        for name in ("lr", "timeout_s"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and value > 0, f"{name} must be positive, got {value!r}")
        _require(isinstance(self.overrides, dict), f"overrides must be a mapping, got {self.overrides!r}")
        _positive_int("nnodes", self.nnodes)
        if self.nnodes > 1:
            _require(isinstance(self.rdzv_endpoint, str) and re.fullmatch(r"[^:\s]+:\d+", self.rdzv_endpoint),
                     f"nnodes={self.nnodes} needs rdzv_endpoint HOST:PORT (the same on every node), "
                     f"got {self.rdzv_endpoint!r}")
            uneven = [n for n in self.world_sizes if n % self.nnodes]
            _require(not uneven, f"world_sizes {uneven} do not split evenly over nnodes={self.nnodes}")

    def retries_allowed(self) -> int:
        """Launches after a failed one: `retries` on one node; none across nodes, whose launchers cannot agree on it."""
        return self.retries if self.nnodes == 1 else 0

    def nproc_per_node(self, world_size: int) -> int:
        """Processes each node starts for a world size."""
        return world_size // self.nnodes

    def worker_config(self, world_size: int) -> dict[str, Any]:
        """The JSON the worker reads (the same for every rank)."""
        return {**asdict(self), "world_sizes": list(self.world_sizes), "world_size": world_size}

    def config_key(self, world_size: int) -> str:
        """A readable key naming every axis, unique within a run."""
        parts = [self.model, self.size, "training", self.platform, self.precision,
                 f"bs{self.batch_per_rank * world_size}", f"seq{self.seq_len}" if self.seq_len else "seqdefault",
                 self.strategy, f"ws{world_size}", f"t{self.threads_per_rank}", self.optimizer]
        if self.nnodes > 1:
            parts.append(f"nodes{self.nnodes}")
        if self.overrides or self.gradient_checkpointing:
            text = json.dumps([self.overrides, self.gradient_checkpointing], sort_keys=True)
            parts.append("ov" + hashlib.sha1(text.encode()).hexdigest()[:8])
        return "|".join(parts)


def unavailable_reason(platform: str, nproc: int) -> str | None:
    """Why a platform cannot run a world size here (no CUDA, too few GPUs, no NCCL), or None when it can."""
    if platform == "cpu":
        return None
    import torch
    import torch.distributed as dist

    if not torch.cuda.is_available():
        return "platform cuda unavailable: no CUDA device"
    if not dist.is_nccl_available():
        return "platform cuda unavailable: torch was built without NCCL"
    if torch.cuda.device_count() < nproc:
        return f"{nproc} processes on this node need {nproc} GPUs (one per rank); found {torch.cuda.device_count()}"
    return None


def run_world(spec: DistributedSpec, world_size: int, workdir: Path,
              attempt: int = 1) -> tuple[list[dict[str, Any]], str]:
    """Launch one world size under torchrun (its own folder per attempt); return the rank results and the launcher's
    complaint."""
    out = workdir / (f"ws{world_size}" if attempt == 1 else f"ws{world_size}-attempt{attempt}")
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.json"
    config.write_text(json.dumps(spec.worker_config(world_size), default=str))
    rdzv_id = "benchkit-" + hashlib.sha1(spec.config_key(world_size).encode()).hexdigest()[:12]
    command = launch_command(config, out, spec.nproc_per_node(world_size), nnodes=spec.nnodes,
                             rdzv_endpoint=spec.rdzv_endpoint, rdzv_id=rdzv_id)
    return launch(command, out, child_env(spec.threads_per_rank), spec.timeout_s)


def _family(model: str) -> str:
    """A zoo model's family is its canonical name; a local folder's is its config's model_type."""
    config = Path(model) / "config.json"
    return json.loads(config.read_text()).get("model_type", "local") if config.is_file() else model


def _identity(spec: DistributedSpec, world_size: int, run_id: str, env_id: str, device: str) -> dict[str, Any]:
    return {"run_id": run_id, "config_key": spec.config_key(world_size), "model": spec.model,
            "family": _family(spec.model), "size": spec.size, "mode": "training", "platform": spec.platform,
            "device": device, "precision": spec.precision, "batch_size": spec.batch_per_rank * world_size,
            "world_size": world_size,
            "seq_len": spec.seq_len, "env_id": env_id,
            "params_json": json.dumps(spec.worker_config(world_size), sort_keys=True, default=str)}


def _base_extra(spec: DistributedSpec, world_size: int) -> dict[str, Any]:
    return {"strategy": spec.strategy, "nnodes": spec.nnodes,
            "nproc_per_node": spec.nproc_per_node(world_size),
            "threads_per_rank": spec.threads_per_rank, "threads_total": world_size * spec.threads_per_rank,
            "cores_available": os.cpu_count(), "backend": "nccl" if spec.platform == "cuda" else "gloo",
            "launcher": "torchrun --standalone" if spec.nnodes == 1 else f"torchrun c10d at {spec.rdzv_endpoint}",
            "optimizer_name": spec.optimizer, "lr": spec.lr,
            "batch_per_rank": spec.batch_per_rank, "global_batch": spec.batch_per_rank * world_size,
            "steps": spec.steps, "warmup_steps": spec.warmup_steps, "disable_dropout": spec.disable_dropout,
            "gradient_checkpointing": spec.gradient_checkpointing}


def failure_record(spec: DistributedSpec, world_size: int, ranks: list[dict[str, Any]], launcher_reason: str,
                   run_id: str, env_id: str) -> Record:
    """A failed (or, for FSDP2 set-up on CPU/gloo, skipped) record with the first failing rank's exact error."""
    import torch

    identity = _identity(spec, world_size, run_id, env_id, ranks[0].get("device", "") if ranks else "")
    extra = {**_base_extra(spec, world_size), "launcher_reason": launcher_reason}
    bad = [r for r in ranks if not r.get("ok")]
    if not bad:
        reason = launcher_reason or f"only {len(ranks)} of {world_size} ranks wrote a result"
        return Record.failure("failed", reason, **identity, extra=extra)
    first = bad[0]
    extra.update(failed_phase=first.get("phase"), traceback=first.get("traceback", ""))
    if spec.strategy == "fsdp" and spec.platform == "cpu" and first.get("phase") in ("setup", "first_step"):
        reason = f"FSDP2 fully_shard did not run on CPU/gloo in torch {torch.__version__}: {first.get('error')}"
        return Record.failure("skipped", reason, **identity, extra=extra)
    reason = f"rank {first['rank']} failed in phase {first.get('phase')}: {first.get('error')}"
    return Record.failure("failed", reason, **identity, extra=extra)


def ok_record(spec: DistributedSpec, world_size: int, ranks: list[dict[str, Any]], run_id: str, env_id: str,
              base_throughput: float | None) -> Record:
    """An ok record: global step times, global samples/s, communication share, per-rank memory and efficiency."""
    from kit.timing import load_average_1m

    steps = [max(times) for times in zip(*(r["step_times_s"] for r in ranks), strict=True)]
    mean_step = statistics.fmean(steps)
    throughput = spec.batch_per_rank * world_size / mean_step
    shares = [r["profiled_comm"]["comm_share"] for r in ranks if r["profiled_comm"].get("comm_share") is not None]
    exposed = [r["exposed_comm"]["exposed_comm_s"] for r in ranks if r.get("exposed_comm")]
    extra = {
        **_base_extra(spec, world_size), "backend": ranks[0]["backend"],
        "per_rank_step_times_s": [r["step_times_s"] for r in ranks],
        "per_rank_mean_step_s": [statistics.fmean(r["step_times_s"]) for r in ranks],
        "per_rank_peak_memory_bytes": [r["peak_memory_bytes"] for r in ranks],
        "per_rank_baseline_bytes": [r["baseline_rss_bytes"] if r["memory_method"] != "torch.cuda.max_memory_allocated"
                                    else 0 for r in ranks],
        "per_rank_memory_split_bytes": [r["memory_split_bytes"] for r in ranks],
        "memory_split_bytes": ranks[0]["memory_split_bytes"], "losses": ranks[0]["losses"],
        "per_rank_local_losses": [r["local_losses"] for r in ranks],
        "comm_share": statistics.fmean(shares) if shares else None, "comm_share_per_rank": shares,
        "comm_method": COMM_METHOD, "profiled_comm_per_rank": [r["profiled_comm"] for r in ranks],
        "exposed_comm_s": statistics.fmean(exposed) if exposed else None,
        "exposed_comm_share": statistics.fmean(exposed) / mean_step if exposed else None,
        "exposed_comm_method": EXPOSED_METHOD if exposed else "", "sample_unit": "global step = slowest rank's step",
        "scaling_efficiency": throughput / (world_size * base_throughput) if base_throughput else None,
        "scaling_baseline": "throughput of world size 1 in the same call, equal per-rank batch",
    }
    extra["per_rank_peak_above_baseline_bytes"] = [p - b for p, b in zip(extra["per_rank_peak_memory_bytes"],
                                                                          extra["per_rank_baseline_bytes"],
                                                                          strict=True)]
    devices = sorted({r["device"] for r in ranks})
    return Record.from_samples(
        steps, **_identity(spec, world_size, run_id, env_id, ",".join(devices)),
        first_inference_s=max(r["first_step_s"] for r in ranks),
        peak_memory_bytes=max(extra["per_rank_peak_memory_bytes"]), memory_method=ranks[0]["memory_method"],
        threads=spec.threads_per_rank, n_params=ranks[0]["n_params"], load_avg_1m=load_average_1m(), extra=extra)


def measure_world(spec: DistributedSpec, world_size: int, workdir: Path, run_id: str, env_id: str,
                  base_throughput: float | None) -> Record:
    """One world size as a Record: skipped when the platform cannot run it, failed when a rank or torchrun fails.

    A failed launch (no rank reported an error past set-up) is launched again up to spec.retries times on one node;
    the record says how many attempts it took and why the earlier ones failed."""
    skip = unavailable_reason(spec.platform, spec.nproc_per_node(world_size))
    if skip:
        return Record.failure("skipped", skip, **_identity(spec, world_size, run_id, env_id, ""),
                              extra=_base_extra(spec, world_size))
    earlier: list[str] = []
    while True:
        ranks, launcher_reason = run_world(spec, world_size, workdir, attempt=len(earlier) + 1)
        if len(ranks) == world_size and all(r.get("ok") for r in ranks):
            record = ok_record(spec, world_size, ranks, run_id, env_id, base_throughput)
            break
        record = failure_record(spec, world_size, ranks, launcher_reason, run_id, env_id)
        if len(earlier) >= spec.retries_allowed() or not launch_failed(ranks, world_size):
            break
        earlier.append(record.reason)
    return replace(record, extra={**record.extra, "attempts": len(earlier) + 1, "earlier_attempts": earlier})


def run_distributed_benchmark(model: str, size: str = "tiny", strategy: str = "ddp",
                              world_sizes: tuple[int, ...] = (1, 2), batch_per_rank: int = 2, steps: int = 10, *,
                              db: Any = None, run_id: str | None = None, workdir: str | Path | None = None,
                              **options: Any) -> list[Record]:
    """Run each world size under torchrun (smallest first) and return its Records, stored under run_id if db is given.

    options are the other DistributedSpec fields (seq_len, precision, optimizer, lr, threads_per_rank, platform,
    overrides, timeout_s, warmup_steps, seed, profile_steps, disable_dropout, gradient_checkpointing).
    """
    spec = DistributedSpec(model=model, size=size, strategy=strategy, world_sizes=tuple(world_sizes),
                           batch_per_rank=batch_per_rank, steps=steps, **options)
    return run_spec(spec, db=db, run_id=run_id, workdir=workdir)


def run_spec(spec: DistributedSpec, *, db: Any = None, run_id: str | None = None,
             workdir: str | Path | None = None) -> list[Record]:
    """Run a validated DistributedSpec; each record is stored (when db is given) as soon as it exists."""
    from kit.config import new_run_id
    from kit.environment import collect_environment

    run_id = run_id or new_run_id()
    environment = collect_environment()
    storage = _storage() if db is not None else None
    con = storage.connect(db) if isinstance(db, str | Path) else db
    if con is not None:
        storage.start_run(con, run_id, {"distributed": spec.worker_config(0)}, environment)
    records: list[Record] = []
    base: float | None = None
    with tempfile.TemporaryDirectory(prefix="benchkit-ddp-") as tmp:
        for world_size in spec.world_sizes:
            record = measure_world(spec, world_size, Path(workdir or tmp), run_id, environment["env_id"], base)
            if world_size == 1 and record.status == "ok":
                base = record.throughput_items_per_s
            if con is not None:
                storage.insert_record(con, record)
            records.append(record)
    if con is not None:
        storage.finish_run(con, run_id)
    return records


# keys of notebook 06's parameter files that its memory-estimator and advisor sections read, not the benchmark
NOTEBOOK_KEYS = {"db_path", "run_id", "memory_batch_sizes", "memory_time_budget_s", "advisor_model", "advisor_size",
                 "gpus", "gpu_memory_gib", "global_batch", "advisor_seq_len", "advisor_precision"}


def spec_from_parameters(params: dict[str, Any]) -> DistributedSpec:
    """A DistributedSpec from a parameter mapping (e.g. parameters/06_distributed.yaml, whose notebook-only keys are
    left to the notebook); unknown keys are rejected."""
    known = set(DistributedSpec.__dataclass_fields__)
    unknown = sorted(set(params) - known - NOTEBOOK_KEYS)
    _require(not unknown, f"unknown distributed parameter(s) {unknown}; known: {', '.join(sorted(known))}")
    return DistributedSpec(**{k: v for k, v in params.items() if k in known})


def _storage() -> Any:
    from kit import storage  # late: DuckDB is needed only when results are stored

    return storage


def scaling_table(records: list[Record]) -> pd.DataFrame:
    """One row per distributed record: throughput, scaling efficiency, communication share and peak per rank."""
    rows = []
    for r in records:
        e = r.extra
        rows.append({"model": r.model, "strategy": e.get("strategy"), "backend": e.get("backend"),
                     "world_size": r.world_size, "threads_per_rank": e.get("threads_per_rank"),
                     "cores_available": e.get("cores_available"), "status": r.status,
                     "global_batch": r.batch_size, "step_mean_s": r.latency_mean_s,
                     "throughput_items_per_s": r.throughput_items_per_s,
                     "scaling_efficiency": e.get("scaling_efficiency"), "comm_share": e.get("comm_share"),
                     "exposed_comm_share": e.get("exposed_comm_share"),
                     "peak_above_baseline_per_rank_bytes": max(e.get("per_rank_peak_above_baseline_bytes") or [0]),
                     "attempts": e.get("attempts"), "reason": r.reason})
    return pd.DataFrame(rows)


def scaling_summary(records: list[Record]) -> dict[str, Any]:
    """Headline values of a distributed run: ok world sizes, global samples/s and scaling efficiency per world size,
    why the others did not run, and how many launches each world size took."""
    ok = [r for r in records if r.status == "ok"]
    return {"world_sizes": [r.world_size for r in records],
            "ok_world_sizes": [r.world_size for r in ok], "n_ok_worlds": len(ok),
            "throughput_items_per_s": {str(r.world_size): r.throughput_items_per_s for r in ok},
            "scaling_efficiency": {str(r.world_size): r.extra.get("scaling_efficiency") for r in ok
                                   if (r.world_size or 1) > 1},
            "comm_share": {str(r.world_size): r.extra.get("comm_share") for r in ok},
            "not_ok": {str(r.world_size): f"{r.status}: {r.reason}" for r in records if r.status != "ok"},
            "attempts": {str(r.world_size): r.extra.get("attempts") for r in records}}


def add_distributed_bench_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of `benchkit distributed-bench`; flags given override the --params YAML."""
    parser.add_argument("--params", type=Path,
                        help="YAML of DistributedSpec fields, e.g. parameters/06_distributed.yaml")
    parser.add_argument("--model")
    parser.add_argument("--size")
    parser.add_argument("--strategy", choices=STRATEGIES)
    parser.add_argument("--world-sizes", nargs="+", type=int)
    parser.add_argument("--batch-per-rank", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--precision", choices=PRECISIONS)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--threads-per-rank", type=int)
    parser.add_argument("--platform", choices=PLATFORMS)
    parser.add_argument("--timeout-s", type=float)
    parser.add_argument("--nnodes", type=int, help="machines taking part (run the same command on each)")
    parser.add_argument("--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous, the same on every node")
    parser.add_argument("--retries", type=int, help="launches again after a failed launch, one node (default 1)")
    parser.add_argument("--run-id")
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default outputs/benchkit.duckdb)")


def cmd_distributed_bench(args: argparse.Namespace) -> int:
    """Run a distributed benchmark, store it, print the scaling table; 1 when no world size ran."""
    from kit.config import load_parameters

    params = load_parameters(args.params) if args.params else {}
    for name in ("model", "size", "strategy", "world_sizes", "batch_per_rank", "steps", "seq_len", "precision",
                 "optimizer", "threads_per_rank", "platform", "timeout_s", "nnodes", "rdzv_endpoint", "retries"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    _require("model" in params, "distributed-bench needs --model or a --params file with 'model'")
    db = args.db or params.get("db_path") or _storage().DEFAULT_DB
    records = run_spec(spec_from_parameters(params), db=db, run_id=args.run_id or params.get("run_id"))
    print(scaling_table(records).to_string(index=False))
    return 0 if any(r.status == "ok" for r in records) else 1
