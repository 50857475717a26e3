"""A recommendation request validated before any work (notebook parameters and `benchkit recommend` arguments), and
the predictor it is answered with."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.predict import Predictor, check_batch_sizes
from kit.recommend.core import OBJECTIVES, RANK_BY, RESULT_COLUMNS, _check, check_rank_by, measured_frame, recommend
from kit.recommend.fleet import check_price_values
from kit.recommend.generation import GENERATION_OBJECTIVES


@dataclass(frozen=True)
class Request:
    """What to recommend, validated on construction; budgets in GiB and milliseconds as in the notebook."""

    model: str
    objective: str = "throughput"
    memory_budget_gb: float | None = None
    latency_bound_ms: float | None = None
    platforms: list[str] | None = None
    hourly_prices: dict[str, float] | None = None
    mode: str = "inference"
    batch_sizes: list[int] | None = None
    precisions: list[str] | None = None
    size: str | None = None
    budgets_gb: list[float] | None = None  # for the memory-constrained search (report.budget_search)
    rank_by: str = "point"  # or "bound": the pessimistic end of each candidate's interval
    machine_prices: dict[str, float] | None = None  # across a fleet: hourly price per hardware id or machine label
    coverage: float = 0.9  # of the predictor's intervals (kit.predict.Predictor)

    def __post_init__(self) -> None:
        from kit import zoo
        from kit.backends import PRECISIONS, known_platforms

        object.__setattr__(self, "model", zoo.resolve_model(self.model))
        budgets = [("budgets_gb", b) for b in self.budgets_gb or []]
        for name, value in (("memory_budget_gb", self.memory_budget_gb), ("latency_bound_ms", self.latency_bound_ms),
                            *budgets):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"{name} must be a positive number or null, got {value!r}")
        _check(self.objective, None, None, self.hourly_prices)
        check_rank_by(self.rank_by)
        if self.machine_prices is not None:
            check_price_values(self.machine_prices)
        Predictor(coverage=self.coverage)  # checks it
        if self.mode not in ("inference", "training"):
            raise ConfigError(f"mode must be 'inference' or 'training', got {self.mode!r}")
        for name, values, known in (("platforms", self.platforms, known_platforms()),
                                    ("precisions", self.precisions, list(PRECISIONS))):
            unknown = [v for v in values or [] if v not in known]
            if unknown:
                raise ConfigError(f"unknown {name} {unknown}; known: {', '.join(known)}")
        check_batch_sizes(self.batch_sizes)
        if self.size is not None:
            zoo.validate_size(self.size)

    @property
    def memory_budget_bytes(self) -> float | None:
        """The memory budget in bytes (GiB x 2**30), or None."""
        return None if self.memory_budget_gb is None else self.memory_budget_gb * 2**30

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `recommend` (after data and model)."""
        return {"objective": self.objective, "memory_budget_bytes": self.memory_budget_bytes,
                "latency_bound_s": None if self.latency_bound_ms is None else self.latency_bound_ms / 1e3,
                "platforms_allowed": self.platforms, "hourly_prices": self.hourly_prices, "mode": self.mode,
                "size": self.size, "batch_sizes": self.batch_sizes, "precisions": self.precisions,
                "rank_by": self.rank_by}


def fit_predictor(data: Any, coverage: float = 0.9) -> Predictor | None:
    """A predictor of every target fitted on all measurements, or None (measurements only) with fewer than two."""
    frame = measured_frame(data)
    return Predictor(coverage=coverage).fit(frame) if len(frame) >= 2 else None


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    """The `benchkit recommend` arguments."""
    parser.add_argument("--model", required=True, help="zoo name or local folder, as stored in results")
    parser.add_argument("--objective", default="throughput", choices=OBJECTIVES + GENERATION_OBJECTIVES,
                        help="ttft, tpot and tokens_per_s rank measured text-generation results")
    parser.add_argument("--mode", default="inference", choices=("inference", "training"))
    parser.add_argument("--prompt-len", type=int, help="generation objectives: only this prompt length")
    parser.add_argument("--size", help="tiny or base (default: the most measured)")
    parser.add_argument("--memory-budget-gb", type=float, help="GiB; predictions must fit with their upper bound")
    parser.add_argument("--latency-bound-ms", type=float,
                        help="per-batch latency bound in milliseconds (generation objectives: the TTFT bound)")
    parser.add_argument("--platforms", nargs="+", help="allowed platforms, most preferred first")
    parser.add_argument("--price", nargs="+", default=[], metavar="PLATFORM=USD_PER_HOUR",
                        help="hourly prices, e.g. cpu=0.1 cuda=2.5 (cost per million inferences)")
    parser.add_argument("--max-rel-l2", type=float, help="largest output error (relative L2 vs fp32 PyTorch) allowed")
    parser.add_argument("--no-fallback", action="store_true", help="never leave the allowed platforms")
    parser.add_argument("--rank-by", default="point", choices=RANK_BY,
                        help="point values, or the pessimistic end of each interval (bound)")
    parser.add_argument("--threads", type=int,
                        help="intra-op threads the candidates run with (default: each platform's default)")
    parser.add_argument("--scale", choices=["measured", "steady"], default="measured",
                        help="steady: learn beside the machine reference and give today's figures, with the reference "
                             "measured now on this machine (about a second); needs results of this machine in rounds")
    parser.add_argument("--top", type=int, default=10, help="rows to print")
    parser.add_argument("--db", default=None, help="DuckDB file (default outputs/benchkit.duckdb)")


def parse_prices(items: list[str]) -> dict[str, float]:
    """{'cpu': 0.1} from ['cpu=0.1']; ConfigError naming a malformed item."""
    prices = {}
    for item in items:
        platform, _, value = item.partition("=")
        try:
            prices[platform.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--price items look like cpu=0.1, got {item!r}") from None
        if not platform.strip() or prices[platform.strip()] < 0:
            raise ConfigError(f"--price items look like cpu=0.1 with a non-negative price, got {item!r}")
    return prices


def cmd_recommend(args: argparse.Namespace) -> int:
    """Print the ranked configurations and the notes (fallbacks, exclusions); exit 1 when nothing is feasible."""
    from kit import storage, zoo

    # a local folder is checked (valid config.json, no code of its own) before the store is opened
    model = zoo.resolve_model(args.model) if Path(args.model).expanduser().is_dir() else args.model
    prices = parse_prices(args.price)
    budget = args.memory_budget_gb * 2**30 if args.memory_budget_gb is not None else None
    bound = args.latency_bound_ms / 1e3 if args.latency_bound_ms is not None else None
    if args.objective in GENERATION_OBJECTIVES:
        if args.threads is not None:
            raise ConfigError(f"--threads {args.threads}: generation objectives rank measured results as they ran")
        if args.scale != "measured":
            raise ConfigError(f"--scale {args.scale}: generation objectives rank measured results as they ran")
        return _recommend_generation(args, model, budget, bound)
    _check(args.objective, budget, bound, prices)
    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    data, to_today, scale_note = con, None, ""
    if args.scale == "steady":
        data, to_today, scale_note = steady_request(measured_frame(con), args.threads)
    table = recommend(data, model, args.objective, memory_budget_bytes=budget, latency_bound_s=bound,
                      platforms_allowed=args.platforms, hourly_prices=prices or None, mode=args.mode, size=args.size,
                      fallback=not args.no_fallback, max_rel_l2=args.max_rel_l2, rank_by=args.rank_by,
                      threads=args.threads, to_today=to_today)
    if scale_note:
        print(f"note: {scale_note}")
    for note in table.attrs["notes"]:
        print(f"note: {note}")
    if table.empty:
        print(f"no configuration of {args.model} satisfies the constraints")
        return 1
    columns = [c for c in RESULT_COLUMNS if c != "variant" and (c != "cost_per_million" or prices)]
    print(table[columns].head(args.top).to_string(index=False))
    return 0


def steady_request(frame: Any, threads: int | None) -> tuple[Any, dict[str, float], str]:
    """For `recommend --scale steady`: the data on the steady scale, the factors that turn it into today's figures
    with the machine reference measured now on this machine at the candidates' thread count (given, else the CPU's
    default in the store), and a note saying how fast the machine is now against its typical speed."""
    from kit.environment import hardware_info
    from kit.predict.steady import factors_to_today, steady_data, typical_of
    from kit.recommend.core import default_threads
    from kit.runners.reference import reference_now

    if threads is not None and not threads > 0:
        raise ConfigError(f"threads must be a positive whole number or None, got {threads!r}")
    count = threads or int(default_threads(frame).get("cpu") or os.cpu_count() or 1)
    machine = hardware_info()["hardware_id"]
    typical = typical_of(frame, machine, count)  # refuses before anything is measured
    factors = factors_to_today(typical, reference_now(count))
    return steady_data(frame), factors, (
        f"steady scale: the machine reference runs at {factors['throughput']:.0%} of its typical speed here now "
        f"({count} thread(s)); throughput and latency are today's")


def _recommend_generation(args: argparse.Namespace, model: str, budget: float | None, bound: float | None) -> int:
    """`benchkit recommend --objective ttft|tpot|tokens_per_s`: measured generation results, ranked."""
    from kit import storage
    from kit.recommend.generation import recommend_generation

    if args.prompt_len is not None and args.prompt_len < 1:
        raise ConfigError(f"--prompt-len must be a positive integer, got {args.prompt_len!r}")
    check_rank_by(args.rank_by)
    con = storage.connect(args.db or storage.DEFAULT_DB, read_only=True)
    records = storage.load_records(con)
    table = recommend_generation(records, model, args.objective, memory_budget_bytes=budget, ttft_bound_s=bound,
                                 prompt_len=args.prompt_len, platforms_allowed=args.platforms, rank_by=args.rank_by)
    if table.empty:
        measured = len(recommend_generation(records, model, args.objective))
        print(f"none of the {measured} measured generation configurations of {args.model} satisfies the constraints"
              if measured else f"no generation results of {args.model} in the store (measure some with "
              f"`benchkit bench --models {args.model} --modes generation`)")
        return 1
    print(table.head(args.top).to_string(index=False))
    return 0
