"""Features of measured configurations for prediction: model facts, input size, settings, platform peaks, roofline.

Input is a results frame (`storage.results_frame`, or any frame with its columns); synthetic frames may give
`n_layers`, `hidden_size`, `modality`, `seq_len_effective`, the forward profile (PROFILE_COLUMNS) and the peak
columns directly instead of `extra` JSON. The roofline is deliberately simple (compute, or weight plus activation
traffic, whichever is slower). It is a feature, and the analytic baselines (`kit.predict.baselines`, which the
predictor builds on and is compared with) calibrate it on measured rows; it is never presented as a measurement.
The depthwise convolutions' time comes from their costs measured on the machine (`kit.depthwise`), which the
overhead baseline adds as it is.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pandas as pd

from kit import depthwise

TARGETS = {"throughput": "throughput_items_per_s", "latency": "latency_p50_s", "memory": "peak_memory_bytes"}
BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
ACTIVATION_BYTES_SCALE = {"fp16": 0.5, "bf16": 0.5}  # activations counted in fp32; dynamic int8 keeps fp32 ones
PEAK_PRECISION = {"int8": "fp32"}  # dynamic int8 has no matmul microbenchmark: its roofline uses the fp32 peak
TRAINING_FLOP_FACTOR = 3.0  # forward + backward (two products per forward one)
# Training traffic per parameter and step: weights read (forward, backward), gradients written and read, AdamW reads
# and writes weights and both moments, all fp32 master copies under autocast.
TRAINING_TRAFFIC_BYTES_PER_PARAM = 4 * 8
TRAINING_STATE_BYTES_PER_PARAM = 16  # fp32 weights, gradients and two AdamW moments
NUMERIC = ["log_params", "log_flops_per_item", "log_flops_per_batch", "log_batch", "log_seq", "log_image_size",
           "n_layers", "hidden_size", "log_peak_flops", "log_bandwidth", "bytes_per_param", "log_weight_bytes",
           "log_roofline_s", "log_intensity", "training", "log_ops", "log_activation_bytes_per_batch",
           "log_attention_scores_per_batch", "log_python_calls", "conv_flop_share", "log_conv_calls"]
CATEGORICAL = ["platform", "precision", "mode", "modality"]
# counted per forward by kit.zoo.forward_profile, stored in extra["forward_profile"]; NaN for results stored before.
# The grouped-convolution facts are loaded but no input of the predictor: the zoo's folds did not choose them
# (docs/prediction.md, "What the counted facts are worth")
PROFILE_COLUMNS = ("ops_per_forward", "activation_bytes_per_sample", "activation_bytes_fixed",
                   "attention_scores_per_sample", "python_calls_per_forward", "conv_flops_per_sample",
                   "conv_calls_per_forward", "grouped_conv_flops_per_sample", "grouped_conv_bytes_per_sample",
                   "matmul_shapes", "conv_shapes")
SHAPE_COLUMNS = ("matmul_shapes", "conv_shapes")  # JSON text (kit.zoo.model._shape_pairs)
NUMERIC_PROFILE = tuple(c for c in PROFILE_COLUMNS if c not in SHAPE_COLUMNS)
# A matrix dimension of this size halves a product's rate (efficiency d / (d + GEMM_HALF_SIZE) per dimension): a fixed
# round guess of where thin products fall off, not fitted to the measurements
GEMM_HALF_SIZE = 32.0
# OpenVINO's executed kernels per inference (kit.backends.openvino_backend.runtime_layers, summed): its call count
KERNEL_COLUMN = "kernels_per_forward"
# the bytes those kernels write per inference (runtime_output_bytes): its activation traffic, at the batch size it ran
KERNEL_BYTES_COLUMN = "kernel_output_bytes"
# the part of them written by OpenVINO's reference kernels (runtime_reference_bytes: plain loops, slow per byte)
KERNEL_REFERENCE_COLUMN = "kernel_reference_bytes"
# the part written by its Transpose kernels (runtime_transpose_bytes: strided data movement, slow per byte)
KERNEL_TRANSPOSE_COLUMN = "kernel_transpose_bytes"
# the part written by its Reorder kernels (runtime_reorder_bytes: layout changes between kernels)
KERNEL_REORDER_COLUMN = "kernel_reorder_bytes"
# the part written by its element-wise chains and normalisations (runtime_eltwise_bytes: a memory pass per output)
KERNEL_ELTWISE_COLUMN = "kernel_eltwise_bytes"
# the parts written by OpenVINO's slow data-movement kernels: column -> the compiled fact it is read from
SLOW_KERNEL_FACTS = {KERNEL_REFERENCE_COLUMN: "runtime_reference_bytes",
                     KERNEL_TRANSPOSE_COLUMN: "runtime_transpose_bytes", KERNEL_REORDER_COLUMN: "runtime_reorder_bytes",
                     KERNEL_ELTWISE_COLUMN: "runtime_eltwise_bytes"}
KERNEL_COLUMNS = (KERNEL_COLUMN, KERNEL_BYTES_COLUMN, *SLOW_KERNEL_FACTS)  # of the compiled graph, never timed
FACT_COLUMNS = ("n_layers", "hidden_size", "modality", "seq_len_effective", "image_size", *PROFILE_COLUMNS,
                *KERNEL_COLUMNS)
NOT_KERNELS = ("Const", "Constant")  # listed among the executed layers of an OpenVINO graph, but run no kernel
# a precision's depthwise-convolution costs per thread count on a machine (kit.depthwise.measure_costs), from its peaks
DEPTHWISE_COSTS = depthwise.COLUMN
# the typical reference 10th percentile (seconds) of a row's machine and thread count, for rows measured without one
TYPICAL_REFERENCE_COLUMN = "typical_reference_p10_s"


def extra_dict(value: Any) -> dict:
    """A stored `extra` (JSON text, or already a dict) as a dict; {} when empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        return json.loads(value)
    return {}


def kernel_count(layers: dict | None) -> float | None:
    """Kernels one inference runs, from OpenVINO's runtime_layers (constants left out); None without them."""
    if not layers:
        return None
    return float(sum(n for kind, n in layers.items() if kind not in NOT_KERNELS))


def image_size_of(facts: dict) -> float | None:
    """Image side in pixels from the stored config (vision models, or a multimodal model's vision tower)."""
    try:
        config = json.loads(facts.get("config_json") or "{}")
    except (TypeError, ValueError):
        return None
    size = config.get("image_size") or (config.get("vision_config") or {}).get("image_size")
    size = size[0] if isinstance(size, list | tuple) and size else size
    return float(size) if isinstance(size, int | float) and size > 0 else None


def predictor_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows the predictor and the recommender learn from: single-process results of the zoo and of local folders.
    Distributed runs (a world_size) follow another cost model; coverage rows (extra coverage: true) are
    transformers architectures `benchkit coverage` built at a shrunk size, which they learn from only when
    `kit.predict.architectures.architecture_rows` made them training rows (extra predictor_row: true)."""
    if "extra" not in frame or frame.empty:
        return frame
    extras = frame["extra"].map(extra_dict)
    distributed = frame["world_size"].notna() if "world_size" in frame else False
    # exports written by a kit that kept world_size in extra
    left_out = extras.map(lambda e: "world_size" in e or (bool(e.get("coverage")) and not e.get("predictor_row")))
    return frame[~(distributed | left_out)]


def overrides_json(params_json: Any) -> str:
    """The config overrides a result was measured with, as sorted JSON text ("{}" for the plain config)."""
    params = extra_dict(params_json)
    return json.dumps(params.get("overrides") or {}, sort_keys=True)


def model_facts(frame: pd.DataFrame) -> pd.DataFrame:
    """n_layers, hidden_size, modality, seq_len_effective (tokens, or audio samples), image_size (pixels), the forward
    profile (PROFILE_COLUMNS) and overrides per row, from columns or the extra JSON."""
    extras = frame["extra"].map(extra_dict) if "extra" in frame else pd.Series([{}] * len(frame), index=frame.index)
    facts = extras.map(lambda e: e.get("model_facts") or {})
    out = pd.DataFrame(index=frame.index)
    out["n_layers"] = facts.map(lambda f: f.get("n_layers"))
    out["hidden_size"] = facts.map(lambda f: f.get("hidden_size"))
    out["modality"] = extras.map(lambda e: e.get("modality")).fillna(facts.map(lambda f: f.get("modality")))
    out["seq_len_effective"] = extras.map(lambda e: e.get("seq_len_effective"))
    out["image_size"] = facts.map(image_size_of)
    profiles = extras.map(lambda e: e.get("forward_profile") or {})
    for column in PROFILE_COLUMNS:
        out[column] = profiles.map(lambda p, c=column: p.get(c))
    out[KERNEL_COLUMN] = extras.map(lambda e: kernel_count(e.get("runtime_layers")))
    out[KERNEL_BYTES_COLUMN] = extras.map(lambda e: e.get("runtime_output_bytes"))
    for column, fact in SLOW_KERNEL_FACTS.items():
        out[column] = extras.map(lambda e, f=fact: e.get(f))
    for column in FACT_COLUMNS:
        if column in frame:
            out[column] = frame[column].where(frame[column].notna(), out[column])
    if "seq_len" in frame:
        out["seq_len_effective"] = out["seq_len_effective"].fillna(frame["seq_len"])
    out["overrides"] = frame["params_json"].map(overrides_json) if "params_json" in frame else "{}"
    for column in ("n_layers", "hidden_size", "seq_len_effective", "image_size", *NUMERIC_PROFILE, *KERNEL_COLUMNS):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    out["modality"] = out["modality"].fillna("unknown").astype(str)
    return out


def variant_key(frame: pd.DataFrame) -> pd.Series:
    """One model variant per value: model, size, config overrides and sequence length (not platform or batch)."""
    facts = model_facts(frame) if "overrides" not in frame else frame
    seq = facts["seq_len_effective"].fillna(-1).astype(int).astype(str)
    return frame["model"].astype(str) + "|" + frame["size"].astype(str) + "|" + facts["overrides"] + "|seq" + seq


def attach_peaks(frame: pd.DataFrame, peaks: pd.DataFrame | None) -> pd.DataFrame:
    """The frame with peak_flops_per_s, mem_bandwidth_bytes_per_s and the depthwise costs (DEPTHWISE_COSTS) of its
    hardware, platform and precision."""
    out = frame.copy()
    if peaks is None or peaks.empty or "hardware_id" not in out:
        for column in ("peak_flops_per_s", "mem_bandwidth_bytes_per_s", DEPTHWISE_COSTS):
            if column not in out:
                out[column] = np.nan if column != DEPTHWISE_COSTS else None
        return out
    costs = peaks[DEPTHWISE_COSTS] if DEPTHWISE_COSTS in peaks else pd.Series(None, index=peaks.index, dtype=object)
    table = {(h, p, prec): (flops, bw, cost) for h, p, prec, flops, bw, cost in
             zip(peaks["hardware_id"], peaks["platform"], peaks["precision"], peaks["peak_flops_per_s"],
                 peaks["mem_bandwidth_bytes_per_s"], costs, strict=True)}
    keys = zip(out["hardware_id"], out["platform"], out["precision"].map(lambda p: PEAK_PRECISION.get(p, p)),
               strict=True)
    found = [table.get(key, (np.nan, np.nan, None)) for key in keys]
    out["peak_flops_per_s"] = [f for f, _, _ in found]
    out["mem_bandwidth_bytes_per_s"] = [b for _, b, _ in found]
    out[DEPTHWISE_COSTS] = [c if isinstance(c, dict) else None for _, _, c in found]
    return out


@functools.lru_cache(maxsize=4096)
def _shapes(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=float).reshape(-1, 9)


def thin_matmul_flops(shapes: Any, batch: float) -> float:
    """FLOPs that a forward's matrix products lose to thin shapes at this batch size: the sum of 2MNKG x (1 / eff - 1)
    with eff the product of d / (d + GEMM_HALF_SIZE) over M, N and K, each dimension grown linearly with the batch
    from the stored shapes at batch 1 and 2; 0 without products, NaN without stored shapes (stored JSON text)."""
    return _lost_flops_of(shapes, float(batch), False) if isinstance(shapes, str) and shapes else np.nan


def thin_conv_flops(shapes: Any, batch: float) -> float:
    """The same for the products that a forward's ungrouped convolutions compute (kit.zoo.model._conv_product): few
    channels make thin products; grouped and depthwise ones are left out (little work per byte, their time follows the
    memory's rate, not the compute's). 0 without convolutions, NaN without stored shapes."""
    return _lost_flops_of(shapes, float(batch), True) if isinstance(shapes, str) and shapes else np.nan


@functools.lru_cache(maxsize=65536)  # rows of one variant share their shapes across platforms, precisions, threads
def _lost_flops_of(shapes: str, batch: float, convolutions: bool) -> float:
    a = _shapes(shapes)
    if convolutions and len(a):
        a = a[(a[:, 3] == 1) & (a[:, 7] == 1)]  # ungrouped
    return _lost_flops(a, batch)


def _lost_flops(a: np.ndarray, batch: float) -> float:
    if not len(a):
        return 0.0
    m, n, k, groups = (a[:, i] + (a[:, i + 4] - a[:, i]) * (batch - 1) for i in range(4))
    flops = 2 * m * n * k * groups * a[:, 8]
    eff = np.prod([d / (d + GEMM_HALF_SIZE) for d in (m, n, k)], axis=0)
    empty = eff <= 0  # a product with an empty dimension does no work and loses none
    return float((flops[~empty] / eff[~empty] - flops[~empty]).sum())


def _log(values: pd.Series) -> pd.Series:
    return np.log(pd.to_numeric(values, errors="coerce").astype(float).where(lambda v: v > 0))


def roofline(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row: FLOPs per item and batch, traffic (weights, or training state, plus activations: per sample x batch
    plus those that do not grow with it), and the roofline time of one batch (NaN without peaks). Activation bytes
    were counted in fp32 (half of them in fp16/bf16) from torch's eager outputs, except where OpenVINO's compiled
    graph says what its kernels write (KERNEL_BYTES_COLUMN, already at the batch size and precision it ran); the
    bytes its slow data-movement kernels write (`_slow_bytes`) and their time at the measured bandwidth."""
    training = (frame["mode"] == "training").astype(float)
    pass_factor = np.where(training > 0, TRAINING_FLOP_FACTOR, 1.0)
    flops_item = frame["flops_per_sample"].astype(float) * pass_factor
    bytes_per_param = frame["precision"].map(BYTES_PER_PARAM).fillna(4).astype(float)
    weight_bytes = frame["n_params"].astype(float) * bytes_per_param
    batch = frame["batch_size"].astype(float)
    per_batch = (numeric_column(frame, "activation_bytes_per_sample").fillna(0.0) * batch
                 + numeric_column(frame, "activation_bytes_fixed").fillna(0.0))
    eager_bytes = per_batch * pass_factor * frame["precision"].map(ACTIVATION_BYTES_SCALE).fillna(1.0).astype(float)
    compiled_bytes = numeric_column(frame, KERNEL_BYTES_COLUMN).where(training == 0)
    activation_bytes = compiled_bytes.where(compiled_bytes > 0, eager_bytes)
    state = np.where(training > 0, frame["n_params"].astype(float) * TRAINING_TRAFFIC_BYTES_PER_PARAM, weight_bytes)
    traffic = state + activation_bytes
    flops_batch = flops_item * batch
    conv_flops_batch = numeric_column(frame, "conv_flops_per_sample") * pass_factor * batch
    thin_flops = _thin_flops(frame, batch) * pass_factor
    slow_bytes = _slow_bytes(frame).where(training == 0)
    compute_s = flops_batch / frame["peak_flops_per_s"].astype(float)
    memory_s = traffic / frame["mem_bandwidth_bytes_per_s"].astype(float)
    return pd.DataFrame({"flops_per_item": flops_item, "flops_per_batch": flops_batch,
                         "conv_flops_per_batch": conv_flops_batch,
                         "conv_compute_s": conv_flops_batch / frame["peak_flops_per_s"].astype(float),
                         "thin_flops": thin_flops,
                         "thin_s": thin_flops / frame["peak_flops_per_s"].astype(float),
                         "weight_bytes": weight_bytes,
                         "activation_bytes": activation_bytes, "traffic_bytes": traffic,
                         "slow_bytes": slow_bytes,
                         "slow_s": slow_bytes / frame["mem_bandwidth_bytes_per_s"].astype(float),
                         "bytes_per_param": bytes_per_param, "training": training, "compute_s": compute_s,
                         "memory_s": memory_s, "roofline_s": np.fmax(compute_s, memory_s)}, index=frame.index)


def _slow_bytes(frame: pd.DataFrame) -> pd.Series:
    """Bytes OpenVINO's slow data-movement kernels write per inference: its reference kernels (KERNEL_REFERENCE_COLUMN,
    plain loops), its Transpose kernels (KERNEL_TRANSPOSE_COLUMN, strided moves), its Reorder kernels
    (KERNEL_REORDER_COLUMN, layout changes) and its element-wise and normalisation kernels (KERNEL_ELTWISE_COLUMN,
    a memory pass per output); NaN where none was counted."""
    parts = [numeric_column(frame, column) for column in SLOW_KERNEL_FACTS]
    counted = pd.concat([part.notna() for part in parts], axis=1).any(axis=1)
    return sum(part.fillna(0.0) for part in parts).where(counted)


def _thin_flops(frame: pd.DataFrame, batch: pd.Series) -> pd.Series:
    """FLOPs lost to thin matrix products and thin convolutions per row; NaN where neither has stored shapes."""
    empty = pd.Series(None, index=frame.index, dtype=object)
    lost = [pd.Series([count(s, b) for s, b in zip(frame.get(column, empty), batch, strict=True)], index=frame.index)
            for column, count in (("matmul_shapes", thin_matmul_flops), ("conv_shapes", thin_conv_flops))]
    return pd.concat(lost, axis=1).sum(axis=1, min_count=1)


def depthwise_time(frame: pd.DataFrame) -> pd.Series:
    """Seconds per batch of each row's depthwise convolutions under its machine's measured costs
    (`kit.depthwise.depthwise_seconds` at the row's thread count, x3 for a training step), moved to the scale of the
    machine's typical reference where its results were measured beside one (x the typical reference 10th percentile /
    the one timed beside the costs; rows without rounds, such as a recommendation's candidates, may carry that typical
    in TYPICAL_REFERENCE_COLUMN); 0 without depthwise convolutions, NaN without costs or stored shapes."""
    from kit.predict.steady import typical_reference_seconds

    typical = typical_reference_seconds(frame, "p10") if "extra" in frame else pd.Series(np.nan, index=frame.index)
    typical = typical.fillna(numeric_column(frame, TYPICAL_REFERENCE_COLUMN))  # rows without rounds of their own
    threads = numeric_column(frame, "threads")
    passes = np.where(frame["mode"] == "training", TRAINING_FLOP_FACTOR, 1.0)
    empty = pd.Series(None, index=frame.index, dtype=object)
    out = []
    for shapes, batch, table, thread, usual in zip(frame.get("conv_shapes", empty), frame["batch_size"].astype(float),
                                                    frame.get(DEPTHWISE_COSTS, empty), threads, typical, strict=True):
        costs = depthwise.costs_at(table if isinstance(table, dict) else None, thread)
        if costs is None or not isinstance(shapes, str) or not shapes:
            out.append(np.nan)
            continue
        scale = usual / costs["reference_s"] if usual > 0 and (costs.get("reference_s") or 0) > 0 else 1.0
        out.append(depthwise.depthwise_seconds(shapes, batch, costs) * scale)
    return pd.Series(out, index=frame.index, dtype=float) * passes


def numeric_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column of the frame, or NaN where the frame has none (results stored before it existed)."""
    values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(values, errors="coerce").astype(float)


def roofline_efficiency(frame: pd.DataFrame, roof: pd.DataFrame | None = None) -> pd.Series:
    """Achieved FLOP/s (flops_per_sample x throughput, x3 for training) over the measured peak; NaN without one.
    `roof`: the frame's `roofline`, where already computed."""
    roof = roofline(frame) if roof is None else roof
    return roof["flops_per_item"] * frame["throughput_items_per_s"].astype(float) / frame["peak_flops_per_s"]


def static_memory_bytes(frame: pd.DataFrame, roof: pd.DataFrame | None = None) -> pd.Series:
    """Bytes of weights (inference) or weights, gradients and AdamW state (training): a floor of the peak memory.
    `roof`: the frame's `roofline`, where already computed."""
    roof = roofline(frame) if roof is None else roof
    state = frame["n_params"].astype(float) * TRAINING_STATE_BYTES_PER_PARAM
    return pd.Series(np.where(roof["training"] > 0, state, roof["weight_bytes"]), index=frame.index)


def feature_frame(frame: pd.DataFrame, peaks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Identity, targets, model facts, roofline and the model's input features (NUMERIC + CATEGORICAL) per row."""
    frame = attach_peaks(frame, peaks) if peaks is not None or "peak_flops_per_s" not in frame else frame.copy()
    facts = model_facts(frame)
    frame = frame.drop(columns=[c for c in facts if c in frame]).join(facts)
    roof = roofline(frame)
    out = frame.copy()
    for column in ("roofline_s", "compute_s", "memory_s", "flops_per_batch", "traffic_bytes", "conv_compute_s",
                   "conv_flops_per_batch", "thin_flops", "thin_s", "slow_bytes", "slow_s"):
        out[column] = roof[column]
    out["flops_per_item"] = roof["flops_per_item"]
    out["depthwise_s"] = depthwise_time(frame)
    out["static_memory_bytes"] = static_memory_bytes(frame, roof)
    out["log_params"] = _log(frame["n_params"])
    out["log_flops_per_item"] = _log(roof["flops_per_item"])
    out["log_flops_per_batch"] = _log(roof["flops_per_batch"])
    out["log_batch"] = _log(frame["batch_size"])
    out["log_seq"] = _log(frame["seq_len_effective"])
    out["log_image_size"] = _log(frame["image_size"])
    out["log_peak_flops"] = _log(frame["peak_flops_per_s"])
    out["log_bandwidth"] = _log(frame["mem_bandwidth_bytes_per_s"])
    out["bytes_per_param"] = roof["bytes_per_param"]
    out["log_weight_bytes"] = _log(roof["weight_bytes"])
    out["log_roofline_s"] = _log(roof["roofline_s"])
    out["log_intensity"] = _log(roof["flops_per_batch"] / roof["traffic_bytes"])
    out["training"] = roof["training"]
    out["activation_bytes"] = roof["activation_bytes"]
    out["log_ops"] = _log(frame["ops_per_forward"])
    out["log_activation_bytes_per_batch"] = _log(roof["activation_bytes"])
    out["log_attention_scores_per_batch"] = _log(frame["attention_scores_per_sample"] * frame["batch_size"])
    out["log_python_calls"] = _log(frame["python_calls_per_forward"])
    flops = frame["flops_per_sample"].astype(float)
    out["conv_flop_share"] = (frame["conv_flops_per_sample"] / flops).clip(0, 1)
    out["log_conv_calls"] = np.log1p(frame["conv_calls_per_forward"])  # 0 calls: 0, not missing
    if "throughput_items_per_s" in frame:
        out["roofline_efficiency"] = roofline_efficiency(frame, roof)
    return out
