"""Notebook 04's settings as one checked study: the data-generation sweep's specs, the (unfitted) predictor, the
platforms whose peaks are measured, the batch sizes predicted without a measurement, the families held out and the
coverage run whose architectures the predictor may also learn from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kit.config import SweepSpec
from kit.coverage import CoverageSpec
from kit.predict.data import check_batch_sizes, describe_specs, prediction_sweep_specs
from kit.predict.model import Predictor
from kit.predict.validation import check_held_out_families


@dataclass(frozen=True)
class PredictionStudy:
    """What notebook 04 measures and predicts, every value checked."""

    prediction_data: str
    specs: list[SweepSpec]
    predictor: Predictor
    microbench_platforms: list[str]
    microbench_budget_s: float
    unmeasured_batch_sizes: list[int]
    fresh_families: list[str]
    architectures: CoverageSpec | None = None

    def describe(self) -> pd.DataFrame:
        """One row per model variant of the data-generation sweep (kit.predict.describe_specs)."""
        return describe_specs(self.specs)


def plan_study(prediction_data: str, *, microbench_platforms: list[str], microbench_budget_s: float,
               targets: list[str], coverage: float, unmeasured_batch_sizes: list[int],
               fresh_families: list[str], architectures: str | Path | None = None) -> PredictionStudy:
    """The PredictionStudy of notebook 04's parameters; ConfigError naming the first bad value, before any work.
    `architectures`: notebook 08's parameter file of the coverage run to learn from as well (None: none)."""
    from kit.config import load_parameters
    from kit.coverage import spec_from_parameters
    from kit.microbench import check_settings

    specs = prediction_sweep_specs(load_parameters(prediction_data))
    check_settings(microbench_platforms, microbench_budget_s)
    coverage_spec = spec_from_parameters(architectures) if architectures is not None else None
    if coverage_spec is not None:
        coverage_spec.architectures()  # an unknown model type or modality fails here
    return PredictionStudy(prediction_data=str(prediction_data), specs=specs,
                           predictor=Predictor(targets=targets, coverage=coverage),
                           microbench_platforms=list(microbench_platforms), microbench_budget_s=microbench_budget_s,
                           unmeasured_batch_sizes=check_batch_sizes(unmeasured_batch_sizes),
                           fresh_families=check_held_out_families(fresh_families), architectures=coverage_spec)
