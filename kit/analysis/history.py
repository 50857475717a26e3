"""One configuration's metric across runs, with the software and commit changes between them."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from kit import storage
from kit.errors import ConfigError
from kit.records import MODES

HISTORY_METRICS = ("throughput_items_per_s", "latency_mean_s", "latency_p50_s", "latency_p90_s", "latency_p95_s",
                   "latency_p99_s", "peak_memory_bytes", "startup_s", "first_inference_s", "cpu_time_s")
HISTORY_COLUMNS = ["run_id", "started_at", "git_commit", "kit_version", "config_key", "metric", "value", "ci_low_s",
                   "ci_high_s", "n_samples", "noisy", "change_pct", "commit_changed", "software_changes"]


def metric_history(con: storage.Connection, model: str, platform: str, precision: str, batch_size: int,
                   mode: str = "inference", metric: str = "throughput_items_per_s", *, size: str | None = None,
                   seq_len: int | None = None, config_key: str | None = None) -> pd.DataFrame:
    """One configuration's metric across runs, oldest first, with what changed in software and commit since the
    previous run that measured it (runs.software_json), to tell a code regression from an upgraded dependency.

    When the filters match several configurations (e.g. two seq_lens, or an overrides variant), each row's change is
    taken against the previous run of its own config_key; pass `config_key` to keep exactly one.
    """
    if metric not in HISTORY_METRICS:
        raise ConfigError(f"metric must be one of {', '.join(HISTORY_METRICS)}, not {metric!r}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    frame = storage.results_frame(con, model=model, platform=platform, precision=precision, batch_size=batch_size,
                                  mode=mode, size=size, seq_len=seq_len, config_key=config_key, status="ok")
    software = storage.runs_frame(con).set_index("run_id")["software_json"]
    frame = frame.sort_values(["run_started_at", "created_at"], kind="stable").reset_index(drop=True)
    out = frame.assign(started_at=frame["run_started_at"], metric=metric, value=frame[metric].astype(float))
    by_config = out.groupby("config_key", sort=False)
    previous, previous_value = by_config["run_id"].shift(), by_config["value"].shift()
    commits = {r: c for r, c in zip(out["run_id"], out["git_commit"], strict=True) if isinstance(c, str) and c}
    out["change_pct"] = (out["value"] / previous_value - 1) * 100
    out["commit_changed"] = [isinstance(p, str) and r in commits and p in commits and commits[r] != commits[p]
                             for r, p in zip(out["run_id"], previous, strict=True)]
    out["software_changes"] = [_software_diff(software.get(p), software.get(r)) if isinstance(p, str)
                               else "(first run)" for r, p in zip(out["run_id"], previous, strict=True)]
    return out[HISTORY_COLUMNS]


def _software_diff(before_json: str | None, after_json: str | None) -> str:
    """'torch 2.4.0 -> 2.5.0, onnx added 1.16' between two runs' software_json; '' when nothing changed."""
    before, after = json.loads(before_json or "{}"), json.loads(after_json or "{}")
    changes = [f"{name} {before[name]} -> {after[name]}" for name in sorted(set(before) & set(after))
               if before[name] != after[name]]
    changes += [f"{name} added {after[name]}" for name in sorted(set(after) - set(before))]
    changes += [f"{name} removed" for name in sorted(set(before) - set(after))]
    return ", ".join(changes)


def history_configuration(con: storage.Connection, run_id: str, platform: str = "cpu",
                          precision: str = "fp32") -> dict[str, Any]:
    """metric_history arguments for the run's configuration measured (ok) in the most runs; on a tie the one on
    `platform`/`precision`, then the smallest batch. ConfigError when the run has no ok result."""
    ok = storage.results_frame(con, status="ok")
    mine = ok[ok["run_id"] == run_id]
    if mine.empty:
        raise ConfigError(f"run {run_id!r} has no ok result to follow across runs")
    n_runs = ok[ok["config_key"].isin(set(mine["config_key"]))].groupby("config_key")["run_id"].nunique()
    mine = mine.assign(_runs=mine["config_key"].map(n_runs),
                       _other=~((mine["platform"] == platform) & (mine["precision"] == precision)))
    best = mine.sort_values(["_runs", "_other", "batch_size", "config_key"], ascending=[False, True, True, True],
                            kind="stable").iloc[0]
    return {"model": best["model"], "platform": best["platform"], "precision": best["precision"],
            "batch_size": int(best["batch_size"]), "mode": best["mode"], "config_key": best["config_key"]}
