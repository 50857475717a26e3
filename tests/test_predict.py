"""Prediction on synthetic frames with a known law: held-out accuracy, interval coverage, leave-one-group-out hygiene.

The frames here are test data generated from a formula, not measurements.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kit import features, predict
from kit.errors import ConfigError

PEAKS = {("cpu", "fp32"): 2e11, ("cpu", "bf16"): 8e11, ("cuda", "fp32"): 5e13, ("cuda", "fp16"): 4e14}
BANDWIDTH = {"cpu": 3e10, "cuda": 2e12}
EFFICIENCY = {"cpu": 0.3, "cuda": 0.05}
BASE_MEMORY = {"cpu": 4e8, "cuda": 5e7}
FAST = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 5,
        "l2_regularization": 1.0, "early_stopping": False, "random_state": 0}


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
                                             "model_facts": {"n_layers": layers, "hidden_size": hidden}}),
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


def test_leave_one_group_out_never_trains_on_the_held_out_group() -> None:
    frame = synthetic_frame(n_families=4)
    seen: list[set[str]] = []

    class Spy(predict.Predictor):
        def fit(self, data: pd.DataFrame) -> predict.Predictor:
            seen.append(set(data["family"]))
            return super().fit(data)

    validation = predict.leave_one_group_out(frame, "throughput",
                                             make_predictor=lambda: Spy(targets=("throughput",), gb_params=FAST))
    assert len(validation.folds) == 4 and len(seen) == 4
    for fold, families in zip(validation.folds, seen, strict=True):
        assert fold["held_out"] not in families and fold["held_out"] not in fold["train_groups"]
    scores = validation.scores().set_index("method")
    assert scores.loc["predictor", "n"] == len(frame)
    # the roofline baseline misses the batch saturation that the boosted correction learns
    assert scores.loc["predictor", "mape"] < 0.06 < scores.loc["roofline baseline", "mape"]
    assert set(validation.per_group()["group"]) == {f"fam{i}" for i in range(4)}


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


def test_prediction_data_yaml_builds_specs() -> None:
    from kit.config import load_parameters

    specs = predict.prediction_sweep_specs(load_parameters("parameters/prediction_data.yaml"))
    assert len(specs) >= 10 and all(s.platforms == ["cpu"] for s in specs)


def test_overhead_baseline_recovers_fixed_and_per_layer_costs() -> None:
    frame = synthetic_frame(n_families=3, noise=0.0)
    feats = features.feature_frame(frame)
    seconds = 2e-4 + 1e-4 * feats["n_layers"] + feats["compute_s"] / 0.3  # overhead + 30% of the peak
    law = frame.assign(throughput_items_per_s=frame["batch_size"] / seconds, latency_p50_s=seconds)
    train, test = law[law["family"] != "fam0"], law[law["family"] == "fam0"]
    train_features = features.feature_frame(train)
    for target in ("throughput", "latency"):
        y = train_features[features.TARGETS[target]]
        baseline = features.make_baseline(target, "overhead").fit(train_features, y)
        predicted = np.exp(baseline.predict_log(features.feature_frame(test)))
        assert np.allclose(predicted, test[features.TARGETS[target]], rtol=1e-3)
    chosen = fast_predictor(targets=("latency",)).fit(train).models["latency"]
    assert chosen.baseline_kind == "overhead" and len(chosen.selection) == 5  # chosen on held-out families
    with pytest.raises(ConfigError, match="unknown baseline"):
        features.make_baseline("throughput", "magic")
    with pytest.raises(ConfigError, match="unknown baseline_kind"):
        predict.Predictor(baseline_kind="magic").fit(train)
