"""Training-memory estimator per rank (DDP / FSDP / ZeRO) and the distributed-configuration advisor.

`shapes` holds what the estimator needs from a model (built on the meta device); `estimator` the formula terms,
`estimate_memory` and the `Calibration` type it takes (its module docstring states the formulas' assumptions);
`calibration` the fitted constants and fitting/validating them against measured Records; `advisor`
`advise_distributed_config` and the `benchkit distributed-config` command.
"""

from kit.memory.advisor import (
    ADVISED_STRATEGIES,
    GIB,
    GPU_RESERVED_BYTES,
    MIN_EFFICIENT_MICRO_BATCH,
    STRATEGY_NAMES,
    Advice,
    add_distributed_config_args,
    advice_table,
    advise_distributed_config,
    check_advice_inputs,
    cmd_distributed_config,
)
from kit.memory.calibration import (
    CPU_CALIBRATION,
    CPU_DISTRIBUTED_CALIBRATION,
    HARNESSES,
    TARGET_ERROR_PCT,
    calibration_for,
    error_summary,
    estimate_for_record,
    fit_calibration,
    measured_peak_bytes,
    record_calibration,
    record_settings,
    validate_estimates,
)
from kit.memory.estimator import (
    ACTIVATION_COEFFS,
    OPTIMIZER_STATE_BYTES,
    PRECISION_SCHEMES,
    RESIDUAL_BYTES,
    SHARDED,
    STRATEGIES,
    UNCALIBRATED,
    Calibration,
    MemoryEstimate,
    activation_bytes,
    check_settings,
    estimate_memory,
    saved_activation_bytes,
    terms_table,
)
from kit.memory.shapes import FAMILY_FORMULA, ModelShape, model_shape, shape_of_module

__all__ = [
    "ACTIVATION_COEFFS", "ADVISED_STRATEGIES", "CPU_CALIBRATION", "CPU_DISTRIBUTED_CALIBRATION", "FAMILY_FORMULA",
    "GIB", "GPU_RESERVED_BYTES", "HARNESSES", "MIN_EFFICIENT_MICRO_BATCH", "OPTIMIZER_STATE_BYTES",
    "PRECISION_SCHEMES", "RESIDUAL_BYTES", "SHARDED", "STRATEGIES", "STRATEGY_NAMES", "TARGET_ERROR_PCT",
    "UNCALIBRATED", "Advice", "Calibration", "MemoryEstimate", "ModelShape", "activation_bytes",
    "add_distributed_config_args", "advice_table", "advise_distributed_config", "calibration_for",
    "check_advice_inputs", "check_settings", "cmd_distributed_config", "error_summary", "estimate_for_record",
    "estimate_memory", "fit_calibration", "measured_peak_bytes", "model_shape", "record_calibration",
    "record_settings", "saved_activation_bytes", "shape_of_module", "terms_table", "validate_estimates",
]
