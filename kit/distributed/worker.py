"""The per-rank training script that torchrun runs: DDP or FSDP2 on gloo (CPU) or NCCL (CUDA), one JSON per rank.

Launched as `python -m torch.distributed.run --standalone --nproc-per-node N -m kit.distributed.worker --config C
--out D` (see kit.distributed). Every rank builds the same seeded model, takes its slice of one deterministic global
batch, and runs warm-up steps, then timed steps (forward+loss, backward, optimizer step, zero_grad). Communication is
measured on extra profiled steps after the timed ones (torch.profiler: the union of the collective events' intervals
over the profiled wall time), and for DDP also as the exposed cost: forward+backward with gradient sync minus the same
under `no_sync()`. Each rank writes `rank<R>.json`; an exception is written there too, with the phase it happened in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from kit import zoo
from kit.timing import CudaEventClock, CudaPeakTracker, PerfCounterClock, ProcessPeakTracker

# At module level so that they are in RSS before the process baseline is read: the harness's own imports (scipy through
# kit.timing is ~65 MB) must not count as the model's training memory.
from kit.zoo.model import transformer_blocks

COMM_PREFIXES = ("gloo:", "nccl:", "ncclkernel", "nccldevkernel")  # CPU-side record names and NCCL kernel names
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
SYNC_PROBE_STEPS = 3


def rank_env() -> dict[str, int]:
    """RANK, LOCAL_RANK, WORLD_SIZE, GROUP_RANK (the node) and LOCAL_WORLD_SIZE as torchrun sets them."""
    env = {k.lower(): int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["group_rank"] = int(os.environ.get("GROUP_RANK", "0"))
    env["local_world_size"] = int(os.environ.get("LOCAL_WORLD_SIZE", env["world_size"]))
    return env


def other_nodes_results(result: dict[str, Any], env: dict[str, int]) -> list[dict[str, Any]]:
    """Across nodes, every rank's result gathered (a collective: all ranks call it); those of other nodes returned to
    local rank 0, so that each node's launcher sees every rank. [] on a single node."""
    if env["local_world_size"] == env["world_size"]:
        return []
    gathered: list[Any] = [None] * env["world_size"]
    dist.all_gather_object(gathered, result)
    if env["local_rank"] != 0:
        return []
    return [r for r in gathered if r["group_rank"] != env["group_rank"]]


def init_distributed(platform: str, local_rank: int) -> tuple[str, str]:
    """Start the process group: NCCL with one GPU per LOCAL_RANK on cuda, gloo on cpu; returns (backend, device)."""
    if platform == "cuda":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
        dist.init_process_group("nccl", device_id=torch.device(device))
        return "nccl", device
    dist.init_process_group("gloo")
    return "gloo", "cpu"


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every nn.Dropout to p=0 so that runs with different world sizes compute the same function."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for layer in layers:
        layer.p = 0.0
    return len(layers)


def local_slice(value: Any, rank: int, world: int, global_batch: int) -> Any:
    """This rank's contiguous share of a global-batch input: tensors and lists whose first dim is the batch."""
    per_rank = global_batch // world
    if isinstance(value, dict):
        return {k: local_slice(v, rank, world, global_batch) for k, v in value.items()}
    if isinstance(value, torch.Tensor | list) and len(value) == global_batch:
        return value[rank * per_rank:(rank + 1) * per_rank]
    return value


def to_device(value: Any, device: str) -> Any:
    """Move tensors (also inside dicts and lists) to the device."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    return value


def wrap_model(model: torch.nn.Module, strategy: str, device: str, precision: str) -> torch.nn.Module:
    """DDP (gradients as bucket views) or FSDP2 fully_shard per block and at the root."""
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.device(device).index] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=device_ids, gradient_as_bucket_view=True)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.split(":")[0], (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=AMP_DTYPES[precision], reduce_dtype=torch.float32) \
        if precision in AMP_DTYPES else MixedPrecisionPolicy()
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def make_optimizer(params: list[torch.nn.Parameter], name: str, lr: float) -> torch.optim.Optimizer:
    """Plain SGD (no state) or AdamW (foreach), as the config asks."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, foreach=True)


def local_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes this rank holds: the local shard of DTensors, the whole tensor otherwise."""
    total = 0
    for t in tensors:
        t = t.to_local() if hasattr(t, "to_local") else t
        total += t.numel() * t.element_size()
    return int(total)


def memory_split(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """This rank's bytes of weights, gradients and optimizer state, from the live (local) tensors."""
    params = list(model.parameters())
    state = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
    return {"weights_bytes": local_bytes(params),
            "gradients_bytes": local_bytes([p.grad for p in params if p.grad is not None]),
            "optimizer_state_bytes": local_bytes(state)}


class Trainer:
    """One rank's training loop: the step, its clock and peak tracker, and the communication probes."""

    def __init__(self, cfg: dict[str, Any], model: torch.nn.Module, loaded: Any, inputs: dict[str, Any],
                 device: str) -> None:
        self.cfg, self.model, self.loaded, self.inputs, self.device = cfg, model, loaded, inputs, device
        self.is_cuda = device.startswith("cuda")
        self.clock = CudaEventClock() if self.is_cuda else PerfCounterClock()
        self.tracker = CudaPeakTracker() if self.is_cuda else ProcessPeakTracker()
        self.optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg["optimizer"],
                                        float(cfg["lr"]))
        use_autocast = cfg["strategy"] == "ddp" and cfg["precision"] in AMP_DTYPES
        self.autocast = (lambda: torch.autocast(device.split(":")[0], dtype=AMP_DTYPES[cfg["precision"]])) \
            if use_autocast else nullcontext
        self.losses: list[float] = []

    def forward_backward(self) -> torch.Tensor:
        """Forward, loss and backward on this rank's batch; returns the detached local loss."""
        with self.autocast():
            loss = self.loaded.loss(self.inputs)
        loss.backward()
        return loss.detach()

    def step(self) -> None:
        """One optimizer step; the local loss is kept (all-reduced once at the end, off the timed path)."""
        loss = self.forward_backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(float(loss.float()))

    def last_step_split(self) -> dict[str, int]:
        """Memory split measured with the gradients alive: one more forward+backward, then the split."""
        self.forward_backward()
        split = memory_split(self.model, self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return split

    def exposed_comm_s(self) -> dict[str, float] | None:
        """DDP only: median forward+backward time with gradient sync minus without it (no_sync), per step."""
        if not hasattr(self.model, "no_sync"):
            return None
        synced, local = [], []
        for _ in range(SYNC_PROBE_STEPS):
            synced.append(self.clock.time_call(self.forward_backward))
            with self.model.no_sync():
                local.append(self.clock.time_call(self.forward_backward))
            self.optimizer.zero_grad(set_to_none=True)
        sync_s, local_s = statistics.median(synced), statistics.median(local)
        return {"forward_backward_sync_s": sync_s, "forward_backward_no_sync_s": local_s,
                "exposed_comm_s": max(0.0, sync_s - local_s)}

    def profiled_comm(self, steps: int) -> dict[str, Any]:
        """Run profiled steps (forward+backward only, so the parameters stay as measured) and measure comm."""
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.is_cuda else [])
        start = time.perf_counter()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                self.forward_backward()
                self.optimizer.zero_grad(set_to_none=True)
            if self.is_cuda:
                torch.cuda.synchronize()
        wall_s = time.perf_counter() - start
        intervals = [(e.time_range.start, e.time_range.end) for e in prof.events() if self._is_comm(e)]
        busy_s = union_length_us(intervals) / 1e6
        return {"profiled_steps": steps, "profiled_wall_s": wall_s, "comm_busy_s": busy_s,
                "comm_events": len(intervals), "comm_share": min(1.0, busy_s / wall_s) if wall_s > 0 else None}


    def _is_comm(self, event: Any) -> bool:
        """A collective's execution: gloo's records on CPU; on CUDA only NCCL kernels (the CPU records just enqueue)."""
        on_gpu = str(event.device_type).endswith("CUDA")
        return event.name.lower().startswith(COMM_PREFIXES) and on_gpu == self.is_cuda


def union_length_us(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals (the time at least one collective was running)."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def process_baseline_bytes(model: torch.nn.Module) -> int:
    """RSS of the process without the model, as kit's training runner defines it: once the model is built and moved
    (lazy imports of its classes, libraries and allocator arenas included), minus its weights."""
    import psutil

    return int(psutil.Process().memory_info().rss - local_bytes(list(model.parameters())))


def build(cfg: dict[str, Any], rank: int, world: int, device: str) -> tuple[Any, torch.nn.Module, dict[str, Any], int]:
    """The zoo model (same seed on every rank), dropout off if asked, wrapped; this rank's inputs; and the process
    baseline, read before the wrap so that DDP's gradient buckets and FSDP's unsharded blocks count as training
    memory."""
    loaded = zoo.load_model(cfg["model"], cfg["size"], overrides=cfg.get("overrides") or None)
    model = loaded.model
    if cfg.get("disable_dropout", True):
        disable_dropout(model)
    model.to(device).train()
    if cfg.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
    global_batch = cfg["batch_per_rank"] * world
    full = loaded.make_inputs(global_batch, cfg.get("seq_len"), with_labels=True, seed=int(cfg.get("seed", 0)))
    inputs = to_device(local_slice(full, rank, world, global_batch), device)
    baseline = process_baseline_bytes(model)
    wrapped = wrap_model(model, cfg["strategy"], device, cfg["precision"])
    loaded.model = wrapped  # loaded.loss calls loaded.model, which must be the wrapped module
    return loaded, wrapped, inputs, baseline


def global_mean(values: list[float], device: str) -> list[float]:
    """The mean over ranks of each value (SUM then divide: gloo has no AVG)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).tolist()


def run_rank(cfg: dict[str, Any], env: dict[str, int], result: dict[str, Any]) -> None:
    """Everything one rank measures, written into `result` phase by phase (so a failure says where it happened)."""
    torch.manual_seed(int(cfg.get("seed", 0)))
    torch.set_num_threads(int(cfg["threads_per_rank"]))
    result["phase"] = "init"
    backend, device = init_distributed(cfg["platform"], env["local_rank"])
    result.update(backend=backend, device=device, threads=torch.get_num_threads())
    result["phase"] = "setup"
    loaded, model, inputs, result["baseline_rss_bytes"] = build(cfg, env["rank"], env["world_size"], device)
    result["n_params"] = sum(p.numel() for p in model.parameters())
    trainer = Trainer(cfg, model, loaded, inputs, device)
    result["phase"] = "first_step"
    result["first_step_s"] = trainer.clock.time_call(trainer.step)
    result["phase"] = "measure"
    for _ in range(int(cfg["warmup_steps"])):
        trainer.step()
    trainer.tracker.reset()
    result["step_times_s"] = [trainer.clock.time_call(trainer.step) for _ in range(int(cfg["steps"]))]
    result["peak_memory_bytes"] = trainer.tracker.peak_bytes()
    result["memory_method"] = trainer.tracker.method
    result["local_losses"] = trainer.losses
    result["losses"] = global_mean(trainer.losses, device)
    result["phase"] = "probes"
    result["memory_split_bytes"] = trainer.last_step_split()
    result["exposed_comm"] = trainer.exposed_comm_s()
    result["profiled_comm"] = trainer.profiled_comm(int(cfg.get("profile_steps", 2)))
    result["phase"] = "done"
    dist.barrier()


def main(argv: list[str] | None = None) -> int:
    """Run this rank from a JSON config; always write rank<R>.json, with the error and its phase on failure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="JSON written by kit.distributed")
    parser.add_argument("--out", type=Path, required=True, help="folder for rank<R>.json")
    args = parser.parse_args(argv)
    from kit.runners.isolation import guard_parent

    guard_parent()  # a rank ends with the benchkit process that launched torchrun, however that one died
    cfg = json.loads(args.config.read_text())
    env = rank_env()
    result: dict[str, Any] = {**env, "ok": False, "pid": os.getpid()}
    code = 0
    others: list[dict[str, Any]] = []
    try:
        run_rank(cfg, env, result)
        result["ok"] = True
        others = other_nodes_results(result, env)
    except Exception as exc:  # written to the rank file so that the launcher can turn it into a failed record
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = "".join(traceback.format_exception(exc)[-4:])
        code = 1
    args.out.mkdir(parents=True, exist_ok=True)
    for item in (result, *others):
        (args.out / f"rank{item['rank']}.json").write_text(json.dumps(item, default=str))
    if dist.is_initialized():
        dist.destroy_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
