"""The Backend protocol: what a platform must say (is it here? can it run this?) and do (prepare, time, track)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from kit.timing import Clock, MemoryTracker, PerfCounterClock, ProcessPeakTracker

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
Runnable = Callable[[], Any]


class Backend(ABC):
    """A platform a model can run on. `available` and `supports` answer without loading any model."""

    name: str = ""

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, description) when the platform is present here, else (False, why not)."""

    def supports(self, precision: str, mode: str) -> tuple[bool, str]:
        """(True, '') when this platform can run the precision in this mode, else (False, reason)."""
        return True, ""

    def death_cause(self, precision: str, threads: int | None, reason: str) -> str:
        """A known cause of a measuring child's death (`reason`, e.g. 'child process killed by SIGFPE') at this
        precision and thread count, to add to the failure's reason; '' when none is known."""
        return ""

    @abstractmethod
    def device(self) -> str:
        """The device string recorded with results (e.g. 'cpu', 'cuda:0')."""

    @abstractmethod
    def prepare(
        self, loaded: Any, inputs: dict[str, Any], precision: str, mode: str
    ) -> tuple[Runnable, dict[str, Any]]:
        """Move/convert the model and inputs for this precision; return a zero-argument call and facts to record."""

    def clock(self) -> Clock:
        """The clock that times one call on this platform."""
        return PerfCounterClock()

    def memory_tracker(self) -> MemoryTracker:
        """The tracker that measures peak memory on this platform."""
        return ProcessPeakTracker()

    def threads(self) -> int | None:
        """Number of intra-op threads the platform uses, where known."""
        return None
