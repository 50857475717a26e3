"""The `benchkit` command line: bench, platforms, models, results, export, import-json."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from kit.errors import KitError


def _add_sweep_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, help="YAML file of sweep parameters (flags given override it)")
    parser.add_argument("--models", nargs="+", help="zoo names or local HuggingFace folders")
    parser.add_argument("--platforms", nargs="+", help="cpu, cuda, rocm, mps, ...")
    parser.add_argument("--precisions", nargs="+", help="fp32, bf16, fp16, int8")
    parser.add_argument("--batch-sizes", nargs="+", type=int)
    parser.add_argument("--modes", nargs="+", help="inference, training")
    parser.add_argument("--size", help="tiny or base")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--run-id", help="resume this run id (finished configurations are skipped)")
    parser.add_argument("--time-budget-s", type=float)
    parser.add_argument("--target-rel-ci", type=float)
    parser.add_argument("--timeout-s", type=float)
    parser.add_argument("--threads", type=int)


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default outputs/benchkit.duckdb)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="benchkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="run a sweep and store the results")
    _add_sweep_args(bench)
    _db_arg(bench)
    sub.add_parser("platforms", help="list platforms and whether they are present here")
    sub.add_parser("models", help="list the model zoo")
    results = sub.add_parser("results", help="print stored results")
    _db_arg(results)
    results.add_argument("--run-id")
    export = sub.add_parser("export", help="export results (and samples) to CSV or Parquet")
    _db_arg(export)
    export.add_argument("--run-id")
    export.add_argument("--out", type=Path, required=True, help="output file; .csv or .parquet")
    imp = sub.add_parser("import-json", help="import earlier JSON result files")
    _db_arg(imp)
    imp.add_argument("files", nargs="+", type=Path)
    imp.add_argument("--run-id")
    return parser


def sweep_params(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from the YAML file (if any) overridden by the flags that were given."""
    from kit.config import load_parameters

    params = load_parameters(args.params) if args.params else {}
    for name in ("models", "platforms", "precisions", "batch_sizes", "modes", "size", "seq_len", "run_id",
                 "time_budget_s", "target_rel_ci", "timeout_s", "threads"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    params.pop("db_path", None)
    return params


def cmd_bench(args: argparse.Namespace) -> int:
    """Validate the sweep, run it, print a summary table."""
    from kit import storage
    from kit.config import load_parameters, spec_from_parameters
    from kit.report import summary_table
    from kit.runners.sweep import run_sweep

    params = sweep_params(args)
    if "models" not in params:
        raise KitError("bench needs --models or a --params file with 'models'")
    db = args.db or (load_parameters(args.params).get("db_path") if args.params else None) or storage.DEFAULT_DB
    spec = spec_from_parameters(params)
    print(f"run {spec.run_id}: {len(spec.jobs())} configurations -> {db}")
    records = run_sweep(spec, storage.connect(db))
    print(summary_table(records).to_string(index=False))
    return 0


def cmd_platforms(_: argparse.Namespace) -> int:
    """Print every platform with its availability reason."""
    from kit.backends import available_platforms

    for name, (ok, reason) in available_platforms().items():
        print(f"{name:10s} {'yes' if ok else 'no ':4s} {reason}")
    return 0


def cmd_models(_: argparse.Namespace) -> int:
    """Print the zoo families."""
    from kit import zoo

    print("\n".join(zoo.FAMILIES))
    print("(or a path to a local HuggingFace checkpoint folder)")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """Print stored results as a summary table."""
    from kit import storage
    from kit.report import summary_table

    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    print(summary_table(storage.load_records(con, args.run_id)).to_string(index=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write results to CSV or Parquet by the output file's suffix."""
    from kit import storage

    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    exporters = {".csv": storage.export_csv, ".parquet": storage.export_parquet}
    if args.out.suffix not in exporters:
        raise KitError(f"--out must end in .csv or .parquet, got {str(args.out)!r}")
    print(exporters[args.out.suffix](con, args.out, run_id=args.run_id))
    return 0


def cmd_import_json(args: argparse.Namespace) -> int:
    """Import JSON result files into the store."""
    from kit import storage

    con = storage.connect(args.db or storage.DEFAULT_DB)
    total = sum(storage.import_json(con, path, run_id=args.run_id) for path in args.files)
    print(f"imported {total} records")
    return 0


COMMANDS = {"bench": cmd_bench, "platforms": cmd_platforms, "models": cmd_models, "results": cmd_results,
            "export": cmd_export, "import-json": cmd_import_json}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the sub-command; kit errors print one line and exit 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KitError as exc:
        print(f"benchkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
