"""One architecture on one platform, inside a child process: build, inputs, PyTorch forward, the platform's
preparation (OpenVINO conversion, ONNX export for the browser) and a short timed loop.

Each stage writes its name to the job's stage file before it starts, so that when the child hangs or dies the parent
still knows where. Any exception becomes a failed record naming its stage and the error's first line (the last
frames are kept in extra["error_detail"]); a platform absent here is a skipped record.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from kit.coverage.architectures import Architecture
from kit.coverage.inputs import make_inputs
from kit.coverage.shrink import shrink_config
from kit.errors import ConversionError, UnsupportedConfiguration
from kit.records import Record
from kit.timing import load_average_1m, measure_adaptive

STAGES = ("build", "input", "forward", "conversion", "export", "runtime")
PREPARE_STAGE = {"cpu": "forward", "openvino": "conversion", "wasm": "export"}  # what a platform's prepare does
TORCH_STAGES = ("build", "input", "forward")  # stages that fail on every platform alike
WARMUP_CALLS = 2
TARGET_REL_CI = 0.05
MIN_SAMPLES = 5
ERROR_DETAIL_CHARS = 2000
SOURCE_LOCATION = re.compile(r"(Exception from|Check '[^\n]*?' failed at) \S+:\d+:\s*")
INTRO_LINES = 3
log = logging.getLogger(__name__)


def first_line(exc: BaseException) -> str:
    """'Type: first line of the message' (the type alone when it is empty). Source locations that OpenVINO puts
    before its message ('Exception from src/...cpp:117:') are left out, and a line that only introduces the next
    (it ends with ':') is joined with it."""
    lines = [ln.strip() for ln in SOURCE_LOCATION.sub("", str(exc)).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    for line in lines[1:INTRO_LINES]:
        if not text.endswith(":"):
            break
        text = f"{text} {line}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def config_key(model_type: str, platform: str) -> str:
    """The configuration key of an architecture on a platform within a coverage run."""
    return f"{model_type}|tiny|inference|{platform}|fp32|bs1"


def identity(job: dict[str, Any]) -> dict[str, Any]:
    """The Record identity fields of a coverage job."""
    arch = job["architecture"]
    return {"run_id": job["run_id"], "config_key": config_key(arch["model_type"], job["platform"]),
            "model": arch["model_type"], "family": arch["model_type"], "size": "tiny", "mode": "inference",
            "platform": job["platform"], "precision": "fp32", "batch_size": job["batch_size"],
            "seq_len": job["seq_len"]}


def facts(arch: dict[str, Any], stage: str) -> dict[str, Any]:
    """extra of every coverage record: modality, the stage reached, the classes built, the transformers version."""
    import transformers

    return {"coverage": True, "modality": arch["modality"], "stage": stage, "model_class": arch["model_class"],
            "config_class": arch["config_class"], "auto_mapping": arch["auto_mapping"],
            "transformers_version": transformers.__version__, "model_facts": {"modality": arch["modality"]}}


def build_model(arch: Architecture) -> tuple[torch.nn.Module, Any]:
    """transformers' own model class built from its own config class shrunk to a tiny size: seeded random weights,
    fp32, eval mode; nothing downloaded, no repository code (the classes come from the transformers package)."""
    import transformers

    config = shrink_config(getattr(transformers, arch.config_class)())
    model_class = getattr(transformers, arch.model_class)
    if not model_class.__module__.startswith("transformers."):
        raise TypeError(f"{arch.model_class} is not transformers' own class ({model_class.__module__})")
    torch.manual_seed(0)
    return model_class(config).float().eval(), config


def failed_stage(stage: str, exc: BaseException) -> str:
    """The stage to blame: a browser platform's preparation fails in the export only on a ConversionError (the ONNX
    exporter's); anything else there (the page, onnxruntime loading the graph) is the runtime's."""
    return "runtime" if stage == "export" and not isinstance(exc, ConversionError) else stage


class Stages:
    """The stage a child is in, written to a file the parent reads when the child never answers."""

    def __init__(self, path: str | None) -> None:
        self.path, self.current = path, "start"

    def enter(self, stage: str) -> None:
        """Mark the start of a stage."""
        self.current = stage
        if self.path:
            Path(self.path).write_text(stage)


def loaded_architecture(arch: Architecture, model: torch.nn.Module, config: Any, seq_len: int) -> Any:
    """A zoo LoadedModel around the built model, as the backends and kit.zoo.forward_profile take it: its inputs are
    the coverage input makers' (seq_len tokens where a length is free)."""
    from kit.zoo.model import LoadedModel

    def maker(config: Any, batch_size: int, length: int | None, with_labels: bool, gen: torch.Generator) -> dict:
        return make_inputs(model, config, arch.modality, batch_size=batch_size, seq_len=length or seq_len)

    return LoadedModel(arch.model_type, arch.model_type, "tiny", arch.modality, model, config, None, maker=maker)


def profile_facts(loaded: Any, seq_len: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record fields n_params and flops_per_sample, extra with the forward profile and the model's facts): counted
    outside any timing, so that the predictor can learn from the row (kit.predict.data.architecture_rows)."""
    from kit.runners.inference import model_facts

    fields, profile = model_facts(loaded, seq_len)
    try:
        described = loaded.describe()
    except Exception as exc:  # a config that cannot describe itself keeps its modality only
        log.warning("cannot describe %s: %s", loaded.name, exc)
        described = {}
    return fields, {"forward_profile": profile, "model_facts": {**described, "modality": loaded.modality}}


def measure_platform(job: dict[str, Any]) -> dict[str, Any]:
    """Measure job["architecture"] on job["platform"] and return a Record as JSON (ok, failed or skipped)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    stages = Stages(job.get("stage_file"))
    arch = Architecture(**{**job["architecture"], "mappings": tuple(job["architecture"]["mappings"])})
    try:
        return _measure(job, arch, stages).to_json()
    except UnsupportedConfiguration as exc:
        return Record.failure("skipped", str(exc), device="", **identity(job),
                              extra=facts(job["architecture"], stages.current)).to_json()
    except Exception as exc:  # every failure of an architecture is a row with its stage and real error
        detail = "".join(traceback.format_exception(exc)[-4:])[-ERROR_DETAIL_CHARS:]
        extra = {**facts(job["architecture"], failed_stage(stages.current, exc)), "error_detail": detail}
        return Record.failure("failed", first_line(exc), device="", **identity(job), extra=extra).to_json()


def _measure(job: dict[str, Any], arch: Architecture, stages: Stages) -> Record:
    from kit.backends import get_backend

    backend = get_backend(job["platform"])
    ok, why = backend.available()
    if not ok:
        raise UnsupportedConfiguration(f"platform {job['platform']} unavailable: {why}")
    stages.enter("build")
    model, config = build_model(arch)
    stages.enter("input")
    inputs = make_inputs(model, config, arch.modality, batch_size=job["batch_size"], seq_len=job["seq_len"])
    stages.enter("forward")
    with torch.inference_mode():
        model(**inputs)
    loaded = loaded_architecture(arch, model, config, job["seq_len"])
    fields, counted = profile_facts(loaded, job["seq_len"])
    stages.enter(PREPARE_STAGE.get(job["platform"], "conversion"))
    call, prepared = backend.prepare(loaded, inputs, "fp32", "inference")
    stages.enter("runtime")
    clock = backend.clock()
    first_s = clock.time_call(call)
    for _ in range(WARMUP_CALLS):
        call()
    measurement = measure_adaptive(call, clock, time_budget_s=job["time_budget_s"], target_rel_ci=TARGET_REL_CI,
                                   min_samples=MIN_SAMPLES)
    extra = {**facts(job["architecture"], "done"), **counted, "platform_facts": _plain(prepared),
             "input_shapes": {k: list(v.shape) for k, v in inputs.items() if isinstance(v, torch.Tensor)}}
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    return Record.from_samples(measurement.samples_s, target_rel_ci=TARGET_REL_CI, **identity(job),
                               device=backend.device(), first_inference_s=first_s, threads=backend.threads(),
                               cpu_time_s=measurement.cpu_time_s, load_avg_1m=load_average_1m(), extra=extra,
                               **fields)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """A platform's facts reduced to JSON scalars, lists and dicts (the compiled model's layer counts...)."""
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool | list | dict | type(None))}
