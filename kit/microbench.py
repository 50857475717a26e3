"""Peak compute (a large matmul per precision) and memory bandwidth (a large copy) of a platform, measured in seconds.

The numbers put results on a roofline: achieved FLOP/s over the measured peak. They are best-of-N rates, the least
disturbed repetition, because a peak is what the hardware can do, not what it usually does while shared. Matrices
grow until one product takes a measurable time; copies are larger than the CPU's last-level cache. Stored with the
hardware row (peak_flops_json, keyed by platform) so each machine is measured once. Each entry also holds what
depthwise convolutions cost on the platform (`kit.depthwise`), which run far below both peaks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from kit import depthwise
from kit.errors import ConfigError

PLATFORM_DEVICES = {"cpu": "cpu", "cuda": "cuda", "rocm": "cuda", "mps": "mps"}
MATMUL_PRECISIONS = ("fp32", "bf16", "fp16")
MAX_MATMUL_N = {"cpu": 2048, "cuda": 8192, "rocm": 8192, "mps": 4096}
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30, "rocm": 2 * 2**30, "mps": 512 * 2**20}
MIN_CALL_S = 0.01  # a product shorter than this is dominated by call overhead; the matrix grows until it is longer


@dataclass(frozen=True)
class Peaks:
    """Measured peaks of one platform: FLOP/s per precision, copy bandwidth (bytes read + written per second)."""

    platform: str
    device: str
    flops_per_s: dict[str, float]
    mem_bandwidth_bytes_per_s: float
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    depthwise: dict[str, Any] = field(default_factory=dict)  # kit.depthwise.measure_costs: {precision: {threads: ...}}

    def to_json(self) -> dict[str, Any]:
        """The stored form, one entry of the hardware row's peak_flops_json."""
        return asdict(self)


def _sync(device: str) -> Callable[[], None]:
    import torch

    if device == "cuda":
        return torch.cuda.synchronize
    if device == "mps":
        return torch.mps.synchronize
    return lambda: None


def _best_time_s(fn: Callable[[], Any], sync: Callable[[], None], budget_s: float, max_reps: int = 50) -> float:
    """The shortest of repeated timed calls (one untimed warm-up first), within about budget_s."""
    fn()
    sync()
    best, start = float("inf"), time.perf_counter()
    for _ in range(max_reps):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return best


def _timer(device: str) -> depthwise.Timer:
    """_best_time_s with the device's synchronisation: (call, budget_s, max_reps) -> best seconds per call."""
    sync = _sync(device)
    return lambda fn, budget_s, max_reps: _best_time_s(fn, sync, budget_s, max_reps)


def depthwise_costs(platform: str, precisions: tuple[str, ...] = MATMUL_PRECISIONS,
                    budget_s: float = 0.4) -> dict[str, Any]:
    """What depthwise convolutions cost on one torch platform, per precision and thread count
    (`kit.depthwise.measure_costs`, about budget_s per precision and thread count)."""
    device = PLATFORM_DEVICES[platform]
    return depthwise.measure_costs(device, precisions, budget_s, _timer(device))


def matmul_flops_per_s(device: str, precision: str, budget_s: float = 0.4, max_n: int = 2048) -> tuple[float, int]:
    """Best FLOP/s of an n x n x n product (2 n^3 FLOPs), n doubled from 512 until one call takes >= MIN_CALL_S."""
    import torch

    from kit.backends.torch_backends import DTYPES

    dtype, sync, n = DTYPES[precision], _sync(device), min(512, max_n)
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        best = _best_time_s(lambda a=a, b=b: torch.mm(a, b), sync, budget_s / 4, 5)
        if best >= MIN_CALL_S or n >= max_n:
            break
        n *= 2
    best = _best_time_s(lambda: torch.mm(a, b), sync, budget_s)
    return 2.0 * n**3 / best, n


def copy_bandwidth_bytes_per_s(device: str, n_bytes: int, budget_s: float = 0.4) -> float:
    """Best bandwidth of copying an n_bytes float32 tensor into another, counting bytes read plus bytes written."""
    import torch

    src = torch.ones(n_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = _best_time_s(lambda: dst.copy_(src), _sync(device), budget_s)
    return 2.0 * src.numel() * 4 / best


def measure_peaks(platform: str = "cpu", precisions: tuple[str, ...] = MATMUL_PRECISIONS,
                  budget_s: float = 0.4) -> Peaks:
    """Measure one platform's matmul peak per precision, its copy bandwidth and what depthwise convolutions cost on
    it (several seconds in all)."""
    if platform not in PLATFORM_DEVICES:
        raise ConfigError(f"no microbenchmark for platform {platform!r}; known: {', '.join(PLATFORM_DEVICES)}")
    unknown = [p for p in precisions if p not in MATMUL_PRECISIONS]
    if unknown:
        raise ConfigError(f"unknown matmul precision(s) {unknown}; known: {', '.join(MATMUL_PRECISIONS)}")
    import torch

    from kit.backends import get_backend
    from kit.timing import load_average_1m

    ok, reason = get_backend(platform).available()
    if not ok:
        raise ConfigError(f"platform {platform} is not available here: {reason}")
    device, start = PLATFORM_DEVICES[platform], time.perf_counter()
    flops, sizes = {}, {}
    for precision in precisions:
        flops[precision], sizes[precision] = matmul_flops_per_s(device, precision, budget_s, MAX_MATMUL_N[platform])
    bandwidth = copy_bandwidth_bytes_per_s(device, COPY_BYTES[platform], budget_s)
    costs = depthwise_costs(platform, precisions, budget_s)
    details = {"matmul_n": sizes, "copy_bytes": COPY_BYTES[platform], "method": "best of repeated calls",
               "device_name": _device_name(device), "threads": torch.get_num_threads(),
               "load_avg_1m": load_average_1m()}  # shared machines: a high load means lower, noisier peaks
    return Peaks(platform, device, flops, bandwidth, time.perf_counter() - start, details, costs)


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    from kit.environment import cpu_model

    return cpu_model() if device == "cpu" else device


def store_peaks(con: Any, peaks: Peaks, hardware_id: str | None = None) -> str:
    """Store peaks with this machine's hardware row (or the given one); returns the hardware_id."""
    from kit import storage
    from kit.environment import hardware_info

    hardware_id = hardware_id or hardware_info()["hardware_id"]
    bandwidth = peaks.mem_bandwidth_bytes_per_s if peaks.platform == "cpu" else None
    storage.set_hardware_peaks(con, hardware_id, {peaks.platform: peaks.to_json()}, bandwidth)
    return hardware_id


def check_settings(platforms: list[str] | tuple[str, ...], budget_s: float) -> None:
    """ConfigError, before any work, for a platform without a microbenchmark or a budget that is not positive."""
    unknown = [p for p in platforms if p not in PLATFORM_DEVICES]
    if unknown:
        raise ConfigError(f"no microbenchmark for platform(s) {unknown}; known: {', '.join(PLATFORM_DEVICES)}")
    if isinstance(budget_s, bool) or not (isinstance(budget_s, int | float) and budget_s > 0):
        raise ConfigError(f"microbenchmark budget_s must be a positive number of seconds, got {budget_s!r}")


def ensure_peaks(con: Any, platforms: tuple[str, ...] = ("cpu",), budget_s: float = 0.4) -> pd.DataFrame:
    """Measure and store the peaks of each available platform not yet measured on this machine; return all peaks.

    Peaks stored without depthwise costs get them (the peaks themselves are kept). `attrs['this_machine']` is this
    hardware_id, `attrs['skipped']` maps each platform not measured to the reason (absent here),
    `attrs['measured_now']` lists those measured by this call."""
    from kit import storage
    from kit.backends import get_backend
    from kit.environment import hardware_info

    check_settings(platforms, budget_s)
    hardware_id = hardware_info()["hardware_id"]
    entries = _entries(con).get(hardware_id, {})
    skipped, measured = {}, []
    for platform in platforms:
        ok, reason = get_backend(platform).available()
        if not ok:
            skipped[platform] = f"unavailable: {reason}"
        elif platform not in entries:
            store_peaks(con, measure_peaks(platform, budget_s=budget_s), hardware_id)
            measured.append(platform)
        elif not entries[platform].get("depthwise"):  # peaks stored before depthwise costs were measured
            precisions = tuple(entries[platform].get("flops_per_s") or MATMUL_PRECISIONS)
            entry = {**entries[platform], "depthwise": depthwise_costs(platform, precisions, budget_s)}
            storage.set_hardware_peaks(con, hardware_id, {platform: entry})
            measured.append(platform)
    peaks = stored_peaks(con)
    peaks.attrs = {"this_machine": hardware_id, "skipped": skipped, "measured_now": measured}
    return peaks


PEAK_COLUMNS = ["hardware_id", "platform", "precision", "peak_flops_per_s", "mem_bandwidth_bytes_per_s",
                depthwise.COLUMN]


def _entries(con: Any) -> dict[str, dict[str, Any]]:
    """The stored peak entries: {hardware_id: {platform: Peaks.to_json()}}."""
    return {hardware_id: json.loads(text) for hardware_id, text in con.execute(
        "SELECT hardware_id, peak_flops_json FROM hardware WHERE peak_flops_json IS NOT NULL").fetchall()}


def stored_peaks(con: Any) -> pd.DataFrame:
    """Stored peaks in long form: one row per hardware x platform x precision, with that precision's depthwise
    costs per thread count (`kit.depthwise.measure_costs`; None where they were not measured)."""
    rows = []
    for hardware_id, entries in _entries(con).items():
        for platform, entry in entries.items():
            for precision, value in (entry.get("flops_per_s") or {}).items():
                costs = (entry.get("depthwise") or {}).get(precision) or None
                rows.append([hardware_id, platform, precision, value, entry.get("mem_bandwidth_bytes_per_s"), costs])
    return pd.DataFrame(rows, columns=PEAK_COLUMNS)


def depthwise_table(peaks: pd.DataFrame) -> pd.DataFrame:
    """The depthwise-convolution costs among stored peaks, one row per hardware, platform, precision and thread count:
    microseconds per call, nanoseconds per output element and per multiply-accumulate, the fit's error over the timed
    shapes and the machine reference's 10th percentile beside them (milliseconds)."""
    rows = [{"hardware_id": h, "platform": p, "precision": prec, "threads": int(threads),
             "call_us": c["call_s"] * 1e6, "element_ns": c["element_s"] * 1e9, "mac_ns": c["mac_s"] * 1e9,
             "fit_mape": c["fit_mape"], "reference_ms": (c.get("reference_s") or float("nan")) * 1e3}
            for h, p, prec, table in zip(peaks["hardware_id"], peaks["platform"], peaks["precision"],
                                         peaks.get(depthwise.COLUMN, pd.Series(None, index=peaks.index)), strict=True)
            if isinstance(table, dict) for threads, c in sorted(table.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows, columns=["hardware_id", "platform", "precision", "threads", "call_us", "element_ns",
                                       "mac_ns", "fit_mape", "reference_ms"])


def add_microbench_arguments(parser: Any) -> None:
    """The `benchkit microbench` arguments."""
    parser.add_argument("--platforms", nargs="+", default=["cpu"], help="platforms to measure (cpu, cuda, ...)")
    parser.add_argument("--budget-s", type=float, default=0.4, help="seconds per matmul precision and per copy")
    parser.add_argument("--db", default=None, help="DuckDB file (default outputs/benchkit.duckdb)")
    parser.add_argument("--missing", action="store_true",
                        help="measure only what the store lacks for this machine (platforms without peaks, peaks "
                             "without depthwise costs), keeping what it holds")


def cmd_microbench(args: Any) -> int:
    """Measure each platform's peaks, store them with this machine's hardware row and print them (with --missing,
    only what the store lacks)."""
    from kit import storage

    if not args.budget_s > 0:
        raise ConfigError(f"--budget-s must be positive, got {args.budget_s!r}")
    check_settings(args.platforms, args.budget_s)  # every platform checked before the first is measured
    con = storage.connect(args.db or storage.DEFAULT_DB)
    if args.missing:
        peaks = ensure_peaks(con, tuple(args.platforms), args.budget_s)
        mine = peaks[peaks["hardware_id"] == peaks.attrs["this_machine"]]
        print(f"measured now: {', '.join(peaks.attrs['measured_now']) or 'nothing'}; "
              f"not measured: {peaks.attrs['skipped'] or 'none'}")
        print(mine.drop(columns=depthwise.COLUMN).to_string(index=False))
        print(depthwise_table(mine).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        return 0
    for platform in args.platforms:
        peaks = measure_peaks(platform, budget_s=args.budget_s)
        hardware_id = store_peaks(con, peaks)
        flops = ", ".join(f"{p} {v / 1e9:,.1f} GFLOP/s" for p, v in peaks.flops_per_s.items())
        print(f"{platform} ({peaks.details['device_name']}, hardware {hardware_id}): {flops}; copy "
              f"{peaks.mem_bandwidth_bytes_per_s / 1e9:,.1f} GB/s; {peaks.seconds:.1f} s, "
              f"load {peaks.details['load_avg_1m']}")
        for precision, table in peaks.depthwise.items():
            for threads, c in sorted(table.items(), key=lambda kv: int(kv[0])):
                print(f"  depthwise convolutions, {precision}, {threads} thread(s): {c['call_s'] * 1e6:.1f} us per "
                      f"call + {c['element_s'] * 1e9:.2f} ns per output element + {c['mac_s'] * 1e9:.3f} ns per "
                      f"multiply-add (the fit lies {c['fit_mape']:.0%} from the timed shapes)")
    return 0
