"""Which zoo families run on which platform here: every family, tiny size, one short configuration per platform.

One sweep (one run id, stored in the database) over the 13 families x the platforms given x the modes given. It answers
"does it convert / export / run", not "how fast": the time budget is short and the table shows status and the first
line of the reason (the converter's or exporter's message for failures, the backend's for skips).

    .venv/bin/python benchmarks/platform_coverage.py                                  # cpu, openvino, wasm
    .venv/bin/python benchmarks/platform_coverage.py --platforms cpu --modes training  # every family trains
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from kit import storage, zoo
from kit.config import SweepSpec
from kit.runners.sweep import run_sweep

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def coverage_table(records: list) -> pd.DataFrame:
    """Family x platform/mode table of 'ok' or 'status: first line of the reason'."""
    rows = [{"family": r.model, "column": f"{r.platform} {r.mode}",
             "result": "ok" if r.status == "ok" else f"{r.status}: {(r.reason or '').splitlines()[0][:90]}"}
            for r in records]
    return pd.DataFrame(rows).pivot(index="family", columns="column", values="result").reindex(list(zoo.FAMILIES))


def main(argv: list[str] | None = None) -> int:
    """Run the coverage sweep and print the table as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", nargs="+", default=["cpu", "openvino", "wasm"])
    parser.add_argument("--modes", nargs="+", default=["inference"])
    parser.add_argument("--batch-size", type=int, default=2, help="2: contrastive models need a pair for a loss")
    parser.add_argument("--budget-s", type=float, default=0.3)
    parser.add_argument("--db", type=Path, default=Path("outputs/benchkit.duckdb"))
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    spec = SweepSpec(models=list(zoo.FAMILIES), platforms=args.platforms, modes=args.modes, size="tiny",
                     batch_sizes=[args.batch_size], time_budget_s=args.budget_s, min_samples=5, timeout_s=300,
                     run_id=args.run_id)
    records = run_sweep(spec, storage.connect(args.db))
    print(f"run {spec.run_id}")
    print(coverage_table(records).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
