"""The coverage matrix of a stored `benchkit coverage` run as Markdown: the tables notebook 08_coverage shows (share
that ran per modality x platform, failures by stage, the most common reasons, speed against PyTorch on the CPU), with
the run's date, machine and transformers version, for docs/coverage.md.

    .venv/bin/python benchmarks/coverage_matrix.py --db outputs/benchkit.duckdb --run-id coverage-tf5.25.0
"""

from __future__ import annotations

import argparse
import json

from kit import storage
from kit.analysis.machines import machines_table
from kit.coverage.tables import (
    coverage_frame_from_results,
    failure_reasons,
    failures_by_stage,
    matrix,
    speed_summary,
    speed_vs_cpu,
    status_counts,
)


def markdown(con: storage.Connection, run_id: str, top: int) -> str:
    """The run's coverage tables as one Markdown text."""
    frame = coverage_frame_from_results(storage.results_frame(con, run_id))
    if frame.empty:
        raise SystemExit(f"no coverage rows in run {run_id!r}")
    run = storage.runs_frame(con).set_index("run_id").loc[run_id]
    machine = machines_table(con).set_index("hardware_id").loc[run["hardware_id"], "machine"]
    software = json.loads(run["software_json"] or "{}")
    shares = matrix(frame)
    shares[shares.columns.drop("n")] = shares[shares.columns.drop("n")].map(lambda v: f"{v:.0%}")
    reasons = failure_reasons(frame, top)
    reasons["reason"] = reasons["reason"].str.replace("|", "\\|", regex=False)
    parts = [f"Run `{run_id}`, {run['started_at']:%Y-%m-%d} on {machine}, transformers "
             f"{software.get('transformers', '?')}: {frame['model_type'].nunique()} architectures.",
             "### Rows per platform and status", status_counts(frame).to_markdown(),
             "### Share that ran, per modality (n: architectures)", shares.to_markdown(),
             "### Failures by stage", failures_by_stage(frame).to_markdown(),
             f"### The {top} most common failure reasons", reasons.to_markdown(index=False),
             "### Speed against PyTorch on the CPU (tiny sizes: per-call overhead dominates)",
             speed_summary(speed_vs_cpu(frame)).to_markdown(index=False, floatfmt=".2f")]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(storage.DEFAULT_DB))
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--top", type=int, default=12, help="failure reasons shown")
    args = parser.parse_args()
    print(markdown(storage.connect(args.db, read_only=True), args.run_id, args.top))


if __name__ == "__main__":
    main()
