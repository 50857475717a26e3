"""Which driver generates text on OpenVINO and in the browser, by measurement: each platform's two drivers on the
same model, timed in alternating bursts in one run, ratios of the per-burst medians paired by burst
(kit.stats.paired_ratio, 95 % interval), tokens compared.

- openvino: openvino-genai's LLMPipeline against the stateless greedy loop around one infer request
  (kit.backends.openvino_generation.prepare_generation, genai=True/False); ratio loop / genai.
- browser: transformers.js against the page's hand-written token loop, both in one page on one ONNX file
  (kit.browser.generation.compare_drivers); ratio transformers.js / loop.

    .venv/bin/python benchmarks/generation_drivers.py openvino --models llama qwen2 --batch-sizes 1 4
    .venv/bin/python benchmarks/generation_drivers.py browser --models llama qwen2 --batch-sizes 1 4
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kit import zoo  # noqa: E402
from kit.runners.generation import TokenTimer, generation_inputs  # noqa: E402
from kit.stats import paired_ratio  # noqa: E402

METRICS = ("ttft", "tpot", "e2e")


def openvino(model: str, batch: int, prompt_len: int, new_tokens: int, rounds: int, burst: int) -> str:
    """One line: genai and loop per-round medians in ms, loop / genai ratios, whether the tokens agree."""
    from kit.backends import get_backend
    from kit.backends.openvino_generation import prepare_generation

    backend, loaded = get_backend("openvino"), zoo.load_model(model, "tiny")
    inputs = generation_inputs(loaded, batch, prompt_len)
    drivers = {}
    for genai in (True, False):
        loop, prompt, facts = prepare_generation(backend, loaded, inputs, "fp32", new_tokens, genai=genai)
        drivers[facts["generation_driver"]] = (loop, prompt)
    per_round: dict[str, dict[str, dict[int, float]]] = {name: {m: {} for m in METRICS} for name in drivers}
    tokens = {}
    for r in range(rounds):
        for name in list(drivers) if r % 2 == 0 else list(drivers)[::-1]:
            loop, prompt = drivers[name]
            timer = TokenTimer(sync=lambda: None)
            for i in range(burst + 1):  # the first call of a burst is a warm-up
                timer.timed = i > 0
                timer.start()
                tokens[name] = loop.generate(prompt, new_tokens, timer)
                timer.finish()
            per_round[name]["ttft"][r] = statistics.median(c.ttft_s for c in timer.calls)
            per_round[name]["tpot"][r] = statistics.median(float(np.mean(c.itl_s)) for c in timer.calls)
            per_round[name]["e2e"][r] = statistics.median(c.total_s for c in timer.calls)
    genai_name, loop_name = drivers
    line = [f"{model} bs{batch}"]
    for m in METRICS:
        ratio = paired_ratio(per_round[loop_name][m], per_round[genai_name][m])
        line.append(f"{m}: genai {statistics.median(per_round[genai_name][m].values()) * 1e3:.3f} ms, loop "
                    f"{statistics.median(per_round[loop_name][m].values()) * 1e3:.3f} ms, loop/genai "
                    f"{ratio.ratio:.2f} [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]")
    same = bool((np.asarray(tokens[genai_name]) == np.asarray(tokens[loop_name])).all())
    return " | ".join(line) + f" | same tokens: {same}"


def browser(model: str, batch: int, prompt_len: int, new_tokens: int, rounds: int, burst: int) -> str:
    """One line: transformers.js and loop per-burst medians in ms, transformers.js / loop ratios, tokens checked."""
    from kit.browser.generation import compare_drivers, start_generation_run

    loaded = zoo.load_model(model, "tiny")
    run = start_generation_run(loaded, generation_inputs(loaded, batch, prompt_len), "wasm",
                               threads=torch.get_num_threads(), new_tokens=new_tokens)
    try:
        result = compare_drivers(run, bursts=rounds, calls_per_burst=burst)
    finally:
        run.close()
    line = [f"{model} bs{batch}"]
    for m in ("ttft", "tpot", "itl_median", "e2e"):
        x = result[m]
        line.append(f"{m}: transformers.js {x['transformers.js_ms']:.3f} ms, loop {x['loop_ms']:.3f} ms, ratio "
                    f"{x['ratio']:.2f} [{x['ci_low']:.2f}, {x['ci_high']:.2f}]")
    return " | ".join(line) + f" | tokens match onnxruntime: {result['tokens_match']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platform", choices=("openvino", "browser"))
    parser.add_argument("--models", nargs="+", default=["llama", "qwen2"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20, help="alternating bursts per driver")
    parser.add_argument("--burst", type=int, default=3, help="timed calls per burst (after one warm-up)")
    args = parser.parse_args()
    measure = openvino if args.platform == "openvino" else browser
    print(f"{args.platform}: prompt {args.prompt_len}, {args.new_tokens} new tokens, {args.rounds} bursts of "
          f"{args.burst} timed calls per driver, {torch.get_num_threads()} threads", flush=True)
    for model in args.models:
        for batch in args.batch_sizes:
            print(measure(model, batch, args.prompt_len, args.new_tokens, args.rounds, args.burst), flush=True)


if __name__ == "__main__":
    main()
