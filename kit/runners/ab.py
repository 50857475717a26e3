"""Same-job A/B: a baseline and a candidate measured interleaved in one job, compared round by round.

Each configuration is measured twice, once with the baseline's settings (or Python environment) and once with the
candidate's, as two live children of one group: in every round both get a burst, in a random order, so the machine's
drift hits both alike. The change is the trimmed geometric mean of the per-round ratios candidate / baseline, with a
t interval over rounds (kit.stats.paired_ratio), Holm-corrected across configurations. With `processes` k > 1 each
side runs k processes of every configuration, all in the same rounds; each baseline/candidate pair of processes gives
its own round-paired ratio, and the change is their geometric mean with a t interval over the k pairs
(kit.stats.replicated_ratio), so the speed offset a process keeps for its lifetime is inside the interval. A round's
value is the 10th percentile of its calls by default (`statistic`: interference only adds time, so the fastest calls
repeat best), or its median. This is the comparison to gate CI on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from kit import storage
from kit.config import Job, SweepSpec, spec_from_parameters, split_process
from kit.environment import collect_environment
from kit.errors import ConfigError
from kit.records import Record
from kit.runners.rounds import interleave
from kit.runners.sweep import WORKER, failure_of, precheck
from kit.stats import STATISTIC, STATISTICS, holm, paired_ratio, replicated_ratio, round_quantiles

SIDES = ("baseline", "candidate")
AB_COLUMNS = ["model", "platform", "precision", "batch_size", "baseline", "candidate", "status", "change_pct",
              "ci_low_pct", "ci_high_pct", "p_value", "p_holm", "detectable_pct", "n_rounds", "n_processes",
              "baseline_p50_ms", "candidate_p50_ms", "note"]
SETTABLE = ("platforms", "precisions", "batch_sizes", "seq_len", "overrides", "threads", "size", "training")
PROCESSES = 3  # per side: the fewest whose spread gives an interval (2 degrees of freedom) that holds a null
MAX_PROCESSES = 16


@dataclass(frozen=True)
class ABSpec:
    """What an A/B measures: the common sweep, what each side sets differently, and each side's interpreter."""

    sweep: SweepSpec
    baseline: dict[str, Any] = field(default_factory=dict)
    candidate: dict[str, Any] = field(default_factory=dict)
    baseline_python: str | None = None
    candidate_python: str | None = None
    threshold: float = 0.05
    alpha: float = 0.05
    statistic: str = STATISTIC
    processes: int = PROCESSES

    def __post_init__(self) -> None:
        for side in SIDES:
            unknown = sorted(set(getattr(self, side)) - set(SETTABLE))
            if unknown:
                raise ConfigError(f"--{side}-set cannot set {', '.join(unknown)}; settable: {', '.join(SETTABLE)}")
            python = getattr(self, f"{side}_python")
            if python is not None and not (Path(python).is_file() and os.access(python, os.X_OK)):
                raise ConfigError(f"--{side}-python {python!r} is not an executable file")
        if not (isinstance(self.threshold, (int, float)) and 0 < self.threshold < 10):
            raise ConfigError(f"threshold must be a fraction > 0 (0.05 = 5% slower), got {self.threshold!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 1):
            raise ConfigError(f"alpha must be between 0 and 1, got {self.alpha!r}")
        if self.statistic not in STATISTICS:
            raise ConfigError(f"unknown statistic {self.statistic!r}; known: {', '.join(STATISTICS)}")
        if isinstance(self.processes, bool) or not isinstance(self.processes, int) or \
                not 1 <= self.processes <= MAX_PROCESSES:
            raise ConfigError(f"processes must be a whole number from 1 to {MAX_PROCESSES}, got {self.processes!r}")
        if self.sweep.rounds < 3:
            raise ConfigError(f"an A/B needs at least 3 rounds for a spread between rounds, got {self.sweep.rounds}")
        self.pairs()  # the two sides must make the same number of configurations

    def side_spec(self, side: str) -> SweepSpec:
        """The sweep of one side: the common sweep with the side's settings, as its own run."""
        params = {**self.sweep.to_dict(), **getattr(self, side), "run_id": f"{self.sweep.run_id}.{side}"}
        return spec_from_parameters(params)

    def pairs(self) -> list[tuple[Job, Job]]:
        """(baseline job, candidate job) of every configuration, in the common sweep's order."""
        base, cand = (self.side_spec(side).jobs() for side in SIDES)
        if len(base) != len(cand):
            raise ConfigError(f"the baseline makes {len(base)} configurations and the candidate {len(cand)}: each "
                              "side must set the same number of values for every axis")
        return list(zip(base, cand, strict=True))


def run_ab(spec: ABSpec, con: storage.Connection, *, target: str = WORKER) -> pd.DataFrame:
    """Measure both sides interleaved (each pair in one group), store them as two runs, return the A/B table."""
    environment = collect_environment()
    for side in SIDES:
        storage.start_run(con, f"{spec.sweep.run_id}.{side}", spec.side_spec(side).to_dict(), environment)
    pairs = spec.pairs()
    k = spec.processes
    replicas = [[(dataclasses.replace(a, process=i), dataclasses.replace(b, process=i)) for i in range(k)]
                for a, b in pairs]
    jobs = [job for pair in replicas for two in pair for job in two]
    pythons = {f"{spec.sweep.run_id}.{side}": getattr(spec, f"{side}_python") for side in SIDES}
    per_config = 2 * k  # a group holds every process of a configuration
    plan = dataclasses.replace(spec.sweep.round_plan(),
                               group_size=max(per_config, spec.sweep.group_size // per_config * per_config))
    records: dict[tuple[str, str], Record] = {}

    def store(record: Record) -> None:
        data = {**record.to_json(), "env_id": environment["env_id"]}
        record = Record.from_json(data)
        storage.insert_record(con, record)
        records[(record.run_id, record.config_key)] = record

    interleave(jobs, plan, store, target=target, precheck=precheck, failure=failure_of,
               python_of=lambda job: pythons[job.run_id])
    for side in SIDES:
        storage.finish_run(con, f"{spec.sweep.run_id}.{side}")
    sides = [([records[(a.run_id, a.config_key)] for a, _ in pair],
              [records[(b.run_id, b.config_key)] for _, b in pair]) for pair in replicas]
    table = ab_table(sides, spec.threshold, spec.alpha,
                     describe=(_describe(spec, "baseline"), _describe(spec, "candidate")),
                     statistic=spec.statistic)
    return table


def _describe(spec: ABSpec, side: str) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in getattr(spec, side).items())
    python = getattr(spec, f"{side}_python")
    return "; ".join(filter(None, [settings, f"python {python}" if python else ""])) or "as given"


def ab_row(baselines: list[Record], candidates: list[Record], statistic: str = STATISTIC) -> dict[str, Any]:
    """One configuration's A/B from its processes on each side (pairs in order): the paired change of the
    per-round statistic (p10, median) with its CI (before Holm), or why it has none."""
    first = baselines[0]
    row: dict[str, Any] = {"model": first.model, "platform": first.platform, "precision": first.precision,
                           "batch_size": first.batch_size, "status": "", "p_value": math.nan, "note": "",
                           "n_processes": len(baselines)}
    for side, records in (("baseline", baselines), ("candidate", candidates)):
        for record in records:
            if record.status != "ok":
                return {**row, "status": record.status, "note": f"{side}: {record.reason.splitlines()[0]}"}
            if not record.sample_rounds:
                return {**row, "status": "failed", "note": "measured without rounds: no paired comparison"}
        row[f"{side}_p50_ms"] = float(np.median([r.latency_p50_s for r in records])) * 1e3
    q = STATISTICS[statistic]
    per_pair = [paired_ratio(round_quantiles(c.samples_s, c.sample_rounds, q),
                             round_quantiles(b.samples_s, b.sample_rounds, q))
                for b, c in zip(baselines, candidates, strict=True)]
    estimate = replicated_ratio(per_pair)
    return {**row, "change_pct": (estimate.ratio - 1) * 100, "ci_low_pct": (estimate.ci_low - 1) * 100,
            "ci_high_pct": (estimate.ci_high - 1) * 100, "p_value": estimate.p_value,
            "n_rounds": min(e.n for e in per_pair), "detectable_pct": estimate.detectable_change() * 100}


def ab_table(pairs: list[tuple[list[Record], list[Record]]], threshold: float = 0.05, alpha: float = 0.05,
             describe: tuple[str, str] = ("", ""), statistic: str = STATISTIC) -> pd.DataFrame:
    """The A/B table from each configuration's (baseline processes, candidate processes): the latency change
    candidate vs baseline, its CI, Holm-corrected p-value, and a status (regression: slower beyond the threshold and
    significant; improvement: the mirror image)."""
    table = pd.DataFrame([ab_row(a, b, statistic) for a, b in pairs], columns=AB_COLUMNS)
    table["baseline"], table["candidate"] = describe
    table = holm(table, alpha)
    for index, row in table.iterrows():
        if row["status"]:
            continue
        ratio = 1 + row["change_pct"] / 100
        slower, faster = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
        status = "regression" if slower else "improvement" if faster else "unchanged"
        table.loc[index, "status"] = status if (row["significant"] or status == "unchanged") else "unchanged"
        if (slower or faster) and not row["significant"]:
            table.loc[index, "note"] = f"beyond the threshold but not significant (p_holm={row['p_holm']:.3g})"
        elif status == "unchanged" and row["detectable_pct"] > threshold * 100:
            table.loc[index, "note"] = (f"too unstable to detect a {threshold:.0%} change (smallest detectable "
                                        f"{row['detectable_pct']:.0f}%)")
    return table[AB_COLUMNS]


def by_configuration(records: list[Record]) -> list[list[Record]]:
    """A side's records grouped into configurations (the processes of one configuration together, in process
    order), configurations in config-key order."""
    groups: dict[str, list[tuple[int, Record]]] = {}
    for record in records:
        key, process = split_process(record.config_key)
        groups.setdefault(key, []).append((process, record))
    return [[r for _, r in sorted(groups[key], key=lambda item: item[0])] for key in sorted(groups)]


def ab_stability(table: pd.DataFrame, results: pd.DataFrame, threshold: float) -> str:
    """One sentence: the machine's drift during the A/B, the smallest change it could detect, and whether that was
    too unstable for the threshold asked."""
    from kit.analysis.stability import run_drift

    drift = run_drift(results)
    text = f"drift index {drift:.1%}" if drift is not None else "no machine reference"
    detectable = table["detectable_pct"].dropna().astype(float)
    if len(detectable):
        text += f"; smallest detectable change: median {detectable.median():.1f}%"
        blind = int((detectable > threshold * 100).sum())
        if blind:
            text += (f"; {blind} of {len(detectable)} configurations could not detect a {threshold:.0%} change: the "
                     "machine was too unstable for this threshold (measure more rounds or a longer budget)")
    return text


def ab_exit_code(table: pd.DataFrame) -> int:
    """1 when a configuration regressed, 2 when no configuration could be compared, else 0."""
    if not table["status"].isin(["regression", "improvement", "unchanged"]).any():
        return 2
    return int((table["status"] == "regression").any())


def parse_settings(values: list[str] | None, flag: str) -> dict[str, Any]:
    """KEY=VALUE pairs (values read as YAML: 128, [1, 8], bf16) into a dict; ConfigError naming a bad pair."""
    settings: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item!r}: the value is not valid YAML ({exc.__class__.__name__})") from exc
    for axis in ("platforms", "precisions", "batch_sizes"):
        if axis in settings and not isinstance(settings[axis], list):
            settings[axis] = [settings[axis]]
    return settings


def add_ab_arguments(parser: argparse.ArgumentParser) -> None:
    """The `benchkit ab` arguments, for kit.cli."""
    from kit.cli import _add_sweep_args, _db_arg

    _add_sweep_args(parser)
    _db_arg(parser)
    parser.add_argument("--baseline-set", nargs="+", metavar="KEY=VALUE",
                        help=f"what the baseline sets differently ({', '.join(SETTABLE)})")
    parser.add_argument("--candidate-set", nargs="+", metavar="KEY=VALUE", help="what the candidate sets differently")
    parser.add_argument("--baseline-python", help="the baseline's Python interpreter (another environment)")
    parser.add_argument("--candidate-python", help="the candidate's Python interpreter")
    parser.add_argument("--threshold", type=float, default=0.05, help="slow-down that counts (0.05 = 5%%)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction")
    parser.add_argument("--statistic", choices=list(STATISTICS), default=STATISTIC,
                        help="per-round latency compared: p10 (default; a round's fastest tenth, what the machine's "
                             "interference leaves alone) or median")
    parser.add_argument("--processes", type=int, default=PROCESSES,
                        help="processes per side and configuration, each measuring for the budget (default "
                             f"{PROCESSES}); with more than one the interval is taken over the pairs of processes, so "
                             "a process's lasting speed offset is inside it; 1 gives an interval over rounds only")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 on a significant slow-down")


def cmd_ab(args: argparse.Namespace) -> int:
    """Measure baseline and candidate interleaved, print the table; exit 1 on regression when asked, 2 when
    nothing could be compared."""
    from kit.cli import sweep_params

    params = sweep_params(args)
    if "models" not in params:
        raise ConfigError("ab needs --models or a --params file with 'models'")
    params.setdefault("run_id", "ab-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
    spec = ABSpec(spec_from_parameters(params), parse_settings(args.baseline_set, "--baseline-set"),
                  parse_settings(args.candidate_set, "--candidate-set"), args.baseline_python,
                  args.candidate_python, args.threshold, args.alpha, args.statistic, args.processes)
    con = storage.connect(args.db or storage.DEFAULT_DB)
    print(f"ab {spec.sweep.run_id}: {len(spec.pairs())} configurations x 2 sides x {spec.processes} process(es), "
          f"{spec.sweep.rounds} rounds, per-round {spec.statistic} compared")
    table = run_ab(spec, con)
    shown = table.drop(columns=["baseline", "candidate"])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"baseline: {table['baseline'].iloc[0]}; candidate: {table['candidate'].iloc[0]}")
    counts = table["status"].value_counts()
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    print(ab_stability(table, storage.results_frame(con, f"{spec.sweep.run_id}.baseline"), spec.threshold))
    code = ab_exit_code(table)
    if code == 2:
        raise ConfigError("no configuration was measured on both sides: nothing to compare")
    return code if args.fail_on_regression else 0
