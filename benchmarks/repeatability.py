"""Do Benchkit's comparisons repeat on this machine? Null A/B, detection, back-to-back sweeps, and the cost of rounds.

Each experiment runs the real `benchkit` commands (the ones the docs show) into its own store under --out and prints
one summary table; --json writes the figures too.

    python benchmarks/repeatability.py null --repeats 10       # the same environment as baseline and candidate
    python benchmarks/repeatability.py detect --repeats 10     # bert-base seq_len 128 vs 144 (about 12 % more work)
    python benchmarks/repeatability.py sweeps                  # three identical sweeps, compared pairwise
    python benchmarks/repeatability.py cost                    # interleaved vs sequential wall time
    python benchmarks/repeatability.py reference               # which machine reference tracks model speed best
    python benchmarks/repeatability.py levels --repeats 4      # the reference's speed per process, at two threads
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

BENCHKIT = [sys.executable, "-m", "kit.cli"]
AB_CONFIGS = ["--models", "bert", "vit", "--size", "tiny", "--platforms", "cpu", "--precisions", "fp32",
              "--batch-sizes", "1", "8"]
SWEEP = ["--models", "bert", "vit", "t5", "--size", "tiny", "--platforms", "cpu", "--precisions", "fp32",
         "--batch-sizes", "1", "8", "--time-budget-s", "1"]


def benchkit(*args: str) -> subprocess.CompletedProcess:
    """Run one benchkit command, echoing it."""
    print("$ benchkit " + " ".join(args), flush=True)
    return subprocess.run([*BENCHKIT, *args], capture_output=True, text=True)


def bench_rounds(db: str, run: str, *args: str) -> list[dict]:
    """Run `benchkit bench` into run `run` of db (exit on failure); the extra["rounds"] facts of its ok results."""
    from kit import storage
    from kit.analysis.stability import rounds_info

    done = benchkit("bench", *args, "--run-id", run, "--db", db)
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    con = storage.connect(db, read_only=True)
    frame = storage.results_frame(con, run)
    con.close()
    return [rounds_info(extra) for extra in frame.loc[frame["status"] == "ok", "extra"]]


def ab_repeats(out: Path, repeats: int, extra: list[str], tag: str) -> pd.DataFrame:
    """Run `benchkit ab` `repeats` times; the A/B tables of all repeats on each per-round statistic (the command's
    exit code is the default statistic's), with the repeat index and exit code."""
    from kit import storage
    from kit.runners.ab import ab_table, by_configuration
    from kit.stats import STATISTICS

    db = out / f"{tag}.duckdb"
    tables = []
    for repeat in range(repeats):
        run_id = f"{tag}-{repeat}"
        done = benchkit("ab", *extra, "--run-id", run_id, "--db", str(db), "--fail-on-regression")
        if done.returncode not in (0, 1):
            raise SystemExit(done.stdout + done.stderr)
        con = storage.connect(db, read_only=True)
        sides = [by_configuration(storage.load_records(con, f"{run_id}.{side}")) for side in ("baseline", "candidate")]
        con.close()
        pairs = list(zip(*sides, strict=True))
        for statistic in STATISTICS:
            table = ab_table(pairs, threshold=0.05, statistic=statistic)
            tables.append(table.assign(repeat=repeat, exit_code=done.returncode, statistic=statistic))
    return pd.concat(tables, ignore_index=True)


def summarise_ab(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: repeats flagged, the ratio's CV across repeats, and how many CIs hold 1.0."""
    ratio = 1 + table["change_pct"] / 100
    table = table.assign(ratio=ratio, holds_1=(table["ci_low_pct"] <= 0) & (table["ci_high_pct"] >= 0))
    return table.groupby(["statistic", "model", "batch_size"]).agg(
        repeats=("ratio", "size"), flagged=("status", lambda s: int((s == "regression").sum())),
        mean_change_pct=("change_pct", "mean"), ratio_cv_pct=("ratio", lambda r: 100 * r.std(ddof=1) / r.mean()),
        ci_holds_1=("holds_1", "sum"), median_detectable_pct=("detectable_pct", "median")).reset_index()


def cmd_null(args: argparse.Namespace) -> dict:
    """The same environment as baseline and candidate: nothing may be flagged."""
    python = ["--baseline-python", sys.executable, "--candidate-python", sys.executable] if args.interpreters else []
    table = ab_repeats(args.out, args.repeats, [*AB_CONFIGS, "--time-budget-s", str(args.budget), *python,
                                                "--processes", str(args.processes)],
                       ("null-interpreters" if args.interpreters else "null") + f"-p{args.processes}")
    summary = summarise_ab(table)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return {"summary": summary.to_dict("records"), "exit_codes": table.groupby("repeat")["exit_code"].first().tolist()}


def cmd_detect(args: argparse.Namespace) -> dict:
    """A real slow-down of about 12 %: bert-base at seq_len 144 against 128."""
    extra = ["--models", "bert", "--size", "base", "--batch-sizes", "1", "--time-budget-s", str(args.budget),
             "--baseline-set", "seq_len=128", "--candidate-set", "seq_len=144", "--processes", str(args.processes)]
    table = ab_repeats(args.out, args.repeats, extra, f"detect-p{args.processes}")
    summary = summarise_ab(table)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return {"summary": summary.to_dict("records")}


def cmd_sweeps(args: argparse.Namespace) -> dict:
    """Four identical back-to-back sweeps: A, B and C compared pairwise with --fail-on-regression --threshold 0.10
    (one baseline run each), then D against all three (the spread between them known)."""
    db = str(args.out / "sweeps.duckdb")
    stamp = time.strftime("%H%M%S")
    runs = [f"gate-{stamp}-{name}" for name in "ABCD"]
    for run in runs:
        done = benchkit("bench", *SWEEP, "--run-id", run, "--db", db, *args.bench_args)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
    rows = []
    pairs = [([base], cur) for base, cur in itertools.combinations(runs[:3], 2)] + [(runs[:3], runs[3])]
    for bases, cur in pairs:
        done = benchkit("compare", "--baseline", *bases, "--run-id", cur, "--threshold", "0.10",
                        "--fail-on-regression", "--db", db)
        print(done.stdout)
        lines = done.stdout.splitlines()
        rows.append({"baseline": "".join(b[-1] for b in bases), "current": cur[-1], "exit_code": done.returncode,
                     "regression": sum(line.lstrip().startswith("regression") for line in lines),
                     "possible_regression": sum(line.lstrip().startswith("possible_regression") for line in lines)})
    summary = pd.DataFrame(rows)
    print(summary.to_string(index=False))
    return {"summary": rows, "spread": normalised_spread(db, runs), "repeat_floor": repeat_floor(db, runs)}


def normalised_spread(db: str, runs: list[str]) -> dict:
    """How far apart the three runs are per configuration: max/min - 1 of throughput and normalised throughput."""
    from kit import storage

    con = storage.connect(db, read_only=True)
    frame = storage.results_frame(con)
    con.close()
    frame = frame[frame["run_id"].isin(runs) & (frame["status"] == "ok")]
    out = {}
    frame = frame.assign(p10_throughput=frame["batch_size"] / frame["latency_p10_s"])
    for column in ("throughput_items_per_s", "p10_throughput", "normalised_throughput"):
        spread = frame.groupby("config_key")[column].agg(lambda v: v.max() / v.min() - 1)
        out[column] = {"median_pct": 100 * float(spread.median()), "max_pct": 100 * float(spread.max())}
    print(json.dumps(out, indent=1))
    return out


def repeat_floor(db: str, runs: list[str]) -> list[dict]:
    """Notebook 04's repeat floor on these runs: a measurement against the mean of the others, per speed."""
    from kit import storage
    from kit.predict import all_measurements, repeat_table

    con = storage.connect(db, read_only=True)
    frame = all_measurements(con)
    con.close()
    table = repeat_table(frame[frame["run_id"].isin(runs)])
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return table.reset_index().to_dict("records")


def cmd_cost(args: argparse.Namespace) -> dict:
    """Wall time of one sweep interleaved and sequential at the same time budget per configuration (so the same
    sample count), alternated twice."""
    db = str(args.out / "cost.duckdb")
    times: dict[str, list[float]] = {"interleaved": [], "sequential": []}
    for repeat in range(2):
        for mode in ("interleaved", "sequential"):
            # the sequential loop stops once its CI is tight: a CI target it cannot reach gives it the whole budget too
            flag = ["--sequential", "--target-rel-ci", "0.000001"] if mode == "sequential" else []
            start = time.perf_counter()
            done = benchkit("bench", *SWEEP, "--run-id", f"cost-{mode}-{repeat}-{time.time():.0f}", "--db", db, *flag)
            if done.returncode:
                raise SystemExit(done.stdout + done.stderr)
            times[mode].append(time.perf_counter() - start)
    ratio = float(np.mean(times["interleaved"]) / np.mean(times["sequential"]))
    print(json.dumps({**times, "interleaved_over_sequential": ratio}, indent=1))
    return {**times, "interleaved_over_sequential": ratio}


def cmd_reference(args: argparse.Namespace) -> dict:
    """Each reference beside the same sweeps (tiny bert, vit and t5; bert-base), alternated twice: the median share of
    a configuration's round-to-round spread that is left once divided by the reference of the same round."""
    db = str(args.out / "reference.duckdb")
    sweeps = {"tiny": SWEEP, "base": ["--models", "bert", "--size", "base", "--batch-sizes", "1", "8",
                                      "--time-budget-s", "2"]}
    rows = []
    for repeat in range(2):
        for reference in ("matmul", "copy", "bert"):
            for name, sweep in sweeps.items():
                run = f"ref-{reference}-{name}-{repeat}-{time.time():.0f}"
                for info in bench_rounds(db, run, *sweep, "--reference", reference):
                    rows.append({"reference": reference, "sizes": name, "round_cv": info.get("round_cv"),
                                 "normalised_round_cv": info.get("normalised_round_cv")})
    table = pd.DataFrame(rows).assign(left=lambda t: t["normalised_round_cv"] / t["round_cv"])
    summary = table.groupby(["sizes", "reference"]).agg(configs=("left", "size"), round_cv=("round_cv", "median"),
                                                         normalised_round_cv=("normalised_round_cv", "median"),
                                                         spread_left=("left", "median")).reset_index()
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return {"summary": summary.to_dict("records")}


def cmd_levels(args: argparse.Namespace) -> dict:
    """Sweeps at two threads with one configuration per group (so each group starts its own reference processes):
    how often a reference process is slower than its twin of the same group, and how far the level a result is
    normalised against (the fastest process's) moves from group to group, against one process's level."""
    db = str(args.out / "levels.duckdb")
    rows = []
    for repeat in range(args.repeats):
        run = f"levels-{repeat}-{time.time():.0f}"
        sweep = [*SWEEP[:-2], "--time-budget-s", "0.5"]  # SWEEP ends with its own budget
        for info in bench_rounds(db, run, *sweep, "--rounds", "10", "--threads", "2", "--group-size", "1"):
            levels = info.get("reference_levels_s") or []
            if len(levels) >= 2:
                rows.append({"first": levels[0], "fastest": min(levels), "slowest": max(levels)})
    table = pd.DataFrame(rows)
    spread = {name: float(table[name].quantile(0.9) / table[name].quantile(0.1) - 1) for name in ("first", "fastest")}
    figures = {"groups": len(table), "twin_slower_by_5pct": float((table["slowest"] / table["fastest"] > 1.05).mean()),
               "slow_over_fast_median": float((table["slowest"] / table["fastest"]).median()),
               "p90_over_p10_minus_1": spread}
    print(json.dumps(figures, indent=1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["null", "detect", "sweeps", "cost", "reference", "levels"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget", type=float, default=1.0, help="--time-budget-s of each A/B configuration")
    parser.add_argument("--processes", type=int, default=3, help="null, detect: `ab --processes` (per side)")
    parser.add_argument("--out", type=Path, default=Path("outputs/repeatability"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--interpreters", action="store_true",
                        help="null: start each side under its own interpreter (--baseline-python/--candidate-python)")
    parser.add_argument("--bench-args", nargs=argparse.REMAINDER, default=[], help="extra flags for the sweeps")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    commands = {"null": cmd_null, "detect": cmd_detect, "sweeps": cmd_sweeps, "cost": cmd_cost,
                "reference": cmd_reference, "levels": cmd_levels}
    figures = commands[args.experiment](args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
