"""Output deviation of a run against the fp32 reference: relative L2 and max abs error of the model's main output.

The main output of a HuggingFace model output is the first of MAIN_OUTPUTS that it has:

- ``logits``: classifiers, LMs, seq2seq (T5, Whisper), CTC (wav2vec2), LLaVA, and DETR's class logits.
- ``logits_per_image`` / ``logits_per_video`` / ``logits_per_audio``: contrastive models (CLIP, X-CLIP, CLAP).
- ``last_hidden_state``: bare encoders and decoders without a head.
- ``pred_boxes``: detectors without class logits.

Anything else falls back to the first floating-point tensor. Outputs are flattened to ``{name: tensor}`` first
(nested outputs as ``outer.inner``, tuples as ``name.0``), so a torch ModelOutput and an OpenVINO result keyed by the
same names are compared tensor for tensor. The metrics are computed in fp32, whatever precision produced the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from kit.errors import MeasurementError

MAIN_OUTPUTS: tuple[str, ...] = ("logits", "logits_per_image", "logits_per_video", "logits_per_audio",
                                 "last_hidden_state", "pred_boxes")
SKIPPED_OUTPUTS: tuple[str, ...] = ("loss",)  # a scalar of the labels, not the model's answer


def _as_tensor(value: Any) -> torch.Tensor | None:
    """A torch tensor for tensors and numpy arrays, None for anything else."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return None


def flatten_outputs(output: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a model output as {name: tensor}: mappings by key, sequences by index, nesting joined by '.'."""
    tensor = _as_tensor(output)
    if tensor is not None:
        return {prefix or "output": tensor}
    if isinstance(output, Mapping):  # ModelOutput is an OrderedDict that holds only the fields that are set
        items = [(str(k), v) for k, v in output.items()]
    elif isinstance(output, list | tuple):
        items = [(str(i), v) for i, v in enumerate(output)]
    else:  # caches and other objects carry no answer to compare
        return {}
    flat: dict[str, torch.Tensor] = {}
    for key, value in items:
        flat.update(flatten_outputs(value, f"{prefix}.{key}" if prefix else key))
    return flat


def main_output_name(flat: Mapping[str, torch.Tensor]) -> str:
    """The name of the main output among flattened outputs (see the module docstring for the order)."""
    for name in MAIN_OUTPUTS:
        if name in flat:
            return name
    for name, tensor in flat.items():
        if name not in SKIPPED_OUTPUTS and tensor.is_floating_point():
            return name
    raise MeasurementError(f"no floating-point output to compare among {sorted(flat)}")


def main_output(output: Any) -> tuple[str, torch.Tensor]:
    """(name, fp32 CPU tensor) of the main output of a model output; a small detached copy kept as a reference."""
    flat = flatten_outputs(output)
    name = main_output_name(flat)
    return name, flat[name].detach().to(device="cpu", dtype=torch.float32).clone()


def deviation_metrics(reference: torch.Tensor, candidate: Any) -> dict[str, float]:
    """Relative L2 error ||c - r|| / ||r|| and max |c - r| of a candidate against a reference, both in fp32."""
    ref = reference.detach().to(device="cpu", dtype=torch.float32)
    cand = _as_tensor(candidate)
    if cand is None:
        raise MeasurementError(f"cannot compare a {type(candidate).__name__} with a tensor")
    cand = cand.detach().to(device="cpu", dtype=torch.float32)
    if cand.shape != ref.shape:
        raise MeasurementError(f"output shape {tuple(cand.shape)} differs from the reference's {tuple(ref.shape)}")
    diff = cand - ref
    ref_norm = float(torch.linalg.vector_norm(ref))
    diff_norm = float(torch.linalg.vector_norm(diff))
    if ref_norm > 0:
        rel_l2 = diff_norm / ref_norm
    else:  # an all-zero reference: exact match or infinitely wrong
        rel_l2 = 0.0 if diff_norm == 0 else float("inf")
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    return {"rel_l2": rel_l2, "max_abs": max_abs}


def output_deviation(reference: tuple[str, torch.Tensor], output: Any) -> dict[str, Any]:
    """Deviation of a run's output from the reference (name, tensor) made by `main_output` on the fp32 model.

    The returned dict is what runners store as record.extra["deviation"]. Non-finite values (a precision that
    overflowed) are stored as None with "finite": False, since JSON has no NaN or infinity.
    """
    name, ref = reference
    flat = flatten_outputs(output)
    if name not in flat:
        raise MeasurementError(f"output {name!r} of the reference is missing from the run's outputs {sorted(flat)}")
    metrics = deviation_metrics(ref, flat[name])
    finite = all(np.isfinite(v) for v in metrics.values())
    stored = {k: (v if np.isfinite(v) else None) for k, v in metrics.items()}
    return {**stored, "output": name, "finite": bool(finite), "shape": list(ref.shape),
            "reference": "torch fp32 on cpu", "reference_bytes": ref.numel() * ref.element_size()}
