"""Prediction on synthetic frames with a known law: held-out accuracy, interval coverage, leave-one-group-out hygiene.

The frames here are test data generated from a formula, not measurements.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit import predict
from kit.errors import ConfigError
from kit.predict import baselines, features, threads
from kit.predict import budget as budget_module

PEAKS = {("cpu", "fp32"): 2e11, ("cpu", "bf16"): 8e11, ("cuda", "fp32"): 5e13, ("cuda", "fp16"): 4e14}
BANDWIDTH = {"cpu": 3e10, "cuda": 2e12}
EFFICIENCY = {"cpu": 0.3, "cuda": 0.05}
BASE_MEMORY = {"cpu": 4e8, "cuda": 5e7}
FAST = predict.model.boosting_params(30)  # the notebooks' tiny parameters boost as few rounds


def synthetic_frame(n_families: int = 4, platforms: tuple[str, ...] = ("cpu",), noise: float = 0.03,
                    seed: int = 0, batch_sizes: tuple[int, ...] = (1, 4, 16)) -> pd.DataFrame:
    """Results-like rows: throughput = EFFICIENCY x peak / FLOPs per item x b / (b + 1), with log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_families):
        flops_per_param_token = rng.uniform(1.5, 3.0)  # families differ in FLOPs per parameter
        for layers, hidden, seq in [(1, 32, 16), (2, 64, 16), (2, 64, 64), (4, 128, 32), (8, 128, 64), (4, 256, 16)]:
            n_params = 12 * layers * hidden**2 + 500 * hidden
            flops = flops_per_param_token * n_params * seq
            for (platform, precision), peak in PEAKS.items():
                if platform not in platforms:
                    continue
                for batch in batch_sizes:
                    saturation = batch / (batch + 1)  # larger batches use the hardware better
                    throughput = EFFICIENCY[platform] * peak / flops * saturation * np.exp(rng.normal(0, noise))
                    latency = batch / throughput
                    memory = (BASE_MEMORY[platform] + n_params * 4 + batch * seq * hidden * layers * 64) * np.exp(
                        rng.normal(0, noise))
                    rows.append({
                        "run_id": "synthetic", "model": f"fam{f}", "family": f"fam{f}", "size": "tiny",
                        "mode": "inference", "platform": platform, "precision": precision, "batch_size": batch,
                        "seq_len": seq, "status": "ok", "n_params": n_params, "flops_per_sample": flops,
                        "throughput_items_per_s": throughput, "latency_p50_s": latency, "latency_mean_s": latency,
                        "ci_low_s": latency * 0.98, "ci_high_s": latency * 1.02, "peak_memory_bytes": memory,
                        "extra": json.dumps({"modality": "text", "seq_len_effective": seq,
                                             "model_facts": {"n_layers": layers, "hidden_size": hidden},
                                             "forward_profile": {
                                                 "ops_per_forward": 12 + (30 + 10 * f) * layers,
                                                 "activation_bytes_per_sample": 40 * seq * hidden * layers,
                                                 "attention_scores_per_sample": 2 * seq * seq * layers,
                                                 "python_calls_per_forward": 150 + 80 * layers + 500 * f}}),
                        "params_json": json.dumps({"overrides": {"num_hidden_layers": layers,
                                                                 "hidden_size": hidden}}),
                        "hardware_id": f"hw-{platform}", "peak_flops_per_s": peak,
                        "mem_bandwidth_bytes_per_s": BANDWIDTH[platform], "created_at": "2026-01-01T00:00:00",
                    })
    return pd.DataFrame(rows)


def fast_predictor(**kwargs) -> predict.Predictor:
    """A predictor with fewer boosting rounds, to keep tests quick."""
    return predict.Predictor(gb_params=dict(FAST), **kwargs)


def test_features_follow_records_and_roofline() -> None:
    frame = synthetic_frame(n_families=1)
    feats = features.feature_frame(frame)
    assert feats["n_layers"].tolist()[:3] == [1, 1, 1] and feats["hidden_size"].iloc[0] == 32
    assert (feats["modality"] == "text").all() and (feats["seq_len_effective"] == frame["seq_len"]).all()
    efficiency = feats["roofline_efficiency"]
    saturation = frame["batch_size"] / (frame["batch_size"] + 1)
    assert (efficiency / saturation).between(0.25, 0.35).all()  # the synthetic law: 30% of peak, 3% noise
    training = frame.assign(mode="training")
    assert np.allclose(features.roofline_efficiency(training), 3 * efficiency)


def test_attach_peaks_maps_int8_to_fp32_and_leaves_unknown_nan() -> None:
    frame = pd.DataFrame({"hardware_id": ["h", "h", "other"], "platform": "cpu", "precision": ["int8", "bf16", "fp32"]})
    peaks = pd.DataFrame({"hardware_id": ["h"], "platform": ["cpu"], "precision": ["fp32"],
                          "peak_flops_per_s": [1e11], "mem_bandwidth_bytes_per_s": [1e10]})
    out = features.attach_peaks(frame, peaks)
    assert out["peak_flops_per_s"].iloc[0] == 1e11 and out["peak_flops_per_s"].iloc[1:].isna().all()


def test_held_out_predictions_follow_the_known_law() -> None:
    frame = synthetic_frame(n_families=4, seed=1)
    test = synthetic_frame(n_families=4, seed=2)
    model = fast_predictor(targets=("throughput", "memory")).fit(frame)
    predicted = model.predict(test)
    for target, column in (("throughput", "throughput_items_per_s"), ("memory", "peak_memory_bytes")):
        scores = predict.accuracy(test[column], predicted[f"{target}_pred"])
        assert scores["mape"] < 0.06 and scores["within_10"] > 0.9, (target, scores)


def test_intervals_cover_at_about_the_nominal_rate() -> None:
    frame = synthetic_frame(n_families=5, seed=3, noise=0.08)
    test = synthetic_frame(n_families=5, seed=4, noise=0.08)
    model = fast_predictor(targets=("throughput",), coverage=0.8).fit(frame)
    predicted = model.predict(test)
    measured = test["throughput_items_per_s"]
    coverage = ((measured >= predicted["throughput_low"]) & (measured <= predicted["throughput_high"])).mean()
    assert 0.7 <= coverage <= 0.95
    assert (predicted["throughput_low"] < predicted["throughput_pred"]).all()


def spying_maker(seen: list[set[str]]):
    """A make_predictor whose predictors note the families each fit was given."""

    class Spy(predict.Predictor):
        def fit(self, data: pd.DataFrame) -> predict.Predictor:
            seen.append(set(data["family"]))
            return super().fit(data)

    return lambda: Spy(targets=("throughput",), gb_params=FAST)


def test_leave_one_group_out_never_trains_on_the_held_out_group() -> None:
    frame = synthetic_frame(n_families=4)
    seen: list[set[str]] = []
    validation = predict.leave_one_group_out(frame, "throughput", make_predictor=spying_maker(seen))
    assert len(validation.folds) == 4 and len(seen) == 4
    for fold, families in zip(validation.folds, seen, strict=True):
        assert fold["held_out"] not in families and fold["held_out"] not in fold["train_groups"]
    scores = validation.scores().set_index("method")
    assert scores.loc["predictor", "n"] == len(frame)
    # the roofline baseline misses the batch saturation that the boosted correction learns
    assert scores.loc["predictor", "mape"] < 0.06 < scores.loc["roofline baseline", "mape"]
    assert set(validation.per_group()["group"]) == {f"fam{i}" for i in range(4)}


def test_held_out_rows_in_a_setting_no_training_row_has_are_counted_not_scored() -> None:
    """Only fam0 was measured on CUDA: holding fam0 out leaves no CUDA row to learn that platform's speed from."""
    frame = synthetic_frame(n_families=3, platforms=("cpu", "cuda"))
    frame = frame[(frame["platform"] == "cpu") | (frame["family"] == "fam0")]
    n_cuda = int((frame["platform"] == "cuda").sum())
    validation = predict.leave_one_group_out(frame, "throughput", make_predictor=fast_predictor)
    folds = {fold["held_out"]: fold for fold in validation.folds}
    assert folds["fam0"]["n_unseen_setting"] == n_cuda and folds["fam1"]["n_unseen_setting"] == 0
    assert validation.n_unseen_setting() == n_cuda and len(validation.predictions) == len(frame) - n_cuda
    assert predict.scores_table({"throughput": validation})["n_unseen_setting"].eq(n_cuda).all()
    cuda_only = pd.concat([frame[frame["platform"] == "cuda"].assign(family="fam9"), frame[frame["family"] == "fam1"]])
    alone = predict.hold_out_groups(cuda_only, ["fam9"], make_predictor=fast_predictor)
    assert alone.predictions.empty and alone.n_unseen_setting() == n_cuda  # nothing left to score: an empty table


def test_hold_out_groups_trains_only_on_the_other_groups() -> None:
    frame = synthetic_frame(n_families=4)
    seen: list[set[str]] = []
    validation = predict.hold_out_groups(frame, ["fam1", "fam3"], "throughput", make_predictor=spying_maker(seen))
    assert seen == [{"fam0", "fam2"}]
    (fold,) = validation.folds
    assert fold["held_out"] == "fam1, fam3" and fold["train_groups"] == ["fam0", "fam2"]
    assert fold["n_test"] == len(validation.predictions) == (frame["family"].isin(["fam1", "fam3"])).sum()
    assert set(validation.predictions["group"]) == {"fam1", "fam3"}
    assert validation.scores().set_index("method").loc["predictor", "mape"] < 0.06  # the law is the same


def test_hold_out_groups_names_a_bad_group() -> None:
    frame = synthetic_frame(n_families=2)
    with pytest.raises(ConfigError, match=r"not found: \['famX'\]"):
        predict.hold_out_groups(frame, ["fam0", "famX"])
    with pytest.raises(ConfigError, match="non-empty"):
        predict.hold_out_groups(frame, [])
    with pytest.raises(ConfigError, match="leaves no 'family' to train on"):
        predict.hold_out_groups(frame, ["fam0", "fam1"])


def test_held_out_table_scores_all_held_out_groups_and_each() -> None:
    frame = synthetic_frame(n_families=3)
    template = fast_predictor(targets=("throughput", "memory"), coverage=0.8)
    validations = predict.validate_held_out(frame, ["fam2"], template)
    table = predict.held_out_table(validations)
    assert list(table.index) == [("throughput", "all"), ("throughput", "fam2"), ("memory", "all"), ("memory", "fam2")]
    assert (table["n"] == (frame["family"] == "fam2").sum()).all()
    assert (table["n_train"] == (frame["family"] != "fam2").sum()).all()
    held = validations["throughput"].predictions
    expected = predict.accuracy(held["measured"], held["pred"])["mape"]
    assert np.isclose(table.loc[("throughput", "all"), "mape"], expected)
    fitted = template.fit(frame)
    h = predict.headline({}, fitted, predict.predict_unmeasured(fitted, frame, [2]), held_out=validations)
    assert h["held_out_groups"] == "fam2" and np.isclose(h["held_out_throughput_mape"], expected)
    assert predict.validate_held_out(frame, [], template) == {}
    assert predict.held_out_table({}).empty and "mape" in predict.held_out_table({}).columns


def test_held_out_table_counts_the_measurements_inside_their_intervals() -> None:
    predictions = pd.DataFrame({"group": ["a", "a", "b", "b"], "measured": [10.0, 20.0, 30.0, 40.0],
                                "pred": [11.0, 19.0, 33.0, 44.0], "low": [9.0, 20.0, 31.0, 41.0],
                                "high": [12.0, 25.0, 35.0, 50.0], "baseline_overhead": 1.0,
                                "baseline_roofline": 1.0})
    validation = predict.Validation("throughput", predictions, [{"n_train": 7, "method": "m"}])
    table = predict.held_out_table({"throughput": validation})
    assert table["coverage"].to_dict() == {("throughput", "all"): 0.5, ("throughput", "a"): 1.0,
                                           ("throughput", "b"): 0.0}
    assert np.isclose(validation.scores().set_index("method").loc["predictor", "coverage"], 0.5)


def test_plan_study_checks_notebook_04_parameters_before_any_work() -> None:
    good = {"microbench_platforms": ["cpu"], "microbench_budget_s": 0.2, "targets": ["throughput"],
            "coverage": 0.8, "unmeasured_batch_sizes": [2], "fresh_families": ["vit"]}
    data = str(Path(__file__).parent.parent / "parameters" / "prediction_data.tiny.yaml")
    study = predict.plan_study(data, **good)
    assert study.specs and study.predictor.coverage == 0.8 and study.fresh_families == ["vit"]
    assert len(study.describe()) == len(study.specs)
    for bad, match in (({"microbench_platforms": ["tpu"]}, "no microbenchmark"), ({"coverage": 2}, "coverage"),
                       ({"unmeasured_batch_sizes": [0]}, "positive integers"), ({"fresh_families": ["dert"]}, "dert"),
                       ({"microbench_budget_s": 0}, "budget_s")):
        with pytest.raises(ConfigError, match=match):
            predict.plan_study(data, **{**good, **bad})


def test_held_out_families_are_checked_against_the_zoo() -> None:
    assert predict.check_held_out_families(["detr", "clap", "resnet"]) == ["detr", "clap", "resnet"]
    with pytest.raises(ConfigError, match=r"\['dert'\]"):
        predict.check_held_out_families(["detr", "dert"])
    with pytest.raises(ConfigError, match="list of family names"):
        predict.check_held_out_families("detr")


def test_importances_name_features() -> None:
    frame = synthetic_frame(n_families=3)
    table = fast_predictor(targets=("throughput",)).fit(frame).importances(frame, n_repeats=2)
    assert {"feature", "importance"} <= set(table.columns) and "log_flops_per_item" in set(table["feature"])


def test_bad_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown target"):
        predict.Predictor(targets=("speed",)).fit(synthetic_frame(n_families=1))
    with pytest.raises(ConfigError, match="two or more"):
        predict.leave_one_group_out(synthetic_frame(n_families=1))
    with pytest.raises(ConfigError, match="coverage"):
        predict.Predictor(coverage=1.5).fit(synthetic_frame(n_families=1))


def test_prediction_sweep_specs_vary_size_inside_families() -> None:
    params = {"run_id": "pd", "models": ["bert", "vit"], "num_hidden_layers": [1, 2], "hidden_size": [32, 64],
              "seq_lens": [16, 32], "seq_lens_by_model": {"vit": [None]}, "intermediate_ratio": 2,
              "batch_sizes": [1, 2], "time_budget_s": 0.1, "threads": 1}
    specs = predict.prediction_sweep_specs(params)
    assert len(specs) == 8 + 4 and len({s.run_id for s in specs}) == len(specs)
    bert = [s for s in specs if s.models == ["bert"]]
    assert {(s.overrides["num_hidden_layers"], s.overrides["hidden_size"], s.seq_len) for s in bert} == {
        (layer, hidden, seq) for layer in (1, 2) for hidden in (32, 64) for seq in (16, 32)}
    assert all(s.overrides["intermediate_size"] == 2 * s.overrides["hidden_size"] for s in specs)
    assert all(s.batch_sizes == [1, 2] and s.threads == 1 for s in specs)
    sampled = predict.prediction_sweep_specs({**params, "variants_per_model": 3})
    assert len(sampled) == 6 and sampled == predict.prediction_sweep_specs({**params, "variants_per_model": 3})
    with pytest.raises(ConfigError, match="unknown prediction-data"):
        predict.prediction_sweep_specs({**params, "layers": [1]})


def test_prediction_data_yaml_builds_specs(tmp_path) -> None:
    from kit.config import load_parameters

    params = {**load_parameters("parameters/prediction_data.yaml"), "checkpoint_folder": str(tmp_path)}
    specs = predict.prediction_sweep_specs(params)
    grid = [s for s in specs if not re.search(r"-(xp|lg\d*|local\d*)-", s.run_id)]
    assert len(grid) >= 10 and all(s.platforms == ["cpu"] and s.threads == 1 for s in grid)
    assert any(s.threads is None for s in specs if "-lg" in s.run_id)  # larger variants at the default threads
    assert {p for s in specs for p in s.platforms} == {"cpu", "openvino"}
    local = [s for s in specs if "-local" in s.run_id]
    assert len(local) == 18 + 6 + 18 + 12 and {s.threads for s in local} == {1, None}  # the folders, under tmp
    one_thread_openvino = [s for s in specs if s.platforms == ["openvino"]]
    assert len(one_thread_openvino) == 2 * 12 + 12 and all(s.threads == 1 for s in one_thread_openvino)
    assert len(list(tmp_path.glob("*/config.json"))) == 18
    sections = [re.sub(r"^pred-data-?((xp|lg\d*|local\d*)-)?.*$", lambda m: m.group(2) or "grid", s.run_id)
                for s in specs]  # section by section across all models: a sweep stopped early covers every family
    order = list(dict.fromkeys(sections))
    assert order[:4] == ["grid", "local", "xp", "local2"] and sections == sorted(sections, key=order.index)
    assert {s.models[0] for s in specs[:len(grid)]} == set(params["models"])
    twins = {s.run_id.removeprefix("pred-data-lg9-") for s in specs if s.run_id.startswith("pred-data-lg9-")}
    assert twins == {s.run_id.removeprefix("pred-data-") for s in grid}  # the grid again at the default threads
    assert all(s.threads is None for s in specs if s.run_id.startswith("pred-data-lg9-"))


def test_the_threads_study_is_the_cpu_part_of_the_prediction_data(tmp_path) -> None:
    from kit.config import load_parameters

    params = {**load_parameters("parameters/prediction_threads.yaml"), "checkpoint_folder": str(tmp_path)}
    specs = predict.prediction_sweep_specs(params)
    assert {p for s in specs for p in s.platforms} == {"cpu"} and sum(len(s.jobs()) for s in specs) == 576
    one = {s.run_id.removeprefix("pd-threads-") for s in specs if re.match(r"pd-threads-[a-z0-9]+-L", s.run_id)}
    judged = {s.run_id.removeprefix("pd-threads-lg2-") for s in specs if s.run_id.startswith("pd-threads-lg2-")}
    assert len(one) == 72 and judged == one  # the section judged is the grid at the default threads


def test_prediction_data_yaml_measures_detr_with_a_convolution_bound_backbone(tmp_path) -> None:
    from kit.config import load_parameters
    from kit.zoo.loading import load_model
    from kit.zoo.model import forward_profile

    params = {**load_parameters("parameters/prediction_data.yaml"), "checkpoint_folder": str(tmp_path)}
    specs = [s for s in predict.prediction_sweep_specs(params) if "backbone_config.hidden_sizes" in s.overrides]
    assert [s.models for s in specs] == [["detr"], ["detr"]]
    assert all({"cpu", "openvino"} <= set(s.platforms) and set(s.precisions) == {"fp32", "bf16", "int8"}
               for s in specs)
    for spec in specs:  # detr-resnet-50's proportions: stage widths 1, 2, 4 and 8 times d_model
        width = spec.overrides["hidden_size"]
        assert spec.overrides["backbone_config.hidden_sizes"] == [width, 2 * width, 4 * width, 8 * width]
    profile = forward_profile(load_model("detr", "tiny", overrides=specs[0].overrides))
    plain = forward_profile(load_model("detr", "tiny", overrides={"num_hidden_layers": 4, "hidden_size": 256}))
    assert profile["conv_flops_per_sample"] > 0.8 * profile["flops_per_sample"]  # convolution-bound
    assert plain["conv_flops_per_sample"] < 0.1 * plain["flops_per_sample"]  # the tiny backbone is not


def test_the_later_check_predicts_48_new_configurations_and_repeats_18_of_the_study(tmp_path) -> None:
    from kit.config import load_parameters

    jobs = [job for spec in predict.prediction_sweep_specs(load_parameters("parameters/prediction_later.yaml"))
            for job in spec.jobs()]
    study = predict.prediction_sweep_specs({**load_parameters("parameters/prediction_data.yaml"),
                                            "checkpoint_folder": str(tmp_path)})
    held = {job.config_key for spec in study for job in spec.jobs()}
    again = [job for job in jobs if job.run_id.startswith("later-check-lg")]
    new = [job for job in jobs if job not in again]
    assert len(new) == 48 and not held & {job.config_key for job in new}
    assert len(again) == 18 and {job.config_key for job in again} <= held  # the repeat floor of the same run
    assert not any(job.run_id.startswith("pred-data") for job in jobs)  # never mixed into the training rows


def test_cross_platform_section_remeasures_a_spread_of_variants_everywhere() -> None:
    params = {"run_id": "pd", "models": ["bert"], "num_hidden_layers": [1, 2, 4], "hidden_size": [32],
              "seq_lens": [16], "batch_sizes": [1, 4, 16], "platforms": ["cpu"], "precisions": ["fp32"],
              "cross_platform": {"variants_per_model": 2, "platforms": ["cpu", "openvino"],
                                 "precisions": ["fp32", "int8"], "batch_sizes": [8]}}
    specs = predict.prediction_sweep_specs(params)
    main, cross = specs[:3], specs[3:]
    assert [s.overrides["num_hidden_layers"] for s in cross] == [1, 4]  # the ends of the size range
    assert all(s.run_id.startswith("pd-xp-bert-L") for s in cross) and len({s.run_id for s in specs}) == 5
    assert all(s.platforms == ["cpu", "openvino"] and s.precisions == ["fp32", "int8"] and s.batch_sizes == [8]
               for s in cross)
    assert all(s.platforms == ["cpu"] and s.batch_sizes == [1, 4, 16] for s in main)
    with pytest.raises(ConfigError, match="unknown cross_platform option"):
        predict.prediction_sweep_specs({**params, "cross_platform": {"platform": ["cpu"]}})
    with pytest.raises(ConfigError, match="variants_per_model must be a positive integer, got 0"):
        predict.prediction_sweep_specs({**params, "cross_platform": {"variants_per_model": 0}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        predict.prediction_sweep_specs({**params, "cross_platform": ["openvino"]})


def test_larger_section_measures_bigger_variants_with_their_own_options() -> None:
    params = {"run_id": "pd", "models": ["bert", "vit"], "num_hidden_layers": [1], "hidden_size": [32],
              "seq_lens": [16], "seq_lens_by_model": {"vit": [None]}, "intermediate_ratio": 4, "threads": 1,
              "batch_sizes": [1, 4],
              "larger": {"num_hidden_layers": [4], "hidden_size": [256], "seq_lens": [128],
                         "seq_lens_by_model": {"vit": [None]}, "overrides_by_model": {"vit": {"image_size": 96}},
                         "threads": None, "platforms": ["cpu", "openvino"], "batch_sizes": [8]}}
    specs = {s.run_id: s for s in predict.prediction_sweep_specs(params)}
    assert set(specs) == {"pd-bert-L1-H32-S16", "pd-vit-L1-H32-Sdefault", "pd-lg-bert-L4-H256-S128",
                          "pd-lg-vit-L4-H256-Sdefault"}
    bert, vit = specs["pd-lg-bert-L4-H256-S128"], specs["pd-lg-vit-L4-H256-Sdefault"]
    assert bert.overrides == {"num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 1024}
    assert vit.overrides["image_size"] == 96 and vit.seq_len is None
    assert bert.threads is None and bert.platforms == ["cpu", "openvino"] and bert.batch_sizes == [8]
    assert specs["pd-bert-L1-H32-S16"].threads == 1  # the grid keeps its own options
    with pytest.raises(ConfigError, match=r"unknown larger option\(s\) \['layers'\]"):
        predict.prediction_sweep_specs({**params, "larger": {"layers": [4], "hidden_size": [256]}})
    with pytest.raises(ConfigError, match="larger needs non-empty num_hidden_layers"):
        predict.prediction_sweep_specs({**params, "larger": {"hidden_size": [256]}})
    second = {"models": ["bert"], "num_hidden_layers": [2], "hidden_size": [64], "seq_lens": [512],
              "overrides_by_model": {"bert": {"max_position_embeddings": 512}}}
    both = {s.run_id: s for s in predict.prediction_sweep_specs({**params, "larger": [params["larger"], second]})}
    assert set(both) - set(specs) == {"pd-lg2-bert-L2-H64-S512"}  # the second mapping, for its models only
    assert both["pd-lg2-bert-L2-H64-S512"].overrides["max_position_embeddings"] == 512
    assert both["pd-lg2-bert-L2-H64-S512"].threads == 1  # options it does not set come from the top level
    grid = {"run_id": "pd", "models": ["bert"], "num_hidden_layers": [1, 2, 4], "hidden_size": [32, 64, 128],
            "seq_lens": [16, 64], "variants_per_model": 4, "seed": 3, "threads": 1}
    again = {**{axis: grid[axis] for axis in ("num_hidden_layers", "hidden_size", "seq_lens")},
             "variants_per_model": 4, "threads": None}  # the grid's variants again, at the default threads
    paired = predict.prediction_sweep_specs({**grid, "larger": again})
    one = {s.run_id.removeprefix("pd-") for s in paired if s.threads == 1}
    assert len(one) == 4 and {s.run_id.removeprefix("pd-lg-") for s in paired if s.threads is None} == one
    with pytest.raises(ConfigError, match="larger models must be a list of model names"):
        predict.prediction_sweep_specs({**params, "larger": [{**second, "models": "bert"}]})
    with pytest.raises(ConfigError, match="overrides_by_model must map model names"):
        predict.prediction_sweep_specs({**params, "larger": {"num_hidden_layers": [4], "hidden_size": [256],
                                                             "overrides_by_model": {"vit": 96}}})


def test_local_section_writes_missing_checkpoints_and_measures_them(tmp_path) -> None:
    import yaml

    resnet = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 3}
    spec = tmp_path / "ck.yaml"
    spec.write_text(yaml.safe_dump({"checkpoints": {"r1": {"model_type": "resnet", "config": resnet},
                                                    "r2": {"model_type": "resnet", "config": resnet}}}))
    folder = tmp_path / "ck"
    params = {"run_id": "pd", "models": ["bert"], "num_hidden_layers": [1], "hidden_size": [32], "seq_lens": [16],
              "threads": 1, "batch_sizes": [1], "checkpoint_folder": str(folder),
              "local": [{"checkpoints": str(spec)},
                        {"checkpoints": str(spec), "names": ["r2"], "platforms": ["cpu", "openvino"],
                         "batch_sizes": [1, 8]}]}
    specs = {s.run_id: s for s in predict.prediction_sweep_specs(params)}
    assert set(specs) == {"pd-bert-L1-H32-S16", "pd-local-r1", "pd-local-r2", "pd-local2-r2"}
    assert (folder / "r1" / "config.json").is_file() and (folder / "r2" / "config.json").is_file()
    assert specs["pd-local-r1"].models == [str((folder / "r1").resolve())] and specs["pd-local-r1"].threads == 1
    assert specs["pd-local2-r2"].platforms == ["cpu", "openvino"] and specs["pd-local2-r2"].batch_sizes == [1, 8]
    with pytest.raises(ConfigError, match=r"local names \['r3'\] are not in"):
        predict.prediction_sweep_specs({**params, "local": {"checkpoints": str(spec), "names": ["r3"]}})
    with pytest.raises(ConfigError, match=r"unknown local option\(s\) \['folder'\]"):
        predict.prediction_sweep_specs({**params, "local": {"checkpoints": str(spec), "folder": "x"}})
    with pytest.raises(ConfigError, match="local must be a mapping with 'checkpoints'"):
        predict.prediction_sweep_specs({**params, "local": ["r1"]})


def test_stored_results_without_a_profile_key_get_it_counted_from_their_parameters() -> None:
    from kit.predict.profiles import fill_profiles, missing_profile

    params = json.dumps({"model": "bert", "size": "tiny", "overrides": {"num_hidden_layers": 1}, "seq_len": 16})
    old = json.dumps({"forward_profile": {"ops_per_forward": 999.0}})  # stored before the other keys existed
    frame = pd.DataFrame({"model": ["bert", "gone"], "params_json": [params, json.dumps({"model": "gone"})],
                          "extra": [old, old]})
    filled = fill_profiles(frame)
    assert missing_profile(frame).all() and missing_profile(filled).tolist() == [False, True]
    extra = json.loads(filled.at[0, "extra"])
    assert extra["forward_profile"]["ops_per_forward"] == 999.0  # stored values are kept
    assert extra["forward_profile"]["python_calls_per_forward"] > 100
    assert extra["profile_counted_later"] == ["activation_bytes_fixed", "activation_bytes_per_sample",
                                              "attention_scores_per_sample", "conv_calls_per_forward",
                                              "conv_flops_per_sample", "conv_shapes", "grouped_conv_bytes_per_sample",
                                              "grouped_conv_flops_per_sample", "matmul_shapes",
                                              "python_calls_per_forward"]
    assert filled.at[1, "extra"] == old  # a model that cannot be built here keeps what was stored
    assert fill_profiles(filled.iloc[:1]).equals(filled.iloc[:1])  # nothing left to count


def test_reads_count_missing_profiles_in_memory_and_upgrade_stores_them(tmp_path, monkeypatch) -> None:
    from kit import storage
    from kit.predict import profiles, upgrade
    from kit.records import Record

    path = tmp_path / "p.duckdb"
    con = storage.connect(path)
    storage.start_run(con, "old", {}, {"hardware": {"hardware_id": "hw", "hostname": "h"}, "env_id": "e"})
    params = json.dumps({"model": "bert", "size": "tiny", "overrides": {"num_hidden_layers": 1}, "seq_len": 16})
    storage.insert_record(con, Record.from_samples(
        [0.01] * 10, run_id="old", config_key="k", model="bert", family="bert", size="tiny", mode="inference",
        platform="cpu", device="cpu", precision="fp32", batch_size=1, params_json=params,
        extra={"forward_profile": {"ops_per_forward": 999.0}}))
    as_stored = storage.results_frame(con)["extra"].iloc[0]
    frame = predict.training_frame(con)  # a read on a writable store: counts, writes nothing
    assert frame["python_calls_per_forward"].iloc[0] > 100
    assert storage.results_frame(con)["extra"].iloc[0] == as_stored
    assert upgrade.upgrade_store(con) == {"forward_profiles": 1, "openvino_kernels": 0, "normalised_latency": 0}
    stored = json.loads(storage.results_frame(con)["extra"].iloc[0])
    assert stored["forward_profile"]["ops_per_forward"] == 999.0 and stored["profile_counted_later"]
    assert not profiles.missing_profile(storage.results_frame(con)).any()

    def no_count(variant):
        raise AssertionError(f"counted {variant} again")

    monkeypatch.setattr(profiles, "_count", no_count)
    assert upgrade.upgrade_store(con) == {"forward_profiles": 0, "openvino_kernels": 0,
                                          "normalised_latency": 0}  # nothing left to count
    con.close()
    with storage.connect(path) as writable:
        writable.execute("UPDATE results SET extra = ?", [as_stored])  # as an older kit stored it
    read_only = storage.connect(path, read_only=True)
    assert storage.is_read_only(read_only) and not storage.is_read_only(storage.connect(":memory:"))
    monkeypatch.undo()
    assert predict.training_frame(read_only)["python_calls_per_forward"].iloc[0] > 100  # counted, not stored
    assert storage.results_frame(read_only)["extra"].iloc[0] == as_stored
    with pytest.raises(ConfigError, match="read-only"):
        upgrade.upgrade_store(read_only)


def test_upgrade_command_prints_what_it_stored(tmp_path, capsys) -> None:
    from kit import cli, storage

    path = tmp_path / "u.duckdb"
    storage.connect(path).close()
    assert cli.main(["upgrade", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == ("forward profiles stored for 0 results, OpenVINO kernel facts for 0 "
                                              "results, normalised latency for 0 results")


def test_update_extras_names_an_unknown_result() -> None:
    from kit import storage

    with pytest.raises(ConfigError, match="unknown result_id"):
        storage.update_extras(storage.connect(":memory:"), {"nope": {}})
    assert storage.update_extras(storage.connect(":memory:"), {}) == 0


def test_features_carry_the_forward_profile() -> None:
    frame = synthetic_frame(n_families=1)
    feats = features.feature_frame(frame)
    layers, seq, hidden = feats["n_layers"], feats["seq_len_effective"], feats["hidden_size"]
    assert (feats["ops_per_forward"] == 12 + 30 * layers).all()
    fp32 = feats["precision"] == "fp32"
    assert np.allclose(feats["activation_bytes"][fp32], (40 * seq * hidden * layers * feats["batch_size"])[fp32])
    assert np.allclose(feats["traffic_bytes"], np.exp(feats["log_weight_bytes"]) + feats["activation_bytes"])
    assert np.allclose(np.exp(feats["log_attention_scores_per_batch"]), 2 * seq**2 * layers * feats["batch_size"])
    bf16 = features.feature_frame(frame.assign(precision="bf16"))
    assert np.allclose(bf16["activation_bytes"][fp32], feats["activation_bytes"][fp32] / 2)  # counted in fp32
    fixed = features.feature_frame(frame.assign(activation_bytes_fixed=1000.0))  # e.g. T5's position bias
    assert np.allclose(fixed["activation_bytes"][fp32], feats["activation_bytes"][fp32] + 1000)  # once per batch
    old = frame.assign(extra=frame["extra"].map(lambda e: json.dumps({**json.loads(e), "forward_profile": {}})))
    old_feats = features.feature_frame(old)  # stored before profiles: NaN facts, weights-only traffic
    assert old_feats["ops_per_forward"].isna().all()
    assert np.allclose(old_feats["traffic_bytes"], np.exp(old_feats["log_weight_bytes"]))


def overhead_law(feats: pd.DataFrame) -> pd.Series:
    """Seconds per batch: fixed, per op call and per Python call overheads + 30% of the peak FLOP/s + 50% of the
    bandwidth + softmax work."""
    passes = np.where(feats["mode"] == "training", 3.0, 1.0)  # a training step: forward and backward kernels
    scores = feats["attention_scores_per_sample"] * feats["batch_size"] * passes
    return (2e-4 + 3e-6 * feats["ops_per_forward"] * passes + 4e-7 * feats["python_calls_per_forward"]
            + feats["compute_s"] / 0.3 + feats["memory_s"] / 0.5 + 2.0 * scores / 1e9)


def test_overhead_baseline_recovers_fixed_call_roofline_and_attention_costs() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    feats = features.feature_frame(frame)
    seconds = overhead_law(feats)
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds, latency_p50_s=seconds)
    train, test = law[law["family"] != "fam0"], law[law["family"] == "fam0"]
    train_features = features.feature_frame(train)
    for target in ("throughput", "latency"):
        y = train_features[features.TARGETS[target]]
        baseline = baselines.make_baseline(target, "overhead").fit(train_features, y)
        predicted = np.exp(baseline.predict_log(features.feature_frame(test)))
        assert np.allclose(predicted, test[features.TARGETS[target]], rtol=1e-3)
    chosen = fast_predictor(targets=("latency",)).fit(train).models["latency"]
    assert chosen.baseline_kind == "overhead" and len(chosen.selection) == 5  # chosen on held-out families
    with pytest.raises(ConfigError, match="unknown baseline"):
        baselines.make_baseline("throughput", "magic")
    with pytest.raises(ConfigError, match="unknown baseline_kind"):
        predict.Predictor(baseline_kind="magic").fit(train)


def fam0_from_the_others(law: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """Throughput of fam0 predicted by the overhead baseline fitted on the other families, and its measurement."""
    train, test = law[law["family"] != "fam0"], law[law["family"] == "fam0"]
    train_features = features.feature_frame(train)
    baseline = baselines.make_baseline("throughput", "overhead").fit(
        train_features, train_features["throughput_items_per_s"])
    return np.exp(baseline.predict_log(features.feature_frame(test))), test["throughput_items_per_s"]


def test_overhead_baseline_learns_the_extra_cost_of_convolution_flops_and_calls() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    share = frame["family"].map({"fam0": 0.8, "fam1": 0.5, "fam2": 0.0})  # fam0, held out, is the most conv-heavy
    calls = frame["family"].map({"fam0": 60, "fam1": 20, "fam2": 0})
    frame = frame.assign(conv_flops_per_sample=share * frame["flops_per_sample"], conv_calls_per_forward=calls)
    feats = features.feature_frame(frame)
    assert np.allclose(feats["conv_flop_share"], share) and np.allclose(feats["conv_compute_s"],
                                                                         share * feats["compute_s"])
    seconds = (overhead_law(feats) + feats["conv_compute_s"] * (1 / 0.1 - 1 / 0.3)  # convs at 10% of peak, not 30%
               + 2e-5 * calls)  # and 20 us more per conv call
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    predicted, measured = fam0_from_the_others(law)
    assert np.allclose(predicted, measured, rtol=1e-3)
    missed, _ = fam0_from_the_others(law.drop(columns=["conv_flops_per_sample", "conv_calls_per_forward"]))
    assert (missed / measured).mean() > 1.2  # without the conv facts: too fast, conv work counted as GEMM FLOPs


def test_thin_matrix_products_lose_flops_by_their_shapes() -> None:
    shapes = json.dumps([[16, 32, 64, 1, 32, 32, 64, 1, 2]])  # M grows with the batch (16 per sample); two calls
    flops = 2 * 64 * 32 * 64 * 2  # at batch 4: M = 64
    efficiency = (64 / 96) * (32 / 64) * (64 / 96)  # d / (d + 32) per dimension
    assert features.thin_matmul_flops(shapes, 4) == pytest.approx(flops / efficiency - flops)
    wide = json.dumps([[4096, 4096, 4096, 1, 8192, 4096, 4096, 1, 1]])
    assert features.thin_matmul_flops(wide, 1) < 0.03 * 2 * 4096**3  # wide products lose little
    assert features.thin_matmul_flops("[]", 4) == 0.0 and np.isnan(features.thin_matmul_flops(None, 4))
    assert np.isnan(features.thin_matmul_flops(json.loads(shapes), 4))  # not stored text: unknown, not a TypeError
    empty = json.dumps([[0, 32, 64, 1, 0, 32, 64, 1, 3], *json.loads(shapes)])  # an empty product loses nothing
    assert features.thin_matmul_flops(empty, 4) == features.thin_matmul_flops(shapes, 4)


def test_thin_convolutions_lose_flops_as_products_unless_grouped() -> None:
    dense = [16, 8, 27, 1, 32, 8, 27, 1, 2]  # 3 x 3 x 3 in, 8 out, 16 positions per sample; two calls
    depthwise = [16, 1, 9, 8, 32, 1, 9, 8, 1]
    assert features.thin_conv_flops(json.dumps([dense]), 4) == features.thin_matmul_flops(json.dumps([dense]), 4) > 0
    assert features.thin_conv_flops(json.dumps([dense, depthwise]), 4) == features.thin_conv_flops(json.dumps([dense]),
                                                                                                    4)
    assert features.thin_conv_flops(json.dumps([depthwise]), 4) == 0.0 and np.isnan(features.thin_conv_flops(None, 1))
    assert np.isnan(features.thin_conv_flops([dense], 4))


def test_overhead_baseline_learns_the_cost_of_thin_matrix_products() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    widths = frame["family"].map({"fam0": 16, "fam1": 48, "fam2": 512})  # fam0, held out, is the thinnest
    rows = (frame["flops_per_sample"] / (2 * widths**2)).round().astype(int)  # products hold the model's FLOPs
    shapes = [json.dumps([[m, w, w, 1, 2 * m, w, w, 1, 1]]) for m, w in zip(rows, widths, strict=True)]
    frame = frame.assign(matmul_shapes=shapes)
    feats = features.feature_frame(frame)
    thin = feats["thin_flops"] / feats["peak_flops_per_s"]
    assert np.allclose(feats["thin_s"], thin) and (thin > 0).all()
    seconds = overhead_law(feats) + thin / 0.3  # the lost FLOPs cost what others do
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    predicted, measured = fam0_from_the_others(law)
    assert np.allclose(predicted, measured, rtol=1e-3)
    missed, _ = fam0_from_the_others(law.drop(columns=["matmul_shapes"]))
    assert (missed / measured).mean() > 1.2  # without the shapes: too fast


def test_overhead_baseline_learns_the_cost_of_thin_convolutions() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    channels = frame["family"].map({"fam0": 8, "fam1": 24, "fam2": 256})  # fam0, held out, has the fewest channels
    positions = (frame["flops_per_sample"] / (2 * 9 * channels**2)).round().astype(int)  # 3 x 3 convolutions
    shapes = [json.dumps([[p, c, 9 * c, 1, 2 * p, c, 9 * c, 1, 1]]) for p, c in zip(positions, channels, strict=True)]
    frame = frame.assign(conv_shapes=shapes)
    feats = features.feature_frame(frame)
    assert np.allclose(feats["thin_s"], feats["thin_flops"] / feats["peak_flops_per_s"]) and (feats["thin_s"] > 0).all()
    both = features.feature_frame(frame.assign(matmul_shapes=shapes))  # the lost FLOPs of both add up
    assert np.allclose(both["thin_flops"], 2 * feats["thin_flops"])
    seconds = overhead_law(feats) + feats["thin_s"] / 0.3
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    predicted, measured = fam0_from_the_others(law)
    assert np.allclose(predicted, measured, rtol=1e-3)
    missed, _ = fam0_from_the_others(law.drop(columns=["conv_shapes"]))
    assert (missed / measured).mean() > 1.2  # without the shapes: too fast


@pytest.mark.parametrize("fact", ["runtime_reference_bytes", "runtime_transpose_bytes", "runtime_reorder_bytes",
                                  "runtime_eltwise_bytes"])
def test_overhead_baseline_learns_the_extra_cost_of_openvino_slow_kernels(fact: str) -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    written = frame["family"].map({"fam0": 4e5, "fam1": 1e5, "fam2": 0.0}) * frame["batch_size"]  # fam0 held out
    extras = [json.dumps({**json.loads(e), fact: w}) for e, w in zip(frame["extra"], written, strict=True)]
    frame = frame.assign(extra=extras)
    feats = features.feature_frame(frame)
    assert np.allclose(feats["slow_s"], written / frame["mem_bandwidth_bytes_per_s"])
    seconds = overhead_law(feats) + 20 * feats["slow_s"]  # plain loops, strided moves: 20x the time per byte of a copy
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    predicted, measured = fam0_from_the_others(law)
    assert np.allclose(predicted, measured, rtol=1e-3)
    missed, _ = fam0_from_the_others(law.assign(extra=law["extra"].map(
        lambda e: json.dumps({k: v for k, v in json.loads(e).items() if k != fact}))))
    assert (missed / measured).mean() > 1.2  # without them: too fast
    training = features.feature_frame(frame.assign(mode="training"))
    assert training["slow_s"].isna().all()  # counted for inference graphs only
    kinds = {"runtime_reference_bytes": 2, "runtime_transpose_bytes": 1, "runtime_reorder_bytes": 3,
             "runtime_eltwise_bytes": 4}
    extras = [json.dumps({**json.loads(e), **{k: n * w for k, n in kinds.items()}})
              for e, w in zip(frame["extra"], written, strict=True)]
    every = features.feature_frame(frame.assign(extra=extras))
    assert np.allclose(every["slow_bytes"], 10 * written)  # the kinds of slow kernels add up
    assert features.feature_frame(synthetic_frame(n_families=1))["slow_bytes"].isna().all()  # neither counted


def test_call_count_is_openvino_kernels_where_counted_else_torch_calls() -> None:
    layers = {"FullyConnected": 4, "Subgraph": 3, "Const": 9}  # constants (counted by old results) are no kernels
    frame = synthetic_frame(n_families=1).head(2).assign(platform=["openvino", "cpu"])
    extras = [json.dumps({**json.loads(e), "runtime_layers": layers if i == 0 else None})
              for i, e in enumerate(frame["extra"])]
    feats = features.feature_frame(frame.assign(extra=extras))
    assert feats["kernels_per_forward"].iloc[0] == 7 and np.isnan(feats["kernels_per_forward"].iloc[1])
    assert baselines.call_count(feats).tolist() == [7, feats["ops_per_forward"].iloc[1]]
    assert features.kernel_count(None) is None and features.kernel_count({"Const": 3}) == 0


def test_activation_traffic_is_openvino_written_bytes_where_counted_else_eager_bytes() -> None:
    frame = synthetic_frame(n_families=1).head(3).assign(platform=["openvino", "openvino", "cpu"], precision="bf16")
    extras = [json.dumps({**json.loads(e), "runtime_output_bytes": [5e6, None, None][i]})
              for i, e in enumerate(frame["extra"])]
    feats = features.feature_frame(frame.assign(extra=extras))
    assert feats["kernel_output_bytes"].iloc[0] == 5e6 and feats["kernel_output_bytes"].iloc[1:].isna().all()
    roof = features.roofline(feats)
    eager = roof["activation_bytes"].iloc[1:]  # torch's fp32 counts, halved for bf16
    expected = (feats["activation_bytes_per_sample"] * feats["batch_size"]
                + feats["activation_bytes_fixed"].fillna(0.0)) / 2
    assert roof["activation_bytes"].iloc[0] == 5e6 and np.allclose(eager, expected.iloc[1:])
    assert roof["traffic_bytes"].iloc[0] == roof["weight_bytes"].iloc[0] + 5e6
    training = features.roofline(feats.assign(mode="training"))  # OpenVINO does not train: never its bytes
    assert training["activation_bytes"].iloc[0] == 3 * expected.iloc[0]


def test_overhead_baseline_fits_each_thread_count_apart() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    frame = pd.concat([frame.assign(threads=1), frame.assign(threads=2)], ignore_index=True)
    feats = features.feature_frame(frame)
    seconds = overhead_law(feats) * np.where(feats["threads"] == 1, 1.0, 0.6)  # two threads: 40% faster
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    predicted, measured = fam0_from_the_others(law)
    assert np.allclose(predicted, measured, rtol=1e-3)  # one fit per count: both exact
    train_features = features.feature_frame(law[law["family"] != "fam0"])
    baseline = baselines.make_baseline("throughput", "overhead").fit(
        train_features, train_features["throughput_items_per_s"])
    assert {key[3] for key in baseline.coefs if key is not None} == {1, 2}
    assert ("cpu", "inference", True, 2, "bf16") in baseline.coefs  # and per precision, from the most specific


def test_a_second_thread_is_never_predicted_to_give_more_than_twice_the_speed() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    frame = pd.concat([frame.assign(threads=1), frame.assign(threads=2)], ignore_index=True)
    feats = features.feature_frame(frame)
    compute = feats["compute_s"] / 0.3
    # two threads: compute 3x faster (impossible), the rest not at all; so only compute-bound rows gain > 2x
    seconds = overhead_law(feats) - compute + compute / np.where(feats["threads"] == 1, 1.0, 3.0)
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds, latency_p50_s=seconds)
    train = features.feature_frame(law[law["family"] != "fam0"])
    test = features.feature_frame(law[law["family"] == "fam0"])
    two = test[test["threads"] == 2]
    one = test.loc[two.index - len(frame) // 2]  # the same configurations at one thread
    assert (one["threads"] == 1).all() and (one["n_params"].to_numpy() == two["n_params"].to_numpy()).all()
    gain = np.log(one["latency_p50_s"].to_numpy() / two["latency_p50_s"].to_numpy())
    beyond = gain > np.log(2.0)
    assert beyond.any() and (~beyond).any()
    for target, sign in (("throughput", 1), ("latency", -1)):
        model = predict.TargetModel(target, {}, "overhead", False, measured_gains=False).fit(
            train, train[features.TARGETS[target]])
        unbounded, _ = model._unbounded_log(two)
        bounded, _ = model.predict_log(two)
        predicted_gain = sign * (bounded.to_numpy() - model.predict_log(one)[0].to_numpy())
        assert np.allclose(sign * (unbounded.to_numpy() - model.predict_log(one)[0].to_numpy()), gain, atol=1e-3)
        assert np.allclose(predicted_gain, np.minimum(gain, np.log(2.0)), atol=1e-3)  # held to twice the speed
    free = fast_predictor(targets=("throughput",), baseline_kind="overhead", boosting=False, thread_bound=False)
    free.fit(law[law["family"] != "fam0"])
    assert not free.models["throughput"].gains  # no bound: no measured gains
    unbound = free.predict(two)["throughput_pred"].to_numpy()
    assert np.allclose(np.log(unbound / one["throughput_items_per_s"].to_numpy()), gain, atol=1e-3)  # the fit's 3x
    memory = predict.TargetModel("memory", {}, "roofline", False).fit(train, train["peak_memory_bytes"])
    assert np.allclose(memory.predict_log(two)[0], memory._unbounded_log(two)[0])  # no thread bound on memory


def test_a_family_is_never_predicted_to_gain_more_from_threads_than_training_calls_as_large_gained() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    frame = pd.concat([frame.assign(threads=1), frame.assign(threads=2)], ignore_index=True)
    feats = features.feature_frame(frame)
    work = threads.log_work_per_call(feats)
    # a second thread gains nothing on small calls and 1.8x on large ones: a smooth, increasing law of work per call
    share = ((work - work.min()) / (work.max() - work.min())).clip(0, 1)
    seconds = overhead_law(feats) / np.where(feats["threads"] == 1, 1.0, 1.0 + 0.8 * share)
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds, latency_p50_s=seconds)
    train = features.feature_frame(law[law["family"] != "fam0"])
    two = features.feature_frame(law[(law["family"] == "fam0") & (law["threads"] == 2)])
    for target, sign in (("throughput", 1), ("latency", -1)):
        model = predict.TargetModel(target, {}, "overhead", False).fit(train, train[features.TARGETS[target]])
        assert set(model.gains) == {("cpu", "fp32", 2), ("cpu", "bf16", 2)}
        trained = train[train["threads"] == 2]
        curve = threads.gain_limits(model.gains, trained)  # recovers the law where it was measured
        assert np.allclose(curve, np.log(1.0 + 0.8 * share[trained.index]), atol=1e-9)
        one, _ = model.predict_log(two.assign(threads=1))
        unbounded = sign * (model._unbounded_log(two)[0] - one)
        limit = threads.gain_limits(model.gains, two)
        predicted = sign * (model.predict_log(two)[0] - one)
        assert limit.notna().all() and (unbounded > limit + 0.01).any() and (unbounded < limit - 0.01).any()
        assert np.allclose(predicted, np.minimum(unbounded, limit), atol=1e-9)  # held where beyond, else as fitted
        free = predict.TargetModel(target, {}, "overhead", False, measured_gains=False).fit(
            train, train[features.TARGETS[target]])
        assert not free.gains and np.allclose(sign * (free.predict_log(two)[0] - one), unbounded, atol=1e-9)
    single = train[train["family"] == "fam1"].iloc[:3]  # too few configurations at both thread counts: no curve
    assert threads.fit_gains(single, single["throughput_items_per_s"], "throughput") == {}
    assert threads.fit_gains(train, train["peak_memory_bytes"], "memory") == {}


def test_overhead_baseline_predicts_few_training_rows_from_their_platform_inference_fit() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    frame = pd.concat([frame.assign(threads=1), frame.assign(threads=2)], ignore_index=True)
    steps = (frame["batch_size"] == 4) & (frame["precision"] == "fp32") & (frame["threads"] == 1)
    few = frame.index[steps & (frame["family"] == "fam1")][:3]  # too few training rows to fit on their own
    frame.loc[frame.index[steps & (frame["family"] == "fam0")].union(few), "mode"] = "training"  # fam0: held out
    feats = features.feature_frame(frame)
    seconds = overhead_law(feats) * np.where(feats["threads"] == 1, 1.0, 0.6)
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds)
    train, test = law[law["family"] != "fam0"], law[(law["family"] == "fam0") & (law["mode"] == "training")]
    train_features = features.feature_frame(train)
    assert (train_features["mode"] == "training").sum() < 4 <= len(test)
    baseline = baselines.make_baseline("throughput", "overhead").fit(
        train_features, train_features["throughput_items_per_s"])
    predicted = np.exp(baseline.predict_log(features.feature_frame(test)))
    assert np.allclose(predicted, test["throughput_items_per_s"], rtol=1e-3)  # not the global fit of both counts


def test_an_input_without_any_value_in_training_does_not_break_boosting() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    feats = features.feature_frame(frame)
    y = feats["throughput_items_per_s"]
    # log_image_size is empty for text models: scikit-learn cannot bin a column without any value
    model = predict.TargetModel("throughput", {c: ["cpu"] for c in features.CATEGORICAL}, "roofline", True,
                                dict(FAST)).fit(feats, y)
    assert "log_image_size" in model.empty_columns
    point, _ = model.predict_log(feats.assign(log_image_size=5.0))  # a vision row later on: still a number
    assert np.isfinite(point).all()


def test_candidates_sharing_rows_get_the_inputs_of_their_own_vocabulary() -> None:
    feats = features.feature_frame(synthetic_frame(n_families=3, noise=0.0))
    shared = predict.model.SharedFit(feats, feats["throughput_items_per_s"], "throughput")
    narrow, _ = shared.design({"platform": ["cpu"]})
    wide, empty = shared.design({"platform": ["cpu", "openvino"]})
    assert "platform=openvino" in wide and "platform=openvino" not in narrow  # not the first vocabulary's inputs
    assert "log_image_size" in empty and (wide["log_image_size"] == 0.0).all()
    assert shared.design({"platform": ["cpu"]})[0] is narrow  # computed once per vocabulary


def test_conformal_bounds_need_enough_residuals() -> None:
    from kit.predict.model import _bounds

    assert predict.min_residuals(0.9) == 19 and predict.min_residuals(0.8) == 9
    residuals = list(np.linspace(-1, 1, 19))
    assert np.isfinite(_bounds(residuals, 0.9)).all()
    assert not np.isfinite(_bounds(residuals[:18], 0.9)).all()
    low, high = _bounds([0.1 + 0.01 * i for i in range(20)], 0.9)  # a point below every held-out measurement
    assert low == 0.0 and high > 0.1  # the interval still holds the point


def test_predictor_settings_are_checked_on_construction() -> None:
    assert predict.Predictor(targets=["latency"]).targets == ("latency",)
    with pytest.raises(ConfigError, match="unknown target"):
        predict.Predictor(targets=["speed"])
    with pytest.raises(ConfigError, match="coverage"):
        predict.Predictor(coverage=0)
    with pytest.raises(ConfigError, match="unknown baseline_kind"):
        predict.Predictor(baseline_kind="magic")


def test_distributed_rows_are_not_training_data() -> None:
    frame = synthetic_frame(n_families=2)
    ddp = frame.head(5).assign(extra=json.dumps({"world_size": 2, "strategy": "ddp"}), throughput_items_per_s=1.0)
    model = fast_predictor(targets=("throughput",)).fit(pd.concat([frame, ddp], ignore_index=True))
    assert model.models["throughput"].n_train == len(frame)


def test_image_size_comes_from_the_stored_config() -> None:
    configs = [{"image_size": 224}, {"vision_config": {"image_size": 32}}, {"hidden_size": 8}]
    frame = pd.DataFrame({"extra": [json.dumps({"model_facts": {"config_json": json.dumps(c)}}) for c in configs]})
    assert features.model_facts(frame)["image_size"].tolist()[:2] == [224, 32]
    assert pd.isna(features.model_facts(frame)["image_size"].iloc[2])


def test_report_tables_score_every_target_on_held_out_families() -> None:
    frame = synthetic_frame(n_families=3)
    template = fast_predictor(targets=("throughput", "memory"), coverage=0.8)
    validations = predict.validate_targets(frame, template)
    scores = predict.scores_table(validations)
    assert set(scores.index.get_level_values("target")) == {"throughput", "memory"}
    assert ("memory", "static-bytes baseline") in scores.index and ("memory", "roofline baseline") not in scores.index
    assert scores.loc[("throughput", "predictor"), "n"] == len(frame)
    groups = predict.per_group_table(validations)
    assert len(groups) == 2 * 3 and (groups["n_train"] == len(frame) * 2 // 3).all()
    goal = predict.goal_table(validations).set_index("target")
    assert goal.loc["throughput", "met"] == (goal.loc["throughput", "mape"] <= predict.MAPE_GOAL)
    long = predict.validation_frame(validations)
    assert {"target", "group", "measured", "pred", "low", "high"} <= set(long.columns) and len(long) == 2 * len(frame)
    sized = frame.assign(size=np.where(frame["n_params"] > 1e5, "base", "tiny"))
    by_size = predict.per_value_table(validations, sized, "size")
    assert by_size.loc[("throughput", "base"), "n"] == (sized["size"] == "base").sum()
    assert by_size.xs("throughput")["n"].sum() == len(frame)
    v = validations["throughput"].predictions
    tiny = v[sized["size"].reindex(v.index) == "tiny"]
    expected = predict.accuracy(tiny["measured"], tiny["pred"])["mape"]
    assert np.isclose(by_size.loc[("throughput", "tiny"), "mape"], expected)
    assert np.isclose(by_size.xs("throughput")["error_share"].sum(), 1.0)
    ape = (v["pred"] - v["measured"]).abs() / v["measured"]
    assert np.isclose(by_size.loc[("throughput", "tiny"), "error_share"], ape[tiny.index].sum() / ape.sum())
    split = predict.per_value_table(validations, sized.assign(threads=np.where(sized.index % 2, 1, 2)),
                                    ["size", "threads"])
    assert split.index.names == ["target", "size", "threads"]
    assert split.xs("throughput")["n"].sum() == len(frame) and len(split.xs("throughput")) <= 4
    assert np.isclose(split.xs("throughput")["error_share"].sum(), 1.0)
    with pytest.raises(ConfigError, match="no column 'gpu'"):
        predict.per_value_table(validations, frame, "gpu")
    with pytest.raises(ConfigError, match="no column 'gpu'"):
        predict.per_value_table(validations, frame, ["platform", "gpu"])
    with pytest.raises(ConfigError, match="at least one column"):
        predict.per_value_table(validations, frame, [])
    fitted = template.fit(frame)
    unmeasured = predict.predict_unmeasured(fitted, frame, [2, 16])
    h = predict.headline(validations, fitted, unmeasured)
    assert h["n_families"] == 3 and h["n_train"] == len(frame) and h["intervals_ordered"]
    assert 0 <= h["throughput_within_10"] <= 1 and h["throughput_mape"] >= 0
    assert h["mape_goal_met"] == (h["throughput_mape"] <= predict.MAPE_GOAL)
    assert "repeat_mape" not in h  # no error budget given
    floor = pd.DataFrame({"n": [3, 3], "mape": [0.15, 0.12]}, index=list(budget_module.REPEAT_ROWS))
    h = predict.headline(validations, fitted, unmeasured, budget=floor)
    assert (h["repeat_n"], h["repeat_mape"], h["predictor_on_repeats_mape"]) == (3, 0.15, 0.12)
    assert h["repeats_within_goal"] is (0.15 <= predict.MAPE_GOAL)


def test_unmeasured_configurations_are_new_batch_sizes_of_measured_variants() -> None:
    frame = synthetic_frame(n_families=2, platforms=("cpu", "cuda"))  # batch sizes 1, 4, 16
    rows = predict.unmeasured_configurations(frame, [2, 4])
    variants = frame.drop_duplicates(["model", "params_json", "seq_len", "platform", "precision"])
    assert len(rows) == len(variants) and set(rows["batch_size"]) == {2}
    assert rows["throughput_items_per_s"].isna().all()
    predicted = predict.predict_unmeasured(fast_predictor(targets=("throughput",)).fit(frame), frame, [2])
    assert (predicted["source"] == "predicted").all()
    assert (predicted["throughput_low"] <= predicted["throughput_pred"]).all()
    assert (predicted["throughput_pred"] <= predicted["throughput_high"]).all()
    with pytest.raises(ConfigError, match="positive integers"):
        predict.check_batch_sizes([2, 0])


def test_unmeasured_openvino_batch_sizes_get_written_bytes_for_their_own_batch() -> None:
    cpu = synthetic_frame(n_families=1, batch_sizes=(1, 4)).query("precision == 'fp32'")
    cpu = cpu[cpu["params_json"] == cpu["params_json"].iloc[0]]  # one variant at batch 1 and 4
    frame = pd.concat([cpu, cpu.assign(platform="openvino")], ignore_index=True)
    on_ov = frame["platform"] == "openvino"
    written = np.where(on_ov, 1000.0 + 500.0 * frame["batch_size"], np.nan)  # a line through both batch sizes
    extras = [json.dumps({**json.loads(e), **({"runtime_output_bytes": w} if np.isfinite(w) else {})})
              for e, w in zip(frame["extra"], written, strict=True)]
    rows = predict.unmeasured_configurations(frame.assign(extra=extras), [2, 16])
    by = rows.set_index(["platform", "batch_size"])["kernel_output_bytes"]
    assert by[("openvino", 2)] == pytest.approx(2000.0) and by[("openvino", 16)] == pytest.approx(9000.0)
    assert by[["cpu"]].isna().all()  # torch's CPU: no compiled graph
    reference = np.where(on_ov, 100.0 * frame["batch_size"], np.nan)
    extras = [json.dumps({**json.loads(e), **({"runtime_reference_bytes": r} if np.isfinite(r) else {})})
              for e, r in zip(extras, reference, strict=True)]
    rows = predict.unmeasured_configurations(frame.assign(extra=extras), [16])
    assert rows.set_index("platform").loc["openvino", "kernel_reference_bytes"] == pytest.approx(1600.0)
    extras = [json.dumps({**json.loads(e), **({"runtime_transpose_bytes": r / 4} if np.isfinite(r) else {})})
              for e, r in zip(extras, reference, strict=True)]
    rows = predict.unmeasured_configurations(frame.assign(extra=extras), [16])
    assert rows.set_index("platform").loc["openvino", "kernel_transpose_bytes"] == pytest.approx(400.0)
    one = frame[frame["batch_size"] == 4].assign(extra=[e for e, b in zip(extras, frame["batch_size"], strict=True)
                                                        if b == 4])
    rows = predict.unmeasured_configurations(one, [8])  # one compiled batch size: scaled by the batch
    assert rows.set_index("platform").loc["openvino", "kernel_output_bytes"] == pytest.approx(2 * 3000.0)


def store_synthetic(con, frame: pd.DataFrame) -> None:
    """Synthetic rows as stored Records, shaped like the runner's (extra with modality, seq_len_effective and
    model_facts), on one hardware row with microbenchmark peaks."""
    from kit import storage
    from kit.records import Record

    storage.start_run(con, "synthetic", {}, {"hardware": {"hardware_id": "hw-cpu", "hostname": "h"}, "env_id": "e"})
    storage.set_hardware_peaks(con, "hw-cpu", {"cpu": {"flops_per_s": {"fp32": 2e11, "bf16": 8e11},
                                                       "mem_bandwidth_bytes_per_s": 3e10}}, 3e10)
    for row in frame.itertuples(index=False):
        extra = json.loads(row.extra)
        key = f"{row.model}|{row.precision}|bs{row.batch_size}|{row.params_json}|{row.seq_len}"
        samples = [row.latency_p50_s * (1 + 0.01 * np.sin(i)) for i in range(10)]
        record = Record.from_samples(
            samples, run_id="synthetic", config_key=key, model=row.model, family=row.family, size="tiny",
            mode="inference", platform="cpu", device="cpu", precision=row.precision, batch_size=row.batch_size,
            seq_len=row.seq_len, n_params=row.n_params, flops_per_sample=row.flops_per_sample,
            peak_memory_bytes=int(row.peak_memory_bytes), params_json=row.params_json,
            extra={**extra, "model_facts": {**extra["model_facts"], "modality": "text",
                                            "config_json": json.dumps({"hidden_size": extra["model_facts"]
                                                                       ["hidden_size"]})}})
        storage.insert_record(con, record)


def test_end_to_end_on_what_the_store_holds(tmp_path) -> None:
    from kit import storage

    con = storage.connect(tmp_path / "b.duckdb")
    store_synthetic(con, synthetic_frame(n_families=3, batch_sizes=(1, 4)))
    frame = predict.training_frame(con)
    assert frame["peak_flops_per_s"].notna().all() and frame["roofline_efficiency"].between(0, 1).all()
    assert frame["n_layers"].notna().all() and frame["seq_len_effective"].notna().all()
    template = fast_predictor(targets=("throughput", "latency", "memory"), coverage=0.8)
    validations = predict.validate_targets(frame, template)
    assert predict.scores_table(validations).loc[("throughput", "predictor"), "mape"] < 0.2
    fitted = template.fit(frame)
    assert fitted.summary()["n_train"].tolist() == [len(frame)] * 3
    assert len(predict.predict_unmeasured(fitted, frame, [2])) == 3 * 6 * 2  # families x variants x precisions
    empty = storage.connect(tmp_path / "empty.duckdb")
    with pytest.raises(ConfigError, match="no ok results"):
        predict.training_frame(empty)


def test_timed_sweep_counts_what_it_measured(tmp_path, monkeypatch) -> None:
    from kit import storage
    from kit.predict import data
    from kit.records import Record

    params = {"run_id": "pd", "models": ["bert"], "num_hidden_layers": [1], "hidden_size": [32], "seq_lens": [16],
              "batch_sizes": [1, 2]}
    run_id = predict.prediction_sweep_specs(params)[0].run_id

    def fake_sweep(params, con, progress=False):  # stores one result per call: the sweep resumes
        done = storage.finished_config_keys(con, run_id)
        storage.start_run(con, run_id, {}, {"env_id": "e"})
        key = f"k{len(done)}"
        storage.insert_record(con, Record.failure("skipped", "fake", run_id=run_id, config_key=key, model="bert",
                                                  family="bert", size="tiny", mode="inference", platform="cpu",
                                                  device="", precision="fp32", batch_size=1))
        return storage.load_records(con, run_id)

    monkeypatch.setattr(data, "run_prediction_sweep", fake_sweep)
    con = storage.connect(tmp_path / "b.duckdb")
    first = predict.timed_prediction_sweep(params, con)
    second = predict.timed_prediction_sweep(params, con)
    assert (first.n_new, second.n_new) == (1, 1) and len(second.records) == 2
    summary = second.summary().iloc[0]
    assert summary["measured_now"] == 1 and summary["already_stored"] == 1 and summary["n_skipped"] == 2
    assert predict.describe_specs(predict.prediction_sweep_specs(params))["n_configurations"].tolist() == [2]


def test_the_overhead_fit_scales_its_terms_and_survives_a_solver_that_gives_up(monkeypatch) -> None:
    # terms many orders of magnitude apart: the scaled solve recovers the coefficients exactly
    rng = np.random.default_rng(0)
    design = rng.uniform(0.5, 1.5, size=(30, 3)) * np.array([1e-9, 1.0, 1e6])
    truth = np.array([2e9, 0.5, 0.0])
    coef = baselines._scaled_nnls(design, design @ truth)
    assert coef == pytest.approx(truth, rel=1e-6, abs=1e-9)
    # a group whose solve does not converge gets no model of its own: the baseline still fits and predicts
    frame = synthetic_frame(n_families=2)
    x, y = features.feature_frame(frame), frame["throughput_items_per_s"]

    def gives_up(*args, **kwargs):
        raise RuntimeError("Maximum number of iterations reached.")

    monkeypatch.setattr(baselines, "nnls", gives_up)
    fitted = baselines.OverheadBaseline("throughput").fit(x, y)
    assert fitted.coefs == {} and np.isfinite(fitted.predict_log(x)).all()


def test_boosting_rounds_keep_rounds_times_rate_and_reach_every_new_predictor(monkeypatch) -> None:
    assert predict.model.boosting_params() == predict.GB_PARAMS | {"max_iter": 300, "learning_rate": 0.05}
    assert predict.model.boosting_params(60)["learning_rate"] == pytest.approx(0.25)
    assert predict.model.boosting_params(3)["learning_rate"] == predict.model.MAX_LEARNING_RATE
    for bad in (0, -5, 2.5, True, "30"):
        with pytest.raises(ConfigError, match=f"positive integer, got {re.escape(repr(bad))}"):
            predict.set_boosting_rounds(bad)
    monkeypatch.setattr(predict.model, "GB_PARAMS", dict(predict.GB_PARAMS))  # the process-wide setting, restored
    predict.set_boosting_rounds(40)
    fitted = predict.Predictor(targets=("throughput",), baseline_kind="overhead", boosting=True)
    assert fitted.gb_params["max_iter"] == 40
    fitted.fit(synthetic_frame(n_families=3))
    assert fitted.models["throughput"].model.n_iter_ == 40


def test_fits_and_predictions_run_one_openmp_thread() -> None:
    from threadpoolctl import ThreadpoolController

    def boosting_threads() -> list[int]:  # scikit-learn's own OpenMP runtime, which its gradient boosting runs on
        return [m["num_threads"] for m in ThreadpoolController().info()
                if m["user_api"] == "openmp" and "scikit_learn" in m["filepath"]]

    with predict.model.one_openmp_thread():
        inside = boosting_threads()
    assert inside and set(inside) == {1}
