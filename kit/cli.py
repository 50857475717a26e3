"""The `benchkit` command line: bench, report, ab, compare, recommend, check-predictions, prediction-data,
remeasure-noisy, microbench, distributed-bench, distributed-config, browser, coverage, platforms, models, results,
export, import-json, import-optimum, merge."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
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
    parser.add_argument("--modes", nargs="+", help="inference, training, generation")
    parser.add_argument("--size", help="tiny or base")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--prompt-lens", nargs="+", type=int,
                        help="generation: prompt lengths in tokens, one configuration each (default: --seq-len)")
    parser.add_argument("--new-tokens", type=int, help="generation: tokens generated per sequence (default 32)")
    parser.add_argument("--kv-cache", choices=["dynamic", "static"], help="generation: KV cache (default dynamic)")
    parser.add_argument("--run-id", help="resume this run id (finished configurations are skipped)")
    parser.add_argument("--retry-failed", action="store_true", help="when resuming, run failed configurations again")
    parser.add_argument("--force", action="store_true",
                        help="resume a run even though its measurement settings differ from the stored ones")
    parser.add_argument("--time-budget-s", type=float)
    parser.add_argument("--target-rel-ci", type=float)
    parser.add_argument("--timeout-s", type=float)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--rounds", type=int, help="interleaved rounds per group (default 20)")
    parser.add_argument("--group-size", type=int, help="configurations measured together (default 8)")
    parser.add_argument("--reference", help="machine reference workload: matmul, copy or bert (default matmul)")
    parser.add_argument("--memory-limit-gb", type=float,
                        help="address-space limit of each measuring child; a child that dies under it says so")
    parser.add_argument("--memory-cap-gb", type=float,
                        help="memory the live children of a group may hold (default half the available memory)")
    parser.add_argument("--sequential", action="store_true",
                        help="measure one configuration after the other instead of in interleaved rounds")


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="DuckDB file (default outputs/benchkit.duckdb); readers also take "
                        "a Parquet dataset folder or URL (docs/fleet.md)")


def _add_bench(parser: argparse.ArgumentParser) -> None:
    _add_sweep_args(parser)
    _db_arg(parser)


def _add_results(parser: argparse.ArgumentParser) -> None:
    _db_arg(parser)
    parser.add_argument("--run-id")


def _add_export(parser: argparse.ArgumentParser) -> None:
    _add_results(parser)
    parser.add_argument("--out", type=Path, help="output file; .csv or .parquet")
    parser.add_argument("--dataset", help="append the store's finished runs (or --run-id) to this Parquet dataset "
                        "folder, where they are not yet (docs/fleet.md)")
    parser.add_argument("--force", action="store_true", help="replace an existing export (and its _samples file)")


def _add_import_json(parser: argparse.ArgumentParser) -> None:
    _add_results(parser)
    parser.add_argument("files", nargs="+", type=Path)


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder for executed notebooks and HTML")
    parser.add_argument("--profile", choices=["quick", "full", "tiny"], default="quick",
                        help="quick (default): real sizes in minutes, parameters/<stem>.quick.yaml; full: the whole "
                             "study, parameters/<stem>.yaml; tiny: a smoke check, parameters/<stem>.tiny.yaml")
    parser.add_argument("--tiny", action="store_true", help="same as --profile tiny")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the index path (no progress)")
    parser.add_argument("--notebooks", nargs="+", metavar="STEM", help="only these notebooks (default: all, in order)")
    parser.add_argument("--db", default=None, help="DuckDB file (or Parquet dataset, for the notebooks that only read) "
                        "passed to every notebook as db_path")


def _add_prediction_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("parameters/prediction_data.yaml"))
    _db_arg(parser)


def _add_remeasure_noisy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-prefix", help="only runs whose id starts with this, e.g. pred-data")
    parser.add_argument("--converged-too", action="store_true",
                        help="also the converged results of those runs (made while the machine was disturbed, e.g. "
                             "top's st column high); needs --run-prefix")
    parser.add_argument("--sample", type=int, help="only a seeded random sample of this many configurations (with "
                        "--converged-too: a repeatability check of the store)")
    _db_arg(parser)


def _add_check_predictions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measured-db", type=Path, required=True, help="DuckDB file of the results to check")
    parser.add_argument("--run-id", help="only this run of --measured-db")
    parser.add_argument("--scale", choices=["measured", "steady"], default="measured",
                        help="steady: predict beside the machine reference and check at the reference speed measured "
                             "with each result, so drift between the runs is not counted as error")
    parser.add_argument("--target", choices=["throughput", "latency"], default="throughput",
                        help="what is predicted and checked: throughput, or the median latency")
    _db_arg(parser)


def _add_nothing(_: argparse.ArgumentParser) -> None:
    return None


# name -> (help, "module:add_arguments", "module:command"); modules load only for the command being run
COMMANDS: dict[str, tuple[str, str, str]] = {
    "bench": ("run a sweep and store the results", "kit.cli:_add_bench", "kit.cli:cmd_bench"),
    "platforms": ("list platforms and whether they are present here", "kit.cli:_add_nothing", "kit.cli:cmd_platforms"),
    "models": ("list the model zoo", "kit.cli:_add_nothing", "kit.cli:cmd_models"),
    "results": ("print stored results", "kit.cli:_add_results", "kit.cli:cmd_results"),
    "export": ("export results (and samples) to CSV or Parquet", "kit.cli:_add_export", "kit.cli:cmd_export"),
    "import-json": ("import earlier JSON result files", "kit.cli:_add_import_json", "kit.cli:cmd_import_json"),
    "merge": ("merge stores of other machines into one", "kit.cli:_add_merge", "kit.cli:cmd_merge"),
    "import-optimum": ("import HuggingFace optimum-benchmark result folders", "kit.cli:_add_import_optimum",
                       "kit.cli:cmd_import_optimum"),
    "report": ("execute the notebooks with papermill, render HTML and outputs/index.html", "kit.cli:_add_report",
               "kit.cli:cmd_report"),
    "ab": ("measure a baseline and a candidate interleaved in one job and compare them round by round",
           "kit.runners.ab:add_ab_arguments", "kit.runners.ab:cmd_ab"),
    "compare": ("regression check of a run against a baseline run or export", "kit.analysis:add_compare_arguments",
                "kit.analysis:cmd_compare"),
    "recommend": ("rank platform x precision x batch for a model under constraints",
                  "kit.recommend:add_recommend_arguments", "kit.recommend:cmd_recommend"),
    "check-predictions": ("throughput or latency predicted from --db against results measured later into another store",
                          "kit.cli:_add_check_predictions", "kit.cli:cmd_check_predictions"),
    "microbench": ("measure peak FLOP/s and memory bandwidth per platform, stored with the hardware row",
                   "kit.microbench:add_microbench_arguments", "kit.microbench:cmd_microbench"),
    "make-checkpoints": ("write local folders with random weights for architectures outside the zoo",
                         "kit.zoo.checkpoints:add_make_checkpoints_arguments",
                         "kit.zoo.checkpoints:cmd_make_checkpoints"),
    "prediction-data": ("run the data-generation sweep for the predictor (resumes)", "kit.cli:_add_prediction_data",
                        "kit.cli:cmd_prediction_data"),
    "remeasure-noisy": ("measure noisy (CI target missed) or disturbed (CPU time lost to the host) results again; "
                        "the predictor prefers good ones",
                        "kit.cli:_add_remeasure_noisy", "kit.cli:cmd_remeasure_noisy"),
    "distributed-bench": ("DDP/FSDP training benchmark under torchrun, with scaling efficiency",
                          "kit.distributed:add_distributed_bench_args", "kit.distributed:cmd_distributed_bench"),
    "distributed-config": ("advise a distributed training strategy that fits in GPU memory",
                           "kit.memory:add_distributed_config_args", "kit.memory:cmd_distributed_config"),
    "browser": ("probe the browser platforms (wasm, webgpu, webnn)", "kit.browser.commands:add_browser_arguments",
                "kit.browser.commands:cmd_browser"),
    "upgrade": ("store the facts results of an older kit lack (forward profiles, OpenVINO kernels); reads never "
                "write", "kit.predict.upgrade:add_upgrade_arguments", "kit.predict.upgrade:cmd_upgrade"),
    "coverage": ("every architecture transformers knows, built tiny and measured per platform (resumes)",
                 "kit.coverage.commands:add_coverage_arguments", "kit.coverage.commands:cmd_coverage"),
}


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task; only `command`'s arguments are loaded (fast --help)."""
    parser = argparse.ArgumentParser(prog="benchkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _resolve(add_arguments)(sub_parser)
    return parser


def sweep_params(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from the YAML file (if any) overridden by the flags that were given."""
    from kit.config import load_parameters

    params = load_parameters(args.params) if args.params else {}
    for name in ("models", "platforms", "precisions", "batch_sizes", "modes", "size", "seq_len", "prompt_lens",
                 "run_id", "time_budget_s", "target_rel_ci", "timeout_s", "threads", "rounds", "group_size",
                 "reference"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    for name in ("new_tokens", "kv_cache"):
        if getattr(args, name) is not None:
            params["generation"] = {**params.get("generation", {}), name: getattr(args, name)}
    for flag, key in (("memory_cap_gb", "memory_cap_bytes"), ("memory_limit_gb", "memory_limit_bytes")):
        gib = getattr(args, flag)
        if gib is not None:
            if not (gib > 0 and math.isfinite(gib)):
                raise KitError(f"--{flag.replace('_', '-')} must be a positive number, got {gib!r}")
            params[key] = int(gib * 2**30)
    if args.sequential:
        params["interleave"] = False
    params.pop("db_path", None)
    return params


def cmd_bench(args: argparse.Namespace) -> int:
    """Validate the sweep, run it, print a summary table."""
    from kit import storage
    from kit.analysis.generation import generation_table
    from kit.config import load_parameters, spec_from_parameters
    from kit.runners.sweep import run_sweep
    from kit.tables import summary_table

    params = sweep_params(args)
    if "models" not in params:
        raise KitError("bench needs --models or a --params file with 'models'")
    db = args.db or (load_parameters(args.params).get("db_path") if args.params else None) or storage.DEFAULT_DB
    spec = spec_from_parameters(params)
    print(f"run {spec.run_id}: {len(spec.jobs())} configurations -> {db}")
    records = run_sweep(spec, db, retry_failed=args.retry_failed, force=args.force)  # holds the file only to write
    print(summary_table(records).to_string(index=False))
    generated = generation_table(records)
    if len(generated):
        print("\ngeneration (medians; ms, tokens/s, MiB):")
        print(generated.to_string(index=False))
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
    from kit.tables import summary_table

    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    print(summary_table(storage.load_records(con, args.run_id)).to_string(index=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write results to CSV or Parquet by the output file's suffix, or append runs to a Parquet dataset."""
    from kit import storage

    if (args.out is None) == (args.dataset is None):
        raise KitError("export needs one of --out FILE and --dataset FOLDER")
    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    if args.dataset is not None:
        from kit.dataset import export_dataset

        outcome = export_dataset(con, args.dataset, args.run_id)
        print("; ".join(f"{what}: {', '.join(runs)}" for what, runs in outcome.items() if runs) or "no runs")
        return 0
    exporters = {".csv": storage.export_csv, ".parquet": storage.export_parquet}
    if args.out.suffix not in exporters:
        raise KitError(f"--out must end in .csv or .parquet, got {str(args.out)!r}")
    print(exporters[args.out.suffix](con, args.out, run_id=args.run_id, force=args.force))
    return 0


def cmd_import_json(args: argparse.Namespace) -> int:
    """Import JSON result files into the store: every file is read and checked before the store is opened, and all
    are stored in one transaction, or none."""
    from kit import storage

    imported = {path: storage.read_import(path, run_id=args.run_id) for path in args.files}  # all checked first
    con = storage.connect(args.db or storage.DEFAULT_DB)
    total = storage.store_imported(con, imported)
    print(f"imported {total} records from {len(imported)} file(s)")
    return 0


def _add_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", type=Path, help="DuckDB stores to merge")
    parser.add_argument("--into", type=Path, required=True, help="the store they are merged into (created if missing)")


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge stores into one: results, samples, runs, hardware and models, each result once."""
    from kit.merge import merge_stores

    for source, added in merge_stores(args.sources, args.into).items():
        print(f"{source}: {added} results added")
    print(f"into {args.into}")
    return 0


def _add_import_optimum(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path,
                        help="folders holding benchmark_config.json and benchmark_report.json")
    parser.add_argument("--run-id", help="store them under this run id (default: optimum-<benchmark name>)")
    _db_arg(parser)


def cmd_import_optimum(args: argparse.Namespace) -> int:
    """Import optimum-benchmark result folders: all are read and checked first, then stored in one transaction."""
    from kit import storage
    from kit.optimum_benchmark import read_optimum

    imported = {folder: [read_optimum(folder, run_id=args.run_id)] for folder in args.folders}
    total = storage.store_imported(storage.connect(args.db or storage.DEFAULT_DB), imported)
    print(f"imported {total} records from {len(imported)} optimum-benchmark folder(s)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Execute the notebooks in order into --out, render HTML, keep index.html up to date after each; exit 2 when a
    notebook failed (the others still run)."""
    from kit import pipeline

    extra = {"db_path": str(args.db)} if args.db else None
    profile = "tiny" if args.tiny else args.profile
    entries = pipeline.run_all(args.out, profile=profile, stems=args.notebooks, extra_parameters=extra,
                               echo=None if args.quiet else lambda line: print(line, flush=True))
    print(f"index: {args.out / 'index.html'}")
    failed = [e for e in entries if e.status == "failed"]
    if failed:
        raise KitError("; ".join(e.error for e in failed))
    return 0


def cmd_check_predictions(args: argparse.Namespace) -> int:
    """Print each measured result of --measured-db beside what --db predicts for it, then MAPE and coverage."""
    from kit import storage
    from kit.recommend import check_predictions

    measured = storage.results_frame(storage.connect(args.measured_db, read_only=True), args.run_id)
    if measured.empty:
        raise KitError(f"no results in {args.measured_db}" + (f" for run {args.run_id!r}" if args.run_id else ""))
    checked = check_predictions(storage.connect(args.db or storage.DEFAULT_DB, read_only=True), measured,
                                scale=args.scale, target=args.target)
    print(checked.drop(columns="reason").to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    a = checked.attrs
    print(f"{a['n']} {a['target']} figures checked on the {a['scale']} scale: MAPE {a['mape']:.1%}, median error "
          f"{a['median_ape']:.1%}, {a['coverage']:.0%} inside their interval")
    predicted, again = a["by_source"].get("predicted"), a["by_source"].get("measured")
    if predicted and again:  # the run measured configurations of the store again: their error is the repeat floor
        print(f"  {predicted['n']} predicted: {_scores(predicted)}\n  {again['n']} measured in the store before "
              f"(the repeat floor): {_scores(again)}\n  predicted against the floor: MAPE "
              f"{_ratio(predicted['mape'], again['mape'])}, median "
              f"{_ratio(predicted['median_ape'], again['median_ape'])}")
    factor = a["reference_factor"]
    if not math.isnan(factor):  # how far the machine itself moved between the store's runs and this one
        pace = "slower" if factor > 1 else "faster"
        print(f"  the machine reference took {factor:.2f}x its typical time in the store beside these results (the "
              f"machine ran {pace} than during the store's runs)")
    return 0


def _scores(scores: dict[str, float]) -> str:
    """A check's MAPE, median error and interval coverage, in words."""
    return (f"MAPE {scores['mape']:.1%}, median error {scores['median_ape']:.1%}, {scores['coverage']:.0%} inside "
            f"their interval")


def _ratio(value: float, floor: float) -> str:
    """value / floor as '1.23x', or 'n/a' against a zero floor."""
    return f"{value / floor:.2f}x" if floor > 0 else "n/a"


def cmd_prediction_data(args: argparse.Namespace) -> int:
    """Run the predictor's data-generation sweep from a YAML file into the store; print a status count."""
    from kit import storage
    from kit.predict import run_prediction_sweep

    records = run_prediction_sweep(args.params, storage.connect(args.db or storage.DEFAULT_DB))
    counts = {s: sum(r.status == s for r in records) for s in ("ok", "skipped", "failed")}
    print(f"{len(records)} configurations: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def cmd_remeasure_noisy(args: argparse.Namespace) -> int:
    """Measure the store's noisy results again (resumes); print old and new throughput of each."""
    from kit import storage
    from kit.predict.remeasure import remeasure_noisy

    table = remeasure_noisy(storage.connect(args.db or storage.DEFAULT_DB), args.run_prefix,
                            converged_too=args.converged_too, sample=args.sample)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(table) else "no noisy results")
    print(f"{len(table)} measured again, {int(table['converged'].sum()) if len(table) else 0} converged")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the sub-command; kit errors and DuckDB I/O errors (a truncated store) print one line
    and exit 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if argv is None and hasattr(signal, "SIGPIPE"):  # `benchkit results | head` ends quietly, as other tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return _resolve(COMMANDS[args.command][2])(args)
    except KitError as exc:
        print(f"benchkit: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        duckdb = sys.modules.get("duckdb")
        if duckdb is None or not isinstance(exc, duckdb.IOException):
            raise
        from kit.storage import describe_io_error

        print(f"benchkit: error: {describe_io_error(exc)}", file=sys.stderr)  # a store damaged past its header
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
