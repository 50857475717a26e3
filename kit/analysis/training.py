"""Training against inference: ratios, step phases, memory split, loss checks, and the two-mode sweep spec."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from kit.analysis.frames import Source, latest_ok, results_with_samples
from kit.errors import ConfigError

COMPARED = ("inference", "training")  # the modes a training-vs-inference sweep measures
PHASES = ("forward_s", "backward_s", "optimizer_s", "zero_grad_s")  # as in kit.runners.training (not imported: torch)
TVI_KEY = ["model", "size", "platform", "precision", "batch_size", "_seq", "_overrides"]
TVI_COLUMNS = ["model", "size", "platform", "precision", "batch_size", "seq_len", "training_variant",
               "inference_throughput_items_per_s", "training_throughput_items_per_s", "throughput_ratio",
               "throughput_ratio_p50",
               "inference_peak_memory_bytes", "training_peak_memory_bytes", "memory_ratio", *PHASES,
               *(p.replace("_s", "_pct") for p in PHASES), "note"]


def _paired(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """Latest ok training rows (suffix _tr) outer-joined with the inference rows (_inf) of the same configuration."""
    frame = latest_ok(results_with_samples(source, run_id, samples=False))
    frame["_overrides"] = frame["variant"].map(lambda v: "|".join(p for p in v.split("|") if p.startswith("ov")))
    training, inference = frame[frame["mode"] == "training"], frame[frame["mode"] == "inference"]
    return training.merge(inference, on=TVI_KEY, how="outer", suffixes=("_tr", "_inf"))


def _get(row: pd.Series, name: str) -> Any:
    value = row.get(name)
    return np.nan if value is None or (not isinstance(value, (str, dict)) and pd.isna(value)) else value


def _extra(row: pd.Series, suffix: str = "_tr") -> dict[str, Any]:
    value = _get(row, "extra" + suffix)
    return json.loads(value) if isinstance(value, str) else value if isinstance(value, dict) else {}


def training_vs_inference(df: Source, run_id: str | None = None) -> pd.DataFrame:
    """Per model/platform/precision/batch: training over inference throughput and peak memory, and how a training
    step splits into forward, backward, optimizer and zero_grad (mean seconds per item-batch, and % of the step)."""
    rows = [_tvi_row(row) for _, row in _paired(df, run_id).iterrows()]
    return pd.DataFrame(rows, columns=TVI_COLUMNS).sort_values(TVI_COLUMNS[:5], kind="stable").reset_index(drop=True)


def _tvi_row(row: pd.Series) -> dict[str, Any]:
    out = {name: row[name] for name in TVI_COLUMNS[:5]}
    out["seq_len"] = _get(row, "seq_len_tr") if not pd.isna(_get(row, "seq_len_tr")) else _get(row, "seq_len_inf")
    out["training_variant"] = _get(row, "variant_tr") if isinstance(_get(row, "variant_tr"), str) else ""
    for mode, suffix in (("inference", "_inf"), ("training", "_tr")):
        out[f"{mode}_throughput_items_per_s"] = float(_get(row, "throughput_items_per_s" + suffix))
        out[f"{mode}_peak_memory_bytes"] = float(_get(row, "peak_memory_bytes" + suffix))
    out["throughput_ratio"] = out["training_throughput_items_per_s"] / out["inference_throughput_items_per_s"]
    # the same ratio from median latencies (same batch size on both sides): throughput is batch / mean latency, which a
    # few preempted iterations on a busy machine can drag down on either side
    out["throughput_ratio_p50"] = float(_get(row, "latency_p50_s_inf")) / float(_get(row, "latency_p50_s_tr"))
    out["memory_ratio"] = out["training_peak_memory_bytes"] / out["inference_peak_memory_bytes"]
    phases = _extra(row).get("phases_mean_s") or {}
    total = sum(float(phases.get(p, 0.0)) for p in PHASES)
    for phase in PHASES:
        out[phase] = float(phases[phase]) if phase in phases else np.nan
        out[phase.replace("_s", "_pct")] = 100 * out[phase] / total if total > 0 else np.nan
    missing = [m for m, s in (("training", "_tr"), ("inference", "_inf"))
               if pd.isna(_get(row, "throughput_items_per_s" + s))]
    out["note"] = f"no {missing[0]} result for this configuration" if missing else ""
    return out


TRAINING_ID = ["model", "size", "platform", "precision", "batch_size", "seq_len", "training_variant"]
PHASE_COLUMNS = [*TRAINING_ID, *PHASES, "phase_sum_s", "step_mean_s", "phase_coverage", "n_measured_steps"]
MEMORY_PARTS = ("weights_bytes", "gradients_bytes", "optimizer_state_bytes", "activations_bytes")
MEMORY_COLUMNS = [*TRAINING_ID, "process_baseline_bytes", *MEMORY_PARTS, "training_peak_memory_bytes",
                  "inference_peak_memory_bytes", "memory_method", "note"]
CONVERGENCE_COLUMNS = [*TRAINING_ID, "first_loss", "last_loss", "loss_change_pct", "loss_decreased", "n_steps", "lr"]
GRADIENTS_FREED = ("gradients_bytes is 0: stored before the kit counted gradients (zero_grad(set_to_none=True) had "
                   "freed them when the split was taken), so their bytes are inside activations")


def _training_rows(source: Source, run_id: str | None, columns: list[str], fill: Any) -> pd.DataFrame:
    """One row per stored training result, built by `fill(row, extra, identity)`, in TRAINING_ID order."""
    paired = _paired(source, run_id)
    rows = []
    for _, row in paired[paired["mode_tr"] == "training"].iterrows():
        identity = {name: row[name] for name in TRAINING_ID[:5]}
        identity["seq_len"] = _get(row, "seq_len_tr")
        identity["training_variant"] = row["variant_tr"]
        rows.append({**identity, **fill(row, _extra(row))})
    return pd.DataFrame(rows, columns=columns).sort_values(TRAINING_ID[:5], kind="stable").reset_index(drop=True)


def training_phases(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """Mean seconds per phase of a training step, their sum, the mean measured step, and coverage = sum / step.

    The phases are timed inside the timed step, so coverage is at most 1; far below 1 means time the phase timers
    do not see (synchronisation, Python overhead, or a step sample that is not one optimizer step).
    """
    def fill(row: pd.Series, extra: dict[str, Any]) -> dict[str, Any]:
        phases = extra.get("phases_mean_s") or {}
        out = {phase: float(phases[phase]) if phase in phases else np.nan for phase in PHASES}
        out["phase_sum_s"] = sum(float(phases.get(p, 0.0)) for p in PHASES) if phases else np.nan
        out["step_mean_s"] = float(row["latency_mean_s_tr"])
        out["phase_coverage"] = out["phase_sum_s"] / out["step_mean_s"]
        out["n_measured_steps"] = int(row["n_samples_tr"]) if not pd.isna(row["n_samples_tr"]) else 0
        return out

    return _training_rows(source, run_id, PHASE_COLUMNS, fill)


def training_memory(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """Training peak memory split into process baseline, weights, gradients, optimizer state and activations (the
    peak minus the rest), beside the inference peak of the same configuration, all in bytes."""
    def fill(row: pd.Series, extra: dict[str, Any]) -> dict[str, Any]:
        split = extra.get("memory_split_bytes") or {}
        out = {part: float(split[part]) if part in split else np.nan for part in MEMORY_PARTS}
        out["process_baseline_bytes"] = float(extra.get("process_baseline_bytes", np.nan))
        out["training_peak_memory_bytes"] = float(_get(row, "peak_memory_bytes_tr"))
        out["inference_peak_memory_bytes"] = float(_get(row, "peak_memory_bytes_inf"))
        out["memory_method"] = _get(row, "memory_method_tr") if isinstance(_get(row, "memory_method_tr"), str) else ""
        freed = split.get("gradients_bytes") == 0 and split.get("weights_bytes", 0) > 0
        out["note"] = "; ".join(filter(None, [GRADIENTS_FREED if freed else "",
                                              "" if split else "no memory split stored"]))
        return out

    return _training_rows(source, run_id, MEMORY_COLUMNS, fill)


def training_convergence(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """First and last training loss of each configuration (same batch every step): a sanity check that the
    optimizer steps really update the model, not a measure of model quality (the weights are random)."""
    def fill(row: pd.Series, extra: dict[str, Any]) -> dict[str, Any]:
        first, last = float(extra.get("first_loss", np.nan)), float(extra.get("last_loss", np.nan))
        change = (last / first - 1) * 100 if first else np.nan
        return {"first_loss": first, "last_loss": last, "loss_change_pct": change,
                "loss_decreased": bool(last < first), "n_steps": int(extra.get("n_steps", 0)),
                "lr": float(extra.get("lr", np.nan))}

    return _training_rows(source, run_id, CONVERGENCE_COLUMNS, fill)


def training_sweep_spec(**fields: Any) -> Any:
    """A kit.SweepSpec measuring every configuration in both modes, with its training options checked up front.

    `modes` is fixed to inference and training; other fields are SweepSpec's. Raises ConfigError before any work.
    """
    from kit.config import SweepSpec
    from kit.runners.training import training_options  # imports torch: only when a training sweep is planned

    if "modes" in fields:
        raise ConfigError(f"modes are fixed to {list(COMPARED)} in a training-vs-inference sweep; "
                          f"got {fields['modes']!r}")
    spec = SweepSpec(**fields, modes=list(COMPARED))
    for job in spec.jobs():
        if job.mode == "training":
            training_options(job)
    return spec
