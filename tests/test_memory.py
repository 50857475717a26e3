"""The memory estimator: hand-computed terms, activations against counted saved tensors, validation on a measured
training record, and the advisor's promise never to propose what its own estimate says does not fit."""

from __future__ import annotations

import argparse
import itertools

import pytest

from kit import memory, zoo
from kit.config import Job
from kit.errors import ConfigError
from kit.memory import GIB, ModelShape, advise_distributed_config, estimate_memory

# A hand-made shape (a 4-layer stack, 1M parameters) so that every number below can be checked with a pencil.
PSI = 1_000_000
STACK = ModelShape(name="stack", family="bert", n_params=PSI, n_layers=4, hidden_size=64, intermediate_size=256,
                   n_heads=4, vocab_size=0, tokens_per_sample=32, linear_weight_params=900_000, block_params=200_000)


def test_tiny_bert_parameter_count_matches_a_hand_count():
    h, i, vocab, positions, layers = 32, 64, 1000, 128, 2
    embeddings = vocab * h + positions * h + 2 * h + 2 * h  # word, position, token type, LayerNorm
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h  # Q, K, V, out; LN; FFN in, out; LN
    head = (h * h + h) + (h * 2 + 2)  # pooler, 2-class classifier
    shape = memory.model_shape("bert", "tiny")
    assert shape.n_params == embeddings + layers * layer + head == 54434
    assert (shape.n_layers, shape.hidden_size, shape.intermediate_size, shape.block_params) == (2, 32, 64, layer)


def test_fp32_single_terms_match_hand_computed_bytes():
    e = estimate_memory(STACK, batch_size=2, seq_len=32)
    assert (e.weights_bytes, e.gradients_bytes, e.optimizer_state_bytes) == (4 * PSI, 4 * PSI, 8 * PSI)
    # encoder formula, fp32: per layer 8 hidden-wide + 2 ffn-wide values per token, plus 2 hidden-wide outside
    tokens = 2 * 32
    assert e.activations_bytes == 4 * (4 * tokens * (8 * 64 + 2 * 256) + tokens * 2 * 64)
    assert e.transient_bytes == e.overhead_bytes == e.offloaded_bytes == 0
    assert e.total_bytes == 16 * PSI + e.activations_bytes


@pytest.mark.parametrize(("strategy", "expected"), [
    ("ddp", (2, 2, 12)), ("zero1", (2, 2, 12 / 4)), ("zero2", (2, 2 / 4, 12 / 4)), ("zero3", (2 / 4, 2 / 4, 12 / 4)),
])
def test_zero_stages_follow_2psi_2psi_12psi_over_n(strategy, expected):
    e = estimate_memory(STACK, batch_size=1, precision="bf16", strategy=strategy, world_size=4)
    assert (e.weights_bytes, e.gradients_bytes, e.optimizer_state_bytes) == tuple(int(x * PSI) for x in expected)


def test_offload_checkpointing_and_8bit_adam_each_lower_the_device_total():
    base = estimate_memory(STACK, batch_size=8, precision="bf16", strategy="zero3", world_size=4)
    offload = estimate_memory(STACK, batch_size=8, precision="bf16", strategy="zero3", world_size=4, cpu_offload=True)
    assert offload.weights_bytes == offload.optimizer_state_bytes == 0
    assert offload.offloaded_bytes == base.weights_bytes + base.gradients_bytes + base.optimizer_state_bytes
    checkpointed = estimate_memory(STACK, batch_size=8, gradient_checkpointing=True)
    assert checkpointed.activations_bytes < estimate_memory(STACK, batch_size=8).activations_bytes
    adam8 = estimate_memory(STACK, batch_size=8, optimizer="adamw8bit")
    assert adam8.optimizer_state_bytes < estimate_memory(STACK, batch_size=8).optimizer_state_bytes
    accumulated = estimate_memory(STACK, batch_size=8, accumulation_steps=4)
    assert accumulated.total_bytes == estimate_memory(STACK, batch_size=8).total_bytes


def test_ddp_keeps_gradient_buckets_and_calibration_falls_back_by_formula():
    single = estimate_memory(STACK, batch_size=2)
    ddp = estimate_memory(STACK, batch_size=2, strategy="ddp", world_size=2)
    assert ddp.transient_bytes - single.transient_bytes == single.gradients_bytes
    cpu = memory.CPU_CALIBRATION
    assert cpu.factor("qwen2") == cpu.factor("llama") and cpu.factor("t5") == cpu.factor("bert")
    assert memory.UNCALIBRATED.overhead("bert") == 0 and memory.UNCALIBRATED.factor("bert") == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "zero4"}, "strategy"), ({"precision": "int3"}, "precision"), ({"optimizer": "lion"}, "optimizer"),
    ({"world_size": 0}, "world_size"), ({"strategy": "single", "world_size": 2}, "single"),
    ({"strategy": "ddp", "world_size": 2, "cpu_offload": True}, "cpu_offload"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_settings_raise_config_error_naming_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        estimate_memory(STACK, **{"batch_size": 1, **kwargs})


@pytest.mark.parametrize(("family", "precision"), [("bert", "fp32"), ("bert", "amp-bf16"), ("llama", "fp32"),
                                                   ("qwen2", "amp-bf16"), ("vit", "fp32")])
def test_activation_formula_matches_counted_saved_tensors_on_held_out_sizes(family, precision):
    overrides = {"hidden_size": 48, "num_hidden_layers": 3, "intermediate_size": 100}
    overrides |= {"vocab_size": 700} if family in ("llama", "qwen2") else {}
    loaded = zoo.load_model(family, "tiny", overrides=overrides)
    seq_len = None if family == "vit" else 20
    counted = memory.saved_activation_bytes(loaded, 3, seq_len, precision)
    shape = memory.shape_of_module(family, family, loaded.model, loaded.config, loaded.default_seq_len)
    mode = memory.PRECISION_SCHEMES[precision][3]
    formula = memory.activation_bytes(shape, 3, seq_len or shape.tokens_per_sample, mode)
    assert formula == pytest.approx(counted, rel=0.03)


def test_validation_on_a_measured_training_record():
    from kit.runners.sweep import run_job_isolated

    job = Job(run_id="test-memory", model="bert", size="tiny", mode="training", platform="cpu", precision="fp32",
              batch_size=2, seq_len=16, time_budget_s=0.2, min_samples=3, warmup_iters=1, threads=1)
    record = run_job_isolated(job, timeout_s=120)
    assert record.status == "ok", record.reason
    row = memory.validate_estimates([record], memory.CPU_CALIBRATION).iloc[0]
    assert row["estimated_weights_bytes"] == row["measured_weights_bytes"]
    # AdamW also keeps a 4-byte step counter per parameter tensor: the formula's 8 bytes/parameter is within 0.1%
    assert row["estimated_optimizer_state_bytes"] == pytest.approx(row["measured_optimizer_state_bytes"], rel=1e-3)
    assert abs(row["signed_error_pct"]) < 100


SHAPES = [STACK, ModelShape(name="lm", family="llama", n_params=1_100_000_000, n_layers=22, hidden_size=2048,
                            intermediate_size=5632, n_heads=32, vocab_size=32000, tokens_per_sample=512,
                            linear_weight_params=1_030_000_000, block_params=44_000_000)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_advisor_never_proposes_what_its_estimate_says_does_not_fit(shape):
    grid = itertools.product((1, 2, 4, 8), (2, 8, 16, 24, 40, 80), (8, 32, 64), (128, 2048), ("bf16", "fp32"))
    outcomes = set()
    for n_gpus, memory_gb, global_batch, seq_len, precision in grid:
        gpu_bytes = memory_gb * GIB
        advice = advise_distributed_config(shape, n_gpus, gpu_bytes, global_batch, seq_len, precision)
        outcomes.add(advice.fits)
        if advice.fits:
            s = advice.settings
            again = estimate_memory(shape, **{k: s[k] for k in ("batch_size", "precision", "strategy", "world_size",
                                                                "gradient_checkpointing", "optimizer",
                                                                "accumulation_steps", "cpu_offload")},
                                    seq_len=seq_len)
            assert again.total_bytes == advice.estimate.total_bytes <= advice.usable_bytes < gpu_bytes
            assert s["batch_size"] * s["accumulation_steps"] * n_gpus == global_batch
        else:
            assert advice.estimate is None and "nothing fits" in advice.summary()
            assert all(not ok and total > advice.usable_bytes for _, total, ok in advice.considered)
    assert outcomes == ({True, False} if shape.name == "lm" else {True})  # the 1.1B LM does not fit everywhere


def test_advisor_rejects_bad_input_before_work():
    with pytest.raises(ConfigError, match="multiple of n_gpus"):
        advise_distributed_config(STACK, 3, 8 * GIB, 8)
    with pytest.raises(ConfigError, match="gpu_memory_bytes"):
        advise_distributed_config(STACK, 1, 0, 8)


def test_cli_distributed_config_prints_advice(capsys):
    args = argparse.Namespace(model="bert", size="tiny", gpus=2, gpu_memory_gb=8.0, global_batch=16, seq_len=64,
                              precision="bf16")
    assert memory.cmd_distributed_config(args) == 0
    assert "use DDP" in capsys.readouterr().out


def _fake_training_record(batch_size: int, peak_above_baseline: int, world_size: int = 1):
    """A stored-shape training Record of tiny bert, as kit's training runner writes it (no measurement)."""
    from kit.records import Record

    extra = {"process_baseline_bytes": 1000, "memory_split_bytes": {"weights_bytes": 4 * 54434}}
    if world_size > 1:
        extra = {**extra, "strategy": "ddp", "batch_per_rank": batch_size,
                 "per_rank_peak_above_baseline_bytes": [peak_above_baseline] * world_size}
    return Record.from_samples([0.01, 0.011, 0.012], run_id="r", config_key=f"k{batch_size}-{world_size}",
                               model="bert", family="bert", size="tiny", mode="training", platform="cpu",
                               device="cpu", precision="fp32", batch_size=batch_size * world_size, seq_len=16,
                               peak_memory_bytes=1000 + peak_above_baseline,
                               world_size=world_size if world_size > 1 else None, extra=extra)


def test_estimate_for_record_and_terms_table_say_formula_or_measured():
    record = _fake_training_record(2, 100)
    estimate = memory.estimate_for_record(record, memory.calibration_for("cpu"))
    assert estimate == estimate_memory("bert", batch_size=2, seq_len=16, calibration=memory.CPU_CALIBRATION)
    table = memory.terms_table(estimate).set_index("term")
    assert table.loc["total", "bytes"] == estimate.total_bytes
    assert table.loc["weights", "source"] == "formula" and table.loc["overhead", "source"].startswith("measured")
    assert "measured factor" in table.loc["activations", "source"]
    assert memory.calibration_for("cuda") is memory.UNCALIBRATED


def test_error_summary_signs_errors_and_checks_the_single_process_target():
    single, ddp = (memory.estimate_for_record(_fake_training_record(2, 1, n), memory.CPU_CALIBRATION).total_bytes
                   for n in (1, 2))
    records = [_fake_training_record(2, int(single / 1.05)), _fake_training_record(2, int(ddp / 0.5), 2)]
    validation = memory.validate_estimates(records, memory.CPU_CALIBRATION)
    summary = memory.error_summary(validation)
    assert summary["n"] == 2 and summary["signed_error_pct"][0] == pytest.approx(5.0, abs=0.01)
    assert summary["signed_error_pct"][1] == pytest.approx(-50.0, abs=0.01)  # the estimate is too small: negative
    assert summary["single_max_abs_error_pct"] == pytest.approx(5.0, abs=0.01) and summary["single_within_target"]
    assert summary["max_abs_error_pct"] == pytest.approx(50.0, abs=0.01)
    assert memory.error_summary(validation.iloc[:0])["n"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("no-such-model", 8, 24 * GIB, 64), "unknown model"), (("t5", 8, 24 * GIB, 64, "int3"), "precision"),
    (("llama", 0, 24 * GIB, 64), "n_gpus"), (("llama", 8, -1, 64), "gpu_memory_bytes"),
    (("llama", 8, 24 * GIB, 60), "multiple of n_gpus"),
])
def test_check_advice_inputs_names_the_bad_input(args, message):
    with pytest.raises(ConfigError, match=message):
        memory.check_advice_inputs(*args)


def test_advice_for_tinyllama_on_eight_24_gib_gpus_and_its_table():
    advice = advise_distributed_config("llama", 8, 24 * GIB, 64, 2048, "bf16", size="base")
    table = memory.advice_table(advice)
    assert advice.fits and len(table) == len(advice.considered) and table["fits"].iloc[-1]
    assert not table["fits"].iloc[:-1].any()  # the advised option is the first one that fits
    assert table["estimated_gib_per_gpu"].iloc[-1] <= table["usable_gib"].iloc[-1]


def test_memory_validation_chart_draws_estimate_and_measurement():
    from kit import plots

    validation = memory.validate_estimates([_fake_training_record(2, 130 * 2**20)], memory.CPU_CALIBRATION)
    fig = plots.memory_validation_chart(validation)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "memory per rank (MiB)" and "signed error" in ax.get_title()
    assert len(ax.patches) == len(plots.MEMORY_TERMS) + 1 and fig.legends
    assert plots.memory_validation_chart(validation.iloc[:0]).axes[0].texts[0].get_text() == "no data"


def test_each_harness_has_its_calibration():
    from kit.records import Record

    training = _fake_training_record(2, 100)
    distributed = Record.failure("failed", "x", run_id="r", config_key="k", model="bert", family="bert", size="tiny",
                                 mode="training", platform="cpu", device="cpu", precision="fp32", batch_size=2,
                                 world_size=1, extra={"launcher": "torchrun --standalone", "strategy": "ddp"})
    assert memory.record_calibration(training) is memory.CPU_CALIBRATION
    assert memory.record_calibration(distributed) is memory.CPU_DISTRIBUTED_CALIBRATION
    assert memory.calibration_for("cuda", "distributed") is memory.UNCALIBRATED
    with pytest.raises(ConfigError, match="harness"):
        memory.calibration_for("cpu", "notebook")
    by_record = memory.validate_estimates([training], memory.record_calibration)
    assert by_record["calibration"].iloc[0] == memory.CPU_CALIBRATION.source
    assert memory.estimate_for_record(training, memory.record_calibration) == memory.estimate_for_record(
        training, memory.CPU_CALIBRATION)
