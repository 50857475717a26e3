"""Regressions between two runs, the planned comparison of a notebook, and the `benchkit compare` command.

The unit of evidence is a round, never a sample: samples of one run are not independent evidence about another run,
because the machine's speed drifts. A configuration measured in interleaved rounds has one value per round: by
default the 10th percentile of the round's latencies (`p10`: interference only ever adds time, so a round's fastest
calls repeat far better than its median; `median` is the alternative), divided by the machine reference's value in
the same round where that narrows the spread. The two runs' rounds are compared with Yuen's trimmed Welch t on logs,
plus the spread between the baseline runs when several are given. Holm's correction runs across the table. A
configuration measured without rounds has no spread that speaks about another run: its medians are compared and at
most a `possible_*` status is given.

A whole run can be slower than another in every round (the machine sat in a slow state for its duration), so rounds
alone cannot tell a regression from a slow run: significance needs the spread between several baseline runs. Against
one baseline run a change is reported with its interval, but at most as `possible_*`. A change compared on raw rounds
must also pass the threshold once divided by how far the machine reference beside it moved between the runs
(`normalised_ratio`): a run that met the machine in a faster state is not an improvement of the code.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import storage
from kit.analysis.frames import FILE_SUFFIXES, IDENTITY, KEY, _median_s, results_with_samples
from kit.analysis.history import HISTORY_METRICS
from kit.analysis.stability import reference_level, reference_values, run_drift, run_reference_level
from kit.errors import ConfigError
from kit.stats import STATISTIC, STATISTICS, holm, round_quantiles, statistic_quantile, unpaired_ratio

REGRESSION_COLUMNS = [*IDENTITY, "status", "change_pct", "ratio", "ratio_ci_low", "ratio_ci_high", "p_value",
                      "p_holm", "significant", "tested", "method", "detectable_pct", "reference_shift_pct",
                      "normalised_ratio", "baseline_p50_s", "current_p50_s", "n_baseline", "n_current",
                      "baseline_run_id", "current_run_id", "note"]
BASELINE_RUNS = 3  # a notebook's default baseline: the previous runs sharing a configuration, up to this many
ONE_BASELINE = ("one baseline run: how much a whole run moves from run to run is unknown, so no significance is "
                "claimed; give several baseline runs (--baseline A B C) or measure both in one job with benchkit ab")
NO_ROUNDS = ("measured without interleaved rounds: within-run samples are no evidence about another run, so the "
             "medians are compared and no significance is claimed")
REGRESSION_STATUSES = ("regression", "improvement", "unchanged", "possible_regression", "possible_improvement",
                       "added", "removed", "failed", "skipped")


def _check_thresholds(threshold: float, alpha: float, statistic: str = STATISTIC) -> None:
    if not (isinstance(threshold, (int, float)) and 0 < threshold < 10):
        raise ConfigError(f"threshold must be a fraction > 0 (0.10 = 10% slower), got {threshold!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha!r}")
    if statistic not in STATISTICS:
        raise ConfigError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")


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
                       con: storage.Connection | None = None, statistic: str = STATISTIC) -> pd.DataFrame:
    """Compare two runs configuration by configuration and classify each (see REGRESSION_STATUSES).

    Each side is a run id in `con`, a CSV/Parquet file from storage.export_csv/export_parquet (with its `_samples`
    sibling), or a results DataFrame; `baseline` may also be a list of run ids (repeated baseline runs, whose spread
    then widens every interval). A regression is a latency ratio (current/baseline) above 1 + threshold that is also
    significant between rounds (Holm-corrected over all tested configurations); an improvement is the mirror image
    (ratio below 1 / (1 + threshold)). Without rounds on a side, or with a single baseline run, only a `possible_*`
    status is given. `statistic` is the per-round value compared (p10 or median).
    """
    _check_thresholds(threshold, alpha, statistic)
    baselines = list(baseline) if isinstance(baseline, (list, tuple)) else [baseline]
    if not baselines:
        raise ConfigError("give at least one baseline")
    cur = _latest(_side(current, con, "current"))
    bases = [_latest(_side(b, con, "baseline")) for b in baselines]
    merged = cur.merge(bases[0], on=KEY, how="outer", suffixes=("_cur", "_base"), indicator=True)
    missing_note = "baseline file has no _samples sibling" if bases[0].attrs.get("samples_missing") else ""
    rows = [_regression_row(row, missing_note, bases[1:], statistic) for _, row in merged.iterrows()]
    table = holm(pd.DataFrame(rows, columns=REGRESSION_COLUMNS), alpha)
    table["change_pct"] = (table["ratio"].astype(float) - 1) * 100
    classified = [_classify(row, threshold) for _, row in table.iterrows()]
    table["status"], table["note"] = [c[0] for c in classified], [c[1] for c in classified]
    order = {status: i for i, status in enumerate(REGRESSION_STATUSES)}
    table = table.sort_values(["status", "model", "mode", "platform", "precision", "batch_size"],
                              key=lambda s: s.map(order) if s.name == "status" else s, kind="stable")
    table = table[REGRESSION_COLUMNS].reset_index(drop=True)
    table.attrs["drift"] = {"current": run_drift(cur), "baseline": run_drift(bases[0])}
    levels = [level for level in (run_reference_level(b, statistic) for b in bases) if level is not None]
    table.attrs["reference_level"] = {"current": run_reference_level(cur, statistic),
                                      "baseline": float(np.median(levels)) if levels else None}
    return table


def _latest(side: pd.DataFrame) -> pd.DataFrame:
    out = side.sort_values("_order", kind="stable").drop_duplicates(KEY, keep="last")
    out.attrs = dict(side.attrs)
    return out


def round_units(samples: Any, rounds: Any, extra: Any, *, normalised: bool = True,
                statistic: str = STATISTIC) -> np.ndarray | None:
    """One value per round: the round's latency statistic (p10 or median), divided by the machine reference's same
    statistic in that round when the run measured one (and `normalised`); None when the result has no rounds."""
    if samples is None or rounds is None or len(rounds) != len(samples) or not len(samples):
        return None
    own = round_quantiles(list(samples), list(rounds), statistic_quantile(statistic))
    reference = reference_values(extra, statistic) if normalised else []
    if not reference:
        return np.asarray(list(own.values()))
    return np.asarray([own[r] / reference[r] for r in own if r < len(reference) and reference[r]])


def _log_spread(units: np.ndarray | None) -> float:
    return float(np.std(np.log(units), ddof=1)) if units is not None and len(units) > 1 else math.inf


def units_pair(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any],
               statistic: str = STATISTIC) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Per-round values of two results ((samples, rounds, extra) each) on one scale: divided by the machine reference
    of the same round where that does not widen the spread between rounds on either side, else the raw per-round
    values. The reference helps only where it moves with the model; on a machine whose slow states hit a matmul and a
    model differently, dividing adds the reference's own noise (docs/methodology.md), so the data decides."""
    raw = [round_units(*x, normalised=False, statistic=statistic) for x in (a, b)]
    if not all(reference_values(x[2], statistic) for x in (a, b)):
        return raw[0], raw[1], f"{statistic} rounds"
    normalised = [round_units(*x, normalised=True, statistic=statistic) for x in (a, b)]
    if all(_log_spread(n) <= _log_spread(r) * (1 + 1e-9) for n, r in zip(normalised, raw, strict=True)):
        return normalised[0], normalised[1], f"normalised {statistic} rounds"
    return raw[0], raw[1], f"{statistic} rounds (the reference did not narrow them)"


def _units_pair(row: pd.Series, statistic: str) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    sides = [(row.get("samples" + s), row.get("rounds" + s), row.get("extra" + s)) for s in ("_cur", "_base")]
    return units_pair(*sides, statistic=statistic)


def _matches(row: pd.Series, others: list[pd.DataFrame]) -> list[pd.Series]:
    """The ok results of the other baseline runs with the row's configuration."""
    found = []
    for other in others:
        match = other
        for name in KEY:
            match = match[match[name] == row[name]]
        if len(match) and match.iloc[0]["status"] == "ok":
            found.append(match.iloc[0])
    return found


def _baseline_runs_var(row: pd.Series, others: list[pd.DataFrame], base: np.ndarray, method: str,
                       statistic: str) -> tuple[float, list[np.ndarray]]:
    """Variance between the baseline runs' log means (0 with one baseline run), and the other runs' units."""
    units = [base]
    for m in _matches(row, others):
        u = round_units(m["samples"], m["rounds"], m.get("extra"), normalised=method.startswith("normalised"),
                        statistic=statistic)
        if u is not None and len(u):
            units.append(u)
    means = [float(np.mean(np.log(u))) for u in units]
    return (float(np.var(means, ddof=1)) if len(means) > 1 else 0.0), units


def reference_shift(row: pd.Series, others: list[pd.DataFrame], statistic: str) -> float | None:
    """How far the machine reference measured beside this configuration moved from the baseline runs to the current
    run: log(current level) - mean log(baseline levels); None where either side has no reference."""
    current = reference_level(row.get("extra_cur"), statistic)
    bases = [reference_level(e, statistic) for e in [row.get("extra_base")] + [m.get("extra")
                                                                                for m in _matches(row, others)]]
    bases = [b for b in bases if b]
    return float(math.log(current) - np.mean(np.log(bases))) if current and bases else None


def _regression_row(row: pd.Series, missing_note: str, other_baselines: list[pd.DataFrame],
                    statistic: str) -> dict[str, Any]:
    side = "_cur" if row["_merge"] != "right_only" else "_base"
    out = {name: row[name] if name in row else row[name + side] for name in IDENTITY if name != "variant"}
    out.update(variant=row["variant"], status="", tested=False, p_value=math.nan, note="", method="",
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
    cur, base, method = _units_pair(row, statistic)
    if cur is None or base is None or min(len(cur), len(base)) < 2:
        reason = f"{missing_note}: medians compared, significance test not run" \
            if row["samples_base"] is None and missing_note else NO_ROUNDS
        ratio = out["current_p50_s"] / out["baseline_p50_s"]
        return {**out, "ratio": ratio, "method": "medians", "note": reason}
    runs_var, units = _baseline_runs_var(row, other_baselines, base, method, statistic)
    k = len(units)
    # the current run's level varies like one baseline run's, the baseline mean's like 1/k of it
    estimate = unpaired_ratio(list(cur), list(np.concatenate(units)), extra_var_log=runs_var * (1 + 1 / k),
                              extra_df=k - 1)
    shift = reference_shift(row, other_baselines, statistic)
    ratios = {"ratio": estimate.ratio, "ratio_ci_low": estimate.ci_low, "ratio_ci_high": estimate.ci_high,
              "detectable_pct": estimate.detectable_change() * 100,
              "reference_shift_pct": (math.exp(shift) - 1) * 100 if shift is not None else math.nan,
              "normalised_ratio": estimate.ratio if method.startswith("normalised") or shift is None
              else estimate.ratio / math.exp(shift)}
    if k == 1:
        return {**out, **ratios, "method": method + ", one baseline run", "note": "; ".join(filter(None, [
            ONE_BASELINE, _caveats(row)]))}
    return {**out, **ratios, "p_value": estimate.p_value, "tested": True, "method": method + f" over {k} baseline runs",
            "note": _caveats(row)}


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
    if (slower or faster) and _machine_explains(row, threshold, slower):
        why = (f"{abs(row['change_pct']):.1f}% {'slower' if slower else 'faster'}, but the machine reference beside "
               f"it moved {row['reference_shift_pct']:+.1f}%: {abs(row['normalised_ratio'] - 1):.1%} on the "
               "normalised scale, within the threshold, so the machine's state may explain it")
        return "unchanged", "; ".join(filter(None, [why, row["note"]]))
    if not row["tested"]:
        return ("possible_regression" if slower else "possible_improvement" if faster else "unchanged"), row["note"]
    if row["significant"] and (slower or faster):
        return ("regression" if slower else "improvement"), row["note"]
    if slower or faster:
        why = f"{abs(row['change_pct']):.1f}% {'slower' if slower else 'faster'} but not significant after Holm " \
              f"correction (p={row['p_holm']:.3g})"
    else:
        why = "significant but within the threshold" if row["significant"] else ""
    if row["detectable_pct"] > threshold * 100:
        why = "; ".join(filter(None, [why, f"too unstable to detect a {threshold:.0%} change (smallest detectable "
                                           f"{row['detectable_pct']:.0f}%)"]))
    return "unchanged", "; ".join(filter(None, [why, row["note"]]))


def _machine_explains(row: pd.Series, threshold: float, slower: bool) -> bool:
    """True when a change beyond the threshold on raw rounds is within it once divided by the reference's move."""
    normalised = row["normalised_ratio"]
    if pd.isna(normalised):
        return False
    return normalised <= 1 + threshold if slower else normalised >= 1 / (1 + threshold)


def stability_summary(df: pd.DataFrame, threshold: float) -> str:
    """One sentence on the machine's stability during both runs and whether it sufficed for the threshold."""
    drift = df.attrs.get("drift") or {}
    parts = [f"{side} {value:.1%}" for side, value in drift.items() if value is not None]
    text = ("drift index (spread of the machine reference across rounds): " + ", ".join(parts)) if parts \
        else "no machine reference in these runs"
    text += _reference_move(df.attrs.get("reference_level") or {}, threshold)
    tested = df[df["tested"].astype(bool)] if len(df) else df
    if len(tested):
        blind = int((tested["detectable_pct"].astype(float) > threshold * 100).sum())
        text += (f"; smallest detectable change: median {tested['detectable_pct'].astype(float).median():.1f}% "
                 f"over {len(tested)} tested configurations")
        if blind:
            text += (f"; {blind} of them could not detect a {threshold:.0%} change: the machine was too unstable "
                     "for this threshold (measure more rounds, or give several baseline runs)")
    return text


# In four identical sweeps a run that met the machine 12 % faster on the reference ran a model 19 % faster
# (docs/methodology.md): a move of the reference by half the threshold can fake a change of the threshold
REFERENCE_MOVE_SHARE = 0.5


def _reference_move(level: dict[str, float | None], threshold: float) -> str:
    """The machine reference's speed in both runs, and a warning when it moved by half the threshold or more."""
    current, baseline = level.get("current"), level.get("baseline")
    if not (current and baseline):
        return ""
    move = current / baseline - 1
    text = f"; machine reference {current * 1e3:.3f} ms per call, baseline {baseline * 1e3:.3f} ms ({move:+.1%})"
    if abs(move) >= threshold * REFERENCE_MOVE_SHARE:
        text += (": the machine was in another state than during the baseline, so a change of that size may be the "
                 "machine's (measure again, or give baseline runs from other times)")
    return text


def regression_exit_code(df: pd.DataFrame) -> int:
    """1 when the comparison holds at least one regression, else 0 (for CI gates)."""
    return int(bool((df["status"] == "regression").any())) if "status" in df else 0


def compared_count(df: pd.DataFrame) -> int:
    """Configurations ok on both sides (whatever their verdict)."""
    compared = ("regression", "improvement", "unchanged", "possible_regression", "possible_improvement")
    return int(df["status"].isin(compared).sum()) if "status" in df else 0


def latest_run_id(con: storage.Connection) -> str:
    """The most recently started run in the store."""
    runs = storage.runs_frame(con)
    if runs.empty:
        raise ConfigError("the database holds no runs; run `benchkit bench` first")
    return str(runs.sort_values("started_at", kind="stable")["run_id"].iloc[-1])


def previous_run_ids(con: storage.Connection, run_id: str, n: int = 1) -> list[str]:
    """Up to n runs before `run_id` (in start order, latest first) with an ok result for one of its configurations.

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
    return earlier[::-1][:n]


def previous_run_id(con: storage.Connection, run_id: str) -> str | None:
    """The latest run before `run_id` with an ok result for one of its configurations, else None."""
    return next(iter(previous_run_ids(con, run_id)), None)


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
    earlier_baselines: tuple[str, ...] = ()  # runs before the baseline sharing configurations: the run-to-run spread
    baseline_machine: str | None = None  # across machines: a hardware id, or None for the one with the most results

    def baselines(self) -> list[str]:
        """Every baseline run of the comparison, latest first (empty without a baseline)."""
        return [self.baseline, *self.earlier_baselines] if self.baseline else []

    def describe(self) -> str:
        """One line for a notebook: what is compared with what."""
        against = f"baseline {', '.join(self.baselines())}" if self.baseline else \
            f"no baseline ({self.baseline_note})"
        return (f"run {self.run_id} vs {against}; speed-ups over {self.baseline_platform}/{self.baseline_precision}; "
                f"regression = more than {self.threshold:.0%} slower and significant at alpha={self.alpha} (Holm)")


def plan_comparison(con: storage.Connection | str | Path, run_id: str | None = None,
                    baseline_run_id: str | None = None, *,
                    baseline_platform: str = "cpu", baseline_precision: str = "fp32", threshold: float = 0.10,
                    alpha: float = 0.05, history_metric: str = "throughput_items_per_s",
                    export_dir: str | Path | None = None, db_path: str | Path | None = None,
                    baseline_machine: str | None = None) -> ComparisonPlan:
    """Check a comparison's settings (ConfigError naming the bad value) and resolve its defaults.

    run_id None = the latest run; baseline_run_id None = the previous runs sharing a configuration (up to
    BASELINE_RUNS, so that the run-to-run spread is known; None, with the reason, when there is none); export_dir
    None = an `exports` folder beside db_path (outputs/exports without one); baseline_machine (hardware id or label)
    is resolved to a hardware id of the store. `con` may be the store's path: it is then opened read-only for the
    check and closed again (and is db_path unless that is given).
    """
    from kit.analysis.machines import machines_table, resolve_machine
    from kit.backends import PRECISIONS, known_platforms  # imports torch: only when an analysis is planned

    _check_thresholds(threshold, alpha)
    if isinstance(con, str | Path):
        connection = storage.connect(con, read_only=True)
        try:
            return plan_comparison(connection, run_id, baseline_run_id, baseline_platform=baseline_platform,
                                   baseline_precision=baseline_precision, threshold=threshold, alpha=alpha,
                                   history_metric=history_metric, export_dir=export_dir, db_path=db_path or con,
                                   baseline_machine=baseline_machine)
        finally:
            connection.close()
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
    note, earlier = "", []
    if baseline_run_id is None:
        baseline_run_id, *earlier = previous_run_ids(con, run_id, BASELINE_RUNS) or [None]
        note = "" if baseline_run_id else f"no earlier run in the database measured any configuration of {run_id}"
    elif _is_file_spec(baseline_run_id) and not Path(baseline_run_id).is_file():
        raise ConfigError(f"baseline_run_id {str(baseline_run_id)!r} is not an existing exported file")
    elif not _is_file_spec(baseline_run_id) and baseline_run_id not in set(runs["run_id"]):
        raise ConfigError(f"unknown baseline_run_id {baseline_run_id!r}; stored runs: {', '.join(runs['run_id'])}")
    machine = None if baseline_machine is None else resolve_machine(machines_table(con), baseline_machine)
    folder = Path(db_path).parent if db_path is not None and str(db_path) != ":memory:" else Path("outputs")
    return ComparisonPlan(run_id, None if baseline_run_id is None else str(baseline_run_id), note, baseline_platform,
                          baseline_precision, float(threshold), float(alpha), history_metric,
                          Path(export_dir) if export_dir else folder / "exports", tuple(earlier), machine)


def regressions_for(plan: ComparisonPlan, con: storage.Connection) -> pd.DataFrame:
    """detect_regressions of the plan's run against its baseline; an empty table when the plan has no baseline."""
    if plan.baseline is None:
        return pd.DataFrame(columns=REGRESSION_COLUMNS)
    return detect_regressions(plan.run_id, plan.baselines(), plan.threshold, plan.alpha, con=con)


def comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """A regression table for printing: medians in ms, change, the machine reference's move and p-values rounded."""
    out = df[["status", "model", "mode", "platform", "precision", "batch_size", "seq_len"]].copy()
    out["baseline_p50_ms"] = (df["baseline_p50_s"].astype(float) * 1e3).round(3)
    out["current_p50_ms"] = (df["current_p50_s"].astype(float) * 1e3).round(3)
    out["change_pct"] = df["change_pct"].astype(float).round(1)
    out["reference_shift_pct"] = df["reference_shift_pct"].astype(float).round(1)
    out["detectable_pct"] = df["detectable_pct"].astype(float).round(1)
    out["p_holm"] = df["p_holm"].astype(float).map(lambda p: f"{p:.2g}" if not pd.isna(p) else "")
    out["note"] = df["note"].fillna("").astype(str).str.slice(0, 100)
    return out


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """The `benchkit compare` arguments, for kit.cli."""
    parser.add_argument("--baseline", required=True, nargs="+",
                        help="baseline run id(s), or a CSV/Parquet from `benchkit export`; several run ids of the "
                             "same configurations add the spread between them to every interval")
    parser.add_argument("--run-id", help="current run id or exported file (default: the latest run in --db)")
    parser.add_argument("--threshold", type=float, default=0.10, help="slow-down that counts (0.10 = 10%%)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction")
    parser.add_argument("--statistic", choices=list(STATISTICS), default=STATISTIC,
                        help="per-round latency compared: p10 (default; a round's fastest tenth, what the machine's "
                             "interference leaves alone) or median")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a regression is found")
    parser.add_argument("--max-failed", type=float, default=0.0,
                        help="with --fail-on-regression, exit 2 when more than this share of the current run's "
                             "configurations failed (default 0: any failure means the run could not be compared)")
    parser.add_argument("--db", default=None, help="DuckDB file (default outputs/benchkit.duckdb) or Parquet dataset")


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare a run against a baseline run or export, print the table and the machine's stability; with
    --fail-on-regression exit 1 on a regression, 2 when nothing could be compared or more configurations failed than
    --max-failed allows."""
    _check_thresholds(args.threshold, args.alpha)
    if not 0 <= args.max_failed <= 1:
        raise ConfigError(f"--max-failed must be a share between 0 and 1, got {args.max_failed!r}")
    files = args.run_id is not None and _is_file_spec(args.run_id) and all(map(_is_file_spec, args.baseline))
    con = None if files else storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    current = args.run_id or latest_run_id(con)
    baseline = args.baseline if len(args.baseline) > 1 else args.baseline[0]
    df = detect_regressions(current, baseline, args.threshold, args.alpha, con=con, statistic=args.statistic)
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", None):
        print(comparison_table(df).to_string(index=False))
    counts = df["status"].value_counts()
    print(f"current {current} vs baseline {' '.join(map(str, args.baseline))}: "
          + (", ".join(f"{counts[s]} {s}" for s in REGRESSION_STATUSES if s in counts) or "nothing to compare"))
    print(stability_summary(df, args.threshold))
    if args.fail_on_regression and compared_count(df) == 0:
        raise ConfigError("no configuration is ok in both runs: nothing was compared")
    failed = int((df["status"] == "failed").sum())
    if args.fail_on_regression and failed > args.max_failed * (failed + compared_count(df)):
        raise ConfigError(f"{failed} of {failed + compared_count(df)} configurations failed in the current run, more "
                          f"than --max-failed {args.max_failed:g} allows: the run could not be compared in full")
    return regression_exit_code(df) if args.fail_on_regression else 0
