"""What is each counted fact worth? Leave-one-family-out throughput accuracy of the predictor trained on the store,
with OpenVINO's written bytes (all, or its reference kernels'), its kernel counts, the matrix-product shapes, the
convolutions' shapes or the machine's depthwise-convolution costs withheld, on the same rows and folds, as measured
or on the steady scale (`--scale steady`).

    .venv/bin/python benchmarks/prediction_ablation.py --db outputs/benchkit.duckdb --model fixed
    .venv/bin/python benchmarks/prediction_ablation.py --zoo-only --architectures coverage-tf5.25.0 \
        --variants "all facts" "without matmul shapes"

`--zoo-only` scores the zoo's families alone (how a term is chosen, so that the architectures outside the zoo stay a
fresh test); `--held-out` scores the named families held out together, trained on the rest (the fresh families'
check: `--held-out resnet convnext mobilenet_v2 swin gpt2 gpt_neox`); `--architectures` adds a coverage run's rows
to every fold's training data, with the same facts withheld.
`--model fixed` is the overhead baseline + boosting in every fold (a change in a term is not hidden by a change of
the model choice); `--model auto` is the notebook's choice per fold (slower: it cross-fits every candidate).
`--no-measured-gains` holds predictions at t threads within t times one thread's only, not within the gains measured
in training (kit.predict.threads), to score that bound the same way.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VARIANTS = {"all facts": [], "without OpenVINO's written bytes": ["kernel_output_bytes"],
            "without OpenVINO's reference kernels": ["kernel_reference_bytes"],
            "without OpenVINO's transposes": ["kernel_transpose_bytes"],
            "without OpenVINO's reorders": ["kernel_reorder_bytes"],
            "without OpenVINO's element-wise kernels": ["kernel_eltwise_bytes"],
            "without OpenVINO's kernels": ["kernels_per_forward", "kernel_output_bytes", "kernel_reference_bytes",
                                           "kernel_transpose_bytes", "kernel_reorder_bytes", "kernel_eltwise_bytes"],
            "without matmul shapes": ["matmul_shapes"], "without conv shapes": ["conv_shapes"],
            "without depthwise costs": ["depthwise_costs"]}


def main() -> None:
    """Print and save the ablation table of the store's training frame."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("outputs/benchkit.duckdb"))
    parser.add_argument("--model", choices=("fixed", "auto"), default="fixed")
    parser.add_argument("--target", default="throughput")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="NAME",
                        help=f"which of: {'; '.join(VARIANTS)}")
    parser.add_argument("--by", nargs="+", default=["platform", "threads"],
                        help="columns whose values get a MAPE column each (e.g. family)")
    parser.add_argument("--run-prefix", default="pred-data", help="score the results of runs starting with this")
    parser.add_argument("--zoo-only", action="store_true", help="score the zoo's families only")
    parser.add_argument("--held-out", nargs="+", metavar="FAMILY",
                        help="score these families held out together, trained on the others (e.g. the fresh ones)")
    parser.add_argument("--scale", choices=("measured", "steady"), default="measured",
                        help="steady: the normalised throughput beside the machine reference (kit.predict.steady)")
    parser.add_argument("--architectures", help="coverage run id whose architectures join the training data")
    parser.add_argument("--no-measured-gains", action="store_true",
                        help="hold predictions at t threads within t times one thread's only")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/prediction_ablation.csv"))
    args = parser.parse_args()

    from kit import storage
    from kit.predict import Predictor, architecture_frame, training_frame
    from kit.predict.ablation import ablation_table
    from kit.predict.steady import steady_frame
    from kit.zoo.families import REGISTRY

    con = storage.connect(args.db, read_only=True)
    frame = training_frame(con)
    frame = frame[frame["run_id"].astype(str).str.startswith(args.run_prefix)]
    if args.zoo_only:
        frame = frame[frame["family"].isin(set(REGISTRY))]
    if args.scale == "steady":
        frame = steady_frame(frame)
    extra = architecture_frame(con, args.architectures) if args.architectures else None
    settings = {"baseline_kind": "overhead", "boosting": True} if args.model == "fixed" else {}
    settings["measured_gains"] = not args.no_measured_gains
    start = time.perf_counter()
    table = ablation_table(frame, {name: VARIANTS[name] for name in args.variants}, args.target, tuple(args.by),
                           make_predictor=lambda: Predictor(targets=(args.target,), **settings), extra_training=extra,
                           held_out=args.held_out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"{len(frame)} rows, {frame['family'].nunique()} families, "
          f"{0 if extra is None else len(extra)} coverage rows in training, model {args.model}"
          f"{', t-times thread bound only' if args.no_measured_gains else ''}, "
          f"{time.perf_counter() - start:.0f} s")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
