"""`benchkit coverage`: attempt the architectures transformers knows on the platforms given, store every row, print
the matrix and the most common failures."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kit.coverage.architectures import MODALITIES


def add_coverage_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `benchkit coverage`."""
    parser.add_argument("--platforms", nargs="+", default=["cpu", "openvino"], help="cpu, openvino, wasm, ...")
    parser.add_argument("--modality", nargs="+", choices=MODALITIES, help="only architectures of these modalities")
    parser.add_argument("--only", nargs="+", metavar="TYPE", help="only these model types (e.g. bert llama vit)")
    parser.add_argument("--sample", type=int, help="a seeded random sample of this many architectures")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--time-budget-s", type=float, default=0.3, help="timed loop per row (default 0.3 s)")
    parser.add_argument("--timeout-s", type=float, default=180.0,
                        help="limit of one architecture on one platform, child process killed after (default 180 s)")
    parser.add_argument("--seq-len", type=int, default=16, help="text tokens per input (default 16)")
    parser.add_argument("--threads", type=int, help="intra-op threads of each child")
    parser.add_argument("--run-id", help="the run to fill or resume (default coverage-tf<transformers version>)")
    parser.add_argument("--retry-failed", action="store_true", help="attempt the run's failed rows again")
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default outputs/benchkit.duckdb)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per row")


def cmd_coverage(args: argparse.Namespace) -> int:
    """Run (or resume) the coverage run and print its matrix, status counts and most common failures."""
    from kit import storage
    from kit.coverage.run import CoverageSpec, run_coverage
    from kit.coverage.tables import coverage_frame, failure_reasons, matrix, status_counts

    spec = CoverageSpec(platforms=args.platforms, modalities=args.modality, only=args.only, sample=args.sample,
                        seed=args.seed, seq_len=args.seq_len, time_budget_s=args.time_budget_s,
                        timeout_s=args.timeout_s, threads=args.threads, run_id=args.run_id)
    db = args.db or storage.DEFAULT_DB
    print(f"coverage run {spec.resolved_run_id()}: {len(spec.architectures())} architectures x "
          f"{len(spec.platforms)} platforms -> {db}", flush=True)
    started = time.monotonic()
    records = run_coverage(spec, db, echo=None if args.quiet else lambda line: print(line, flush=True),
                           retry_failed=args.retry_failed)
    frame = coverage_frame(records)
    print(f"\n{frame['model_type'].nunique()} architectures in {time.monotonic() - started:.0f} s")
    print(status_counts(frame).to_string())
    print("\nshare that ran, by modality x platform:")
    print(matrix(frame).to_string(float_format=lambda v: f"{v:.0%}"))
    reasons = failure_reasons(frame, top=10)
    if len(reasons):
        print("\nmost common failures:")
        print(reasons.to_string(index=False, max_colwidth=90))
    return 0
