"""Is a section of the data-generation sweep worth its rows? Leave-one-family-out throughput accuracy of the zoo's
families on the steady scale, scored on the same rows (by default those outside the section) with the section's rows
in the training data and without them, then the families outside the zoo held out together, on both scales, each way.

    .venv/bin/python benchmarks/prediction_sections.py --db outputs/study.duckdb --section "pred-data-lg[78]-"

`--section` is a regular expression on the run id (the sweep names each section's runs `pred-data-lg<i>-...`, the
`i`-th `larger` mapping after the first). A configuration the section shares with another part of the sweep counts as
outside it (the store keeps one measurement of each). `--scored all` scores every row of the held-out family, its
section rows too, for a section that adds rows like its own to every family (e.g. the grid at two threads):

    .venv/bin/python benchmarks/prediction_sections.py --db outputs/threads.duckdb --run-prefix pd-threads \
        --section "pd-threads-lg2-" --scored all

The zoo's folds choose; the fresh families are the check made once afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    """Print and save both ways' scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("outputs/benchkit.duckdb"))
    parser.add_argument("--run-prefix", default="pred-data", help="score the results of runs starting with this")
    parser.add_argument("--section", required=True, help="regular expression on the run ids of the section")
    parser.add_argument("--scored", choices=["outside", "all"], default="outside",
                        help="score the rows outside the section, or all rows of the held-out family")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/prediction_sections.json"))
    args = parser.parse_args()

    from prediction_scales import FRESH

    from kit import predict, storage
    from kit.predict.ablation import section_table
    from kit.predict.data import all_measurements
    from kit.predict.remeasure import configuration_key
    from kit.predict.steady import steady_frame
    from kit.zoo.families import REGISTRY

    start = time.perf_counter()
    con = storage.connect(args.db, read_only=True)
    frame = predict.training_frame(con)
    frame = frame[frame["run_id"].astype(str).str.startswith(args.run_prefix)]
    measured = all_measurements(con)
    measured = measured[measured["run_id"].astype(str).str.startswith(args.run_prefix)]
    shared = set(configuration_key(measured[~measured["run_id"].astype(str).str.contains(args.section)]))
    section = frame["run_id"].astype(str).str.contains(args.section) & ~configuration_key(frame).isin(shared)
    def make_predictor() -> predict.Predictor:
        return predict.Predictor(targets=("throughput",), coverage=0.9)

    zoo = steady_frame(frame[frame["family"].isin(set(REGISTRY))])
    table = section_table(zoo, section, make_predictor=make_predictor, scored=args.scored)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    scores = {"section_rows": int(section.sum()), "zoo": json.loads(table.round(4).to_json(orient="records"))}
    for way, part in (("with", frame), ("without", frame[~section])):
        fresh = predict.held_out_scales(part, [f for f in FRESH if f in set(part["family"])], make_predictor())
        scores[f"fresh {way}"] = json.loads(fresh.reset_index().to_json(orient="records"))
        print(f"fresh families, {way} the section:")
        print(fresh.reset_index()[["scale", "group", "n", "mape", "median_ape", "within_10"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))
    scores["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(scores, indent=1, default=float))
    print(f"{scores['section_rows']} rows in the section, {scores['seconds']:.0f} s; saved {args.out}")


if __name__ == "__main__":
    main()
