"""benchkit coverage: architectures from transformers' auto mappings, built tiny, measured per platform in child
processes, stored, resumed; configs shrunk; failures keep the real error; no repository code ever runs."""

import json
import time
from pathlib import Path

import pytest
import transformers

from kit import storage
from kit.cli import main
from kit.coverage import CoverageSpec, all_architectures, run_coverage, select_architectures, shrink_config
from kit.coverage import measure as coverage_measure
from kit.coverage.run import _stored, measure_isolated
from kit.coverage.tables import coverage_frame, failure_reasons, matrix, speed_vs_cpu
from kit.errors import ConfigError
from kit.predict.architectures import architecture_frame
from kit.predict.features import predictor_rows
from kit.records import Record
from tests.test_browser import needs_browser

FAST_TYPES = ["bert", "gpt2", "vit", "distilbert", "resnet"]


def hang_in_conversion(job):
    """A child that reaches the conversion stage and hangs there."""
    coverage_measure.Stages(job["stage_file"]).enter("conversion")
    time.sleep(3600)


def test_architectures_come_from_the_auto_mappings():
    architectures = all_architectures()
    by_type = {a.model_type: a for a in architectures}
    assert len(architectures) >= 600
    assert by_type["bert"].model_class == "BertModel" and by_type["bert"].modality == "text"
    assert by_type["vit"].modality == "vision" and by_type["whisper"].modality == "audio"
    assert by_type["clip"].modality == "vision-text"
    first = select_architectures(sample=5, seed=3)
    assert first == select_architectures(sample=5, seed=3) and len(first) == 5
    assert {a.modality for a in select_architectures(modalities=["vision"], sample=4)} == {"vision"}
    with pytest.raises(ConfigError, match="unknown model type"):
        select_architectures(only=["no-such-type"])
    with pytest.raises(ConfigError, match="unknown modality"):
        select_architectures(modalities=["smell"])


def test_shrink_config_shrinks_every_size_field():
    llama = shrink_config(transformers.LlamaConfig(num_key_value_heads=8))
    assert (llama.num_hidden_layers, llama.hidden_size, llama.num_attention_heads, llama.num_key_value_heads,
            llama.intermediate_size, llama.vocab_size) == (2, 32, 4, 2, 64, 1000)
    assert all(t is None or t < 1000 for t in (llama.bos_token_id, llama.eos_token_id, llama.pad_token_id))
    assert shrink_config(transformers.LlamaConfig()).num_key_value_heads == 4  # as many as heads, as it had
    clip = shrink_config(transformers.CLIPConfig())  # nested sub-configs
    assert (clip.text_config.hidden_size, clip.vision_config.hidden_size, clip.vision_config.image_size,
            clip.vision_config.patch_size, clip.text_config.vocab_size) == (32, 32, 64, 8, 1000)
    swin = shrink_config(transformers.SwinConfig())  # a staged net keeps its stages, one block each
    assert swin.depths == [1, 1, 1, 1] and len(swin.num_heads) == 4 and swin.embed_dim == 32
    whisper = shrink_config(transformers.WhisperConfig())
    assert (whisper.encoder_layers, whisper.decoder_layers, whisper.d_model, whisper.max_source_positions) == (
        2, 2, 32, 16)
    gemma = shrink_config(transformers.Gemma3TextConfig())  # per-layer lists cut, every kind of layer kept
    assert len(gemma.layer_types) == 2 and set(gemma.layer_types) == set(transformers.Gemma3TextConfig().layer_types)
    small = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  vocab_size=50, max_position_embeddings=64)
    assert shrink_config(small).to_dict() == small.to_dict()  # values only shrink


def test_a_sample_of_three_runs_on_cpu_and_openvino(tmp_path):
    db = tmp_path / "coverage.duckdb"
    spec = CoverageSpec(platforms=["cpu", "openvino"], only=FAST_TYPES, sample=3, seed=1, time_budget_s=0.1,
                        timeout_s=120, run_id="cov-test")
    records = run_coverage(spec, db)
    frame = coverage_frame(records)
    assert len(records) == 6 and frame["model_type"].nunique() == 3
    assert set(frame["platform"]) == {"cpu", "openvino"}
    cpu = frame[frame["platform"] == "cpu"]
    assert (cpu["status"] == "ok").all() and (cpu["latency_p50_ms"] > 0).all() and (cpu["n_params"] > 0).all()
    assert frame["status"].isin(["ok", "failed", "skipped"]).all() and (frame["stage"] != "").all()
    assert matrix(frame).loc["all", "cpu"] == 1.0
    speed = speed_vs_cpu(frame)
    assert len(speed) == int((frame[frame["platform"] == "openvino"]["status"] == "ok").sum())
    assert (speed["speedup_vs_cpu"] > 0).all()
    con = storage.connect(db, read_only=True)
    stored = storage.results_frame(con, "cov-test")
    assert len(stored) == 6 and set(stored["model"]) == set(frame["model_type"])
    modalities = dict(con.execute("SELECT name, modality FROM models").fetchall())
    assert {modalities[t] for t in frame["model_type"]} <= {"text", "vision"}
    ok = stored[stored["status"] == "ok"]
    assert (ok["flops_per_sample"] > 0).all()  # counted outside the timing, so the predictor can learn from them
    profiles = ok["extra"].map(lambda e: json.loads(e)["forward_profile"])
    assert (profiles.map(lambda p: p["ops_per_forward"]) > 0).all()
    assert (ok["extra"].map(lambda e: json.loads(e)["model_facts"]["n_layers"]) > 0).all()
    rows = architecture_frame(con)  # the same rows as training rows, each architecture's profile as stored
    assert len(rows) == len(ok) and (rows["flops_per_item"] > 0).all() and (rows["log_ops"] > 0).all()
    assert predictor_rows(rows).index.equals(rows.index)
    con.close()


def test_a_failure_keeps_the_real_errors_first_line(monkeypatch):
    def broken_inputs(*args, **kwargs):
        raise ValueError("pixel_values has 3 channels, expected 4\nsecond line with details")

    monkeypatch.setattr(coverage_measure, "make_inputs", broken_inputs)
    arch = next(a for a in all_architectures() if a.model_type == "bert")
    job = {"architecture": arch.to_dict(), "platform": "cpu", "run_id": "r", "batch_size": 1, "seq_len": 8,
           "time_budget_s": 0.1, "threads": None, "stage_file": None}
    record = coverage_measure.measure_platform(job)
    assert record["status"] == "failed" and record["extra"]["stage"] == "input"
    assert record["reason"] == "ValueError: pixel_values has 3 channels, expected 4"
    assert "second line with details" in record["extra"]["error_detail"]
    frame = coverage_frame([Record.from_json(record)])
    assert failure_reasons(frame).iloc[0]["reason"] == "ValueError: pixel_values has N channels, expected N"


def test_a_hang_is_one_failed_row_naming_its_stage(tmp_path):
    arch = select_architectures(only=["bert"])[0]
    # the child starts a fresh interpreter before it reaches conversion: on a loaded 2-core machine that took over 2 s
    spec = CoverageSpec(platforms=["openvino"], timeout_s=10, run_id="hang")
    record = measure_isolated(spec, arch, "openvino", target="tests.test_coverage:hang_in_conversion")
    assert record.status == "failed" and record.extra["stage"] == "conversion"
    assert record.reason.startswith("timed out after 10 s")


def test_resume_skips_stored_rows_and_cli_prints_the_matrix(tmp_path, capsys):
    db = tmp_path / "coverage.duckdb"
    args = ["coverage", "--only", "bert", "--platforms", "cpu", "--db", str(db), "--run-id", "resume",
            "--time-budget-s", "0.1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "bert cpu: ok" in first and "share that ran" in first
    with storage.writing(db) as con:
        before = storage.results_frame(con, "resume")
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "bert cpu:" not in second and "1 architectures" in second  # nothing measured again
    with storage.writing(db) as con:
        after = storage.results_frame(con, "resume")
        job = {"architecture": {"model_type": "gpt2"}, "run_id": "resume", "platform": "cpu", "batch_size": 1,
               "seq_len": 16}
        failed = Record.failure("failed", "RuntimeError: planted", device="", **coverage_measure.identity(job),
                                extra={"coverage": True, "stage": "build"})
        storage.insert_record(con, failed)
    assert list(after["result_id"]) == list(before["result_id"])
    assert set(_stored(db, "resume", retry_failed=False)) == {before["config_key"][0], failed.config_key}
    assert set(_stored(db, "resume", retry_failed=True)) == {before["config_key"][0]}  # the failed row is retried


def test_never_trust_remote_code(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("repository code or a download was requested")

    monkeypatch.setattr(transformers.dynamic_module_utils, "get_class_from_dynamic_module", refuse)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", refuse)
    for arch in select_architectures(only=["bert", "vit", "whisper"]):
        model, _ = coverage_measure.build_model(arch)
        assert type(model).__module__.startswith("transformers.models.")
    source = "".join(p.read_text() for p in Path(coverage_measure.__file__).parent.glob("*.py"))
    assert "trust_remote_code" not in source and "from_pretrained" not in source


def test_coverage_rows_stay_out_of_what_the_predictor_and_recommender_learn_from():
    import json

    import pandas as pd

    from kit.predict.features import predictor_rows

    frame = pd.DataFrame({"model": ["bert", "bert", "bert"],
                          "extra": [json.dumps({"coverage": True, "stage": "done"}), "{}",
                                    json.dumps({"world_size": 2})]})
    assert list(predictor_rows(frame).index) == [1]


def _forward(model_type: str) -> dict:
    """Build the tiny model of a type, make its inputs and run one forward; the inputs made."""
    import torch

    from kit.coverage.inputs import make_inputs

    arch = select_architectures(only=[model_type])[0]
    model, config = coverage_measure.build_model(arch)
    inputs = make_inputs(model, config, arch.modality)
    with torch.inference_mode():
        model(**inputs)
    return inputs


@pytest.mark.parametrize("model_type", ["codegen", "glm4v_moe", "hunyuan_v1_dense", "mimi", "falcon_h1", "marian",
                                        "ernie4_5_moe", "d_fine", "swin", "jamba", "depth_anything"])
def test_shrunk_configs_stay_consistent_with_themselves(model_type):
    # rotary_dim within the head size; RoPE sections the modeling code falls back to, rescaled with the partial
    # rotary factor; a head size left None made explicit; convolution groups and dimensions equal to a width follow
    # that width; Mamba-2 head sizes in step; every vocabulary shrunk; experts chosen per token within the experts;
    # a detector's backbone channel lists scaled together and its encoder's input channels mapped with them; a
    # window no larger than the last stage's grid; a hybrid's attention layer offset within the layers; a plain
    # backbone keeps a layer per output its neck reads, and the neck reads the backbone's shrunk width
    _forward(model_type)


def test_waveforms_get_a_channel_only_where_the_model_does_not_add_it():
    from kit.coverage.inputs import make_inputs

    shapes = {}
    for arch in select_architectures(only=["dac", "moonshine", "wav2vec2"]):
        model, config = coverage_measure.build_model(arch)
        shapes[arch.model_type] = make_inputs(model, config, arch.modality)["input_values"].dim()
    assert shapes == {"dac": 3, "moonshine": 2, "wav2vec2": 2}


def test_shrink_keeps_derived_fields_in_step():
    codegen = shrink_config(transformers.CodeGenConfig())
    assert codegen.rotary_dim <= codegen.n_embd // codegen.n_head
    glm = shrink_config(transformers.Glm4vConfig()).text_config
    assert sum(glm.rope_parameters["mrope_section"]) == glm.hidden_size // glm.num_attention_heads // 2  # half a head
    assert "mrope_section" not in transformers.Glm4vConfig().text_config.rope_parameters  # the original is untouched
    mimi = shrink_config(transformers.MimiConfig())
    assert mimi.upsample_groups == mimi.hidden_size and mimi.vector_quantization_hidden_dimension == mimi.codebook_dim
    assert shrink_config(transformers.HunYuanDenseV1Config()).head_dim == 8
    falcon = shrink_config(transformers.FalconH1Config())
    assert falcon.mamba_d_head * falcon.mamba_n_heads == falcon.mamba_expand * falcon.hidden_size
    assert shrink_config(transformers.MarianConfig()).decoder_vocab_size == 1000
    assert shrink_config(transformers.Ernie4_5_MoeConfig()).moe_k <= 4
    swin = shrink_config(transformers.SwinConfig())
    assert swin.window_size == swin.image_size // swin.patch_size // 2 ** (len(swin.depths) - 1)
    depth = shrink_config(transformers.DepthAnythingConfig())
    assert depth.backbone_config.out_indices == [1, 2, 3, 4] and depth.backbone_config.num_hidden_layers == 4
    assert depth.reassemble_hidden_size == depth.backbone_config.hidden_size
    assert shrink_config(transformers.JambaConfig()).attn_layer_offset == 1
    d_fine = shrink_config(transformers.DFineConfig())
    assert d_fine.encoder_in_channels == d_fine.backbone_config.stage_out_channels[1:]
    assert d_fine.backbone_config.stage_out_channels[-1] == d_fine.backbone_config.hidden_sizes[-1]


@pytest.mark.parametrize(("model_type", "made"), [("altclip", {"input_ids", "pixel_values"}),
                                                  ("cosmos3_edge_vision", {"pixel_values", "grid_thw"}),
                                                  ("layoutlm", {"input_ids", "bbox"}),
                                                  ("patchtst", {"past_values"}),
                                                  ("informer", {"past_values", "past_time_features",
                                                                "future_values"}),
                                                  ("timesfm", {"past_values", "past_values_padding", "freq"}),
                                                  ("data2vec-audio", {"input_values"}),
                                                  ("nemotron3_5_transcribe_word_timestamp", {"inputs_embeds"}),
                                                  ("dac", {"input_values"}),
                                                  ("audio-spectrogram-transformer", {"input_values"}),
                                                  ("glmasr_encoder", {"input_features"}),
                                                  ("speech_to_text", {"input_features", "decoder_input_ids"}),
                                                  ("ovis2_5_vision", {"pixel_values", "grid_thw"})])
def test_input_makers_follow_the_forward_signature(model_type, made):
    # a dual encoder gets images and text, a patch-grid vision tower its patches and grid, a layout model boxes, a
    # forecaster its past (and for lag-based ones, time features and the future its decoder reads), a speech encoder
    # without SpecAugment settings a plain waveform, a model that reads embeddings embeddings, a codec whose first
    # layer is a 1-channel convolution a (batch, 1, samples) waveform, a spectrogram transformer its spectrogram, mel
    # features (batch, bins, frames) where the first convolution reads the bins, else (batch, frames, bins)
    assert made <= set(_forward(model_type))


@needs_browser
def test_an_architecture_runs_in_the_browser_beside_the_cpu(tmp_path):
    """The wasm column: ONNX export and onnxruntime-web in headless Chromium, a row like the CPU's."""
    spec = CoverageSpec(platforms=["cpu", "wasm"], only=["bert"], time_budget_s=0.1, timeout_s=120, run_id="cov-wasm")
    frame = coverage_frame(run_coverage(spec, tmp_path / "coverage.duckdb"))
    assert list(frame.sort_values("platform")["status"]) == ["ok", "ok"], frame[["platform", "reason"]]
    assert (frame["latency_p50_ms"] > 0).all()
    assert speed_vs_cpu(frame)["speedup_vs_cpu"].gt(0).all()
