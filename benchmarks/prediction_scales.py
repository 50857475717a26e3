"""Does the predictor do better on the steady scale, or with the coverage architectures? Leave-one-family-out
throughput and latency scores of one store on the measured and the steady scale (beside each scale's repeat floor
and, per platform and thread count, the normalised floor), the families held out together (on both scales), the same
with a coverage run's architectures added to the training data, and the recommendation's hit rate and regret on both
scales.

    .venv/bin/python benchmarks/prediction_scales.py --db outputs/benchkit.duckdb --run-prefix pred-data \
        --architectures coverage-tf5.25.0

`--run-prefix` keeps the results of the data-generation sweep (and its re-measurements) only, so that a store that
also holds other runs is scored on the study's rows. `--no-thread-bound` scores the predictor without its thread
bounds (predictions at t threads may then exceed t times one thread's), `--no-measured-gains` with the t-times bound
only (not the gains measured in training, kit.predict.threads), for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRESH = ["resnet", "convnext", "mobilenet_v2", "swin", "gpt2", "gpt_neox"]


def records(table) -> list[dict]:  # noqa: ANN001 (a DataFrame)
    """A table as JSON-ready rows."""
    return json.loads(table.reset_index().to_json(orient="records"))


def main() -> None:
    """Print and save the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("outputs/benchkit.duckdb"))
    parser.add_argument("--run-prefix", default="pred-data", help="score the results of runs starting with this")
    parser.add_argument("--architectures", help="coverage run id whose architectures are added to the training data")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/prediction_scales.json"))
    parser.add_argument("--no-thread-bound", action="store_true", help="predict without the thread bounds")
    parser.add_argument("--no-measured-gains", action="store_true",
                        help="hold predictions at t threads within t times one thread's only")
    args = parser.parse_args()
    settings = {"coverage": 0.9, "thread_bound": not args.no_thread_bound,
                "measured_gains": not args.no_measured_gains}

    from kit import predict, storage
    from kit.recommend import measured_frame, ranking_scores

    start = time.perf_counter()
    con = storage.connect(args.db, read_only=True)
    frame = predict.training_frame(con)
    frame = frame[frame["run_id"].astype(str).str.startswith(args.run_prefix)]
    measurements = predict.all_measurements(con)
    measurements = measurements[measurements["run_id"].astype(str).str.startswith(args.run_prefix)]
    template = predict.Predictor(targets=("throughput",), **settings)
    measured = predict.validate_targets(frame, template)["throughput"]
    steady = predict.validate_steady(frame, template)
    repeats = predict.repeat_table(measurements)
    fresh = [f for f in FRESH if f in set(frame["family"])]
    out = {"rows": len(frame), "families": int(frame["family"].nunique()),
           "noisy_share": float(frame["noisy"].fillna(False).astype(bool).mean()),
           "repeats": records(repeats),
           "scales": records(predict.steady_scores(frame, template, repeats, measured, steady)),
           "steady_floor": records(predict.steady_budget(steady, frame, measurements)),
           "fresh": records(predict.held_out_scales(frame, fresh, template))}
    latency = predict.Predictor(targets=("latency",), **settings)
    steady_latency = predict.validate_steady(frame, latency, "latency")
    out["latency_scales"] = records(predict.steady_scores(frame, latency, predict.repeat_table(measurements, "latency"),
                                                          steady_validation=steady_latency, target="latency"))
    out["latency_steady_floor"] = records(predict.steady_budget(steady_latency, frame, measurements))
    if args.architectures:
        rows = predict.architecture_frame(con, args.architectures)
        out["architectures"] = records(predict.architecture_scores(frame, rows, template, measured))
        with_rows = predict.hold_out_groups(frame, fresh, "throughput", make_predictor=lambda: predict.Predictor(
            targets=("throughput",), **settings), extra_training=rows)
        out["fresh_with_architectures"] = records(predict.held_out_table({"throughput": with_rows}))
    data = measured_frame(con)
    study = data[data["run_id"].astype(str).str.startswith(args.run_prefix)]
    out["recommendation"] = records(ranking_scores(study, make_predictor=lambda: predict.Predictor(
        targets=("throughput",), **settings), samples=con))
    out["seconds"] = round(time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
