"""ONNX export of a zoo model with fixed input shapes, its inputs as files for the page, and the reference check.

The browser runs the exported graph, so the graph is checked twice: against torch (is the export faithful?) and,
after the page ran it, against onnxruntime in Python on the same file and inputs (is the browser's result right?).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kit.deviation import flatten_outputs, main_output_name
from kit.errors import ConversionError, UnsupportedConfiguration

# numpy dtype name -> onnxruntime-web tensor type (bool tensors travel as one byte per element)
WEB_DTYPES = {"float32": "float32", "int64": "int64", "int32": "int32", "bool": "bool"}
OPSET = 18
QUIET_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the exporters colour their messages
NODE_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")  # the operator a translation failed on
REASON_CHARS = 300


class MainOutput(torch.nn.Module):
    """Wraps a model so that tensor inputs are positional and the one output is its main output (kit.deviation)."""

    def __init__(self, model: torch.nn.Module, names: list[str], constants: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.names, self.constants = model, names, constants
        self.output_name = ""

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """The model's main output (logits, logits_per_image, last_hidden_state...) for the named inputs."""
        flat = flatten_outputs(self.model(**dict(zip(self.names, tensors, strict=True)), **self.constants))
        self.output_name = main_output_name(flat)
        return flat[self.output_name]


@dataclass
class ExportInfo:
    """What was exported and how: file, exporter, input names, shapes, time, and torch-vs-onnxruntime deviation."""

    path: Path
    exporter: str
    output_name: str
    input_names: list[str]
    input_shapes: dict[str, list[int]]
    output_shape: list[int]
    export_s: float
    external_data: list[str] = field(default_factory=list)
    export_deviation: dict[str, float] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """The facts stored with a record."""
        files = [self.path, *(self.path.parent / name for name in self.external_data)]
        return {"onnx_exporter": self.exporter, "onnx_output": self.output_name, "onnx_opset": OPSET,
                "onnx_input_shapes": self.input_shapes, "onnx_output_shape": self.output_shape,
                "onnx_export_s": self.export_s, "onnx_bytes": sum(f.stat().st_size for f in files),
                "export_deviation": self.export_deviation}


def split_inputs(inputs: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensor inputs (graph inputs) and the rest (baked into the graph as constants, e.g. flags)."""
    tensors = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    constants = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
    for name, value in constants.items():
        if not isinstance(value, bool | int | float | str | None):
            raise UnsupportedConfiguration(f"input {name!r} of type {type(value).__name__} cannot be fed to ONNX")
    return tensors, constants


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, warnings and log lines (e.g. optional torchvision ops), and what
    torch's C++ writes to the output streams (the TorchScript exporter dumps the whole graph when it fails)."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            warnings.simplefilter("ignore")
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_error(exc: BaseException) -> str:
    """Why an exporter failed, on one line: the innermost cause ('Type: first line'), after the operator whose
    translation failed where the chain names one (the outer messages are torch.onnx's generic 'step 3/3' advice)."""
    chain = [exc]
    while len(chain) < 20 and (cause := chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(cause)
    root = chain[-1]
    lines = [ln.strip() for ln in ANSI.sub("", str(root)).splitlines() if ln.strip()]
    text = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    op = next((m.group(1) for e in chain if (m := NODE_TARGET.search(str(e)))), None)
    return (f"{op}: {text}" if op else text)[:REASON_CHARS]


def _export(wrapper: torch.nn.Module, args: tuple, names: list[str], path: Path, dynamo: bool) -> None:
    with _quiet():
        torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["output"], dynamo=dynamo,
                          opset_version=OPSET if dynamo else 17, external_data=True)


def export_onnx(model: torch.nn.Module, inputs: dict[str, Any], path: Path | str) -> ExportInfo:
    """Export with fixed shapes: the torch.export-based exporter first, the TorchScript one if that fails."""
    path = Path(path)
    tensors, constants = split_inputs(inputs)
    names = list(tensors)
    wrapper = MainOutput(model.eval(), names, constants).eval()
    args = tuple(tensors.values())
    errors = []
    start = time.perf_counter()
    for exporter, dynamo in (("torch.export (dynamo)", True), ("torchscript", False)):
        try:
            _export(wrapper, args, names, path, dynamo)
            break
        except Exception as exc:  # the next exporter is tried; both messages are reported if both fail
            errors.append(f"{exporter}: {export_error(exc)}")
    else:
        raise ConversionError("ONNX export failed: " + " | ".join(errors))
    export_s = time.perf_counter() - start
    with torch.inference_mode():
        expected = wrapper(*args).float().numpy()
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    info = ExportInfo(path, exporter, wrapper.output_name, names, shapes, list(expected.shape), export_s,
                      external_data=external_data_files(path))
    info.export_deviation = deviation(reference_output(path, tensors), expected)
    return info


def external_data_files(path: Path) -> list[str]:
    """Names of the weight files stored beside the .onnx file (large models), as the graph references them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {entry.value for init in model.graph.initializer for entry in init.external_data if entry.key == "location"}
    return sorted(names)


def to_numpy(inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Tensor inputs as contiguous numpy arrays."""
    return {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def write_inputs(inputs: dict[str, Any], folder: Path, url_prefix: str) -> Path:
    """Write the tensor inputs as one .bin file plus a JSON manifest the page reads; returns the manifest path."""
    arrays = to_numpy(inputs)
    tensors, chunks, offset = [], [], 0
    for name, array in arrays.items():
        if array.dtype.name not in WEB_DTYPES:
            raise UnsupportedConfiguration(f"input {name!r} has dtype {array.dtype}, which the page cannot feed")
        data = array.astype(np.uint8).tobytes() if array.dtype == bool else array.tobytes()
        tensors.append({"name": name, "dtype": WEB_DTYPES[array.dtype.name], "shape": list(array.shape),
                        "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    (folder / "inputs.bin").write_bytes(b"".join(chunks))
    manifest = folder / "inputs.json"
    manifest.write_text(json.dumps({"data": f"{url_prefix}inputs.bin", "tensors": tensors}))
    return manifest


def reference_output(path: Path | str, inputs: dict[str, Any]) -> np.ndarray:
    """The primary output of onnxruntime (Python, CPU) on the same ONNX file and inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, to_numpy(inputs))[0]


def deviation(actual: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Relative L2 error and largest absolute difference of `actual` against `reference`."""
    if actual.shape != reference.shape:
        raise ValueError(f"output shape {actual.shape} differs from the reference {reference.shape}")
    a, r = actual.astype(np.float64), reference.astype(np.float64)
    norm = float(np.linalg.norm(r))
    diff = float(np.linalg.norm(a - r))
    return {"rel_l2": diff / norm if norm > 0 else diff, "max_abs": float(np.max(np.abs(a - r))) if a.size else 0.0}
