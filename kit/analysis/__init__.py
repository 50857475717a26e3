"""Comparative analysis of stored results: speed-ups against a baseline, rankings, regressions between two runs, one
metric's history across runs, and training against inference.

Every comparison is computed from the raw latency samples (ratio of medians with a bootstrap CI, Mann-Whitney U), with
Holm's correction across the table, because a table of many comparisons at alpha=0.05 would otherwise flag about one in
twenty unchanged configurations by chance.

`frames` reads results with their raw samples (a store, Records, a DataFrame or an export) and holds the shared helpers;
`speedups` the speed-up and ranking tables; `regressions` regression detection, the planned comparison and `benchkit
compare`; `history` one metric across runs; `training` training against inference; `generation` text generation (TTFT,
TPOT, KV cache); `exports` CSV/Parquet.
"""

from kit.analysis.exports import export_csv, export_parquet, export_table
from kit.analysis.frames import (
    EXPORT_COLUMNS,
    FILE_SUFFIXES,
    IDENTITY,
    KEY,
    WORKLOAD,
    Source,
    latest_ok,
    results_with_samples,
)
from kit.analysis.generation import (
    GENERATION_COLUMNS,
    GENERATION_SPEEDUP_COLUMNS,
    KV_COLUMNS,
    generation_speedups,
    generation_table,
    kv_cache_table,
)
from kit.analysis.history import HISTORY_COLUMNS, HISTORY_METRICS, history_configuration, metric_history
from kit.analysis.machines import (
    MACHINE_COLUMNS,
    MACHINE_SPEEDUP_COLUMNS,
    machine_label,
    machine_speedups,
    machines_table,
    resolve_machine,
)
from kit.analysis.regressions import (
    REGRESSION_COLUMNS,
    REGRESSION_STATUSES,
    ComparisonPlan,
    add_compare_arguments,
    cmd_compare,
    compared_count,
    comparison_table,
    detect_regressions,
    latest_run_id,
    plan_comparison,
    previous_run_id,
    regression_exit_code,
    regressions_for,
    round_units,
    stability_summary,
)
from kit.analysis.speedups import RANKING_COLUMNS, SPEEDUP_COLUMNS, ranking_table, speedup_table
from kit.analysis.stability import STABILITY_COLUMNS, run_drift, stability_table
from kit.analysis.training import (
    CONVERGENCE_COLUMNS,
    GRADIENTS_FREED,
    MEMORY_COLUMNS,
    MEMORY_PARTS,
    PHASE_COLUMNS,
    PHASES,
    TRAINING_ID,
    TVI_COLUMNS,
    TVI_KEY,
    training_convergence,
    training_memory,
    training_phases,
    training_sweep_spec,
    training_vs_inference,
)

__all__ = [
    "CONVERGENCE_COLUMNS", "ComparisonPlan", "EXPORT_COLUMNS", "FILE_SUFFIXES", "GENERATION_COLUMNS",
    "GENERATION_SPEEDUP_COLUMNS", "GRADIENTS_FREED", "HISTORY_COLUMNS", "KV_COLUMNS", "HISTORY_METRICS", "IDENTITY",
    "KEY", "MACHINE_COLUMNS", "MACHINE_SPEEDUP_COLUMNS", "MEMORY_COLUMNS", "MEMORY_PARTS", "PHASES", "PHASE_COLUMNS",
    "RANKING_COLUMNS", "REGRESSION_COLUMNS", "REGRESSION_STATUSES", "SPEEDUP_COLUMNS", "STABILITY_COLUMNS", "Source",
    "TRAINING_ID", "TVI_COLUMNS", "TVI_KEY", "WORKLOAD", "add_compare_arguments", "cmd_compare", "compared_count",
    "comparison_table", "detect_regressions", "export_csv", "export_parquet", "export_table", "generation_speedups",
    "generation_table", "history_configuration", "latest_ok", "latest_run_id", "machine_label", "machine_speedups",
    "machines_table", "metric_history", "plan_comparison", "previous_run_id", "ranking_table", "regression_exit_code",
    "regressions_for", "resolve_machine", "results_with_samples", "round_units", "run_drift", "speedup_table",
    "kv_cache_table", "stability_summary", "stability_table", "training_convergence", "training_memory",
    "training_phases", "training_sweep_spec", "training_vs_inference"
]
