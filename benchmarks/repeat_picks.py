"""The recommendation's null experiment: how often does a second measurement of every configuration pick the same
best as the first? The study's sections with a choice (several platforms, precisions and batch sizes per variant)
are measured again into a store of their own, then each case's best there (a variant at one thread count) is
compared with its best in the study (`kit.recommend.repeat_picks`), beside the leave-one-family-out picks of the
predictor on the same cases, on the measured and the steady scale.

    .venv/bin/python benchmarks/repeat_picks.py --study outputs/benchkit.duckdb --again outputs/again.duckdb

The study's cross-platform and first larger sections (288 configurations) take about 12 minutes on a 2-vCPU VM; a
second call resumes them, and `--skip-measure` scores what the store holds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTIONS = ("pred-data-xp-", "pred-data-lg-")  # run id prefixes: the variants with a choice between platforms


def measure(params: Path, again: Path) -> None:
    """Measure the study's sections again into `again` (finished configurations are skipped)."""
    from kit import storage
    from kit.config import load_parameters
    from kit.predict.data import prediction_sweep_specs
    from kit.runners.sweep import run_sweep

    specs = [s for s in prediction_sweep_specs(load_parameters(params)) if s.run_id.startswith(SECTIONS)]
    con = storage.connect(again)
    start = time.time()
    for spec in specs:
        run_sweep(spec, con, progress=False)
        print(f"{spec.run_id}: {time.time() - start:.0f} s", flush=True)
    con.close()


def score(study: Path, again: Path, run_prefix: str) -> dict:
    """Repeat picks and the predictor's picks on the same variants, per scale."""
    from kit import storage
    from kit.analysis.frames import results_with_samples
    from kit.predict.steady import steady_frame
    from kit.recommend import evaluate_rankings, measured_frame, repeat_picks, tell_apart
    from kit.recommend.evaluation import CASE_KEYS

    con = storage.connect(study, read_only=True)
    first = measured_frame(con)
    rounds = results_with_samples(con)  # the study's samples, to tell ties apart (`tell_apart`)
    first = first[first["run_id"].astype(str).str.startswith(run_prefix)]
    second = measured_frame(storage.connect(again, read_only=True))
    steady = steady_frame(first)
    out = {}
    for scale, one, two in (("measured", first.loc[steady.index], second), ("steady", steady, steady_frame(second))):
        picks = tell_apart(repeat_picks(one, two), rounds)  # ties: misses the study's rounds cannot tell from the best
        same = tell_apart(evaluate_rankings(one, "throughput")["point"], rounds)
        same = same.merge(picks[CASE_KEYS], on=CASE_KEYS)  # the same cases (NaN threads match NaN)
        out[scale] = {"variants": len(picks),
                      "second_measurement": {"hit_rate": picks.attrs["top1_hit_rate"],
                                             "mean_regret": picks.attrs["mean_regret"],
                                             "within_2pct": float((picks["regret"] <= 0.02).mean()),
                                             "hit_or_tie_rate": picks.attrs["hit_or_tie_rate"]},
                      "predictor": {"n": len(same), "hit_rate": float(same["hit"].mean()),
                                    "mean_regret": float(same["regret"].mean()),
                                    "within_2pct": float((same["regret"] <= 0.02).mean()),
                                    "hit_or_tie_rate": float(same["tie"].fillna(False).mean())}}
        print(scale, json.dumps(out[scale]), flush=True)
    return out


def main() -> None:
    """Measure (unless --skip-measure), score, print and save the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("outputs/benchkit.duckdb"))
    parser.add_argument("--again", type=Path, default=Path("outputs/again.duckdb"))
    parser.add_argument("--params", type=Path, default=Path("parameters/prediction_data.yaml"))
    parser.add_argument("--run-prefix", default="pred-data", help="the study's runs start with this")
    parser.add_argument("--skip-measure", action="store_true", help="score what --again holds")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/repeat_picks.json"))
    args = parser.parse_args()
    if not args.skip_measure:
        measure(args.params, args.again)
    scores = score(args.study, args.again, args.run_prefix)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(scores, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
