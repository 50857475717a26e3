"""The null experiment behind `kit.recommend.tell_apart`'s rule: a configuration measured in two runs of a store is the
same thing measured twice, so an interval that tells two results apart should hold a ratio of 1 for about 95 % of
such pairs. For each configuration with ok results in two or more runs, the first and the latest are compared with
`kit.analysis.speedups.pair_estimate` (rounds of two runs are never paired: through the machine reference, or the raw
rounds where the reference does not narrow them); the share whose interval holds 1 is printed per method.

    .venv/bin/python benchmarks/cross_run_intervals.py --db outputs/benchkit.duckdb
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    """Print how often the interval between two runs' results of one configuration holds 1, per method."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("outputs/benchkit.duckdb"))
    args = parser.parse_args()

    import pandas as pd

    from kit import storage
    from kit.analysis.frames import results_with_samples
    from kit.analysis.speedups import pair_estimate
    from kit.errors import ConfigError

    try:
        con = storage.connect(args.db, read_only=True)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    rows = results_with_samples(con)
    rows = rows[rows["status"] == "ok"].sort_values("created_at")
    pairs = []
    for _, results in rows.groupby("config_key"):
        first, latest = results.iloc[0], results.iloc[-1]
        if first["run_id"] == latest["run_id"]:
            continue
        estimate, method = pair_estimate(latest, first)
        if estimate is not None:
            pairs.append({"method": method, "holds_1": estimate.ci_low <= 1.0 <= estimate.ci_high})
    table = pd.DataFrame(pairs, columns=["method", "holds_1"])
    if table.empty:
        raise SystemExit(f"no configuration in {args.db} has ok results with rounds in two runs")
    print(table.groupby("method")["holds_1"].agg(pairs="size", holds_1="sum", share="mean").to_string())
    print(f"all: {int(table['holds_1'].sum())} of {len(table)} ({table['holds_1'].mean():.0%})")


if __name__ == "__main__":
    main()
