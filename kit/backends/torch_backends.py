"""PyTorch eager backends: cpu, cuda, rocm and mps, with fp32/bf16/fp16 casts and int8 dynamic quantisation."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from kit.backends import register_backend
from kit.backends.base import Backend, Runnable
from kit.timing import Clock, CudaEventClock, CudaPeakTracker, MemoryTracker, PerfCounterClock, ProcessPeakTracker

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cast_inputs(inputs: Any, device: str, dtype: torch.dtype) -> Any:
    """Move tensors (also inside lists/dicts, as DETR labels) to the device; floating tensors take the dtype."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device=device, dtype=dtype if inputs.is_floating_point() else None)
    if isinstance(inputs, dict):
        return {k: cast_inputs(v, device, dtype) for k, v in inputs.items()}
    if isinstance(inputs, list | tuple):
        return type(inputs)(cast_inputs(v, device, dtype) for v in inputs)
    return inputs


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of nn.Linear layers (weights int8, activations quantised per call)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TorchBackend(Backend):
    """Shared logic of the eager PyTorch platforms; subclasses say which device and what is supported."""

    device_type = "cpu"

    def device(self) -> str:
        """The torch device string."""
        return self.device_type

    def supports(self, precision: str, mode: str) -> tuple[bool, str]:
        """int8 is dynamic quantisation: CPU inference only in torch."""
        if precision == "int8":
            if self.device_type != "cpu":
                return False, f"int8 dynamic quantisation runs on CPU only in torch, not on {self.name}"
            if mode == "training":
                return False, "int8 dynamic quantisation is inference-only"
        return True, ""

    def prepare(
        self, loaded: Any, inputs: dict[str, Any], precision: str, mode: str
    ) -> tuple[Runnable, dict[str, Any]]:
        """Cast or quantise the model, move model and inputs, and return an inference call under no_grad."""
        model, moved, facts = self.prepare_model(loaded, inputs, precision)

        def call() -> Any:
            with torch.inference_mode():
                return model(**moved)

        return call, facts

    def prepare_model(self, loaded: Any, inputs: dict[str, Any], precision: str
                      ) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
        """The model cast (or quantised) and moved for the precision, in eval mode; the inputs moved; facts."""
        dtype = DTYPES.get(precision, torch.float32)
        model = quantize_int8(loaded.model) if precision == "int8" else loaded.model.to(device=self.device(),
                                                                                         dtype=dtype)
        model.eval()
        facts = {"precision_ran": precision, "torch_dtype": str(dtype) if precision != "int8" else "qint8-dynamic"}
        return model, cast_inputs(inputs, self.device(), dtype), facts

    def synchronize(self) -> None:
        """Wait for the device's queued work (nothing to wait for on the CPU)."""
        if self.device_type == "cuda":
            torch.cuda.synchronize()
        elif self.device_type == "mps":
            torch.mps.synchronize()

    def threads(self) -> int | None:
        """torch's intra-op thread count."""
        return torch.get_num_threads()


@register_backend("cpu")
class CpuBackend(TorchBackend):
    """PyTorch eager on the host CPU."""

    device_type = "cpu"

    def available(self) -> tuple[bool, str]:
        """The CPU is always present."""
        return True, f"torch {torch.__version__}, {torch.get_num_threads()} threads"



class _GpuBackend(TorchBackend):
    device_type = "cuda"

    def device(self) -> str:
        """The current GPU."""
        return f"cuda:{torch.cuda.current_device()}"

    def clock(self) -> Clock:
        """CUDA events with synchronisation."""
        return CudaEventClock()

    def memory_tracker(self) -> MemoryTracker:
        """The caching allocator's peak."""
        return CudaPeakTracker()

    def supports(self, precision: str, mode: str) -> tuple[bool, str]:
        """bf16 needs compute capability 8.0+ on NVIDIA (emulated and slow before); int8 as in TorchBackend."""
        native_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        if precision == "bf16" and torch.cuda.is_available() and not native_bf16:
            return False, f"{torch.cuda.get_device_name()} has no native bf16"
        return super().supports(precision, mode)


@register_backend("cuda")
class CudaBackend(_GpuBackend):
    """PyTorch eager on an NVIDIA GPU."""

    def available(self) -> tuple[bool, str]:
        """Present when torch is a CUDA build (not ROCm) and sees a device."""
        if torch.version.hip:
            return False, "this torch is a ROCm build; use platform 'rocm'"
        if not torch.cuda.is_available():
            return False, f"no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda})"
        return True, f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"


@register_backend("rocm")
class RocmBackend(_GpuBackend):
    """PyTorch eager on an AMD GPU through ROCm/HIP (torch exposes it as the 'cuda' device)."""

    def available(self) -> tuple[bool, str]:
        """Present when torch is a ROCm build and sees a device."""
        if not torch.version.hip:
            return False, f"torch {torch.__version__} is not a ROCm build"
        if not torch.cuda.is_available():
            return False, "no ROCm device visible to torch"
        return True, f"{torch.cuda.get_device_name()} (HIP {torch.version.hip})"


class _MpsClock(PerfCounterClock):
    def time_call(self, fn: Any) -> float:
        """Wall time of fn followed by an MPS synchronisation."""
        return super().time_call(lambda: (fn(), torch.mps.synchronize()))


class _MpsTracker(ProcessPeakTracker):
    """Process peak plus the MPS driver's allocation (Apple's unified memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.method = "mps.driver_allocated_memory"

    def reset(self) -> None:
        """MPS has no peak counter: the driver's current allocation is read at the end."""
        torch.mps.synchronize()

    def peak_bytes(self) -> int:
        """Driver-allocated bytes at the end of the region (a lower bound of the peak)."""
        torch.mps.synchronize()
        return int(torch.mps.driver_allocated_memory())


@register_backend("mps")
class MpsBackend(TorchBackend):
    """PyTorch eager on Apple silicon through Metal Performance Shaders."""

    device_type = "mps"

    def available(self) -> tuple[bool, str]:
        """Present on macOS builds with an MPS device."""
        if not torch.backends.mps.is_available():
            built = torch.backends.mps.is_built()
            why = "no MPS device (needs macOS 12.3+ on Apple silicon)" if built else "torch was built without MPS"
            return False, why
        return True, "Apple MPS"

    def clock(self) -> Clock:
        """Wall time with an MPS synchronisation after each call."""
        return _MpsClock()

    def memory_tracker(self) -> MemoryTracker:
        """Driver allocation at the end of the region."""
        return _MpsTracker()
