"""Is the harness honest? Compare its median latency with a tight hand-written timing loop on the same model.

Both sides run in a fresh process on the same model, inputs and thread count, alternating A/B/A/B to spread drift.
The harness must stay within 5% of the hand loop (a spin-waiting parent process would double CPU latencies).

    .venv/bin/python benchmarks/harness_overhead.py --model bert --size base --batch-size 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hand_loop(model: str, size: str, batch_size: int, iters: int) -> float:
    """Median latency (s) of a plain perf_counter loop around the model, after three warm-up calls."""
    import torch

    from kit import zoo

    loaded = zoo.load_model(model, size)
    inputs = loaded.make_inputs(batch_size)
    samples = []
    with torch.inference_mode():
        for _ in range(3):
            loaded.model(**inputs)
        for _ in range(iters):
            start = time.perf_counter()
            loaded.model(**inputs)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def harness(model: str, size: str, batch_size: int, budget_s: float) -> tuple[float, int]:
    """Median latency (s) and sample count from the kit's isolated child-process runner."""
    from kit.config import SweepSpec
    from kit.runners.sweep import run_job_isolated

    spec = SweepSpec(models=[model], size=size, batch_sizes=[batch_size], time_budget_s=budget_s, run_id="overhead")
    record = run_job_isolated(spec.jobs()[0], timeout_s=600)
    if record.status != "ok":
        raise SystemExit(f"harness run failed: {record.reason}")
    return record.latency_p50_s, record.n_samples


def main() -> None:
    """Alternate hand loop and harness for several rounds; print and save the ratio of medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bert")
    parser.add_argument("--size", default="base")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=5.0)
    parser.add_argument("--hand-loop-iters", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/harness_overhead.json"))
    args = parser.parse_args()
    if args.hand_loop_iters:
        print(json.dumps({"median_s": hand_loop(args.model, args.size, args.batch_size, args.hand_loop_iters)}))
        return
    rows = []
    for round_index in range(args.rounds):
        h_median, n = harness(args.model, args.size, args.batch_size, args.budget_s)
        cmd = [sys.executable, __file__, "--model", args.model, "--size", args.size, "--batch-size",
               str(args.batch_size), "--hand-loop-iters", str(n)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        hand_median = json.loads(out.stdout.strip().splitlines()[-1])["median_s"]
        rows.append({"round": round_index, "harness_p50_s": h_median, "hand_p50_s": hand_median, "n": n,
                     "ratio": h_median / hand_median})
        print(f"round {round_index}: harness {h_median * 1e3:.3f} ms, hand loop {hand_median * 1e3:.3f} ms, "
              f"ratio {h_median / hand_median:.3f} (n={n})")
    ratio = statistics.median(r["ratio"] for r in rows)
    verdict = "PASS" if abs(ratio - 1) <= 0.05 else "FAIL"
    print(f"median ratio harness/hand loop = {ratio:.3f} -> {verdict} (target within 5%)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rounds": rows, "ratio": ratio,
                                    "verdict": verdict}, indent=2))


if __name__ == "__main__":
    main()
