"""Predict throughput, latency and peak memory of unmeasured configurations, with intervals and honest scores.

`model` holds the predictor (analytic baseline x boosted correction, conformal intervals) and leave-one-group-out
validation; `data` the data-generation sweep and the training frame; `validation` the validation tables notebooks
show; `features` what the predictor and the recommender read from results (model facts, profiles, kernel counts,
roofline terms); `steady` throughput and latency on a scale the machine's drift does not move (beside the machine
reference); `study` notebook 04's settings checked as one PredictionStudy; `remeasure` noisy results measured again,
and the training frame's preference for converged ones; `architectures` the rows of `benchkit coverage` as extra
training data, scored with and without; `budget` where the held-out error comes from (the measurements' own
repeatability, offsets shared by a family or a setting); `upgrade` what older results lack, stored on request.
"""

from kit.predict.architectures import architecture_frame, architecture_rows, architecture_scores
from kit.predict.budget import error_budget, other_repeats_mean, repeat_floor, repeat_table
from kit.predict.data import (
    PASSED_TO_SPEC,
    SWEEP_AXES,
    SWEEP_OPTIONS,
    SweepOutcome,
    all_measurements,
    check_batch_sizes,
    describe_specs,
    prediction_sweep_specs,
    run_prediction_sweep,
    timed_prediction_sweep,
    training_frame,
)
from kit.predict.model import (
    GB_PARAMS,
    Predictor,
    TargetModel,
    Validation,
    accuracy,
    hold_out_groups,
    leave_one_group_out,
    min_residuals,
    set_boosting_rounds,
)
from kit.predict.remeasure import best_measurements, noisy_summary, prefer_converged, remeasure_noisy
from kit.predict.steady import (
    held_out_scales,
    steady_budget,
    steady_frame,
    steady_scores,
    to_absolute,
    to_steady,
    validate_steady,
)
from kit.predict.study import PredictionStudy, plan_study
from kit.predict.validation import (
    MAPE_GOAL,
    SHOWN_FEATURES,
    check_held_out_families,
    goal_table,
    headline,
    held_out_table,
    per_group_table,
    per_value_table,
    predict_unmeasured,
    scores_table,
    unmeasured_configurations,
    validate_held_out,
    validate_target,
    validate_targets,
    validate_throughput,
    validation_frame,
)

__all__ = ["GB_PARAMS", "MAPE_GOAL", "PASSED_TO_SPEC", "PredictionStudy", "Predictor", "SHOWN_FEATURES", "SWEEP_AXES",
           "SWEEP_OPTIONS", "SweepOutcome", "TargetModel", "Validation", "accuracy", "all_measurements",
           "architecture_frame", "architecture_rows", "architecture_scores",
           "best_measurements", "check_batch_sizes", "check_held_out_families", "describe_specs", "error_budget",
           "goal_table", "headline", "held_out_scales", "held_out_table", "hold_out_groups", "leave_one_group_out",
           "min_residuals",
           "noisy_summary", "other_repeats_mean", "per_group_table", "per_value_table", "plan_study",
           "predict_unmeasured", "prediction_sweep_specs", "prefer_converged", "remeasure_noisy", "repeat_floor",
           "repeat_table", "run_prediction_sweep", "scores_table", "set_boosting_rounds", "steady_budget",
           "steady_frame", "steady_scores",
           "timed_prediction_sweep", "to_absolute", "to_steady", "training_frame", "unmeasured_configurations",
           "validate_held_out", "validate_steady", "validate_target", "validate_targets", "validate_throughput",
           "validation_frame"]
