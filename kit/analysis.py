"""Comparative analysis of stored results: speed-ups against a baseline, rankings, regressions between two runs,
one metric's history across runs, and training against inference.

Every comparison is computed from the raw latency samples (ratio of medians with a bootstrap CI, Mann-Whitney U),
with Holm's correction across the table, because a table of many comparisons at alpha=0.05 would otherwise flag
about one in twenty unchanged configurations by chance.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from kit import storage
from kit.errors import ConfigError
from kit.records import MODES, Record, records_frame
from kit.stats import compare

# A configuration: seq_len as `_seq` (0 = the model's default) and `variant` (the overrides/training-options hash
# suffix of config_key) so that missing values and option variants match reliably.
KEY = ["model", "size", "mode", "platform", "precision", "batch_size", "_seq", "variant"]
WORKLOAD = ["model", "size", "mode", "batch_size", "_seq", "variant"]  # one workload across platforms/precisions
IDENTITY = ["model", "size", "mode", "platform", "precision", "batch_size", "seq_len", "variant"]
FILE_SUFFIXES = (".csv", ".parquet")
EXPORT_COLUMNS = ("run_id", "config_key", "status", "latency_p50_s")  # what a storage export holds
Source = storage.Connection | list[Record] | pd.DataFrame | str | Path


def _variant(config_key: Any) -> str:
    parts = str(config_key).split("|")
    is_job_key = len(parts) > 7 and parts[5].startswith("bs")  # kit.config.Job.config_key layout
    return "|".join(parts[7:]) if is_job_key else ""


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "status" not in frame:
        frame["status"] = "ok"
    for name in ("size", "config_key", "reason"):
        frame[name] = frame[name].fillna("").astype(str) if name in frame else ""
    frame["batch_size"] = pd.to_numeric(frame["batch_size"]).astype(int)
    frame["seq_len"] = pd.to_numeric(frame.get("seq_len"), errors="coerce").astype("Int64")
    frame["_seq"] = frame["seq_len"].fillna(0).astype(int)
    frame["variant"] = [_variant(k) for k in frame["config_key"]]
    order = "run_started_at" if "run_started_at" in frame else "created_at"
    frame["_order"] = pd.to_datetime(frame[order], errors="coerce", utc=True) if order in frame else pd.NaT
    if "samples" not in frame:
        frame["samples"] = [_parse_samples(s) for s in frame["samples_s"]] if "samples_s" in frame else None
    return frame


def _parse_samples(value: Any) -> np.ndarray | None:
    values = json.loads(value) if isinstance(value, str) else value
    return np.asarray(values, dtype=float) if values is not None and len(values) else None


def _read_export(path: Path) -> pd.DataFrame:
    if path.suffix not in FILE_SUFFIXES or not path.is_file():
        raise ConfigError(f"{str(path)!r} is not an existing {' or '.join(FILE_SUFFIXES)} file from storage.export_*")
    read = pd.read_csv if path.suffix == ".csv" else pd.read_parquet
    frame = read(path)
    missing = [c for c in EXPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{str(path)!r} is not a results export (no {', '.join(missing)} column); write one with "
                          "`benchkit export` (storage.export_csv / export_parquet), not an analysis table")
    samples_path = path.with_name(f"{path.stem}_samples{path.suffix}")
    frame["samples"] = _group_samples(read(samples_path), frame["result_id"]) if samples_path.is_file() else None
    frame.attrs["samples_missing"] = not samples_path.is_file()
    return frame


def _group_samples(samples: pd.DataFrame, result_ids: pd.Series) -> list[np.ndarray | None]:
    groups = {rid: g["latency_s"].to_numpy(dtype=float) for rid, g in samples.groupby("result_id", sort=False)}
    return [groups.get(rid) for rid in result_ids]


def results_with_samples(source: Source, run_id: str | None = None, *, samples: bool = True) -> pd.DataFrame:
    """Results of every status (results_frame layout) plus `samples`, raw latency arrays (None when not stored).

    `source` is a DuckDB connection, a list of Records, a results/records DataFrame, or a CSV/Parquet export path.
    """
    if isinstance(source, storage.Connection):
        frame = storage.results_frame(source, run_id)
        stored = storage.samples_frame(source, run_id) if samples else None
        frame["samples"] = _group_samples(stored, frame["result_id"]) if samples else None
    elif isinstance(source, (str, Path)):
        frame = _read_export(Path(source))
    elif isinstance(source, list):
        frame = records_frame(source)
    elif isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        raise ConfigError(f"cannot read results from a {type(source).__name__}; give a connection, records, "
                          "a DataFrame or an exported CSV/Parquet path")
    if run_id is not None and not isinstance(source, storage.Connection):
        frame = frame[frame["run_id"] == run_id]
    if not samples:
        frame = frame.assign(samples=None)
    out = _normalise(frame)
    out.attrs = dict(frame.attrs)
    return out


def latest_ok(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok results, keeping only the latest one per configuration when several runs measured it."""
    frame = frame if "_seq" in frame else _normalise(frame)
    ok = frame[frame["status"] == "ok"]
    return ok.sort_values("_order", kind="stable", na_position="first").drop_duplicates(KEY, keep="last")


def _median_s(row: pd.Series, suffix: str = "") -> float:
    """p50 from the record, or the mean for legacy imports that stored no percentiles."""
    p50 = row.get("latency_p50_s" + suffix)
    return float(p50) if p50 is not None and not pd.isna(p50) else float(row.get("latency_mean_s" + suffix, math.nan))


def _holm(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"].astype(float), alpha, "holm")[1]
    table["significant"] = table["p_holm"].lt(alpha)
    return table


def _identity(row: pd.Series) -> dict[str, Any]:
    return {name: row[name] for name in IDENTITY}


SPEEDUP_COLUMNS = [*IDENTITY, "baseline", "speedup", "speedup_ci_low", "speedup_ci_high", "p_value", "p_holm",
                   "significant", "baseline_p50_s", "candidate_p50_s", "baseline_throughput_items_per_s",
                   "candidate_throughput_items_per_s", "n_baseline", "n_candidate", "baseline_run_id",
                   "candidate_run_id", "note"]


def speedup_table(con_or_records: Source, run_id: str | None = None, baseline_platform: str = "cpu",
                  baseline_precision: str = "fp32", alpha: float = 0.05) -> pd.DataFrame:
    """Speed-up of every platform/precision over the baseline one for the same model, size, mode, batch and seq_len.

    speedup = baseline median latency / candidate median latency (>1 is faster), with a bootstrap 95% CI from the raw
    samples and a Mann-Whitney p-value, Holm-corrected across the table. Configurations without a baseline are kept
    with a NaN speed-up and a note; the baseline rows themselves appear with speedup 1.
    """
    every = results_with_samples(con_or_records, run_id)
    ok = every[every["status"] == "ok"].sort_values("_order", kind="stable", na_position="first")
    is_base = (ok["platform"] == baseline_platform) & (ok["precision"] == baseline_precision)
    baselines = dict(list(ok[is_base].groupby(WORKLOAD, sort=False)))
    rows = []
    for _, cand in latest_ok(every).sort_values(WORKLOAD + ["platform", "precision"]).iterrows():
        rows.append(_speedup_row(cand, _baseline_for(cand, baselines), baseline_platform, baseline_precision))
    table = pd.DataFrame(rows, columns=SPEEDUP_COLUMNS)
    return _holm(table, alpha)[SPEEDUP_COLUMNS].reset_index(drop=True)


def _baseline_for(cand: pd.Series, baselines: dict[tuple, pd.DataFrame]) -> pd.Series | None:
    """The baseline measured in the candidate's own run (same conditions), else the latest one from any run."""
    group = baselines.get(tuple(cand[k] for k in WORKLOAD))
    if group is None:
        return None
    same_run = group[group["run_id"] == cand["run_id"]]
    return (same_run if len(same_run) else group).iloc[-1]


def _speedup_row(cand: pd.Series, base: pd.Series | None, platform: str, precision: str) -> dict[str, Any]:
    row = {**_identity(cand), "baseline": f"{platform}/{precision}", "candidate_p50_s": _median_s(cand),
           "candidate_throughput_items_per_s": cand["throughput_items_per_s"], "candidate_run_id": cand["run_id"],
           "n_candidate": 0 if cand["samples"] is None else len(cand["samples"]), "speedup": math.nan,
           "speedup_ci_low": math.nan, "speedup_ci_high": math.nan, "p_value": math.nan, "note": ""}
    if base is None:
        return {**row, "note": f"no {platform}/{precision} baseline for this model, mode, batch size and seq_len"}
    row.update(baseline_p50_s=_median_s(base), baseline_throughput_items_per_s=base["throughput_items_per_s"],
               baseline_run_id=base["run_id"], n_baseline=0 if base["samples"] is None else len(base["samples"]))
    if base["run_id"] != cand["run_id"]:
        row["note"] = f"baseline from run {base['run_id']} (none in run {cand['run_id']})"
    if cand["platform"] == platform and cand["precision"] == precision:
        return {**row, "speedup": 1.0, "speedup_ci_low": 1.0, "speedup_ci_high": 1.0, "note": "baseline"}
    if cand["samples"] is None or base["samples"] is None:
        note = "; ".join(filter(None, [row["note"], "no raw samples on one side: ratio of medians, no CI or test"]))
        return {**row, "speedup": row["baseline_p50_s"] / row["candidate_p50_s"], "note": note}
    c = compare(cand["samples"], base["samples"])
    return {**row, "speedup": 1 / c.ratio, "speedup_ci_low": 1 / c.ratio_ci_high, "speedup_ci_high": 1 / c.ratio_ci_low,
            "p_value": c.p_value}


RANKING_COLUMNS = [*IDENTITY, "throughput_items_per_s", "latency_p50_s", "peak_memory_bytes", "throughput_rank",
                   "latency_rank", "run_id"]


def ranking_table(source: Source, run_id: str | None = None) -> pd.DataFrame:
    """Per model, size and mode: configurations ranked by throughput (1 = highest) and by p50 latency (1 = lowest).

    The latency is per iteration, so small batches rank well on latency and large ones on throughput.
    """
    frame = latest_ok(results_with_samples(source, run_id, samples=False))
    if frame.empty:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    frame = frame.assign(latency_p50_s=[_median_s(r) for _, r in frame.iterrows()])
    groups = frame.groupby(["model", "size", "mode"])
    frame["throughput_rank"] = groups["throughput_items_per_s"].rank(ascending=False, method="min").astype(int)
    frame["latency_rank"] = groups["latency_p50_s"].rank(ascending=True, method="min").astype(int)
    frame = frame.sort_values(["model", "size", "mode", "throughput_rank", "latency_rank"])
    return frame[RANKING_COLUMNS].reset_index(drop=True)


def _exportable(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=[c for c in df.columns if str(c).startswith("_")])
    for column in [c for c in out.columns if out[c].dtype == "object"]:
        if out[column].map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).any():
            out[column] = out[column].map(lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v,
                                                               default=str) if v is not None else None)
    return out


def export_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an analysis frame to CSV (nested values as JSON text); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _exportable(df).to_csv(path, index=False)
    return path


def export_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an analysis frame to Parquet (nested values as JSON text); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _exportable(df).to_parquet(path, index=False)
    return path



REGRESSION_COLUMNS = [*IDENTITY, "status", "change_pct", "ratio", "ratio_ci_low", "ratio_ci_high", "p_value",
                      "p_holm", "significant", "tested", "baseline_p50_s", "current_p50_s", "n_baseline", "n_current",
                      "baseline_run_id", "current_run_id", "note"]
REGRESSION_STATUSES = ("regression", "improvement", "unchanged", "possible_regression", "possible_improvement",
                       "added", "removed", "failed", "skipped")


def _check_thresholds(threshold: float, alpha: float) -> None:
    if not (isinstance(threshold, (int, float)) and 0 < threshold < 10):
        raise ConfigError(f"threshold must be a fraction > 0 (0.10 = 10% slower), got {threshold!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha!r}")


def _is_file_spec(spec: Any) -> bool:
    return isinstance(spec, Path) or (isinstance(spec, str) and (spec.endswith(FILE_SUFFIXES) or Path(spec).is_file()))


def _side(spec: Any, con: storage.Connection | None, name: str) -> pd.DataFrame:
    """One side of a comparison: a DataFrame, an exported CSV/Parquet file, or a run id looked up in `con`."""
    if isinstance(spec, (pd.DataFrame, list)) or _is_file_spec(spec):
        return results_with_samples(spec)
    if con is None:
        raise ConfigError(f"{name} {spec!r} is not an exported .csv/.parquet file, and no database connection was "
                          "given to look it up as a run id")
    runs = set(storage.runs_frame(con)["run_id"])
    if spec not in runs:
        raise ConfigError(f"unknown {name} run id {spec!r}; stored runs: {', '.join(sorted(runs)) or 'none'}")
    return results_with_samples(con, spec)


def detect_regressions(current: Any, baseline: Any, threshold: float = 0.10, alpha: float = 0.05, *,
                       con: storage.Connection | None = None) -> pd.DataFrame:
    """Compare two runs configuration by configuration and classify each (see REGRESSION_STATUSES).

    Each side is a run id in `con`, a CSV/Parquet file from storage.export_csv/export_parquet (with its `_samples`
    sibling), or a results DataFrame. A regression is a latency ratio (current/baseline median) above 1 + threshold
    that is also significant (Mann-Whitney, Holm-corrected over all tested configurations); an improvement is the
    mirror image (ratio below 1 / (1 + threshold)). Without raw samples on a side the medians alone are compared and
    the result is only a `possible_*` status, never a regression.
    """
    _check_thresholds(threshold, alpha)
    cur, base = _side(current, con, "current"), _side(baseline, con, "baseline")
    cur, base = (side.sort_values("_order", kind="stable").drop_duplicates(KEY, keep="last") for side in (cur, base))
    merged = cur.merge(base, on=KEY, how="outer", suffixes=("_cur", "_base"), indicator=True)
    missing_note = "baseline file has no _samples sibling" if base.attrs.get("samples_missing") else ""
    rows = [_regression_row(row, missing_note) for _, row in merged.iterrows()]
    table = _holm(pd.DataFrame(rows, columns=REGRESSION_COLUMNS), alpha)
    table["change_pct"] = (table["ratio"].astype(float) - 1) * 100
    classified = [_classify(row, threshold) for _, row in table.iterrows()]
    table["status"], table["note"] = [c[0] for c in classified], [c[1] for c in classified]
    order = {status: i for i, status in enumerate(REGRESSION_STATUSES)}
    table = table.sort_values(["status", "model", "mode", "platform", "precision", "batch_size"],
                              key=lambda s: s.map(order) if s.name == "status" else s, kind="stable")
    return table[REGRESSION_COLUMNS].reset_index(drop=True)


def _regression_row(row: pd.Series, missing_note: str) -> dict[str, Any]:
    side = "_cur" if row["_merge"] != "right_only" else "_base"
    out = {name: row[name] if name in row else row[name + side] for name in IDENTITY if name != "variant"}
    out.update(variant=row["variant"], status="", tested=False, p_value=math.nan, note="",
               current_run_id=row.get("run_id_cur"), baseline_run_id=row.get("run_id_base"))
    if row["_merge"] == "right_only":
        return {**out, "status": "removed", "note": "only in the baseline"}
    if row["status_cur"] != "ok":
        return {**out, "status": row["status_cur"], "note": row["reason_cur"]}
    out.update(current_p50_s=_median_s(row, "_cur"),
               n_current=0 if row["samples_cur"] is None else len(row["samples_cur"]))
    if row["_merge"] == "left_only" or row["status_base"] != "ok":
        note = "only in the current run" if row["_merge"] == "left_only" else f"baseline {row['status_base']}"
        return {**out, "status": "added", "note": note}
    out.update(baseline_p50_s=_median_s(row, "_base"),
               n_baseline=0 if row["samples_base"] is None else len(row["samples_base"]))
    if row["samples_cur"] is None or row["samples_base"] is None:
        which = "baseline" if row["samples_base"] is None else "current"
        reason = missing_note if which == "baseline" and missing_note else f"no raw samples on the {which} side"
        ratio = out["current_p50_s"] / out["baseline_p50_s"]
        return {**out, "ratio": ratio, "note": f"{reason}: medians compared, significance test not run"}
    c = compare(row["samples_cur"], row["samples_base"])
    return {**out, "ratio": c.ratio, "ratio_ci_low": c.ratio_ci_low, "ratio_ci_high": c.ratio_ci_high,
            "p_value": c.p_value, "tested": True, "note": _caveats(row)}


def _caveats(row: pd.Series) -> str:
    """Warnings that the test cannot see: it treats samples as independent, so a run measured under different load
    or one that never reached its CI target can differ 'significantly' without any change in the code."""
    noisy = [side for side, suffix in (("baseline", "_base"), ("current", "_cur")) if row.get("noisy" + suffix) is True]
    notes = [f"noisy (CI target missed): {' and '.join(noisy)}"] if noisy else []
    load_cur, load_base = row.get("load_avg_1m_cur"), row.get("load_avg_1m_base")
    if not (pd.isna(load_cur) or pd.isna(load_base)) and abs(float(load_cur) - float(load_base)) >= 1:
        notes.append(f"1-min load {float(load_base):.1f} -> {float(load_cur):.1f}")
    return "; ".join(notes)


def _classify(row: pd.Series, threshold: float) -> tuple[str, str]:
    if row["status"]:
        return row["status"], row["note"]
    slower, faster = row["ratio"] > 1 + threshold, row["ratio"] < 1 / (1 + threshold)
    if not row["tested"]:
        return ("possible_regression" if slower else "possible_improvement" if faster else "unchanged"), row["note"]
    if row["significant"] and (slower or faster):
        return ("regression" if slower else "improvement"), row["note"]
    if slower or faster:
        why = f"{abs(row['change_pct']):.1f}% {'slower' if slower else 'faster'} but not significant after Holm " \
              f"correction (p={row['p_holm']:.3g})"
    else:
        why = "significant but within the threshold" if row["significant"] else ""
    return "unchanged", "; ".join(filter(None, [why, row["note"]]))


def regression_exit_code(df: pd.DataFrame) -> int:
    """1 when the comparison holds at least one regression, else 0 (for CI gates)."""
    return int(bool((df["status"] == "regression").any())) if "status" in df else 0


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
        raise ConfigError(f"modes are fixed to {list(MODES)} in a training-vs-inference sweep; got {fields['modes']!r}")
    spec = SweepSpec(**fields, modes=list(MODES))
    for job in spec.jobs():
        if job.mode == "training":
            training_options(job)
    return spec


def latest_run_id(con: storage.Connection) -> str:
    """The most recently started run in the store."""
    runs = storage.runs_frame(con)
    if runs.empty:
        raise ConfigError("the database holds no runs; run `benchkit bench` first")
    return str(runs.sort_values("started_at", kind="stable")["run_id"].iloc[-1])


def previous_run_id(con: storage.Connection, run_id: str) -> str | None:
    """The latest run before `run_id` (in start order) with an ok result for one of its configurations, else None.

    Runs that share no configuration (another notebook's sweep, say) are passed over: comparing with them finds
    nothing to compare.
    """
    runs = storage.runs_frame(con)["run_id"].tolist()
    if run_id not in runs:
        raise ConfigError(f"unknown run id {run_id!r}; stored runs: {', '.join(runs) or 'none'}")
    ok = storage.results_frame(con, status="ok")[["run_id", "config_key"]]
    keys = set(ok.loc[ok["run_id"] == run_id, "config_key"])
    sharing = set(ok.loc[ok["config_key"].isin(keys), "run_id"])
    earlier = [r for r in runs[:runs.index(run_id)] if r in sharing]
    return earlier[-1] if earlier else None


@dataclass(frozen=True)
class ComparisonPlan:
    """What a comparative analysis looks at: a run, its baseline (a run id, an export file, or None and why), the
    speed-up reference platform/precision, the regression thresholds, the history metric and the export folder."""

    run_id: str
    baseline: str | None
    baseline_note: str
    baseline_platform: str
    baseline_precision: str
    threshold: float
    alpha: float
    history_metric: str
    export_dir: Path

    def describe(self) -> str:
        """One line for a notebook: what is compared with what."""
        against = f"baseline {self.baseline}" if self.baseline else f"no baseline ({self.baseline_note})"
        return (f"run {self.run_id} vs {against}; speed-ups over {self.baseline_platform}/{self.baseline_precision}; "
                f"regression = more than {self.threshold:.0%} slower and significant at alpha={self.alpha} (Holm)")


def plan_comparison(con: storage.Connection, run_id: str | None = None, baseline_run_id: str | None = None, *,
                    baseline_platform: str = "cpu", baseline_precision: str = "fp32", threshold: float = 0.10,
                    alpha: float = 0.05, history_metric: str = "throughput_items_per_s",
                    export_dir: str | Path | None = None, db_path: str | Path | None = None) -> ComparisonPlan:
    """Check a comparison's settings (ConfigError naming the bad value) and resolve its defaults.

    run_id None = the latest run; baseline_run_id None = previous_run_id (None, with the reason, when there is
    none); export_dir None = an `exports` folder beside db_path (outputs/exports without one).
    """
    from kit.backends import PRECISIONS, known_platforms  # imports torch: only when an analysis is planned

    _check_thresholds(threshold, alpha)
    if baseline_platform not in known_platforms():
        raise ConfigError(f"unknown baseline_platform {baseline_platform!r}; known: {', '.join(known_platforms())}")
    if baseline_precision not in PRECISIONS:
        raise ConfigError(f"unknown baseline_precision {baseline_precision!r}; known: {', '.join(PRECISIONS)}")
    if history_metric not in HISTORY_METRICS:
        raise ConfigError(f"history_metric must be one of {', '.join(HISTORY_METRICS)}, not {history_metric!r}")
    runs = storage.runs_frame(con)
    run_id = latest_run_id(con) if run_id is None else run_id
    if run_id not in set(runs["run_id"]):
        raise ConfigError(f"unknown run_id {run_id!r}; stored runs: {', '.join(runs['run_id'])}")
    if not int(runs.loc[runs["run_id"] == run_id, "n_ok"].iloc[0]):
        raise ConfigError(f"run_id {run_id!r} has no ok result to analyse; choose another run")
    note = ""
    if baseline_run_id is None:
        baseline_run_id = previous_run_id(con, run_id)
        note = "" if baseline_run_id else f"no earlier run in the database measured any configuration of {run_id}"
    elif _is_file_spec(baseline_run_id) and not Path(baseline_run_id).is_file():
        raise ConfigError(f"baseline_run_id {str(baseline_run_id)!r} is not an existing exported file")
    elif not _is_file_spec(baseline_run_id) and baseline_run_id not in set(runs["run_id"]):
        raise ConfigError(f"unknown baseline_run_id {baseline_run_id!r}; stored runs: {', '.join(runs['run_id'])}")
    folder = Path(db_path).parent if db_path is not None and str(db_path) != ":memory:" else Path("outputs")
    return ComparisonPlan(run_id, None if baseline_run_id is None else str(baseline_run_id), note, baseline_platform,
                          baseline_precision, float(threshold), float(alpha), history_metric,
                          Path(export_dir) if export_dir else folder / "exports")


def regressions_for(plan: ComparisonPlan, con: storage.Connection) -> pd.DataFrame:
    """detect_regressions of the plan's run against its baseline; an empty table when the plan has no baseline."""
    if plan.baseline is None:
        return pd.DataFrame(columns=REGRESSION_COLUMNS)
    return detect_regressions(plan.run_id, plan.baseline, plan.threshold, plan.alpha, con=con)


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


def export_table(df: pd.DataFrame, directory: str | Path, stem: str) -> dict[str, str]:
    """Write an analysis frame as `<directory>/<stem>.csv` and `.parquet`; returns {"csv": path, "parquet": path}."""
    directory = Path(directory)
    return {"csv": str(export_csv(df, directory / f"{stem}.csv")),
            "parquet": str(export_parquet(df, directory / f"{stem}.parquet"))}


def comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """A regression table for printing: medians in ms, change and p-values rounded."""
    out = df[["status", "model", "mode", "platform", "precision", "batch_size", "seq_len"]].copy()
    out["baseline_p50_ms"] = (df["baseline_p50_s"].astype(float) * 1e3).round(3)
    out["current_p50_ms"] = (df["current_p50_s"].astype(float) * 1e3).round(3)
    out["change_pct"] = df["change_pct"].astype(float).round(1)
    out["p_holm"] = df["p_holm"].astype(float).map(lambda p: f"{p:.2g}" if not pd.isna(p) else "")
    out["note"] = df["note"].fillna("").astype(str).str.slice(0, 100)
    return out


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """The `benchkit compare` arguments, for kit.cli."""
    parser.add_argument("--baseline", required=True, help="baseline run id, or a CSV/Parquet from `benchkit export`")
    parser.add_argument("--run-id", help="current run id or exported file (default: the latest run in --db)")
    parser.add_argument("--threshold", type=float, default=0.10, help="slow-down that counts (0.10 = 10%%)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a regression is found")
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default outputs/benchkit.duckdb)")


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare a run against a baseline run or export, print the table, exit 1 on regression when asked."""
    _check_thresholds(args.threshold, args.alpha)
    needs_db = args.run_id is None or not (_is_file_spec(args.run_id) and _is_file_spec(args.baseline))
    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True) if needs_db else None
    current = args.run_id or latest_run_id(con)
    df = detect_regressions(current, args.baseline, args.threshold, args.alpha, con=con)
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", None):
        print(comparison_table(df).to_string(index=False))
    counts = df["status"].value_counts()
    print(f"current {current} vs baseline {args.baseline}: "
          + (", ".join(f"{counts[s]} {s}" for s in REGRESSION_STATUSES if s in counts) or "nothing to compare"))
    return regression_exit_code(df) if args.fail_on_regression else 0
