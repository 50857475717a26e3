"""Precision matrix on this CPU: PyTorch vs OpenVINO at fp32/bf16/fp16/int8, speed-ups vs torch fp32, output deviation.

Every configuration runs in its own child process through kit.runners.sweep.run_sweep, all in ONE run (one run_id,
stored in the results database), so the ratios compare measurements taken minutes apart on the same machine. Each
row carries the 1-minute load average, and the speed-up a bootstrap CI of the ratio of medians: run it on quiet cores.
A precision the platform cannot run natively is a skipped row with its reason, never a number.

    .venv/bin/python benchmarks/precision_matrix.py                              # bert base, batch 1 and 8 (long)
    .venv/bin/python benchmarks/precision_matrix.py --size tiny --budget-s 0.3   # a quick check of the script
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from kit import storage
from kit.config import SweepSpec
from kit.records import Record
from kit.runners.sweep import run_sweep
from kit.stats import compare

BASELINE = ("cpu", "fp32")
COLUMNS = ["batch_size", "platform", "precision", "status", "precision_ran", "p50_ms", "ci_rel", "items_per_s",
           "speedup", "speedup_ci_low", "speedup_ci_high", "rel_l2", "max_abs", "output", "startup_s", "convert_s",
           "quantize_s", "compile_s", "n_samples", "load_avg_1m", "noisy", "reason"]


def build_spec(args: argparse.Namespace) -> SweepSpec:
    """The matrix as one validated sweep: model x {cpu, openvino} x precisions x batch sizes."""
    return SweepSpec(models=[args.model], size=args.size, platforms=args.platforms, precisions=args.precisions,
                     batch_sizes=args.batch_sizes, time_budget_s=args.budget_s, timeout_s=args.timeout_s,
                     threads=args.threads, run_id=args.run_id)


def speedup(record: Record, baseline: Record | None) -> tuple[float, float, float]:
    """Baseline median latency / this one's (same batch, so a throughput ratio), with its 95% bootstrap CI."""
    if record.status != "ok" or baseline is None or baseline.status != "ok":
        return math.nan, math.nan, math.nan
    c = compare(list(record.samples_s), list(baseline.samples_s))
    return 1 / c.ratio, 1 / c.ratio_ci_high, 1 / c.ratio_ci_low


def matrix_row(record: Record, baseline: Record | None) -> dict[str, Any]:
    """One table row: identity, what ran, speed, speed-up vs torch fp32, deviation vs fp32 and one-off costs."""
    extra, deviation = record.extra, record.extra.get("deviation") or {}
    ratio, low, high = speedup(record, baseline)
    return {"batch_size": record.batch_size, "platform": record.platform, "precision": record.precision,
            "status": record.status, "precision_ran": extra.get("precision_ran"),
            "p50_ms": record.latency_p50_s * 1e3 if record.latency_p50_s else None,
            "ci_rel": record.ci_rel_halfwidth, "items_per_s": record.throughput_items_per_s,
            "speedup": ratio, "speedup_ci_low": low, "speedup_ci_high": high,
            "rel_l2": deviation.get("rel_l2"), "max_abs": deviation.get("max_abs"),
            "output": deviation.get("output") or deviation.get("error"), "startup_s": record.startup_s,
            "convert_s": extra.get("convert_s"), "quantize_s": extra.get("quantize_s"),
            "compile_s": extra.get("compile_s"), "n_samples": record.n_samples, "load_avg_1m": record.load_avg_1m,
            "noisy": record.noisy, "reason": record.reason.splitlines()[0] if record.reason else ""}


def matrix_frame(records: list[Record]) -> pd.DataFrame:
    """One row per record, ordered by batch size, platform and precision, with speed-ups vs torch fp32."""
    baselines = {r.batch_size: r for r in records if (r.platform, r.precision) == BASELINE}
    rows = [matrix_row(r, baselines.get(r.batch_size)) for r in records]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["batch_size", "platform", "precision"], kind="stable").reset_index(drop=True)


def print_table(frame: pd.DataFrame) -> None:
    """The matrix as text: speed and deviation columns, then the reasons of rows that did not run."""
    shown = ["batch_size", "platform", "precision", "status", "precision_ran", "p50_ms", "items_per_s", "speedup",
             "speedup_ci_low", "speedup_ci_high", "rel_l2", "max_abs", "startup_s", "load_avg_1m", "noisy"]
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        print(frame[shown].to_string(index=False))
    for row in frame[frame.status != "ok"].itertuples():
        print(f"  bs{row.batch_size} {row.platform} {row.precision}: {row.status}: {row.reason}")


def parse_args() -> argparse.Namespace:
    """Command-line options (defaults: the full base-size matrix at batch 1 and 8)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bert")
    parser.add_argument("--size", default="base")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--platforms", nargs="+", default=["cpu", "openvino"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16", "int8"])
    parser.add_argument("--budget-s", type=float, default=10.0, help="time budget of each configuration's timed loop")
    parser.add_argument("--timeout-s", type=float, default=1200.0, help="kill a configuration's process after this")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for both engines (default: all)")
    parser.add_argument("--run-id", default=None, help="resume a run: configurations already stored are skipped")
    parser.add_argument("--db", type=Path, default=Path(storage.DEFAULT_DB))
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/precision_matrix.csv"))
    return parser.parse_args()


def main() -> None:
    """Run the matrix as one sweep, print the table and write it as CSV."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # inherited by the configurations' child processes
    args = parse_args()
    spec = build_spec(args)
    records = run_sweep(spec, storage.connect(args.db))
    frame = matrix_frame(records)
    print(f"run {spec.run_id}: {args.model} {args.size}, speed-up = torch fp32 median latency / this median latency")
    print_table(frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.assign(run_id=spec.run_id, model=args.model, size=args.size).to_csv(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
