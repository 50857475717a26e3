"""Generation mode: options checked up front, exact token counts, TTFT/prefill/ITL consistency, the KV cache against
its estimate, skipped rows, the analysis tables and the command line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats as sps

from kit import storage
from kit.analysis.generation import generation_speedups, generation_table, kv_cache_table, per_round
from kit.backends import get_backend
from kit.cli import main
from kit.config import SweepSpec
from kit.errors import ConfigError
from kit.memory.kv_cache import kv_bytes_per_token
from kit.recommend.generation import recommend_generation
from kit.recommend.repeats import INTERVAL_FROM
from kit.records import Record
from kit.runners.sweep import run_sweep
from kit.runners.worker import run_job
from kit.stats import paired_ratio


def generate(model: str, **fields) -> Record:
    """One generation configuration measured in this process (no rounds)."""
    spec = SweepSpec(models=[model], modes=["generation"], time_budget_s=0.3, run_id="g",
                     **{"batch_sizes": [2], "prompt_lens": [8], "generation": {"new_tokens": 6}, **fields})
    (job,) = spec.jobs()
    return Record.from_json(run_job(job.to_dict()))


def test_generation_options_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="prompt_lens apply to the generation mode"):
        SweepSpec(models=["llama"], prompt_lens=[16])
    with pytest.raises(ConfigError, match="new_tokens must be an integer >= 2"):
        SweepSpec(models=["llama"], modes=["generation"], generation={"new_tokens": 1})
    with pytest.raises(ConfigError, match="unknown kv_cache 'paged'"):
        SweepSpec(models=["llama"], modes=["generation"], generation={"kv_cache": "paged"})
    with pytest.raises(ConfigError, match="unknown generation option"):
        SweepSpec(models=["llama"], modes=["generation"], generation={"top_k": 5})
    with pytest.raises(ConfigError, match="prompt_lens must be positive"):
        SweepSpec(models=["llama"], modes=["generation"], prompt_lens=[0])
    spec = SweepSpec(models=["llama"], modes=["inference", "generation"], prompt_lens=[16, 64], batch_sizes=[1, 4],
                     run_id="x")
    keys = [job.config_key for job in spec.jobs()]
    assert len(keys) == len(set(keys)) == 2 + 4
    assert "llama|tiny|generation|cpu|fp32|bs4|seq64|new32-dynamic" in keys
    assert all(job.seq_len is None for job in spec.jobs() if job.mode == "inference")


# whisper's output processing after the last token is 0.6 of a token's time: beside another test it can pass one
@pytest.mark.parametrize("model", ["llama", "t5", pytest.param("whisper", marks=pytest.mark.alone)])
def test_generation_times_exactly_the_requested_tokens(model):
    record = generate(model)
    assert record.status == "ok", record.reason
    g = record.extra["generation"]
    assert g["tokens_generated"] == 6 and len(g["ttft_s"]) == len(g["tpot_s"]) == record.n_samples
    samples = np.asarray(record.samples_s)
    ttft, prefill, tpot = (np.asarray(g[k]) for k in ("ttft_s", "prefill_s", "tpot_s"))
    assert (prefill > 0).all() and (ttft >= prefill).all() and (tpot > 0).all()
    # end to end is TTFT plus (n - 1) inter-token latencies, call by call, plus what generate() does after the last
    # token: 0.1-0.2 of a token's time for llama and t5, about 0.6 for whisper's output processing. A token generated
    # but not counted would add a whole token's time, and a slow or busy machine slows the tail and the tokens alike.
    tail = samples - (ttft + 5 * tpot)
    assert (tail > -0.01 * samples).all() and np.median(tail / tpot) < 1.0
    for part in ("prefill", "ttft", "tpot", "itl"):
        s = g[part]
        assert 0 < s["p10_s"] <= s["p50_s"] <= s["p90_s"] <= s["p99_s"]
        assert s["ci_low_s"] <= s["p50_s"] <= s["ci_high_s"]
    assert g["decode_tokens_per_s"] == pytest.approx(2 / g["tpot"]["mean_s"])


def test_kv_cache_grows_with_context_as_the_estimate_says():
    short, long = (generate("llama", prompt_lens=[n]).extra["generation"] for n in (8, 32))
    estimate = short["kv_estimate_bytes_per_token"]
    # 2 layers x 2 kv heads x head size 8 x batch 2 x 4 bytes x (key, value)
    assert estimate == 2 * 2 * 2 * 8 * 2 * 4
    assert short["kv_growth_bytes_per_token"] == pytest.approx(estimate, rel=0.1)
    growth_with_prompt = (long["kv_cache_bytes_after_prompt"] - short["kv_cache_bytes_after_prompt"]) / (32 - 8)
    assert growth_with_prompt == pytest.approx(estimate, rel=0.1)


def test_kv_estimate_follows_grouped_query_attention_and_dtype():
    import torch
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=3)
    assert kv_bytes_per_token(config, 4, torch.bfloat16) == 2 * 3 * 2 * 8 * 4 * 2


def test_a_static_cache_is_allocated_up_front():
    g = generate("qwen2", generation={"new_tokens": 4, "kv_cache": "static"}).extra["generation"]
    assert g["kv_cache"] == "static" and g["kv_cache_bytes"] == g["kv_cache_bytes_after_prompt"] > 0
    assert g["kv_growth_bytes_per_token"] == 0


def test_models_and_platforms_that_cannot_generate_are_skipped_with_the_reason():
    record = generate("bert")
    assert record.status == "skipped" and "does not generate" in record.reason
    ok, reason = get_backend("webnn").supports("fp32", "generation")
    assert not ok and "static shapes" in reason
    ok, reason = get_backend("openvino").supports("int8", "generation")
    assert not ok and "int8" in reason


OPENVINO = pytest.mark.skipif(not get_backend("openvino").available()[0], reason="OpenVINO is not installed")


@OPENVINO
@pytest.mark.parametrize("model", ["llama", "qwen2", "t5", "whisper"])
def test_openvino_generates_the_tokens_pytorch_generates(model):
    import torch

    from kit import zoo
    from kit.backends.openvino_generation import prepare_generation
    from kit.runners.generation import TokenTimer, generate_kwargs, generation_inputs

    loaded = zoo.load_model(model, "tiny")
    inputs = generation_inputs(loaded, 2, 12)
    loop, prompt, facts = prepare_generation(get_backend("openvino"), loaded, inputs, "fp32", 10)
    timer = TokenTimer(sync=lambda: None)
    timer.start()
    tokens = loop.generate(prompt, 10, timer)
    with torch.inference_mode():
        sequences = loaded.model.generate(**inputs, **generate_kwargs(loaded.model, 10, "dynamic")).sequences
    expected = sequences[:, -10:]  # after the prompt (decoder-only) or the decoder's start token
    assert (tokens == expected.numpy()).all() and facts["precision_ran"] == "fp32"


@OPENVINO
def test_openvino_generation_records_and_skips():
    record = generate("llama", platforms=["openvino"])
    assert record.status == "ok", record.reason
    assert record.extra["generation_driver"] in ("openvino-genai LLMPipeline", "stateless loop")
    g = record.extra["generation"]
    assert g["tokens_generated"] == 6 and len(g["ttft_s"]) == record.n_samples
    samples, ttft, prefill, tpot = (np.asarray(x) for x in (record.samples_s, g["ttft_s"], g["prefill_s"], g["tpot_s"]))
    # end to end = TTFT + (n - 1) ITL + the work after the last token (about 0.3 of a token's time for llama, 0.05
    # for t5's loop), non-negative and less than the whole token an uncounted one would add
    tail = samples - (ttft + 5 * tpot)
    assert (ttft >= prefill).all() and (tail > -0.01 * samples).all()
    assert np.median(tail / tpot) < 1.0
    assert g["kv_growth_bytes_per_token"] == pytest.approx(g["kv_estimate_bytes_per_token"], rel=0.1)
    t5 = generate("t5", platforms=["openvino"])
    assert t5.status == "ok", t5.reason
    assert t5.extra["generation_driver"] == "stateless loop" and "decoder-only" in t5.extra["genai_unused"]
    g5 = t5.extra["generation"]
    assert g5["kv_growth_bytes_per_token"] == pytest.approx(g5["kv_estimate_bytes_per_token"], rel=0.1)
    assert (np.asarray(g5["ttft_s"]) >= np.asarray(g5["prefill_s"])).all()
    llava = generate("llava", platforms=["openvino"])
    assert llava.status == "skipped" and "decoder-only" in llava.reason
    static = generate("llama", platforms=["openvino"], generation={"new_tokens": 4, "kv_cache": "static"})
    assert static.status == "skipped" and "static" in static.reason


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Tiny llama at fp32 and bf16, measured in 4 interleaved rounds: (records, store path)."""
    db = tmp_path_factory.mktemp("gen") / "g.duckdb"
    spec = SweepSpec(models=["llama"], modes=["generation"], precisions=["fp32", "bf16"], prompt_lens=[8],
                     generation={"new_tokens": 4}, time_budget_s=0.6, rounds=4, run_id="gen")
    con = storage.connect(db)
    records = run_sweep(spec, con, progress=False)
    con.close()
    return records, db


def test_a_sweep_in_rounds_gives_tables_and_paired_speedups(swept):
    records, _ = swept
    assert [r.status for r in records] == ["ok", "ok"], [r.reason for r in records]
    table = generation_table(records)
    assert list(table["precision"]) == ["bf16", "fp32"]
    assert (table[["prefill_ms", "ttft_ms", "tpot_ms"]] > 0).all().all()
    assert (table["ttft_ms"] >= table["prefill_ms"]).all()
    kv = kv_cache_table(records)
    assert (kv["estimate_error_pct"].abs() <= 10).all()
    speedups = generation_speedups(records)
    assert set(speedups["metric"]) == {"ttft", "tpot", "e2e"} and (speedups["rounds"] == 4).all()
    fp32, bf16 = sorted(records, key=lambda r: r.precision != "fp32")
    by_hand = paired_ratio(per_round(fp32, "tpot"), per_round(bf16, "tpot")).ratio
    assert speedups.set_index("metric").loc["tpot", "speedup"] == pytest.approx(by_hand, abs=1e-3)
    with pytest.raises(ValueError, match="axis"):
        generation_speedups(records, axis="batch_size")


def test_bench_prints_the_generation_table_and_rejects_bad_options(tmp_path, capsys):
    db = tmp_path / "g.duckdb"
    assert main(["bench", "--models", "qwen2", "--modes", "generation", "--prompt-lens", "8", "--new-tokens", "3",
                 "--time-budget-s", "0.3", "--rounds", "3", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "generation (medians" in out and "ttft_ms" in out
    assert main(["bench", "--models", "qwen2", "--modes", "generation", "--new-tokens", "1", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "new_tokens must be an integer >= 2" in err and len(err.strip().splitlines()) == 1


def test_generation_recommendations_rank_measured_configurations_under_constraints(swept, capsys):
    records, db = swept
    by_tpot = recommend_generation(records, "llama", "tpot")
    assert list(by_tpot["rank"]) == [1, 2] and by_tpot["tpot_ms"].is_monotonic_increasing
    by_rate = recommend_generation(records, "llama", "tokens_per_s", rank_by="bound")
    assert by_rate["tokens_per_s_low"].is_monotonic_decreasing
    assert (by_rate["tokens_per_s_low"] <= by_rate["tokens_per_s"]).all()
    assert recommend_generation(records, "llama", "ttft", memory_budget_bytes=1).empty
    fastest, slowest = sorted(by_tpot["ttft_high_ms"])
    bounded = recommend_generation(records, "llama", "ttft", ttft_bound_s=(fastest + slowest) / 2 / 1e3)
    assert list(bounded["ttft_high_ms"]) == ([fastest] if fastest < slowest else [])
    with pytest.raises(ConfigError, match="unknown generation objective 'latency'"):
        recommend_generation(records, "llama", "latency")
    assert main(["recommend", "--model", "llama", "--objective", "tpot", "--db", str(db)]) == 0
    assert "tpot_ms" in capsys.readouterr().out
    assert main(["recommend", "--model", "llama", "--objective", "ttft", "--latency-bound-ms", "1e-6",
                 "--db", str(db)]) == 1
    assert "none of the 2 measured generation configurations" in capsys.readouterr().out


def test_generation_figures_take_the_spread_between_runs_where_measured_twice(swept):
    records, _ = swept

    def again(record, factor: float):  # the same configuration in a later run, `factor` slower
        g = record.extra["generation"]
        slower = {k: {**g[k], "p50_s": g[k]["p50_s"] * factor} for k in ("ttft", "tpot")}
        return dataclasses.replace(record, run_id="gen-again", created_at=record.created_at + "Z",
                                   extra={**record.extra, "generation": {**g, **slower}})

    one_run = recommend_generation(records, "llama", "tpot")
    assert (one_run["interval_from"] == INTERVAL_FROM["run"]).all()
    table = recommend_generation([*records, *(again(r, 1.25) for r in records)], "llama", "tpot", rank_by="bound")
    assert set(table["run_id"]) == {"gen-again"}
    assert table["interval_from"].str.startswith(INTERVAL_FROM["machine"]).all()
    # two pairs, each 25 % apart: the t bound of their spread (2 degrees of freedom) reaches past the first run
    width = sps.t.ppf(0.95, 2) * np.log(1.25)
    assert np.allclose(table["tpot_high_ms"], table["tpot_ms"] * np.exp(width), rtol=1e-3)
    assert np.allclose(table["ttft_high_ms"], table["ttft_ms"] * np.exp(width), rtol=1e-3)
    assert np.allclose(table["tokens_per_s_low"], table["tokens_per_s"] / np.exp(width), rtol=1e-3)


@pytest.mark.skipif(not get_backend("wasm").available()[0], reason="no Chromium with onnxruntime-web")
def test_the_browser_generates_in_the_page_what_onnxruntime_generates():
    record = generate("qwen2", platforms=["wasm"])
    assert record.status == "ok", record.reason
    g = record.extra["generation"]
    assert g["tokens_generated"] == 6 and g["tokens_match_onnxruntime"] is True
    assert record.device == "chromium/wasm" and len(g["ttft_s"]) == record.n_samples
    samples, ttft, prefill, tpot = (np.asarray(x) for x in (record.samples_s, g["ttft_s"], g["prefill_s"], g["tpot_s"]))
    assert (ttft >= prefill).all() and np.median(np.abs(samples - (ttft + 5 * tpot)) / samples) < 0.05
    assert g["kv_growth_bytes_per_token"] == pytest.approx(g["kv_estimate_bytes_per_token"], rel=0.1)
    assert generate("t5", platforms=["wasm"]).status == "skipped"


def test_a_decoder_too_short_for_the_prompt_and_new_tokens_is_skipped_with_its_limit():
    record = generate("llama", prompt_lens=[250], generation={"new_tokens": 8})  # tiny llama: 256 positions
    assert record.status == "skipped" and "holds 256 decoder positions" in record.reason
    assert generate("whisper", generation={"new_tokens": 32}).status == "ok"  # 1 start token + 32 within 64


@pytest.mark.skipif(not get_backend("webgpu").available()[0], reason="no WebGPU adapter in this Chromium")
def test_webgpu_generates_in_the_page_and_says_when_it_is_emulated():
    record = generate("llama", platforms=["webgpu"], generation={"new_tokens": 3}, prompt_lens=[8])
    assert record.status == "ok", record.reason
    assert record.extra["generation"]["tokens_match_onnxruntime"] is True
    assert record.device.startswith("chromium/webgpu:")
    assert record.device.endswith("(emulated)") == bool(record.extra.get("emulated"))
