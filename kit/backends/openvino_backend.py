"""OpenVINO platforms: zoo models converted from PyTorch, compiled for a device, run through one infer request.

Platforms: "openvino" (the CPU), "openvino-gpu" and "openvino-npu" (Intel GPU/NPU where OpenVINO sees one).
How a configuration runs, and what `prepare` records in its facts:

- convert: ``openvino.convert_model`` traces the fp32 torch model with the zoo's inputs (convert_s), through a wrapper
  that flattens the HF output to named tensors and turns the KV cache off (use_cache=False, in traced_arguments: the
  converter cannot trace cache objects; torch eager still builds its cache). The model is then reshaped to the static
  shapes of those inputs, so compilation does the shape-specific work once (static_shapes).
- int8: ``nncf.quantize`` post-training quantisation, calibrated on CALIBRATION_SAMPLES synthetic zoo inputs of other
  seeds, in batches of the job's size (quantize_s). Random weights calibrated on random inputs: the timing means
  something, the accuracy does not (the deviation from fp32 is still measured and stored).
- compile: INFERENCE_PRECISION_HINT is always set (f32 for fp32 and int8, bf16, f16), because the CPU plugin's default
  is bf16 where the CPU has it; what actually ran is read back from the compiled model (precision_ran), with the
  precisions of its executed layers (exec_precisions), the executed kernels by layer type (runtime_layers) and the
  bytes those kernels write per call (runtime_output_bytes: OpenVINO's own activation traffic, after its fusions),
  the part of them its unoptimised reference kernels write (runtime_reference_bytes) and the part its Transpose
  kernels write (runtime_transpose_bytes: pure data movement, whose cost per byte differs by precision).
  PERFORMANCE_HINT is LATENCY (the runner times one synchronous request at a time), threads follow torch's count so
  both engines get the same cores; streams are read back.
- precisions a device lacks natively (OPTIMIZATION_CAPABILITIES) are refused in `supports`: on a CPU without FP16, an
  f16 hint silently runs as bf16, which would make an "fp16" row a mislabelled copy of the bf16 one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kit.backends import register_backend
from kit.backends.base import Backend, Runnable
from kit.deviation import flatten_outputs
from kit.errors import ConversionError

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # int8: non-quantised ops in f32
HINT_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
CAPABILITIES = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
PERFORMANCE_HINT = "LATENCY"
CALIBRATION_SAMPLES = 8
# Measured on tiny and base BERT (CPU, static shapes): the first call after compile is 3-60x slower, the second
# within ~2x of steady state, steady from the third. The runner's first call plus its warmup_iters (3 by default)
# cover that, so prepare adds no warm-up of its own, and the runner's first_inference_s stays the true first call.
EXTRA_WARMUP_CALLS = 0
COMPUTE_LAYERS = ("FullyConnected", "MatMul", "Convolution", "GroupConvolution", "Deconvolution")
NOT_KERNELS = ("Input", "Output", "Parameter", "Result", "Constant", "Const")
NO_COPY_LAYERS = ("Reshape",)  # a view: its output is its input's memory, so it writes no bytes of its own




def installed(package: str) -> bool:
    """Whether a package can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken install, or a module set to None in sys.modules
        return False


@functools.cache
def core() -> Any:
    """The process's OpenVINO runtime core (one per process: creating it loads the device plugins)."""
    import openvino as ov

    return ov.Core()


@contextlib.contextmanager
def no_telemetry() -> Iterator[None]:
    """Keep OpenVINO's converter and NNCF from phoning home (each send may wait up to 3 s for the network).

    Both tools skip telemetry when they see CI=true; it is set only around their calls, then restored.
    """
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = previous


def numpy_inputs(inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The tensor inputs as numpy arrays (OpenVINO's feed); non-tensor arguments are traced as constants."""
    return {k: v.detach().cpu().numpy() for k, v in inputs.items() if isinstance(v, torch.Tensor)}


class TraceableModel(torch.nn.Module):
    """A HF model seen by the tracer: positional tensor inputs, fixed other arguments, a flat {name: tensor} output.

    The flat output (kit.deviation.flatten_outputs) gives the OpenVINO outputs the names the deviation check compares;
    a KV cache object, which neither the tracer nor the converter handles, is switched off (use_cache=False).
    """

    def __init__(self, model: torch.nn.Module, names: list[str], fixed: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.names, self.fixed = model, names, fixed

    def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        """The wrapped model's flattened outputs."""
        return flatten_outputs(self.model(**dict(zip(self.names, tensors, strict=True)), **self.fixed))


def traceable(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[TraceableModel, tuple[torch.Tensor, ...]]:
    """The model wrapped for tracing, and its positional example inputs."""
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor)]
    fixed = {k: v for k, v in inputs.items() if k not in names}
    config = getattr(model, "config", None)
    if any(getattr(c, "use_cache", False) for c in (config, getattr(config, "text_config", None))):  # LLaVA: text
        fixed["use_cache"] = False
    return TraceableModel(model, names, fixed), tuple(inputs[n] for n in names)


def convert(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The model converted by tracing it with the inputs, and the fixed arguments it was traced with (use_cache)."""
    import openvino as ov

    wrapped, example = traceable(model, inputs)
    try:
        with no_telemetry(), torch.no_grad(), warnings.catch_warnings():
            # TracerWarnings say the trace may not generalise to other shapes; it runs on these shapes only
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ov_model = ov.convert_model(wrapped, example_input=example)
    except Exception as exc:  # the converter's message is the reason stored with the failed record
        raise ConversionError(f"openvino.convert_model failed ({_summary(exc)}): {type(exc).__name__}: {exc}") from exc
    for port, name in zip(ov_model.inputs, wrapped.names, strict=True):
        port.get_tensor().set_names({name})
    return ov_model, wrapped.fixed


def _summary(exc: Exception) -> str:
    """The converter's summary lines ('-- No conversion rule found for operations: ...'), else its first line."""
    text = str(exc)
    if "Summary:" in text:
        lines = [ln.strip("- ").strip() for ln in text.split("Summary:", 1)[1].splitlines()]
        return "; ".join(ln for ln in lines if ln)
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)


def make_static(ov_model: Any, arrays: dict[str, np.ndarray]) -> tuple[bool, str]:
    """Reshape the model's inputs to the arrays' shapes; (False, why) leaves it dynamic when OpenVINO refuses."""
    shapes = {}
    for port in ov_model.inputs:
        name = port_name(port)
        if name not in arrays:
            return False, f"model input {name!r} is not among the zoo inputs {sorted(arrays)}"
        shapes[port] = list(arrays[name].shape)
    try:
        ov_model.reshape(shapes)
    except Exception as exc:  # some traced graphs bake shapes in; dynamic still runs
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def calibration_items(loaded: Any, ov_model: Any, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Synthetic calibration batches of the job's batch size (traces may bake it in, as LLaVA's image split does)
    at the model's default sequence length, seeds 1, 2...: CALIBRATION_SAMPLES samples in all, at least one batch."""
    names = [port_name(port) for port in ov_model.inputs]
    items = []
    for seed in range(1, max(1, CALIBRATION_SAMPLES // batch_size) + 1):
        arrays = numpy_inputs(loaded.make_inputs(batch_size, seed=seed))
        items.append({name: arrays[name] for name in names})
    return items


def quantize_int8(ov_model: Any, loaded: Any, batch_size: int) -> tuple[Any, int]:
    """NNCF post-training int8 quantisation (transformer preset) of a dynamic-shape model; also the samples used."""
    with no_telemetry():
        import nncf

        items = calibration_items(loaded, ov_model, batch_size)
        try:
            quantised = nncf.quantize(ov_model, nncf.Dataset(items), subset_size=len(items),
                                      model_type=nncf.ModelType.TRANSFORMER)
        except Exception as exc:  # the quantiser's message is the reason stored with the failed record
            raise ConversionError(f"nncf.quantize failed: {type(exc).__name__}: {exc}") from exc
    return quantised, len(items) * batch_size


def compile_model(ov_model: Any, device: str, precision: str, threads: int | None, profiling: bool = False) -> Any:
    """Compile for the device with the precision hint always set explicitly, a LATENCY hint and torch's threads;
    `profiling` turns on OpenVINO's per-kernel timers (`kernel_times`)."""
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {hints.inference_precision: PRECISION_HINTS[precision],
              hints.performance_mode: getattr(hints.PerformanceMode, PERFORMANCE_HINT)}
    if profiling:
        config[props.enable_profiling] = True
    if threads and device == "CPU":
        config[props.inference_num_threads] = threads
    try:
        return core().compile_model(ov_model, device, config)
    except Exception as exc:  # the plugin's message is the reason stored with the failed record
        raise ConversionError(f"OpenVINO compile_model on {device} failed: {type(exc).__name__}: {exc}") from exc


def precision_ran(compiled: Any, requested: str) -> str:
    """The precision the compiled model runs in: the read-back hint (fp32/bf16/fp16), 'int8' for a quantised model."""
    import openvino.properties.hint as hints

    hint = compiled.get_property(hints.inference_precision).get_type_name()
    ran = HINT_NAMES.get(hint, hint)
    if requested == "int8":
        quantised = any(p in ("i8", "u8") for p in exec_precisions(compiled))
        return "int8" if quantised else ran
    return ran


def kernel_times(compiled: Any, arrays: dict[str, np.ndarray], calls: int = 50, warmup: int = 10
                 ) -> dict[tuple[str, str], float]:
    """Seconds per inference each (layer type, implementation) of a model compiled with `profiling` spends, from
    OpenVINO's own per-kernel timers, averaged over `calls` inferences after `warmup`: where its time goes."""
    import openvino.properties as props

    if calls < 1 or warmup < 0:
        raise ValueError(f"calls must be >= 1 and warmup >= 0, got calls={calls}, warmup={warmup}")
    if str(compiled.get_property(props.enable_profiling)).upper() not in ("YES", "TRUE"):  # read back as "NO"/"YES"
        raise ValueError("no kernel timers: compile the model with profiling=True (compile_model)")
    request, feed = compiled.create_infer_request(), _feed(compiled, arrays)
    for _ in range(warmup):
        request.infer(feed)
    totals: dict[tuple[str, str], float] = {}
    for _ in range(calls):
        request.infer(feed)
        for kernel in request.profiling_info:
            key = (kernel.node_type, kernel.exec_type)
            totals[key] = totals.get(key, 0.0) + kernel.real_time.total_seconds()
    return {key: seconds / calls for key, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}


def exec_precisions(compiled: Any) -> dict[str, int]:
    """How many compute layers (matmuls, convolutions) of the executed graph run in each precision."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in COMPUTE_LAYERS:
            key = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "unknown"
            counts[key] = counts.get(key, 0) + 1
    return counts


def runtime_layers(compiled: Any) -> dict[str, int]:
    """How many layers of each type the executed graph runs per inference (inputs, outputs and constants left out):
    the kernels one call launches, after OpenVINO's fusions (a convolution with its norm and activation is one)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind not in NOT_KERNELS:
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def runtime_output_bytes(compiled: Any, reference_only: bool = False, layer_types: tuple[str, ...] = ()) -> int:
    """Bytes the executed kernels write per inference (each output's static shape x its runtime element size), views
    and constants left out: the activation traffic OpenVINO's fused graph moves, smaller than torch's where it fuses.
    `reference_only`: only the kernels that run OpenVINO's reference implementation (primitive type ref_*, plain
    loops without vector code: a Roll, a strided slice or a concatenation OpenVINO has no optimised kernel for).
    `layer_types`: only the kernels of these layer types (e.g. ("Transpose",)); all when empty."""
    total = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind in NOT_KERNELS or kind in NO_COPY_LAYERS or (layer_types and kind not in layer_types):
            continue
        primitive = info["primitiveType"].astype(str) if "primitiveType" in info else ""
        if reference_only and not primitive.startswith(REFERENCE_PRIMITIVE):
            continue
        for output in op.outputs():
            shape = output.get_partial_shape()
            if shape.is_static:
                total += int(np.prod([d.get_length() for d in shape], dtype=np.int64)) * output.get_element_type().size
    return total


# Where a CPU has AMX, the CPU plugin fuses a gated MLP (gate and up projections, SiLU or GELU, down projection) into
# one kernel for bf16 and fp16; that kernel's down projection splits its work over half the inference threads, none
# at one thread, and the division by zero kills the process while the model compiles (OpenVINO 2026.4)
FUSED_MLP_CAUSE = ("; a known OpenVINO fault: on a CPU with AMX its fused gated-MLP kernel (bf16, fp16) divides its "
                   "work by half the inference threads, zero at one thread; two threads or fp32 run")
TRANSPOSE_LAYERS = ("Transpose",)  # OpenVINO CPU's permute kernels: data movement only, no arithmetic
REORDER_LAYERS = ("Reorder",)  # its layout changes between kernels (e.g. planar to blocked): data movement too
# its fused element-wise chains (Subgraph: JIT snippets of adds, multiplies, activations) and its normalisations (MVN):
# one pass over memory per output, no matrix work
ELTWISE_LAYERS = ("Subgraph", "MVN")
REFERENCE_PRIMITIVE = "ref"  # OpenVINO CPU's primitive types of its reference kernels: ref_f32, ref_any_f32, ...


def port_name(port: Any, fallback: str = "") -> str:
    """A port's field name: compiled models may add traced tensor names to a port (input_ids + '226' + 'input.1', as
    OPT's input does), which are no Python identifiers, so an identifier is preferred."""
    return min(port.get_names(), key=lambda n: (not n.isidentifier(), n), default=fallback)


def output_names(compiled: Any) -> list[str]:
    """Names of the compiled model's outputs (the flattened HF output fields), positional where one has no name."""
    return [port_name(port, str(i)) for i, port in enumerate(compiled.outputs)]


def compiled_facts(compiled: Any, device: str, precision: str) -> dict[str, Any]:
    """What the compiled model says it runs with: precision, hint, streams, threads and execution devices."""
    import openvino.properties as props
    import openvino.properties.hint as hints

    return {"precision_ran": precision_ran(compiled, precision),
            "precision_hint": PRECISION_HINTS[precision],
            "precision_hint_read_back": compiled.get_property(hints.inference_precision).get_type_name(),
            "performance_hint": str(compiled.get_property(hints.performance_mode)),
            "num_streams": int(compiled.get_property(props.streams.num)),
            "inference_num_threads": _optional_property(compiled, props.inference_num_threads),
            "execution_devices": list(compiled.get_property(props.execution_devices)),
            "exec_precisions": exec_precisions(compiled), **graph_facts(compiled), "ov_device": device}


def graph_facts(compiled: Any) -> dict[str, Any]:
    """What the executed graph runs, never timed: its kernels by layer type and the bytes they write, all of them,
    its reference kernels', its Transpose kernels', its Reorder kernels' and its element-wise and normalisation
    kernels' (the predictor's compiled facts, kit.predict.kernels)."""
    return {"runtime_layers": runtime_layers(compiled), "runtime_output_bytes": runtime_output_bytes(compiled),
            "runtime_reference_bytes": runtime_output_bytes(compiled, reference_only=True),
            "runtime_transpose_bytes": runtime_output_bytes(compiled, layer_types=TRANSPOSE_LAYERS),
            "runtime_reorder_bytes": runtime_output_bytes(compiled, layer_types=REORDER_LAYERS),
            "runtime_eltwise_bytes": runtime_output_bytes(compiled, layer_types=ELTWISE_LAYERS)}


def _optional_property(compiled: Any, name: str) -> Any:
    """A compiled-model property that not every device plugin reports, else None."""
    try:
        return compiled.get_property(name)
    except RuntimeError:
        return None


@register_backend("openvino")
class OpenVinoBackend(Backend):
    """OpenVINO runtime on an OpenVINO device (the CPU here; subclasses pick GPU or NPU)."""

    ov_device = "CPU"

    def available(self) -> tuple[bool, str]:
        """Present when openvino is installed and lists the device."""
        if not installed("openvino"):
            return False, "openvino is not installed"
        import openvino as ov

        devices = core().available_devices
        if not any(d.split(".")[0] == self.ov_device for d in devices):
            return False, f"OpenVINO sees no {self.ov_device} device (available: {', '.join(devices) or 'none'})"
        return True, f"OpenVINO {ov.__version__} on {self.ov_device}: {self.device_name()}"

    def device_name(self) -> str:
        """The device's full name as OpenVINO reports it."""
        import openvino.properties as props

        return str(core().get_property(self.ov_device, props.device.full_name))

    def capabilities(self) -> list[str]:
        """The device's OPTIMIZATION_CAPABILITIES (FP32, BF16, FP16, INT8...)."""
        import openvino.properties as props

        return list(core().get_property(self.ov_device, props.device.capabilities))

    def death_cause(self, precision: str, threads: int | None, reason: str) -> str:
        """OpenVINO's CPU plugin dies of SIGFPE compiling a gated MLP (LLaMA's, Qwen2's) in bf16 at one thread."""
        if self.ov_device == "CPU" and "SIGFPE" in reason and precision in ("bf16", "fp16") and threads == 1:
            return FUSED_MLP_CAUSE
        return ""

    def supports(self, precision: str, mode: str) -> tuple[bool, str]:
        """Inference only; bf16/fp16/int8 only where the device has them natively; int8 needs nncf."""
        if mode == "training":
            return False, "OpenVINO runs inference only"
        ok, reason = self.available()
        if not ok:
            return False, reason
        needed = CAPABILITIES.get(precision)
        if needed and needed not in self.capabilities():
            caps = ", ".join(self.capabilities())
            return False, (f"OpenVINO {self.ov_device} ({self.device_name()}) has no native {precision} "
                           f"(capabilities: {caps}); a {PRECISION_HINTS[precision]} hint would run another precision")
        if mode == "generation" and precision == "int8":
            return False, ("OpenVINO generation runs the exported decoder in fp32, bf16 or fp16; int8 would need "
                           "weight compression of that decoder, which the kit does not do")
        if mode == "generation" and self.ov_device == "NPU":
            return False, "OpenVINO NPU compiles static shapes only; a decoder with a growing KV cache needs dynamic"
        if precision == "int8" and not installed("nncf"):
            return False, "int8 needs nncf for post-training quantisation, and nncf is not installed"
        return True, ""

    def device(self) -> str:
        """The OpenVINO device name (full name in the facts)."""
        return self.ov_device

    def threads(self) -> int | None:
        """Threads given to the CPU plugin: torch's count, so that both engines use the same cores."""
        return torch.get_num_threads() if self.ov_device == "CPU" else None

    def prepare(
        self, loaded: Any, inputs: dict[str, Any], precision: str, mode: str
    ) -> tuple[Runnable, dict[str, Any]]:
        """Convert (and quantise), compile, and return a call of one synchronous infer request, with its facts."""
        import openvino as ov

        # the runner frees the torch weights after this returns (measure_inference), so they are not in the peak
        torch_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
        facts: dict[str, Any] = {"openvino_version": ov.__version__, "device_full_name": self.device_name(),
                                 "torch_model_bytes_resident": torch_bytes}
        arrays = numpy_inputs(inputs)
        t0 = time.perf_counter()
        ov_model, fixed = convert(loaded.model, inputs)
        facts.update(convert_s=time.perf_counter() - t0, traced_arguments={k: repr(v) for k, v in fixed.items()})
        if precision == "int8":
            import nncf

            t0 = time.perf_counter()
            ov_model, samples = quantize_int8(ov_model, loaded, batch_size=len(next(iter(arrays.values()))))
            facts.update(quantize_s=time.perf_counter() - t0, nncf_version=nncf.__version__,
                         calibration_samples=samples)
        facts["static_shapes"], why = make_static(ov_model, arrays)
        if why:
            facts["static_shapes_error"] = why
        t0 = time.perf_counter()
        compiled = compile_model(ov_model, self.ov_device, precision, self.threads())
        facts["compile_s"] = time.perf_counter() - t0
        facts.update(compiled_facts(compiled, self.ov_device, precision), extra_warmup_calls=EXTRA_WARMUP_CALLS)
        return _infer_call(compiled, arrays), facts


def _feed(compiled: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The compiled model's inputs by port name, from the zoo's arrays."""
    feed = {}
    for port in compiled.inputs:
        name = port_name(port)
        if name not in arrays:
            raise ConversionError(f"converted model wants input {name!r}; the zoo gives {sorted(arrays)}")
        feed[name] = arrays[name]
    return feed


def _infer_call(compiled: Any, arrays: dict[str, np.ndarray]) -> Runnable:
    """A zero-argument call that runs one synchronous inference and returns {output name: numpy array}."""
    request = compiled.create_infer_request()
    feed = _feed(compiled, arrays)
    names = output_names(compiled)

    def call() -> dict[str, np.ndarray]:
        return dict(zip(names, request.infer(feed).to_tuple(), strict=True))

    return call


@register_backend("openvino-gpu")
class OpenVinoGpuBackend(OpenVinoBackend):
    """OpenVINO runtime on an Intel GPU (the default one, GPU.0, where there are several)."""

    ov_device = "GPU"


@register_backend("openvino-npu")
class OpenVinoNpuBackend(OpenVinoBackend):
    """OpenVINO runtime on an Intel NPU."""

    ov_device = "NPU"
