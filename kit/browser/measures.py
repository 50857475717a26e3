"""The browser platforms' clock and memory tracker, plus the audio facts (duration, real-time factor).

`InPageClock.time_call` returns the duration measured in the page with performance.now(), not the Python round trip
(DevTools message + JSON), which it keeps aside as an overhead statistic. `ChromiumTreeTracker` samples the resident
memory of the browser's processes, since the model lives there and not in the Python process.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import psutil

# Speech front ends of the zoo's audio families: sampling rate and the samples each input step stands for.
AUDIO_FRONT_ENDS: dict[str, dict[str, Any]] = {
    "wav2vec2": {"input": "input_values", "axis": -1, "sampling_rate_hz": 16_000, "samples_per_step": 1},
    "whisper": {"input": "input_features", "axis": -1, "sampling_rate_hz": 16_000, "samples_per_step": 160},
    "clap": {"input": "input_features", "axis": -2, "sampling_rate_hz": 48_000, "samples_per_step": 480},
}


def audio_duration_s(family: str, inputs: dict[str, Any]) -> float | None:
    """Seconds of audio in ONE item of the inputs (samples / sampling rate); None for non-audio families."""
    front = AUDIO_FRONT_ENDS.get(family)
    if front is None or front["input"] not in inputs:
        return None
    steps = int(inputs[front["input"]].shape[front["axis"]])
    return steps * front["samples_per_step"] / front["sampling_rate_hz"]


class RunningMedian:
    """Median of a growing series in O(log n) per value (two heaps), so the clock can keep it current cheaply."""

    def __init__(self) -> None:
        self._low: list[float] = []  # max-heap (negated)
        self._high: list[float] = []
        self.n = 0

    def add(self, value: float) -> float:
        """Add a value and return the median so far."""
        heapq.heappush(self._low, -value)
        heapq.heappush(self._high, -heapq.heappop(self._low))
        if len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))
        self.n += 1
        return self.median()

    def median(self) -> float:
        """The current median."""
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2


class PageCall(Mapping[str, np.ndarray]):
    """What one call returns: the in-page duration, the Python round trip, and the output, fetched only when read.

    As a mapping {main output name: array} it is what the runner's deviation check reads after measuring; the
    output stays in the page until then, so timed calls move no tensors.
    """

    def __init__(self, in_page_s: float, round_trip_s: float, name: str, fetch: Callable[[], np.ndarray]) -> None:
        self.in_page_s, self.round_trip_s, self.name = in_page_s, round_trip_s, name
        self._fetch = fetch
        self._value: np.ndarray | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        if key != self.name:
            raise KeyError(key)
        if self._value is None:
            self._value = self._fetch()
        return self._value

    def __iter__(self) -> Iterator[str]:
        return iter((self.name,))

    def __len__(self) -> int:
        return 1


class InPageClock:
    """A Clock whose time is the in-page performance.now() duration of the call.

    Besides the time it keeps, in `facts` (the dict the backend returned from prepare, merged into the record's extra
    after measuring), the median Python round-trip overhead and, for audio, the real-time factor of the median, both
    over the timed calls after the first (cold) one.
    """

    def __init__(self, facts: dict[str, Any], items_audio_s: float | None) -> None:
        self.facts = facts
        self.items_audio_s = items_audio_s
        self._calls = 0
        self._overhead = RunningMedian()
        self._in_page = RunningMedian()

    def time_call(self, fn: Callable[[], Any]) -> float:
        """In-page seconds of one call of fn (which must return a PageCall)."""
        result = fn()
        if not isinstance(result, PageCall):
            raise TypeError(f"InPageClock needs a call returning PageCall, got {type(result).__name__}")
        self._calls += 1
        if self._calls > 1:
            overhead = self._overhead.add(result.round_trip_s - result.in_page_s)
            self.facts["python_round_trip_overhead_p50_s"] = overhead
            self.facts["timed_calls_after_first"] = self._overhead.n
            median = self._in_page.add(result.in_page_s)
            if self.items_audio_s:
                self.facts["real_time_factor_p50"] = median / self.items_audio_s
        return result.in_page_s


class ChromiumTreeTracker:
    """Peak of the summed resident memory of the browser's processes, sampled by a thread every interval_s.

    Shared pages are counted once per process, so this over-states the true footprint; it is comparable between
    runs of the same browser, not with the torch platforms' VmHWM. The process list is read once at reset (a scan of
    /proc per sample would take CPU from the measurement on a small machine).
    """

    method = "chromium-process-tree-rss-sampler"

    def __init__(self, pids: Callable[[], list[int]], interval_s: float = 0.05) -> None:
        self._pids = pids
        self._interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: list[psutil.Process] = []

    def _rss(self) -> int:
        total = 0
        for process in self._processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._peak = max(self._peak, self._rss())

    def reset(self) -> None:
        """Start a new peak and the sampler thread."""
        self._halt()
        self._processes = [psutil.Process(pid) for pid in self._pids() if psutil.pid_exists(pid)]
        self._peak = self._rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="benchkit-chromium-rss", daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def peak_bytes(self) -> int:
        """Peak summed RSS since reset."""
        self._halt()
        return max(self._peak, self._rss())
