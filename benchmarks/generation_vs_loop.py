"""Does Benchkit's generation timing agree with a hand-written `generate` loop with a streamer?

Two copies of the same model (same config, same seed, so the same weights) in one process: one instrumented as `benchkit
bench --modes generation` instruments it (kit.runners.generation: forward hooks for the prefill, a streamer stamping
tokens, the backend's clock marking the timed calls), one left plain and timed by hand (a plain forward of the prompt,
of the last position's logits as generate computes them, for the prefill; a streamer appending time.perf_counter() for
TTFT and the inter-token gaps). Each round runs a burst of calls of each, in a fresh random order; the per-round medians
are paired (kit.stats.paired_ratio).

    .venv/bin/python benchmarks/generation_vs_loop.py --model llama --prompt-len 128 --new-tokens 32 --rounds 10
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Stamps:
    """The hand loop's streamer: the time of every put (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: object) -> None:
        """Stamp a put."""
        self.times.append(time.perf_counter())

    def end(self) -> None:
        """Nothing to do at the end."""


def build(model: str, size: str, batch_size: int, prompt_len: int, new_tokens: int) -> tuple:
    """Benchkit's instrumented call and the hand loop's two calls, on two copies of the model."""
    import torch
    from transformers.utils import logging as hf_logging

    from kit import zoo
    from kit.runners.generation import TokenTimer, generate_kwargs, generation_inputs
    from kit.timing import MarkingClock, PerfCounterClock

    hf_logging.set_verbosity_error()
    kit_model, hand_model = (zoo.load_model(model, size).model.eval() for _ in range(2))
    inputs = generation_inputs(zoo.load_model(model, size), batch_size, prompt_len)
    kwargs = generate_kwargs(kit_model, new_tokens, "dynamic")
    timer = TokenTimer(sync=lambda: None)
    timer.hook(kit_model)
    clock = MarkingClock(PerfCounterClock(), timer)

    def kit_call() -> None:
        timer.start()
        with torch.inference_mode():
            kit_model.generate(**inputs, **kwargs, streamer=timer)
        timer.finish()

    def hand_generate() -> dict[str, float]:
        stamps = Stamps()
        start = time.perf_counter()
        with torch.inference_mode():
            hand_model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                pad_token_id=0, streamer=stamps)
        end = time.perf_counter()
        tokens = np.asarray(stamps.times[1:])
        return {"ttft": tokens[0] - start, "tpot": float(np.mean(np.diff(tokens))), "e2e": end - start}

    # generate's prompt forward computes the logits of the last position only; a hand prefill does the same
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(hand_model.forward).parameters else {}

    def hand_prefill() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            hand_model(**inputs, use_cache=True, **keep)
        return time.perf_counter() - start

    return kit_call, clock, timer, hand_generate, hand_prefill


def measure(args: argparse.Namespace) -> pd.DataFrame:
    """Per round, the median of each metric by each method."""
    kit_call, clock, timer, hand_generate, hand_prefill = build(args.model, args.size, args.batch_size,
                                                                 args.prompt_len, args.new_tokens)
    for _ in range(3):
        kit_call(), hand_generate(), hand_prefill()
    rng = random.Random(0)
    rows = []
    for index in range(args.rounds):
        order = ["kit", "hand"]
        rng.shuffle(order)
        for method in order:
            if method == "kit":
                timer.calls.clear()
                e2e = [clock.time_call(kit_call) for _ in range(args.calls)]
                values = {"prefill": [c.prefill_s for c in timer.calls], "ttft": [c.ttft_s for c in timer.calls],
                          "tpot": [float(np.mean(c.itl_s)) for c in timer.calls], "e2e": e2e}
            else:
                calls = [hand_generate() for _ in range(args.calls)]
                values = {"prefill": [hand_prefill() for _ in range(args.calls)],
                          **{k: [c[k] for c in calls] for k in ("ttft", "tpot", "e2e")}}
            rows += [{"round": index, "method": method, "metric": k, "median_s": float(np.median(v))}
                     for k, v in values.items()]
    return pd.DataFrame(rows)


def summarise(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per metric: both methods' median over rounds (ms) and Benchkit / hand with its 95 % CI from paired rounds."""
    from kit.stats import paired_ratio

    out = []
    for metric, part in rounds.groupby("metric", sort=False):
        wide = part.pivot(index="round", columns="method", values="median_s")
        est = paired_ratio(wide["kit"].to_dict(), wide["hand"].to_dict())
        out.append({"metric": metric, "benchkit_ms": round(1e3 * wide["kit"].median(), 3),
                    "hand_ms": round(1e3 * wide["hand"].median(), 3), "benchkit_over_hand": round(est.ratio, 3),
                    "ci_low": round(est.ci_low, 3), "ci_high": round(est.ci_high, 3), "rounds": len(wide)})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10, help="calls per method per round")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    table = summarise(measure(args))
    print(table.to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(table.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
