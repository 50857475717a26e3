"""OpenVINO generation through openvino-genai's LLMPipeline: the stateful export, exact tokens (PyTorch's greedy
ones, also from the stateless loop asked for), the KV bytes, the token timings and the driver recorded. Batch 2
through the pipeline, and encoder-decoders through the loop, are in tests/test_generation.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino_genai", reason="openvino-genai is not installed")

from kit import zoo  # noqa: E402
from kit.backends import get_backend  # noqa: E402
from kit.backends.openvino_genai import DRIVER, make_stateful  # noqa: E402
from kit.backends.openvino_generation import LOOP_DRIVER, export_decoder, kv_shape, prepare_generation  # noqa: E402
from kit.config import SweepSpec  # noqa: E402
from kit.records import Record  # noqa: E402
from kit.runners.generation import TokenTimer, generate_kwargs, generation_inputs  # noqa: E402
from kit.runners.worker import run_job  # noqa: E402

pytestmark = pytest.mark.skipif(not get_backend("openvino").available()[0], reason="OpenVINO is not installed")


def generate(model: str, batch_size: int, new_tokens: int = 6) -> Record:
    """One OpenVINO generation configuration measured in this process."""
    spec = SweepSpec(models=[model], modes=["generation"], platforms=["openvino"], batch_sizes=[batch_size],
                     prompt_lens=[8], generation={"new_tokens": new_tokens}, time_budget_s=0.3, run_id="genai")
    (job,) = spec.jobs()
    return Record.from_json(run_job(job.to_dict()))


def test_the_stateful_export_has_the_inputs_the_pipeline_reads():
    loaded = zoo.load_model("llama", "tiny")
    layers, kv_heads, head_dim = kv_shape(loaded.config)
    model = make_stateful(export_decoder(loaded.model), kv_heads, head_dim)
    assert [port.get_any_name() for port in model.inputs] == ["input_ids", "attention_mask", "position_ids",
                                                              "beam_idx"]
    assert [port.get_any_name() for port in model.outputs] == ["logits"]
    states = [op for op in model.get_ops() if op.get_type_name() == "ReadValue"]
    assert len(states) == 2 * layers
    # the sequence axis is the one of length zero at the start: genai finds it there
    assert {str(op.get_input_partial_shape(0)) for op in states} == {f"[?,{kv_heads},0,{head_dim}]"}


@pytest.mark.parametrize(("model", "batch_size", "genai"), [("llama", 1, True), ("qwen2", 1, True),
                                                           ("qwen2", 2, False)])
def test_both_drivers_generate_the_tokens_pytorch_generates(model, batch_size, genai):
    import torch

    loaded = zoo.load_model(model, "tiny")
    inputs = generation_inputs(loaded, batch_size, 12)
    loop, prompt, facts = prepare_generation(get_backend("openvino"), loaded, inputs, "fp32", 16, genai=genai)
    timer = TokenTimer(sync=lambda: None, timed=True)
    timer.start()
    tokens = loop.generate(prompt, 16, timer)
    timer.finish()
    with torch.inference_mode():
        expected = loaded.model.generate(**inputs, **generate_kwargs(loaded.model, 16, "dynamic")).sequences[:, -16:]
    assert facts["generation_driver"] == (DRIVER if genai else LOOP_DRIVER) and facts["precision_ran"] == "fp32"
    assert tokens.shape == (batch_size, 16) and (tokens == expected.numpy()).all()
    (call,) = timer.calls
    assert timer.tokens_seen == [16] and len(call.itl_s) == 15 and 0 < call.prefill_s <= call.ttft_s
    # the KV cache after the prompt and after 15 more tokens: layers x (key, value) x kv heads x head size x f32
    layers, kv_heads, head_dim = kv_shape(loaded.config)
    per_token = 2 * layers * kv_heads * head_dim * 4 * batch_size
    assert loop.presents_bytes == [12 * per_token, (12 + 15) * per_token]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_record_has_the_pipeline_s_token_times_and_names_the_driver(batch_size):
    record = generate("llama", batch_size, new_tokens=32)
    assert record.status == "ok", record.reason
    assert record.extra["generation_driver"] == DRIVER and "genai_unused" not in record.extra
    g = record.extra["generation"]
    assert g["tokens_generated"] == 32 and len(g["ttft_s"]) == len(g["tpot_s"]) == record.n_samples
    assert g["itl"]["n"] == 31 * record.n_samples  # n - 1 inter-token latencies per call
    samples, ttft, prefill, tpot = (np.asarray(x) for x in (record.samples_s, g["ttft_s"], g["prefill_s"], g["tpot_s"]))
    assert (prefill > 0).all() and (ttft >= prefill).all() and (tpot > 0).all()
    # end to end is TTFT plus (n - 1) inter-token latencies, call by call, plus the pipeline's work after the last
    # token (about 0.15 ms: its results and metrics), which must be non-negative and within 5 %
    tail = samples - (ttft + 31 * tpot)
    assert (tail > 0).all() and np.median(tail / samples) < 0.05
    assert g["kv_growth_bytes_per_token"] == pytest.approx(g["kv_estimate_bytes_per_token"], rel=0.1)
