import time
from pathlib import Path

import pytest
import torch

from kit import zoo
from kit.backends import get_backend, known_platforms
from kit.backends import openvino_backend as ovb
from kit.config import SweepSpec
from kit.deviation import deviation_metrics
from kit.runners.isolation import run_in_child
from kit.runners.sweep import precheck


@pytest.fixture(scope="module")
def ov():
    return pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def tiny_bert():
    loaded = zoo.load_model("bert", "tiny")
    inputs = loaded.make_inputs(2)
    with torch.inference_mode():
        reference = loaded.model(**inputs).logits
    return loaded, inputs, reference


def _job(precision: str, mode: str = "inference"):
    return SweepSpec(models=["bert"], platforms=["openvino"], precisions=[precision], modes=[mode],
                     run_id="ov").jobs()[0]


def test_registered_and_says_when_openvino_is_missing(monkeypatch):
    assert {"openvino", "openvino-gpu", "openvino-npu"} <= set(known_platforms())
    monkeypatch.setattr(ovb, "installed", lambda package: False)
    backend = get_backend("openvino")
    assert backend.available() == (False, "openvino is not installed")
    assert backend.supports("fp32", "inference") == (False, "openvino is not installed")


def test_cpu_is_available_and_absent_devices_say_why(ov):
    ok, reason = get_backend("openvino").available()
    assert ok and "CPU" in reason and get_backend("openvino").device() == "CPU"
    if "NPU" not in ov.Core().available_devices:
        ok, reason = get_backend("openvino-npu").available()
        assert not ok and "no NPU device" in reason


@pytest.mark.parametrize(("precision", "rel_tol"), [("fp32", 1e-5), ("bf16", 0.05)])
def test_tiny_model_converts_and_runs_close_to_pytorch(ov, tiny_bert, precision, rel_tol):
    loaded, inputs, reference = tiny_bert
    backend = get_backend("openvino")
    ok, reason = backend.supports(precision, "inference")
    if not ok:
        pytest.skip(reason)
    call, facts = backend.prepare(loaded, inputs, precision, "inference")
    output = call()
    assert deviation_metrics(reference, output["logits"])["rel_l2"] < rel_tol
    assert facts["precision_ran"] == precision and facts["exec_precisions"] == {facts["precision_hint"]: 14}
    layers = facts["runtime_layers"]  # the executed kernels: the 14 compute layers and fewer than torch's op calls
    assert layers.get("FullyConnected", 0) + layers.get("MatMul", 0) == 14 and not set(layers) & set(ovb.NOT_KERNELS)
    assert 14 < sum(layers.values()) < zoo.forward_profile(loaded)["ops_per_forward"]
    assert facts["convert_s"] > 0 and facts["compile_s"] > 0 and facts["static_shapes"] is True
    assert facts["performance_hint"] == "LATENCY" and facts["num_streams"] >= 1
    assert facts["inference_num_threads"] == torch.get_num_threads() == backend.threads()


def test_output_bytes_are_what_the_executed_kernels_write(ov, tiny_bert):
    loaded, inputs, reference = tiny_bert
    ov_model, _ = ovb.convert(loaded.model, inputs)
    ovb.make_static(ov_model, ovb.numpy_inputs(inputs))
    written = ovb.runtime_output_bytes(ovb.compile_model(ov_model, "CPU", "fp32", 1))
    profile = zoo.forward_profile(loaded)
    torch_bytes = profile["activation_bytes_per_sample"] * reference.shape[0] + profile["activation_bytes_fixed"]
    assert reference.numel() * 4 <= written < torch_bytes  # the logits at least; fused kernels write less than eager
    slow = ovb.runtime_output_bytes(ovb.compile_model(ov_model, "CPU", "fp32", 1), reference_only=True)
    assert 0 < slow < written  # BERT's embedding gathers run OpenVINO's reference kernel
    compiled = ovb.compile_model(ov_model, "CPU", "fp32", 1)
    moved = ovb.runtime_output_bytes(compiled, layer_types=ovb.TRANSPOSE_LAYERS)
    assert 0 < moved < written  # BERT's attention keeps Transpose kernels of its own
    assert ovb.runtime_output_bytes(compiled, layer_types=("NoSuchLayer",)) == 0
    if "BF16" in get_backend("openvino").capabilities():  # half the element size, where the CPU runs bf16
        assert written / 2 <= ovb.runtime_output_bytes(ovb.compile_model(ov_model, "CPU", "bf16", 1)) < written


def test_kernel_times_say_where_an_inference_spends_its_time(ov, tiny_bert):
    loaded, inputs, _ = tiny_bert
    ov_model, _ = ovb.convert(loaded.model, inputs)
    arrays = ovb.numpy_inputs(inputs)
    ovb.make_static(ov_model, arrays)
    compiled = ovb.compile_model(ov_model, "CPU", "fp32", 1, profiling=True)
    start = time.perf_counter()
    times = ovb.kernel_times(compiled, arrays, calls=3, warmup=1)
    wall = (time.perf_counter() - start) / 4  # per inference, warm-up included
    assert all(seconds >= 0 for seconds in times.values()) and 0 < sum(times.values()) < 4 * wall
    assert list(times.values()) == sorted(times.values(), reverse=True)  # largest first
    assert times[next(k for k in times if k[0] == "FullyConnected")] > 0  # BERT's 14 matrix products ran
    with pytest.raises(ValueError, match="profiling=True"):
        ovb.kernel_times(ovb.compile_model(ov_model, "CPU", "fp32", 1), arrays, calls=2)
    with pytest.raises(ValueError, match="calls=0"):
        ovb.kernel_times(compiled, arrays, calls=0)


def test_recorded_precision_is_read_back_from_the_compiled_model(ov, tiny_bert):
    import openvino.properties.hint as hints

    loaded, inputs, _ = tiny_bert
    ov_model, _ = ovb.convert(loaded.model, inputs)
    capabilities = get_backend("openvino").capabilities()
    for precision in ("fp32", "bf16", "fp16"):
        compiled = ovb.compile_model(ov_model, "CPU", precision, None)
        read_back = compiled.get_property(hints.inference_precision).get_type_name()
        assert ovb.precision_ran(compiled, precision) == ovb.HINT_NAMES[read_back]
        if precision == "fp32":  # set explicitly: the CPU plugin's own default is bf16 where the CPU has it
            assert read_back == "f32"
        if precision == "fp16" and "FP16" not in capabilities:  # the plugin falls back, and we record that
            assert ovb.precision_ran(compiled, precision) == ("bf16" if "BF16" in capabilities else "fp32")


def test_int8_is_quantised_and_runs(ov, tiny_bert):
    pytest.importorskip("nncf")
    loaded, inputs, reference = tiny_bert
    call, facts = get_backend("openvino").prepare(loaded, inputs, "int8", "inference")
    output = call()["logits"]
    assert output.shape == tuple(reference.shape) and torch.isfinite(torch.from_numpy(output)).all()
    assert facts["precision_ran"] == "int8" and facts["quantize_s"] > 0 and facts["precision_hint"] == "f32"
    assert set(facts["exec_precisions"]) & {"u8", "i8"}


def test_impossible_precision_and_training_become_skipped_records(ov, monkeypatch):
    capabilities = get_backend("openvino").capabilities()
    if "FP16" not in capabilities:  # this CPU: an f16 hint would silently run as bf16
        record = precheck(_job("fp16"))
        assert record.status == "skipped" and "no native fp16" in record.reason
    monkeypatch.setattr(ovb.OpenVinoBackend, "capabilities", lambda self: ["FP32"])
    record = precheck(_job("bf16"))
    assert record.status == "skipped" and "no native bf16" in record.reason and record.platform == "openvino"
    record = precheck(_job("fp32", mode="training"))
    assert record.status == "skipped" and "inference only" in record.reason


class Histogram(torch.nn.Module):
    """A model with an op that OpenVINO's PyTorch frontend cannot convert (aten::histc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x, bins=4)


def convert_unconvertible(payload: dict) -> None:
    """Child-process target: prepare a model that fails to convert."""
    loaded = type("Loaded", (), {"model": Histogram()})()
    get_backend("openvino").prepare(loaded, {"x": torch.randn(4, 4)}, "fp32", "inference")


def test_conversion_failure_reason_is_the_converters_message(ov):
    outcome = run_in_child("tests.test_openvino:convert_unconvertible", {}, timeout_s=120)
    assert not outcome.ok
    assert outcome.reason.startswith("ConversionError: openvino.convert_model failed (No conversion rule found for "
                                     "operations: aten::histc)")
    assert "OpConversionFailure" in outcome.reason


def test_measured_record_carries_precision_deviation_and_frees_the_torch_model(ov):
    from dataclasses import replace

    from kit.runners.inference import measure_inference

    job = replace(_job("fp32"), time_budget_s=0.2, min_samples=5)
    record = measure_inference(job)
    assert record.status == "ok" and record.platform == "openvino" and record.latency_p50_s > 0
    assert record.extra["precision_ran"] == "fp32" and record.extra["torch_model_released"] is True
    deviation = record.extra["deviation"]
    assert deviation["rel_l2"] < 1e-4, deviation  # fp32 engine vs fp32 torch on the same inputs
    assert record.startup_s >= record.extra["convert_s"] > 0


def test_whisper_converts_now_that_the_decoder_mask_is_explicit(ov):
    from dataclasses import replace

    from kit.runners.inference import measure_inference

    job = replace(SweepSpec(models=["whisper"], platforms=["openvino"], run_id="ov").jobs()[0], time_budget_s=0.2,
                  min_samples=3)
    record = measure_inference(job)
    assert record.status == "ok" and record.extra["deviation"]["rel_l2"] < 1e-4


def test_a_port_is_fed_by_its_field_name_not_a_traced_tensor_name(ov, tmp_path):
    from dataclasses import replace

    from kit.runners.inference import measure_inference
    from kit.zoo.checkpoints import save_random_checkpoint

    class Port:
        def __init__(self, names):
            self.names = names

        def get_names(self):
            return self.names

    assert ovb.port_name(Port({"46", "input_ids", "input.1"})) == "input_ids"  # OPT's compiled input port
    assert ovb.port_name(Port({"226"}), "0") == "226" and ovb.port_name(Port(set()), "0") == "0"
    config = {"hidden_size": 16, "word_embed_proj_dim": 16, "num_hidden_layers": 1, "ffn_dim": 32,
              "num_attention_heads": 2, "vocab_size": 100, "max_position_embeddings": 64, "bos_token_id": 0,
              "eos_token_id": 0, "pad_token_id": 1}
    folder = save_random_checkpoint("opt", tmp_path / "opt", config)
    job = replace(SweepSpec(models=[str(folder)], platforms=["openvino"], run_id="ov").jobs()[0], time_budget_s=0.2,
                  min_samples=3)
    record = measure_inference(job)
    assert record.status == "ok", record.reason


def test_kernels_counted_later_are_those_recorded_with_the_run(ov, tmp_path, monkeypatch):
    import json

    import pandas as pd

    import kit
    from kit import storage
    from kit.predict import kernels, upgrade
    from kit.predict.features import kernel_count

    if not get_backend("openvino").supports("int8", "inference")[0]:
        pytest.skip("no OpenVINO int8 here")
    spec = SweepSpec(models=["bert"], platforms=["openvino", "cpu"], precisions=["fp32", "int8"], batch_sizes=[2],
                     threads=1, time_budget_s=0.05, min_samples=3, run_id="kernels")
    con = kit.connect(tmp_path / "k.duckdb")
    kit.run_sweep(spec, db=con, progress=False)
    frame = storage.results_frame(con, status="ok")

    def stored(fact: str) -> list:
        return [json.loads(e).get(fact) for e in storage.results_frame(con, status="ok")["extra"]]  # None stays None

    recorded, written = stored("runtime_layers"), stored("runtime_output_bytes")
    moved, reordered = stored("runtime_transpose_bytes"), stored("runtime_reorder_bytes")
    passed = stored("runtime_eltwise_bytes")
    on_ov = frame["platform"] == "openvino"
    assert on_ov.sum() == 2
    assert all(bool(r) and w > 0 if ov else r is None and w is None
               for r, w, ov in zip(recorded, written, on_ov, strict=True))

    def strip(facts: tuple[str, ...]) -> pd.DataFrame:  # as stored before these facts were recorded
        table = storage.results_frame(con, status="ok")
        storage.update_extras(con, {rid: {k: v for k, v in json.loads(e).items() if k not in facts}
                                    for rid, e in zip(table["result_id"], table["extra"], strict=True)})
        return storage.results_frame(con, status="ok")

    old = strip(kernels.COMPILED_FACTS)
    assert kernels.missing_kernels(old).tolist() == on_ov.tolist()
    assert kernels.fill_kernels(old)["extra"].map(json.loads).map(lambda e: e.get("runtime_layers")).tolist() \
        == recorded  # counted in memory
    assert stored("runtime_layers") == [None] * len(recorded)  # a read writes nothing
    assert upgrade.upgrade_store(con)["openvino_kernels"] == 2
    assert stored("runtime_layers") == recorded  # the same compiled graphs
    assert stored("runtime_output_bytes") == written
    assert all(r > 0 if ov else r is None for r, ov in zip(stored("runtime_reference_bytes"), on_ov, strict=True))
    assert stored("runtime_transpose_bytes") == moved and all(m > 0 for m, ov in zip(moved, on_ov, strict=True) if ov)
    assert stored("runtime_reorder_bytes") == reordered
    assert all(r >= 0 if ov else r is None for r, ov in zip(reordered, on_ov, strict=True))  # 0: no layout change
    assert stored("runtime_eltwise_bytes") == passed
    assert all(p > 0 if ov else p is None for p, ov in zip(passed, on_ov, strict=True))  # BERT's norms, GELUs
    assert pd.Series(stored("kernels_counted_later"))[on_ov].all()

    def no_count(*args):
        raise AssertionError(f"counted {args} again")

    monkeypatch.setattr(kernels, "count_kernels", no_count)
    assert upgrade.upgrade_store(con)["openvino_kernels"] == 0  # nothing left to count
    monkeypatch.undo()
    strip(("runtime_output_bytes",))
    assert upgrade.upgrade_store(con)["openvino_kernels"] == 2  # bytes only missing: the kernels are kept
    assert stored("runtime_output_bytes") == written and stored("runtime_layers") == recorded
    rows = kit.predict.features.feature_frame(storage.results_frame(con, status="ok"))
    candidates = pd.DataFrame({"platform": ["openvino", "openvino", "cpu"], "precision": ["fp32"] * 3,
                               "batch_size": [2, 4, 2], "threads": [1.0, 1.0, 1.0]})
    variant = kernels.variant_params(json.loads(frame["params_json"].iloc[0]))
    counted = kernels.candidate_kernels(candidates, rows, variant)
    fp32 = next(i for i, (ov, p) in enumerate(zip(on_ov, frame["precision"], strict=True)) if ov and p == "fp32")
    assert list(counted) == list(kernels.KERNEL_COLUMNS)
    kernel_column, bytes_column = counted[kernels.KERNEL_COLUMN], counted[kernels.KERNEL_BYTES_COLUMN]
    assert kernel_column.iloc[0] == kernel_count(recorded[fp32])  # stored with the variant's result
    assert bytes_column.iloc[0] == written[fp32]
    for column, fact in kit.predict.features.SLOW_KERNEL_FACTS.items():  # each kind of slow kernel's bytes
        assert counted[column].iloc[0] == stored(fact)[fp32] and counted[column].iloc[1] >= 0  # 0: none of that kind
    assert kernel_column.iloc[1] > 14 and bytes_column.iloc[1] > bytes_column.iloc[0]  # compiled at batch 4
    assert counted.iloc[2].isna().all()  # no kernels on torch's CPU


def test_a_child_death_names_openvino_s_known_cause_only_where_it_applies():
    backend, fpe, kill = get_backend("openvino"), "child process killed by SIGFPE", "child process killed by SIGKILL"
    assert backend.death_cause("bf16", 1, fpe) == ovb.FUSED_MLP_CAUSE
    assert backend.death_cause("fp16", 1, fpe) == ovb.FUSED_MLP_CAUSE
    assert backend.death_cause("fp32", 1, fpe) == backend.death_cause("bf16", 2, fpe) == ""
    assert backend.death_cause("bf16", None, fpe) == backend.death_cause("bf16", 1, kill) == ""
    assert get_backend("openvino-gpu").death_cause("bf16", 1, fpe) == ""
    assert get_backend("cpu").death_cause("bf16", 1, fpe) == ""


CPUINFO = Path("/proc/cpuinfo")
AMX = CPUINFO.is_file() and "amx_bf16" in CPUINFO.read_text()  # where OpenVINO fuses a gated MLP for bf16


@pytest.mark.skipif(not AMX, reason="no AMX: OpenVINO does not fuse the gated MLP")
def test_openvino_bf16_at_one_thread_kills_a_llama_child_and_the_row_says_why(ov, tmp_path):
    import kit
    from kit import storage

    if not get_backend("openvino").supports("bf16", "inference")[0]:
        pytest.skip("no OpenVINO bf16 here")
    spec = SweepSpec(models=["llama"], platforms=["openvino"], precisions=["bf16"], batch_sizes=[1], threads=1,
                     overrides={"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 128},
                     time_budget_s=0.05, min_samples=3, run_id="fused-mlp")
    con = kit.connect(tmp_path / "f.duckdb")
    (record,) = kit.run_sweep(spec, db=con, progress=False)
    assert record.status == "failed" and record.reason == "child process killed by SIGFPE" + ovb.FUSED_MLP_CAUSE
    assert storage.results_frame(con)["reason"].tolist() == [record.reason]  # the failure row is stored
