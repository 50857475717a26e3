"""Notebook 06's parameters as one checked study: the distributed run, the single-process training sweep that the
memory estimator is checked against, and the question put to the strategy advisor. Every value is checked here,
before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kit.config import SweepSpec
from kit.distributed.bench import NOTEBOOK_KEYS, DistributedSpec
from kit.errors import ConfigError

RUN_KEYS = tuple(DistributedSpec.__dataclass_fields__)
OPTIONAL_KEYS = {"run_id"}


@dataclass(frozen=True)
class Study:
    """A checked distributed study: `run` for kit.distributed.run_spec, `memory` for kit.run_sweep, `advice` the
    keyword arguments of kit.memory.advise_distributed_config."""

    run: DistributedSpec
    memory: SweepSpec
    advice: dict[str, Any]
    db_path: str
    run_id: str | None


def study_from_parameters(params: Mapping[str, Any]) -> Study:
    """The Study of a parameter mapping (the notebook's namespace, or parameters/06_distributed.yaml): the run takes
    the DistributedSpec fields present, the memory sweep and the advisor the notebook's keys, all of which must be
    there (run_id may be missing or None)."""
    from kit.memory import GIB, check_advice_inputs

    missing = sorted(NOTEBOOK_KEYS - OPTIONAL_KEYS - set(params))
    if missing:
        raise ConfigError(f"missing distributed study parameter(s) {missing}")
    run = DistributedSpec(**{k: params[k] for k in RUN_KEYS if k in params})
    memory = SweepSpec(models=[run.model], size=run.size, overrides=run.overrides, platforms=[run.platform],
                       precisions=[run.precision], batch_sizes=params["memory_batch_sizes"], modes=["training"],
                       seq_len=run.seq_len, threads=run.threads_per_rank,
                       time_budget_s=params["memory_time_budget_s"])
    gpu_memory_gib = params["gpu_memory_gib"]
    if not isinstance(gpu_memory_gib, int | float) or isinstance(gpu_memory_gib, bool) or gpu_memory_gib <= 0:
        raise ConfigError(f"gpu_memory_gib must be a positive number, got {gpu_memory_gib!r}")
    advice = {"model": params["advisor_model"], "n_gpus": params["gpus"],
              "gpu_memory_bytes": int(gpu_memory_gib * GIB), "global_batch": params["global_batch"],
              "seq_len": params["advisor_seq_len"], "precision": params["advisor_precision"],
              "size": params["advisor_size"]}
    check_advice_inputs(advice["model"], advice["n_gpus"], advice["gpu_memory_bytes"], advice["global_batch"],
                        advice["precision"], size=advice["size"])
    return Study(run=run, memory=memory, advice=advice, db_path=str(params["db_path"]),
                 run_id=params.get("run_id"))
