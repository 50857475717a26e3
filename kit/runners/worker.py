"""Entry point of the child process: turn a job dict into a record dict, whatever happens inside."""

from __future__ import annotations

import os
from typing import Any

from kit.config import Job
from kit.errors import UnsupportedConfiguration
from kit.records import Record


def run_job(job_dict: dict[str, Any]) -> dict[str, Any]:
    """Measure one job; unsupported configurations become skipped records, other exceptions propagate."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    job = Job(**job_dict)
    try:
        if job.mode == "training":
            from kit.runners.training import measure_training

            record = measure_training(job)
        elif job.mode == "generation":
            from kit.runners.generation import measure_generation

            record = measure_generation(job)
        else:
            from kit.runners.inference import measure_inference

            record = measure_inference(job)
    except UnsupportedConfiguration as exc:
        record = Record.failure("skipped", str(exc), family="", device="", **job.identity())
    return record.to_json()
