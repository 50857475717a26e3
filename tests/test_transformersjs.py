"""Text generation in the page through transformers.js: the model folder's contract, exact token counts, tokens equal
to onnxruntime's in Python, in-page TTFT and inter-token latencies that add up to the call, the driver recorded, and
the hand loop still selectable in the same page."""

from __future__ import annotations

import json

import numpy as np
import psutil
import pytest

from kit.backends import get_backend
from kit.browser.generation import TRANSFORMERS_JS_BUILD, TRANSFORMERS_JS_DIR, transformers_js_version
from kit.config import SweepSpec
from kit.errors import ConfigError
from kit.records import Record
from kit.runners.worker import run_job

NEW_TOKENS = 6
WASM_OK, WASM_WHY = get_backend("wasm").available()
TJS_OK = (TRANSFORMERS_JS_DIR / "dist" / TRANSFORMERS_JS_BUILD).is_file()
needs_page = pytest.mark.skipif(not (WASM_OK and TJS_OK), reason=(
    f"browser platforms unavailable: {WASM_WHY}" if not WASM_OK else
    f"transformers.js not installed at {TRANSFORMERS_JS_DIR}; run `make browser`"))


def test_the_model_folder_has_the_files_and_names_transformersjs_loads(tmp_path):
    pytest.importorskip("onnx")
    import onnx

    from kit import zoo
    from kit.browser.generation import write_model_folder

    loaded = zoo.load_model("qwen2", "tiny")
    path = write_model_folder(loaded.model, tmp_path / "model")
    assert path == tmp_path / "model" / "onnx" / "model.onnx"
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and (tmp_path / "model" / "generation_config.json").is_file()
    graph = onnx.load(str(path), load_external_data=False).graph
    layers = config["num_hidden_layers"]
    pasts = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "position_ids", *pasts]
    assert [o.name for o in graph.output] == ["logits", *[p.replace("past_key_values", "present") for p in pasts]]
    # transformers.js sizes the first call's empty past from the axis names: batch_size, and 0 for the rest
    dims = [d.dim_param or d.dim_value for d in graph.input[3].type.tensor_type.shape.dim]
    assert dims[0] == "batch_size" and dims[2] == "past_sequence_length"


def test_an_unknown_driver_is_refused_before_any_work():
    from kit.browser.generation import start_generation_run

    with pytest.raises(ConfigError, match="unknown generation driver 'tfjs'; known: transformers.js, loop"):
        start_generation_run(None, {}, "wasm", threads=1, new_tokens=4, driver="tfjs")


def _chromium_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if "chrom" in p.name()}


@pytest.fixture(scope="module")
def page_run():
    """Tiny llama (batch 2, prompt 8) loaded in one page by transformers.js on wasm."""
    import torch

    from kit import zoo
    from kit.browser.generation import start_generation_run
    from kit.runners.generation import generation_inputs

    loaded = zoo.load_model("llama", "tiny")
    run = start_generation_run(loaded, generation_inputs(loaded, 2, 8), "wasm", threads=torch.get_num_threads(),
                               new_tokens=NEW_TOKENS)
    yield run
    run.close()


@needs_page
def test_transformersjs_generates_onnxruntimes_tokens_timed_in_the_page(page_run):
    assert page_run.facts["generation_driver"] == "transformers.js"
    assert page_run.facts["transformers_js_version"] == transformers_js_version() != ""
    tails_ms = []
    for _ in range(5):  # the first call warms up; all must agree
        out = page_run.generate()
        assert out["runs"] == NEW_TOKENS and len(out["stampsMs"]) == len(out["tokens"]) == NEW_TOKENS
        assert out["tokens"] == page_run.facts["reference_tokens"]
        stamps = np.asarray(out["stampsMs"])
        assert 0 < out["prefillMs"] <= stamps[0] and (np.diff(stamps) > 0).all() and len(np.diff(stamps)) == 5
        tails_ms.append(out["totalMs"] - stamps[-1])
    # end to end: TTFT, then n - 1 ITLs, then generate's return (sequences, freeing the cache), under 5 ms in the
    # fastest call (a busy host can stall any one call)
    assert min(tails_ms) >= 0 and min(tails_ms) < 5
    # the KV cache after the prompt (8 positions) and after the last run (8 + 5): 2 layers x 2 heads x 8 x batch 2
    per_position = 2 * 2 * 2 * 8 * 2 * 4
    assert out["bytes"] == [8 * per_position, (8 + NEW_TOKENS - 1) * per_position]


@needs_page
def test_the_hand_loop_stays_selectable_in_the_same_page_and_agrees(page_run):
    from kit.browser.generation import compare_drivers

    page_run.load_driver("loop")
    out = page_run.generate("loop")
    assert out["tokens"] == page_run.facts["reference_tokens"] and len(out["stampsMs"]) == NEW_TOKENS
    found = compare_drivers(page_run, bursts=2, calls_per_burst=1)
    assert found["tokens_match"] == {"transformers.js": True, "loop": True}
    for metric in ("ttft", "tpot", "itl_median", "e2e"):
        assert found[metric]["ci_low"] <= found[metric]["ratio"] <= found[metric]["ci_high"]
        assert found[metric]["transformers.js_ms"] > 0 and found[metric]["loop_ms"] > 0


@needs_page
def test_a_wasm_generation_record_says_transformersjs_ran_and_adds_up():
    spec = SweepSpec(models=["llama"], modes=["generation"], platforms=["wasm"], batch_sizes=[1], prompt_lens=[8],
                     generation={"new_tokens": NEW_TOKENS}, time_budget_s=0.3, run_id="tjs")
    (job,) = spec.jobs()
    before = _chromium_pids()
    record = Record.from_json(run_job(job.to_dict()))
    assert _chromium_pids() <= before  # the run's browser quit with the job
    assert record.status == "ok", record.reason
    assert record.extra["generation_driver"] == "transformers.js" and record.device == "chromium/wasm"
    g = record.extra["generation"]
    assert g["tokens_generated"] == NEW_TOKENS and g["tokens_match_onnxruntime"] is True
    assert len(g["ttft_s"]) == len(g["tpot_s"]) == record.n_samples
    assert g["itl"]["n"] == (NEW_TOKENS - 1) * record.n_samples
    samples, ttft, prefill, tpot = (np.asarray(x) for x in (record.samples_s, g["ttft_s"], g["prefill_s"], g["tpot_s"]))
    assert (ttft >= prefill).all() and (prefill > 0).all()
    tail = samples - (ttft + (NEW_TOKENS - 1) * tpot)
    assert (tail >= 0).all() and np.median(tail) < max(0.05 * np.median(samples), 0.002)
    assert g["kv_growth_bytes_per_token"] == pytest.approx(g["kv_estimate_bytes_per_token"], rel=0.1)
