"""Training data for the predictor: the data-generation sweep (parameters/prediction_data.yaml), which resumes by run
id, and the feature frame of what the store holds."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import feature_frame, predictor_rows

if TYPE_CHECKING:
    from kit.config import SweepSpec

SWEEP_AXES = ("num_hidden_layers", "hidden_size", "seq_lens")
SWEEP_OPTIONS = {"run_id", "models", "intermediate_ratio", "seq_lens_by_model", "variants_per_model", "seed",
                 "cross_platform", "larger", "local", "checkpoint_folder", *SWEEP_AXES}
LOCAL_OPTIONS = {"checkpoints", "names"}
CHECKPOINT_FOLDER = "outputs/checkpoints"
LARGER_OPTIONS = {*SWEEP_AXES, "seq_lens_by_model", "overrides_by_model", "models", "variants_per_model"}
PASSED_TO_SPEC = {"platforms", "precisions", "modes", "batch_sizes", "size", "time_budget_s", "target_rel_ci",
                  "min_samples", "max_samples", "warmup_iters", "timeout_s", "memory_limit_bytes", "threads",
                  "training"}


def _variants(model: str, params: dict[str, Any]) -> list[tuple[int, int, int | None]]:
    """(layers, hidden size, seq_len) combinations of one model, a seeded sample when variants_per_model is set."""
    seqs = (params.get("seq_lens_by_model") or {}).get(model, params.get("seq_lens", [None]))
    grid = list(itertools.product(params.get("num_hidden_layers", [2]), params.get("hidden_size", [32]), seqs))
    limit = params.get("variants_per_model")
    if limit and limit < len(grid):
        rng = np.random.default_rng([params.get("seed", 0), *model.encode()])
        grid = [grid[i] for i in sorted(rng.choice(len(grid), size=limit, replace=False))]
    return grid


def prediction_sweep_specs(params: dict[str, Any]) -> list[SweepSpec]:
    """One SweepSpec per model variant (depth, width and sequence length; batch sizes inside), each with its own
    run id `<run_id>-<model>-L<layers>-H<hidden>-S<seq>` so that re-running resumes, from a mapping like
    parameters/prediction_data.yaml. An optional `cross_platform` mapping (spec options plus variants_per_model)
    measures a spread of the variants of every model again on more platforms and precisions (run ids `<run_id>-xp-...`),
    so that each platform and precision is seen on several families, not just the one held out. An optional `larger`
    mapping, or a list of them (each with its own variant axes, per-model config overrides and spec options), measures
    bigger variants, e.g. at the default thread count or with long inputs, so that the zoo's real sizes are not far
    outside the data (run ids `<run_id>-lg-...`, then `-lg2-...` for the second mapping and so on). A larger mapping
    with variants_per_model samples its grid with the sweep's seed, so the grid's own axes give the grid's variants.

    The specs come section by section, each across all models, the i-th local section after the i-th of the zoo:
    a sweep stopped early has then measured every family at the sections it reached, not a few families fully."""
    from kit.config import SweepSpec

    unknown = sorted(set(params) - SWEEP_OPTIONS - PASSED_TO_SPEC)
    if unknown:
        raise ConfigError(f"unknown prediction-data parameter(s) {unknown}; known: "
                          f"{', '.join(sorted(SWEEP_OPTIONS | PASSED_TO_SPEC))}")
    if not params.get("models"):
        raise ConfigError("prediction data needs a non-empty 'models' list")
    n_cross, cross = _cross_platform(params.get("cross_platform"))
    larger = params.get("larger") or []
    larger = [_larger(section) for section in (larger if isinstance(larger, list) else [larger])]
    ratio = params.get("intermediate_ratio")
    common = {k: v for k, v in params.items() if k in PASSED_TO_SPEC}
    run_id = params.get("run_id", "pred-data")
    specs: list[tuple[int, int, SweepSpec]] = []  # (section, 0 for the zoo, spec)
    for model in params["models"]:
        variants = _variants(model, params)
        sections = [(0, run_id, common, variants, {}),
                    (1, f"{run_id}-xp", {**common, **cross}, _spread(variants, n_cross), {})]
        for i, (axes, options, by_model) in enumerate(larger):
            if model not in axes.get("models", [model]):
                continue
            picked = _variants(model, {**axes, "seed": params.get("seed", 0)})
            sections.append((2 + i, f"{run_id}-lg{i + 1 if i else ''}", {**common, **options}, picked,
                             by_model.get(model) or {}))
        for index, prefix, options, chosen, extra in sections:
            for layers, hidden, seq in chosen:
                overrides = {"num_hidden_layers": layers, "hidden_size": hidden}
                if ratio:
                    overrides["intermediate_size"] = int(ratio * hidden)
                specs.append((index, 0, SweepSpec(models=[model], overrides={**overrides, **extra}, seq_len=seq,
                                                  **options, run_id=f"{prefix}-{model}-L{layers}-H{hidden}-S"
                                                                    f"{seq or 'default'}")))
    specs += [(index, 1, spec) for index, spec in _local_specs(params, common, run_id)]
    return [spec for _, _, spec in sorted(specs, key=lambda item: item[:2])]  # stable: models keep their order


def _local_specs(params: dict[str, Any], common: dict[str, Any], run_id: str) -> list[tuple[int, SweepSpec]]:
    """Specs of the `local` mapping (or list of them): each names a checkpoint spec (kit.zoo.checkpoints), optionally
    some of its names, and sweep options; the folders are written under checkpoint_folder first where missing
    (seeded, so the same weights every time). Run ids `<run_id>-local-<name>`, then `-local2-` and so on; each spec
    with the index of its section."""
    from kit.config import SweepSpec
    from kit.zoo.checkpoints import make_checkpoints

    sections = params.get("local") or []
    folder = Path(params.get("checkpoint_folder") or CHECKPOINT_FOLDER)
    specs = []
    for i, section in enumerate(sections if isinstance(sections, list) else [sections]):
        entries, options = _local_section(section)
        todo = {n: e for n, e in entries.items() if not (folder / n / "config.json").is_file()}
        if todo:
            make_checkpoints({"checkpoints": todo}, folder)
        specs += [(i, SweepSpec(models=[str(folder / n)], **{**common, **options},
                                run_id=f"{run_id}-local{i + 1 if i else ''}-{n}")) for n in entries]
    return specs


def _local_section(section: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checkpoint entries it names, in order; its spec options) of one local mapping, checked."""
    from kit.config import load_parameters

    if not isinstance(section, dict) or not section.get("checkpoints"):
        raise ConfigError(f"local must be a mapping with 'checkpoints' (a checkpoint spec file), got {section!r}")
    unknown = sorted(set(section) - LOCAL_OPTIONS - PASSED_TO_SPEC)
    if unknown:
        known = ", ".join(sorted(LOCAL_OPTIONS | PASSED_TO_SPEC))
        raise ConfigError(f"unknown local option(s) {unknown}; known: {known}")
    entries = load_parameters(section["checkpoints"]).get("checkpoints") or {}
    names = section.get("names") or list(entries)
    missing = sorted(set(names) - set(entries))
    if missing:
        raise ConfigError(f"local names {missing} are not in {section['checkpoints']}; known: {sorted(entries)}")
    return {n: entries[n] for n in names}, {k: v for k, v in section.items() if k in PASSED_TO_SPEC}


def _spread(items: list, n: int) -> list:
    """n items evenly spaced over the list (its ends included), for a cross-section of sizes."""
    if n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)] if n else []


def _cross_platform(section: Any) -> tuple[int, dict[str, Any]]:
    """(variants per model, spec options) of the cross_platform section; (0, {}) when absent."""
    if section is None:
        return 0, {}
    if not isinstance(section, dict):
        raise ConfigError(f"cross_platform must be a mapping of sweep options, got {section!r}")
    unknown = sorted(set(section) - PASSED_TO_SPEC - {"variants_per_model"})
    if unknown:
        raise ConfigError(f"unknown cross_platform option(s) {unknown}; known: variants_per_model, "
                          f"{', '.join(sorted(PASSED_TO_SPEC))}")
    n = section.get("variants_per_model", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"cross_platform variants_per_model must be a positive integer, got {n!r}")
    return n, {k: v for k, v in section.items() if k != "variants_per_model"}


def _larger(section: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict]]:
    """(variant axes, spec options, config overrides per model) of one larger mapping."""
    if not isinstance(section, dict):
        raise ConfigError(f"larger must be a mapping of variant axes and sweep options, got {section!r}")
    unknown = sorted(set(section) - PASSED_TO_SPEC - LARGER_OPTIONS)
    if unknown:
        known = ", ".join(sorted(LARGER_OPTIONS | PASSED_TO_SPEC))
        raise ConfigError(f"unknown larger option(s) {unknown}; known: {known}")
    missing = [axis for axis in ("num_hidden_layers", "hidden_size") if not section.get(axis)]
    if missing:
        raise ConfigError(f"larger needs non-empty {' and '.join(missing)}")
    by_model = section.get("overrides_by_model") or {}
    if not isinstance(by_model, dict) or not all(isinstance(v, dict) for v in by_model.values()):
        raise ConfigError(f"larger overrides_by_model must map model names to config overrides, got {by_model!r}")
    models = section.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise ConfigError(f"larger models must be a list of model names, got {models!r}")
    axes = {k: v for k, v in section.items() if k in LARGER_OPTIONS - {"overrides_by_model"}}
    return axes, {k: v for k, v in section.items() if k in PASSED_TO_SPEC}, by_model


def run_prediction_sweep(params: dict[str, Any] | str | Path, db: Any = None, *, progress: bool = True) -> list:
    """Run every spec of prediction_sweep_specs in turn (from a mapping or a YAML path); returns all records."""
    from kit.config import load_parameters
    from kit.runners.sweep import run_sweep

    params = params if isinstance(params, dict) else load_parameters(params)
    specs = prediction_sweep_specs(params)
    return [r for spec in specs for r in run_sweep(spec, db, progress=progress)]


def check_batch_sizes(batch_sizes: list[int]) -> list[int]:
    """The batch sizes, or ConfigError naming the first that is not a positive integer."""
    for b in batch_sizes or []:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"batch sizes must be positive integers, got {b!r} in {batch_sizes!r}")
    return list(batch_sizes or [])


def describe_specs(specs: list[SweepSpec]) -> pd.DataFrame:
    """One row per model variant of the prediction-data sweep: run id, depth, width, sequence, configurations."""
    return pd.DataFrame([{"run_id": s.run_id, "model": s.models[0], "layers": s.overrides.get("num_hidden_layers"),
                          "hidden_size": s.overrides.get("hidden_size"), "seq_len": s.seq_len,
                          "batch_sizes": s.batch_sizes, "n_configurations": len(s.jobs())} for s in specs])


@dataclass(frozen=True)
class SweepOutcome:
    """Records of a prediction-data sweep, its wall time and how many configurations it measured now."""

    records: list
    seconds: float
    n_new: int

    def summary(self) -> pd.DataFrame:
        """One row: configurations by status, measured now vs already stored (resumed), and the time taken."""
        counts = {f"n_{s}": sum(r.status == s for r in self.records) for s in ("ok", "skipped", "failed")}
        return pd.DataFrame([{"n_configurations": len(self.records), **counts, "measured_now": self.n_new,
                              "already_stored": len(self.records) - self.n_new, "wall_s": round(self.seconds, 1),
                              "s_per_new_configuration": round(self.seconds / self.n_new, 1) if self.n_new else None}])


def timed_prediction_sweep(params: dict[str, Any] | str | Path, con: Any, *, progress: bool = False) -> SweepOutcome:
    """run_prediction_sweep on an open connection, timed, counting the configurations it had to measure."""
    from kit import storage
    from kit.config import load_parameters

    params = params if isinstance(params, dict) else load_parameters(params)
    run_ids = [s.run_id for s in prediction_sweep_specs(params)]
    before = sum(len(storage.finished_config_keys(con, r)) for r in run_ids)
    start = time.perf_counter()
    records = run_prediction_sweep(params, con, progress=progress)
    after = sum(len(storage.finished_config_keys(con, r)) for r in run_ids)
    return SweepOutcome(records, time.perf_counter() - start, after - before)


def all_measurements(con: Any) -> pd.DataFrame:
    """Every ok single-process result of the store, repeated measurements of a configuration included: what
    `kit.predict.error_budget` compares the training frame's one measurement per configuration with."""
    from kit import storage

    return predictor_rows(storage.results_frame(con, status="ok"))


def training_frame(con: Any) -> pd.DataFrame:
    """Ok single-process results of the store with their machine's measured peaks, as features (with roofline
    efficiency; forward profiles and OpenVINO kernels counted in memory where stored without them): what the
    predictor learns from. A configuration measured more than once counts once: its fastest good (converged,
    undisturbed) measurement, else its fastest (`kit.predict.remeasure.best_measurements`)."""
    from kit import microbench
    from kit.predict.kernels import fill_kernels
    from kit.predict.profiles import fill_profiles
    from kit.predict.remeasure import best_measurements

    ok = best_measurements(all_measurements(con))
    frame = fill_kernels(fill_profiles(ok))
    if frame.empty:
        raise ConfigError("the database holds no ok results to learn from; run a sweep first")
    return feature_frame(frame, microbench.stored_peaks(con))
