"""The types of sweep parameters, checked in one place (pydantic, strict) before any work.

`check_sweep_fields` runs first in `SweepSpec`, whatever built it (a YAML file, command-line flags, a notebook): a
value of the wrong type ("lots" as a byte count, 1.5 as a count, a list where a mapping belongs, an infinite timeout,
an empty or multi-line run id) is one ConfigError naming the key and the value. Ranges and choices (positive sizes,
known platforms) are checked by `SweepSpec` itself, after the types.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kit.errors import ConfigError

Finite = Annotated[float, Field(allow_inf_nan=False)]
Names = list[str] | str


class SweepFields(BaseModel):
    """Every SweepSpec field with its type; strict: no string is read as a number, no bool as a count."""

    model_config = ConfigDict(extra="forbid", strict=True)

    models: list[Any] | Any  # zoo names or folder paths (str or os.PathLike), checked below
    platforms: Names
    precisions: Names
    batch_sizes: list[int] | int
    modes: Names
    size: str
    seq_len: int | None
    overrides: dict[str, Any]
    run_id: str | None
    time_budget_s: Finite
    target_rel_ci: Finite
    min_samples: int
    max_samples: int
    warmup_iters: int
    timeout_s: Finite
    memory_limit_bytes: int | None
    threads: int | None
    training: dict[str, Any]
    prompt_lens: list[int] | int | None
    generation: dict[str, Any]
    interleave: bool
    rounds: int
    group_size: int
    memory_cap_bytes: int | None
    reference: str | None


def _describe(error: dict[str, Any]) -> str:
    key = str(error["loc"][0])
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"parameter {key}: {message}, got {error['input']!r}"


def check_sweep_fields(values: dict[str, Any]) -> None:
    """ConfigError naming the first parameter whose value has the wrong type (or an unusable run id)."""
    try:
        SweepFields.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors()
        # a union reports one error per alternative; the list alternative says most about a list given
        raise ConfigError(_describe(errors[-1] if isinstance(errors[-1]["input"], list) else errors[0])) from None
    run_id = values.get("run_id")
    if run_id is not None and (not run_id.strip() or not run_id.isprintable()):
        raise ConfigError(f"parameter run_id: must be non-empty text on one line, got {run_id!r}")
    models = values.get("models")
    for model in models if isinstance(models, list) else [models]:
        if not isinstance(model, str | os.PathLike):
            raise ConfigError(f"parameter models: each model is a zoo name or a folder path, got {model!r}")
