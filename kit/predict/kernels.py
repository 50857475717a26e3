"""OpenVINO's executed kernels (`runtime_layers`) and the bytes they write (`runtime_output_bytes`) of OpenVINO results
stored before they were recorded, counted again by converting and compiling the stored configuration: facts of the
compiled graph, never timings.

OpenVINO fuses a graph before it runs it (a convolution with its norm and activation is one kernel; a layout change
is a Reorder kernel of its own), so its per-call overhead follows these kernels, not the aten calls of torch eager.
The predictor uses their count as OpenVINO's call count (`kit.predict.baselines.call_count`), their output bytes as
its activation traffic (`kit.predict.features.roofline`), and the parts its reference, Transpose, Reorder and
element-wise kernels write (`runtime_reference_bytes`, `runtime_transpose_bytes`, `runtime_reorder_bytes`,
`runtime_eltwise_bytes`) as the traffic of its slow data-movement kernels. Counting converts the model once per
variant and batch size, quantises it for int8 as the backend does, and compiles it per precision and thread count, in
memory at each read; `benchkit upgrade` (kit.predict.upgrade) stores them.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from kit.predict.features import (
    KERNEL_BYTES_COLUMN,
    KERNEL_COLUMN,
    KERNEL_COLUMNS,
    SLOW_KERNEL_FACTS,
    extra_dict,
    kernel_count,
)
from kit.predict.profiles import variant_params

log = logging.getLogger(__name__)
OPENVINO_CPU = "openvino"  # the platforms counted here: compiling for a GPU or NPU needs that device
COMPILED_FACTS = ("runtime_layers", "runtime_output_bytes", *SLOW_KERNEL_FACTS.values())  # of the compiled graph


def missing_kernels(frame: pd.DataFrame) -> pd.Series:
    """Per row: True for an OpenVINO CPU result whose stored facts lack the executed kernels or their bytes (not a
    coverage row: it keeps them among its platform facts)."""
    extras = frame["extra"].map(extra_dict)
    return (frame["platform"] == OPENVINO_CPU) & extras.map(
        lambda e: not e.get("coverage") and any(e.get(f) is None for f in COMPILED_FACTS))


def _setting(row: Any) -> tuple[tuple[str, str, str, int | None], int, str, int | None]:
    """((model, size, overrides, seq_len), batch, precision, threads) of a stored result."""
    return (variant_params(extra_dict(row.params_json)), int(row.batch_size), str(row.precision),
            _threads(getattr(row, "threads", None)))


@functools.lru_cache(maxsize=256)
def count_kernels(variant: tuple[str, str, str, int | None], batch: int,
                  settings: frozenset[tuple[str, int | None]]) -> dict[tuple[str, int | None], dict[str, Any]]:
    """COMPILED_FACTS per (precision, threads) of one variant at one batch size, compiled as the OpenVINO backend
    prepares a run (convert, int8 quantisation, static shapes, compile); {} (logged) when it cannot be built."""
    from kit import zoo
    from kit.backends import openvino_backend as ovb

    model, size, overrides, seq_len = variant
    try:
        loaded = zoo.load_model(model, size, overrides=json.loads(overrides))
        inputs = loaded.make_inputs(batch, seq_len)
        arrays = ovb.numpy_inputs(inputs)
        converted, _ = ovb.convert(loaded.model, inputs)
        models = {}
        if any(p == "int8" for p, _ in settings):
            models["int8"], _ = ovb.quantize_int8(converted, loaded, batch)  # on the dynamic model, as prepare does
        models["float"] = converted
        for ov_model in models.values():
            ovb.make_static(ov_model, arrays)
        counts = {}
        for precision, threads in sorted(settings, key=str):
            ov_model = models["int8" if precision == "int8" else "float"]
            compiled = ovb.compile_model(ov_model, "CPU", precision, threads or torch.get_num_threads())
            counts[(precision, threads)] = ovb.graph_facts(compiled)
        return counts
    except Exception as exc:  # a back-fill is best effort: rows without counts keep torch's call count
        log.warning("cannot count OpenVINO kernels of %s (%s) at batch %d: %s", model, size, batch, exc)
        return {}


def fill_kernels(frame: pd.DataFrame) -> pd.DataFrame:
    """The results frame with COMPILED_FACTS counted now where an OpenVINO CPU result lacks one (extra
    ['kernels_counted_later'] says so; facts already stored are kept), one conversion per variant and batch size."""
    if frame.empty or not {"extra", "params_json", "platform"} <= set(frame):
        return frame
    missing = missing_kernels(frame)
    if not missing.any():
        return frame
    log.info("counting OpenVINO kernels of %d results stored without them (`benchkit upgrade` stores them)",
             int(missing.sum()))
    settings = {index: _setting(row) for index, row in zip(frame.index[missing], frame[missing].itertuples(),
                                                           strict=True)}
    wanted: dict[tuple, set] = {}
    for variant, batch, precision, threads in settings.values():
        wanted.setdefault((variant, batch), set()).add((precision, threads))
    counted = {key: count_kernels(*key, frozenset(combos)) for key, combos in wanted.items()}
    out = frame.copy()
    for index, (variant, batch, precision, threads) in settings.items():
        facts = counted[(variant, batch)].get((precision, threads))
        if facts is not None:
            stored = {k: v for k, v in extra_dict(frame.at[index, "extra"]).items() if v is not None}
            out.at[index, "extra"] = json.dumps({**facts, **stored, "kernels_counted_later": True})
    return out


def candidate_kernels(candidates: pd.DataFrame, rows: pd.DataFrame,
                      variant: tuple[str, str, str, int | None]) -> pd.DataFrame:
    """Per candidate configuration of one variant, KERNEL_COLUMNS (OpenVINO's kernel count and the bytes they write):
    from the variant's stored results with the same platform, precision, batch size and threads, else (OpenVINO CPU
    only) counted by compiling the variant, else NaN, where torch's aten calls and eager activation bytes stand in
    (`kit.predict.baselines.call_count`, `kit.predict.features.roofline`)."""
    out = pd.DataFrame(np.nan, index=candidates.index, columns=list(KERNEL_COLUMNS), dtype=float)
    if candidates.empty:
        return out
    candidates = candidates.assign(threads=candidates.get("threads", np.nan))
    if KERNEL_COLUMN in rows and not rows.empty:
        keys = ["platform", "precision", "batch_size", *(["threads"] if "threads" in rows else [])]
        stored = (rows.assign(**{c: rows.get(c, np.nan) for c in KERNEL_COLUMNS}).dropna(subset=[KERNEL_COLUMN])
                  .astype({"batch_size": int}).drop_duplicates(keys, keep="last"))
        found = candidates[keys].astype({"batch_size": int}).merge(stored[[*keys, *KERNEL_COLUMNS]], on=keys,
                                                                    how="left")
        out[:] = found[list(KERNEL_COLUMNS)].to_numpy(dtype=float)
    todo = candidates[out[KERNEL_COLUMN].isna() & (candidates["platform"] == OPENVINO_CPU)]
    for batch, group in todo.groupby(todo["batch_size"].astype(int)):
        settings = {(str(p), _threads(t)) for p, t in zip(group["precision"], group["threads"], strict=True)}
        counts = count_kernels(variant, int(batch), frozenset(settings))
        for index, precision, threads in zip(group.index, group["precision"], group["threads"], strict=True):
            facts = counts.get((str(precision), _threads(threads))) or {}
            out.loc[index, KERNEL_COLUMN] = kernel_count(facts.get("runtime_layers")) or np.nan
            out.loc[index, KERNEL_BYTES_COLUMN] = facts.get("runtime_output_bytes") or np.nan
            for column, fact in SLOW_KERNEL_FACTS.items():
                written = facts.get(fact)  # 0 is a count: no such kernel
                out.loc[index, column] = np.nan if written is None else written
    return out


def written_bytes_at(grid: pd.DataFrame, measured: pd.DataFrame, keys: list[str],
                     column: str = KERNEL_BYTES_COLUMN) -> pd.Series:
    """OpenVINO's written bytes (KERNEL_BYTES_COLUMN, or one of its slow parts, SLOW_KERNEL_FACTS' columns) at each
    grid row's batch size, from the measured rows of the same keys: a straight line through (batch, bytes) where two
    or more batch sizes were compiled, else the one compiled count scaled by the batch (the kernels' outputs are
    activations); NaN without any. A batch size's compiled bytes are never reused at another as they are: they grow
    with the batch."""
    out = pd.Series(np.nan, index=grid.index, dtype=float)
    if grid.empty or column not in measured:
        return out
    known = measured.dropna(subset=[column])
    lines = {}
    for key, rows in known.groupby(known[keys].astype(str).apply(tuple, axis=1)):  # text: NaN keys match too
        points = rows.groupby(rows["batch_size"].astype(float))[column].median()
        lines[key] = (np.polyfit(points.index, points.to_numpy(), 1) if len(points) > 1
                      else (points.iloc[0] / points.index[0], 0.0))
    wanted = grid[keys].astype(str).apply(tuple, axis=1)
    for index, key, batch in zip(grid.index, wanted, grid["batch_size"].astype(float), strict=True):
        if key in lines:
            slope, intercept = lines[key]
            out[index] = max(slope * batch + intercept, 0.0)
    return out


def _threads(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)
