"""Clocks and memory trackers used by the runners, and the adaptive measurement loop.

A Clock times one call: perf_counter on CPU, CUDA events (with synchronisation) on GPUs. A MemoryTracker reports the
peak memory of a measured region. `measure_adaptive` repeats a call until the median's CI is tight or the budget ends;
in a child of an interleaved sweep (kit.runners.rounds) a `RoundDriver` is installed instead, and the loop runs the
short bursts the parent asks for, one round at a time, each sample tagged with its round.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from kit.stats import MIN_CI_SAMPLES, converged

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Clock(Protocol):
    """Times one call of `fn`, returning seconds; implementations make sure the device work is finished."""

    def time_call(self, fn: Callable[[], Any]) -> float: ...


class PerfCounterClock:
    """Wall-clock timing with time.perf_counter for synchronous (CPU) work."""

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Seconds taken by one call of fn."""
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


class MarkingClock:
    """A clock that sets `target.timed` while it times a call, so the callable can keep figures of its own (phase
    times, token stamps) for the timed calls only: never for the untimed warm-up calls at the start of a burst."""

    def __init__(self, clock: Clock, target: Any) -> None:
        self.clock, self.target = clock, target

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Seconds of one call of fn, as the wrapped clock measures them, with the target marked as timed."""
        self.target.timed = True
        try:
            return self.clock.time_call(fn)
        finally:
            self.target.timed = False


class CudaEventClock:
    """CUDA (or ROCm) event timing: events around the call, then a synchronisation before reading them."""

    def __init__(self) -> None:
        import torch

        self._torch = torch

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Seconds of device time between events recorded before and after fn, after the end event completes."""
        start = self._torch.cuda.Event(enable_timing=True)
        end = self._torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


class MemoryTracker(Protocol):
    """Peak memory of a region: reset() before it, peak_bytes() after it; `method` says how it was measured."""

    method: str

    def reset(self) -> None: ...

    def peak_bytes(self) -> int: ...


def _vm_hwm_bytes() -> int:
    match = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
    return int(match.group(1)) * 1024 if match else 0


def _can_reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class ProcessPeakTracker:
    """Peak resident memory of this process: the kernel's VmHWM after resetting it, else a psutil sampler thread."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.method = "vmhwm" if _STATUS.exists() and _can_reset_hwm() else "psutil-sampler"
        self._interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Start a new peak: reset VmHWM, or (re)start the sampler thread."""
        if self.method == "vmhwm":
            _CLEAR_REFS.write_text("5")
            return
        self._stop_sampler()
        self._peak = psutil.Process().memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(self._interval_s):
            self._peak = max(self._peak, process.memory_info().rss)

    def _stop_sampler(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def peak_bytes(self) -> int:
        """Peak resident bytes since the last reset."""
        if self.method == "vmhwm":
            return _vm_hwm_bytes()
        self._stop_sampler()
        return max(self._peak, psutil.Process().memory_info().rss)


class CudaPeakTracker:
    """Peak memory allocated by the torch caching allocator on the current GPU; reserved goes to `reserved_bytes`."""

    method = "torch.cuda.max_memory_allocated"

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self.reserved_bytes = 0

    def reset(self) -> None:
        """Synchronise and reset the allocator's peak statistics."""
        self._torch.cuda.synchronize()
        self._torch.cuda.reset_peak_memory_stats()

    def peak_bytes(self) -> int:
        """Peak allocated bytes since reset; the peak reserved bytes go to `reserved_bytes`."""
        self._torch.cuda.synchronize()
        self.reserved_bytes = int(self._torch.cuda.max_memory_reserved())
        return int(self._torch.cuda.max_memory_allocated())


@dataclass
class Measurement:
    """Samples from the adaptive loop (with their round index when measured in rounds), plus the CPU time and wall
    time it took and the host's steal share."""

    samples_s: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    converged: bool = False
    cpu_time_s: float = 0.0
    wall_time_s: float = 0.0
    steal_share: float | None = None  # host_steal_share over the loop


def host_steal_share(before: Any, after: Any) -> float | None:
    """Share of all CPUs' time that the hypervisor gave to other guests between two `psutil.cpu_times()` (Linux
    'steal'): a virtual machine's host running other work slows every measurement without our process seeing it.
    None where the system does not count steal, or no time passed."""
    if not hasattr(before, "steal") or not hasattr(after, "steal"):
        return None
    total = sum(after) - sum(before)
    return min(1.0, max(0.0, (after.steal - before.steal) / total)) if total > 0 else None


class RoundDriver(Protocol):
    """The parent's side of an interleaved measurement, as seen from the child's timed loop."""

    def next_burst(self) -> tuple[int, float] | None:
        """Block until the parent grants a burst: (round index, seconds), or None when measuring is over."""

    def burst_done(self, samples_s: list[float]) -> None:
        """Tell the parent the burst's samples, handing the machine back."""


_DRIVER: RoundDriver | None = None


def install_round_driver(driver: RoundDriver | None) -> None:
    """Make measure_adaptive run in rounds granted by `driver` (None: the adaptive loop again)."""
    global _DRIVER
    _DRIVER = driver


BURST_WARMUP_SHARE = 0.05  # the start of each burst, untimed: the process's caches and thread pool wake up
BURST_MIN_CALLS = 10  # timed calls a burst makes at least when ten typical calls fit in it: a 10th percentile of them


def _burst_min_calls(samples_s: list[float], seconds: float) -> int:
    """BURST_MIN_CALLS when that many calls of the typical (median) length so far fit in the burst, else one."""
    return BURST_MIN_CALLS if BURST_MIN_CALLS * statistics.median(samples_s) <= seconds else 1


def measure_in_rounds(fn: Callable[[], Any], clock: Clock, driver: RoundDriver) -> Measurement:
    """Time fn in the bursts the driver grants: each burst runs calls until its seconds are used (at least one call)
    and tags every sample with the burst's round; waiting between bursts counts in no timing. A burst starts with
    untimed calls for its first twentieth when one call is shorter than that: after another process held the CPUs, the
    first calls run on cold caches and a sleeping thread pool (2-4x slower here, and 10-80x in the first burst after
    the other children were built), which says nothing about fn. The first burst times one untimed call to decide.
    A burst that fits ten typical calls makes at least ten, however long it takes: at two threads on two cores, a
    call right after another process's burst can wait 30-90x its length for that process's spinning threads, and a
    burst cut short after that one call would make it the round's figure."""
    result = Measurement()
    cpu_start, times_start = time.process_time(), psutil.cpu_times()
    while (burst := driver.next_burst()) is not None:
        round_idx, seconds = burst
        start = time.perf_counter()
        warmup_s = BURST_WARMUP_SHARE * seconds
        if not result.samples_s:
            fn()
        last_call_s = result.samples_s[-1] if result.samples_s else time.perf_counter() - start
        if last_call_s < warmup_s:
            while time.perf_counter() - start < warmup_s:
                fn()
            start = time.perf_counter()
        elif not result.samples_s:
            start = time.perf_counter()
        min_calls = _burst_min_calls(result.samples_s or [last_call_s], seconds)
        samples: list[float] = []
        while len(samples) < min_calls or time.perf_counter() - start < seconds:
            samples.append(clock.time_call(fn))
        result.wall_time_s += time.perf_counter() - start
        result.samples_s.extend(samples)
        result.rounds.extend([round_idx] * len(samples))
        driver.burst_done(samples)
    result.cpu_time_s = time.process_time() - cpu_start
    result.steal_share = host_steal_share(times_start, psutil.cpu_times())
    return result


def measure_adaptive(
    fn: Callable[[], Any],
    clock: Clock,
    *,
    time_budget_s: float,
    target_rel_ci: float = 0.02,
    min_samples: int = 10,
    max_samples: int = 100_000,
) -> Measurement:
    """Call fn repeatedly until the median's 95% CI half-width is within target_rel_ci, or the budget/max is reached.

    The budget is checked after each call, so one call longer than the budget still gives one sample. Convergence is
    checked on a growing schedule (every ~10% more samples) to keep the statistics off the measured path. Inside an
    interleaved sweep's child the installed RoundDriver decides instead (measure_in_rounds).
    """
    if _DRIVER is not None:
        return measure_in_rounds(fn, clock, _DRIVER)
    result = Measurement()
    cpu_start, wall_start, times_start = time.process_time(), time.perf_counter(), psutil.cpu_times()
    deadline = wall_start + time_budget_s
    next_check = max(min_samples, MIN_CI_SAMPLES)
    while len(result.samples_s) < max_samples:
        result.samples_s.append(clock.time_call(fn))
        n = len(result.samples_s)
        if n >= next_check:
            if converged(result.samples_s, target_rel_ci, min_samples):
                result.converged = True
                break
            next_check = n + max(1, n // 10)
        if time.perf_counter() >= deadline and n >= 1:
            break
    result.cpu_time_s = time.process_time() - cpu_start
    result.wall_time_s = time.perf_counter() - wall_start
    result.steal_share = host_steal_share(times_start, psutil.cpu_times())
    return result


def load_average_1m() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
