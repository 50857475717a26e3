"""What to run: `SweepSpec` (a validated matrix), `Job` (one configuration), and YAML parameter loading."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kit.backends import PRECISIONS, known_platforms
from kit.errors import ConfigError
from kit.records import MODES

TRAINING_OPTIONS = {"lr": 1e-4, "accumulation_steps": 1, "gradient_checkpointing": False, "fused_optimizer": True}
# generation mode: greedy, exactly new_tokens tokens per sequence; kv_cache: transformers' dynamic or static cache
GENERATION_OPTIONS = {"new_tokens": 32, "kv_cache": "dynamic"}
KV_CACHES = ("dynamic", "static")


PROCESS_SUFFIX = re.compile(r"\|p(\d+)$")  # Job.config_key's last part when several processes measure one configuration


def split_process(config_key: str) -> tuple[str, int]:
    """A config key without its process part, and the process index (0 when it has none)."""
    match = PROCESS_SUFFIX.search(config_key)
    return (config_key[:match.start()], int(match.group(1))) if match else (config_key, 0)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _as_list(name: str, value: Any) -> list:
    if isinstance(value, str | int):
        value = [value]
    _require(isinstance(value, list | tuple) and len(value) > 0, f"{name} must be a non-empty list, got {value!r}")
    return list(value)


def new_run_id() -> str:
    """A sortable run id: UTC timestamp plus a short random suffix."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{stamp}-{hashlib.sha1(str(dt.datetime.now().timestamp()).encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Job:
    """One configuration to measure, with the measurement settings; sent to a child process as a dict."""

    run_id: str
    model: str
    size: str
    mode: str
    platform: str
    precision: str
    batch_size: int
    seq_len: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    time_budget_s: float = 2.0
    target_rel_ci: float = 0.02
    min_samples: int = 10
    max_samples: int = 100_000
    warmup_iters: int = 3
    threads: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    process: int = 0  # which of several processes measuring the same configuration (an A/B's replicas); 0 alone

    @property
    def config_key(self) -> str:
        """A readable key, unique within a run, naming every axis of the configuration."""
        parts = [self.model, self.size, self.mode, self.platform, self.precision, f"bs{self.batch_size}"]
        parts.append(f"seq{self.seq_len}" if self.seq_len else "seqdefault")
        if self.overrides:
            parts.append("ov" + hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8])
        if self.training:
            parts.append("tr" + hashlib.sha1(json.dumps(self.training, sort_keys=True).encode()).hexdigest()[:8])
        if self.generation:
            options = {**GENERATION_OPTIONS, **self.generation}
            parts.append(f"new{options['new_tokens']}-{options['kv_cache']}")
        if self.process:
            parts.append(f"p{self.process}")
        return "|".join(parts)

    def identity(self) -> dict[str, Any]:
        """The Record identity fields of this job (family and device are filled in by the runner)."""
        return {
            "run_id": self.run_id,
            "config_key": self.config_key,
            "model": self.model,
            "size": self.size,
            "mode": self.mode,
            "platform": self.platform,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "params_json": json.dumps(self.params(), sort_keys=True),
        }

    def params(self) -> dict[str, Any]:
        """The settings a record keeps: every field, the process index only when there are several."""
        params = asdict(self)
        if not self.process:
            del params["process"]
        return params

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for pickling to a child."""
        return asdict(self)


@dataclass(frozen=True)
class SweepSpec:
    """A matrix of models x platforms x precisions x batch sizes x modes, validated on construction."""

    models: list[str]
    platforms: list[str] = field(default_factory=lambda: ["cpu"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    modes: list[str] = field(default_factory=lambda: ["inference"])
    size: str = "tiny"
    seq_len: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    time_budget_s: float = 2.0
    target_rel_ci: float = 0.02
    min_samples: int = 10
    max_samples: int = 100_000
    warmup_iters: int = 3
    timeout_s: float = 600.0
    memory_limit_bytes: int | None = None
    threads: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    # generation mode: prompt lengths (one configuration each; null: seq_len) and GENERATION_OPTIONS
    prompt_lens: list[int] | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    # interleaved rounds (kit.runners.rounds); interleave False measures each configuration in one sequential block
    interleave: bool = True
    rounds: int = 20
    group_size: int = 8
    memory_cap_bytes: int | None = None
    reference: str | None = "matmul"

    def __post_init__(self) -> None:
        from kit import zoo
        from kit.parameters import check_sweep_fields

        check_sweep_fields({name: getattr(self, name) for name in self.__dataclass_fields__})
        models = [zoo.resolve_model(m) for m in _as_list("models", self.models)]
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "size", zoo.validate_size(self.size))
        self._check_choices("platforms", known_platforms())
        self._check_choices("precisions", list(PRECISIONS))
        self._check_choices("modes", list(MODES))
        batch_sizes = _as_list("batch_sizes", self.batch_sizes)
        for b in batch_sizes:
            _require(isinstance(b, int) and not isinstance(b, bool) and b > 0,
                     f"batch_sizes must be positive integers, got {b!r}")
        object.__setattr__(self, "batch_sizes", batch_sizes)
        _require(self.seq_len is None or (isinstance(self.seq_len, int) and self.seq_len > 0),
                 f"seq_len must be a positive integer or null, got {self.seq_len!r}")
        for name in ("time_budget_s", "target_rel_ci", "timeout_s"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and value > 0, f"{name} must be positive, got {value!r}")
        for name in ("min_samples", "max_samples"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
        _require(self.min_samples <= self.max_samples,
                 f"min_samples ({self.min_samples}) must not exceed max_samples ({self.max_samples})")
        _require(isinstance(self.warmup_iters, int) and self.warmup_iters >= 0,
                 f"warmup_iters must be a non-negative integer, got {self.warmup_iters!r}")
        _require(self.threads is None or (isinstance(self.threads, int) and self.threads > 0),
                 f"threads must be a positive integer or null, got {self.threads!r}")
        _require(self.memory_limit_bytes is None or self.memory_limit_bytes > 0,
                 f"memory_limit_bytes must be positive or null, got {self.memory_limit_bytes!r}")
        self._check_rounds()
        unknown = sorted(set(self.training) - set(TRAINING_OPTIONS))
        _require(not unknown, f"unknown training option(s) {unknown}; known: {sorted(TRAINING_OPTIONS)}")
        steps = self.training.get("accumulation_steps", 1)
        _require(isinstance(steps, int) and steps >= 1, f"accumulation_steps must be an integer >= 1, got {steps!r}")
        self._check_generation()
        if self.run_id is None:
            object.__setattr__(self, "run_id", new_run_id())

    def _check_rounds(self) -> None:
        from kit.runners.reference import REFERENCES

        _require(isinstance(self.interleave, bool), f"interleave must be true or false, got {self.interleave!r}")
        for name in ("rounds", "group_size"):
            value = getattr(self, name)
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                     f"{name} must be a positive integer, got {value!r}")
        cap = self.memory_cap_bytes
        _require(cap is None or (isinstance(cap, int) and not isinstance(cap, bool) and cap > 0),
                 f"memory_cap_bytes must be a positive integer or null, got {cap!r}")
        _require(self.reference is None or self.reference in REFERENCES,
                 f"unknown reference {self.reference!r}; known: {', '.join(REFERENCES)} (or null for none)")

    def _check_generation(self) -> None:
        unknown = sorted(set(self.generation) - set(GENERATION_OPTIONS))
        _require(not unknown, f"unknown generation option(s) {unknown}; known: {sorted(GENERATION_OPTIONS)}")
        options = {**GENERATION_OPTIONS, **self.generation}
        new = options["new_tokens"]
        _require(isinstance(new, int) and not isinstance(new, bool) and new >= 2,
                 f"new_tokens must be an integer >= 2 (time per output token needs two tokens), got {new!r}")
        _require(options["kv_cache"] in KV_CACHES,
                 f"unknown kv_cache {options['kv_cache']!r}; known: {', '.join(KV_CACHES)}")
        if self.prompt_lens is not None:
            lens = _as_list("prompt_lens", self.prompt_lens)
            for n in lens:
                _require(isinstance(n, int) and not isinstance(n, bool) and n > 0,
                         f"prompt_lens must be positive integers, got {n!r}")
            _require("generation" in self.modes, "prompt_lens apply to the generation mode; add it to modes")
            object.__setattr__(self, "prompt_lens", lens)

    def round_plan(self) -> Any:
        """The kit.runners.rounds.RoundPlan of this spec: the time budget spread over its rounds."""
        from kit.runners.rounds import RoundPlan, burst_seconds

        return RoundPlan(rounds=self.rounds, burst_s=burst_seconds(self.time_budget_s, self.rounds),
                         group_size=self.group_size, memory_cap_bytes=self.memory_cap_bytes,
                         reference=self.reference, threads=self.threads, timeout_s=self.timeout_s,
                         memory_limit_bytes=self.memory_limit_bytes)

    def _check_choices(self, name: str, allowed: list[str]) -> None:
        values = _as_list(name, getattr(self, name))
        for value in values:
            _require(value in allowed, f"unknown {name[:-1]} {value!r} in {name}; allowed: {', '.join(allowed)}")
        object.__setattr__(self, name, values)

    def jobs(self) -> list[Job]:
        """Every configuration of the matrix, in a stable order (model, mode, platform, precision, prompt length,
        batch); generation jobs take each of prompt_lens as their seq_len."""
        grid = itertools.product(self.models, self.modes, self.platforms, self.precisions)
        return [
            Job(run_id=self.run_id, model=m, size=self.size, mode=mode, platform=p, precision=prec, batch_size=b,
                seq_len=seq, overrides=dict(self.overrides), time_budget_s=self.time_budget_s,
                target_rel_ci=self.target_rel_ci, min_samples=self.min_samples, max_samples=self.max_samples,
                warmup_iters=self.warmup_iters, threads=self.threads,
                training=dict(self.training) if mode == "training" else {},
                generation={**GENERATION_OPTIONS, **self.generation} if mode == "generation" else {})
            for m, mode, p, prec in grid for seq in self._seq_lens(mode) for b in self.batch_sizes
        ]

    def _seq_lens(self, mode: str) -> list[int | None]:
        return list(self.prompt_lens) if mode == "generation" and self.prompt_lens else [self.seq_len]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the spec, stored with the run."""
        return asdict(self)


SPEC_FIELDS = tuple(SweepSpec.__dataclass_fields__)


def load_parameters(path: str | Path) -> dict[str, Any]:
    """Read a YAML parameter file into a dict; ConfigError if it is missing or not a mapping."""
    path = Path(path)
    _require(path.is_file(), f"parameter file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"parameter file {str(path)!r} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"parameter file {str(path)!r} is not valid YAML: {problem}{where}") from None
    _require(isinstance(data, dict), f"parameter file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def spec_from_parameters(params: dict[str, Any]) -> SweepSpec:
    """A SweepSpec from a parameter mapping; unknown keys are rejected by name."""
    unknown = sorted(set(params) - set(SPEC_FIELDS))
    names = ", ".join(map(repr, unknown))
    _require(not unknown, f"unknown sweep parameter(s) {names}; known: {', '.join(SPEC_FIELDS)}")
    _require("models" in params, "the sweep parameters name no models (a 'models' list is required)")
    return SweepSpec(**params)
