"""Distributed training benchmarks (DDP, FSDP2) on one or several machines, and their scaling.

`bench` holds the spec, the runs at each world size (launched again after a failed launch), the Records and the
scaling tables, and `benchkit distributed-bench`; `launch` starts torchrun with a timeout and reads the ranks' results;
`worker` is the module torchrun runs on every rank (DDP or FSDP2, timed steps, communication share, memory); `study`
checks notebook 06's parameters as one Study. The memory estimator and the strategy advisor are in kit.memory.
"""

from kit.distributed.bench import (
    COMM_METHOD,
    EXPOSED_METHOD,
    OPTIMIZERS,
    PLATFORMS,
    PRECISIONS,
    STRATEGIES,
    DistributedSpec,
    add_distributed_bench_args,
    cmd_distributed_bench,
    failure_record,
    measure_world,
    ok_record,
    run_distributed_benchmark,
    run_spec,
    run_world,
    scaling_summary,
    scaling_table,
    spec_from_parameters,
    unavailable_reason,
)
from kit.distributed.launch import launch_command
from kit.distributed.study import Study, study_from_parameters

__all__ = ["COMM_METHOD", "EXPOSED_METHOD", "OPTIMIZERS", "PLATFORMS", "PRECISIONS", "STRATEGIES", "DistributedSpec",
           "add_distributed_bench_args", "cmd_distributed_bench", "failure_record", "launch_command", "measure_world",
           "ok_record", "run_distributed_benchmark", "run_spec", "run_world", "scaling_summary", "scaling_table",
           "spec_from_parameters", "Study", "study_from_parameters", "unavailable_reason"]
