"""Inference measurement inside one (child) process: build, prepare, first call, warm-up, adaptive timed loop."""

from __future__ import annotations

import gc
import time
import warnings
from typing import Any

import torch

from kit import zoo
from kit.backends import get_backend
from kit.config import Job
from kit.deviation import main_output, output_deviation
from kit.errors import MeasurementError, UnsupportedConfiguration
from kit.records import Record
from kit.timing import Measurement, load_average_1m, measure_adaptive


def check_supported(job: Job) -> tuple[Any, str]:
    """The job's backend, after checking it is present and supports the precision and mode."""
    backend = get_backend(job.platform)
    ok, reason = backend.available()
    if not ok:
        raise UnsupportedConfiguration(f"platform {job.platform} unavailable: {reason}")
    ok, reason = backend.supports(job.precision, job.mode)
    if not ok:
        raise UnsupportedConfiguration(reason)
    return backend, reason


def apply_threads(job: Job) -> None:
    """Pin torch's intra-op threads when the job asks for a count."""
    if job.threads:
        torch.set_num_threads(job.threads)


def model_facts(loaded: zoo.LoadedModel, seq_len: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record fields n_params and flops_per_sample, extra["forward_profile"]: op calls, activation bytes and
    attention scores), counted once on the fp32 model, outside any timing."""
    profile = zoo.forward_profile(loaded, seq_len)
    return {"n_params": loaded.n_params(), "flops_per_sample": profile.pop("flops_per_sample")}, profile


def wants_deviation(job: Job) -> bool:
    """Whether to compare the output with fp32 torch on CPU: every run but that reference configuration itself."""
    return job.precision != "fp32" or job.platform != "cpu"


def reference_output(loaded: zoo.LoadedModel, inputs: dict[str, Any]) -> tuple[str, torch.Tensor]:
    """Main output of the unmodified fp32 model on CPU; taken before prepare, since torch backends cast in place."""
    with torch.inference_mode():
        return main_output(loaded.model(**inputs))


def deviation_of(reference: tuple[str, torch.Tensor], output: Any) -> dict[str, Any]:
    """record.extra["deviation"] for a run's output; an output that cannot be compared is stored as an error."""
    try:
        return output_deviation(reference, output)
    except MeasurementError as exc:
        return {"error": str(exc), "output": reference[0]}


def timed_loop(call: Any, clock: Any, backend: Any, job: Job, first_clock: Any = None
               ) -> tuple[float, Measurement, Any, int]:
    """The first call (timed by `first_clock`, else `clock`), the job's warm-up calls, then the adaptive (or
    interleaved) timed loop under the backend's memory tracker: (first call's seconds, measurement, tracker, peak)."""
    first_s = (first_clock or clock).time_call(call)
    for _ in range(job.warmup_iters):
        call()
    tracker = backend.memory_tracker()
    tracker.reset()
    measurement = measure_adaptive(call, clock, time_budget_s=job.time_budget_s, target_rel_ci=job.target_rel_ci,
                                   min_samples=job.min_samples, max_samples=job.max_samples)
    return first_s, measurement, tracker, tracker.peak_bytes()


def measure_inference(job: Job) -> Record:
    """Measure one inference configuration and return an ok Record (exceptions propagate to the caller)."""
    apply_threads(job)
    backend, _ = check_supported(job)
    t0 = time.perf_counter()
    loaded = zoo.load_model(job.model, job.size, overrides=job.overrides or None)
    build_s = time.perf_counter() - t0
    facts, profile = model_facts(loaded, job.seq_len)
    inputs = loaded.make_inputs(job.batch_size, job.seq_len)
    # outside startup_s; it warms torch's CPU caches, so a torch bf16/int8 first_inference_s is not quite cold
    reference = reference_output(loaded, inputs) if wants_deviation(job) else None
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call, prep_facts = backend.prepare(loaded, inputs, job.precision, job.mode)
    prepare_s = time.perf_counter() - t1
    if prep_facts.get("torch_model_bytes_resident"):
        # the compiled model does not need the torch weights: free them (meta tensors keep the shapes) so that the
        # peak measured below is the engine's, not the engine's plus an idle copy of the torch model
        loaded.model.to("meta")
        gc.collect()
        prep_facts["torch_model_released"] = True
    # the peak includes the reference output held for the comparison (its reference_bytes)
    first_s, measurement, tracker, peak = timed_loop(call, backend.clock(), backend, job)
    extra = {**prep_facts, "build_s": build_s, "prepare_s": prepare_s, "warmup_iters": job.warmup_iters,
             "wall_time_s": measurement.wall_time_s, "host_steal_share": measurement.steal_share,
             "modality": loaded.modality,
             "seq_len_effective": job.seq_len or loaded.default_seq_len,
             "model_facts": loaded.describe(), "forward_profile": profile}
    if reference is not None:
        extra["deviation"] = deviation_of(reference, call())
    if hasattr(tracker, "reserved_bytes"):
        extra["peak_reserved_bytes"] = tracker.reserved_bytes
    return Record.from_samples(
        measurement.samples_s, sample_rounds=measurement.rounds, target_rel_ci=job.target_rel_ci, **job.identity(),
        family=loaded.family, device=backend.device(), startup_s=build_s + prepare_s, first_inference_s=first_s,
        peak_memory_bytes=peak, memory_method=tracker.method, threads=backend.threads(),
        cpu_time_s=measurement.cpu_time_s, load_avg_1m=load_average_1m(), extra=extra, **facts,
    )
