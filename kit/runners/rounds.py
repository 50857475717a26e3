"""Interleaved rounds: the configurations of a group, and a machine reference, measured in alternating short bursts.

Every configuration keeps its own live child process (isolation stays: a crash is that configuration's failure row).
Children are built and prepared one at a time, so startup figures are taken on a quiet machine; then, for each round,
the parent grants one burst to each child in a fresh random order, and only the child holding a burst runs. A drift of
the machine's speed therefore hits every configuration of the group alike, and a configuration's per-round medians can
be paired with the other configurations' and the reference's from the same round (kit.stats.paired_ratio).

A group is the jobs of one model and size (at most `group_size` of them); when the live children's memory would pass
the cap, the rest of the group moves to a group of its own.

The reference runs in `REFERENCE_PROCESSES` children of its own; a result is normalised against the fastest of them,
because a process can keep a slower speed of the same workload for its whole life (`reference_levels_s` keeps every
process's level).
"""

from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import psutil

from kit.config import Job
from kit.records import Record
from kit.runners.burst import serve
from kit.runners.isolation import _context, _death_reason, child_environment
from kit.stats import STATISTIC, STATISTICS, drift_index, paired_ratio, round_medians, round_quantiles

REFERENCE_TARGET = "kit.runners.reference:measure_reference"
REFERENCE_SHARE = 0.2  # the reference's burst, as a share of a configuration's: enough for a stable round median
REFERENCE_PROCESSES = 2  # reference children per group: now and then one process runs the workload ~13 % slower than
#                          its twin of the same moment, for its whole life (at two threads); the faster one is kept
SETTLE_S = 0.002  # idle between bursts: the last child's threads stop


@dataclass(frozen=True)
class RoundPlan:
    """How a group is measured: rounds, seconds per burst, group size, memory cap, reference (and how many processes
    run it), shuffling seed."""

    rounds: int
    burst_s: float
    group_size: int = 8
    memory_cap_bytes: int | None = None
    reference: str | None = "matmul"
    seed: int = 0
    threads: int | None = None
    timeout_s: float = 600.0
    memory_limit_bytes: int | None = None
    reference_processes: int = REFERENCE_PROCESSES

    def cap_bytes(self) -> int:
        """The memory cap for live children: as given, else half the memory available now."""
        return self.memory_cap_bytes or int(psutil.virtual_memory().available // 2)


class Child:
    """A live child measuring one configuration (or the reference) in the bursts it is granted."""

    def __init__(self, key: str, target: str, payload: Any, *, python: str | None = None,
                 memory_limit_bytes: int | None = None) -> None:
        self.key = key
        self.outcome: tuple[bool, Any] | None = None  # (ok, value or reason) once the child has finished
        self.rss_bytes = 0
        self._memory_limit_bytes = memory_limit_bytes
        args = (target, payload, memory_limit_bytes, child_environment(), os.getcwd())
        if python is None:
            context = _context()
            self.conn, child_conn = context.Pipe(duplex=True)
            self._process: Any = context.Process(target=serve, args=(child_conn, *args), daemon=True)
            self._process.start()
            child_conn.close()
        else:
            mine, theirs = socket.socketpair()
            self._process = subprocess.Popen([python, "-m", "kit.runners.burst", str(theirs.fileno())],
                                             pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            theirs.close()
            self.conn = Connection(mine.detach())
            self.conn.send(args)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def _exitcode(self) -> int | None:
        process = self._process
        if isinstance(process, subprocess.Popen):
            try:
                return process.wait(10)
            except subprocess.TimeoutExpired:
                return None
        process.join(10)
        return process.exitcode

    def _receive(self, timeout_s: float) -> tuple | None:
        """The child's next message; None (with the outcome set to why) when it timed out or died."""
        try:
            if not self.conn.poll(timeout_s):
                self.kill()
                self.outcome = (False, f"timed out after {timeout_s:g} s; child process killed")
                return None
            return self.conn.recv()
        except (EOFError, OSError):
            self.outcome = (False, _death_reason(self._exitcode(), self._memory_limit_bytes))
            return None

    def _finished(self, message: tuple) -> None:
        self.outcome = (message[0] == "ok", message[1])
        self.close()

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the child is prepared and waits for bursts; False when it finished or failed first."""
        message = self._receive(timeout_s)
        if message is None:
            return False
        if message[0] == "ready":
            self.rss_bytes = int(message[1])
            return True
        self._finished(message)
        return False

    def burst(self, round_idx: int, seconds: float, timeout_s: float) -> list[float] | None:
        """Grant one burst and wait for its samples; None when the child failed (its outcome says why)."""
        try:
            self.conn.send(("burst", round_idx, seconds))
        except OSError:
            self.outcome = (False, _death_reason(self._exitcode(), self._memory_limit_bytes))
            return None
        message = self._receive(timeout_s)
        if message is None:
            return None
        if message[0] != "burst":
            self._finished(message if message[0] == "error" else ("error", f"unexpected message {message[0]!r}"))
            return None
        return list(message[1])

    def finish(self, timeout_s: float) -> tuple[bool, Any]:
        """Stop the bursts and collect the child's value: (True, value) or (False, reason)."""
        if self.outcome is None:
            try:
                self.conn.send(("stop",))
                message = self._receive(timeout_s)
            except OSError:
                message = None
                self.outcome = (False, _death_reason(self._exitcode(), self._memory_limit_bytes))
            if message is not None:
                self._finished(message)
        self.close()
        return self.outcome

    def kill(self) -> None:
        """End the child now."""
        process = self._process
        if isinstance(process, subprocess.Popen):
            process.kill()
            process.wait(10)
        elif process.is_alive():
            process.kill()
            process.join(10)

    def close(self) -> None:
        """Close the pipe and reap the process (killing it if it lingers)."""
        self.conn.close()
        process = self._process
        if isinstance(process, subprocess.Popen):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        else:
            process.join(30)
            if process.is_alive():
                self.kill()


def plan_groups(jobs: list[Job], group_size: int) -> list[list[Job]]:
    """Jobs grouped by model and size (in first-seen order), each group cut into chunks of at most group_size."""
    by_model: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        by_model.setdefault((job.model, job.size), []).append(job)
    return [jobs_[i:i + group_size] for jobs_ in by_model.values() for i in range(0, len(jobs_), group_size)]


@dataclass
class Group:
    """The live children of one group and what came back from them."""

    plan: RoundPlan
    references: list[Child] = field(default_factory=list)
    members: list[tuple[Job, Child]] = field(default_factory=list)
    order_seed: int = 0

    def live(self) -> list[Child]:
        """Children still measuring, the reference included."""
        children = [c for _, c in self.members] + self.references
        return [c for c in children if c.outcome is None]

    def memory_bytes(self) -> int:
        """Resident memory the live children reported when ready."""
        return sum(c.rss_bytes for c in self.live())

    def fits_another(self) -> bool:
        """Whether one more child of the largest size seen so far stays under the memory cap."""
        if not self.members:
            return True
        largest = max(c.rss_bytes for _, c in self.members)
        return self.memory_bytes() + largest <= self.plan.cap_bytes()

    def close(self) -> None:
        """Kill whatever still runs (after an interruption)."""
        for child in self.live():
            child.kill()
            child.close()


def _start_references(plan: RoundPlan) -> tuple[list[Child], str]:
    """The group's reference children that came up, and a note on those that did not."""
    if plan.reference is None:
        return [], "no reference asked for"
    children, notes = [], []
    for index in range(plan.reference_processes):
        child = Child(f"reference{index}", REFERENCE_TARGET, {"name": plan.reference, "threads": plan.threads})
        if child.wait_ready(plan.timeout_s):
            children.append(child)
        else:
            notes.append(f"reference {plan.reference} failed: {child.outcome[1]}")
    return children, "; ".join(notes)


def reference_level(value: dict[str, Any]) -> float:
    """A reference process's speed: the median over rounds of its rounds' fastest tenth of calls (seconds)."""
    return float(np.median(list(round_quantiles(value["samples_s"], value["rounds"], STATISTICS[STATISTIC]).values())))


def fastest_reference(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of the reference processes that measured in any round, the one with the lowest level (None if none)."""
    measured = [v for v in values if v["rounds"]]
    return min(measured, key=reference_level) if measured else None


def normalised_latency(samples_s: list[float] | tuple[float, ...], sample_rounds: list[int] | tuple[int, ...],
                       reference_medians: list[float | None]) -> float | None:
    """The model's median call in median calls of the reference measured beside it: the trimmed geometric mean over
    rounds of the two per-round medians' ratio (`paired_ratio`; rounds either missed left out). None without a
    common round."""
    reference = {r: m for r, m in enumerate(reference_medians) if m and m > 0}
    own = round_medians(samples_s, sample_rounds)
    return paired_ratio(own, reference).ratio if set(own) & set(reference) else None


def run_rounds(group: Group, on_round: Callable[[int], None] | None = None) -> None:
    """Grant every live child one burst per round, in a fresh random order each round."""
    rng = random.Random(group.order_seed)
    for round_idx in range(group.plan.rounds):
        order = group.live()
        rng.shuffle(order)
        for child in order:
            share = REFERENCE_SHARE if child in group.references else 1.0
            time.sleep(SETTLE_S)
            child.burst(round_idx, group.plan.burst_s * share, group.plan.timeout_s)
        if on_round is not None:
            on_round(round_idx)


def rounds_extra(record: Record, references: list[dict[str, Any]], plan: RoundPlan, group_keys: list[str],
                 reference_note: str) -> Record:
    """The record with its round facts in extra["rounds"] and, with a reference, its normalised throughput against
    the fastest reference process (every process's level in `reference_levels_s`)."""
    data = record.to_json()
    reference = fastest_reference(references)
    info: dict[str, Any] = {"n_rounds": plan.rounds, "burst_s": plan.burst_s, "group": group_keys,
                            "reference": plan.reference if reference else None}
    if reference_note:
        info["reference_note"] = reference_note
    if reference is not None:
        info["reference_levels_s"] = [reference_level(v) for v in references if v["rounds"]]
    if record.status == "ok" and record.sample_rounds:
        info["round_cv"] = drift_index(round_medians(record.samples_s, record.sample_rounds))
        if reference and reference["rounds"]:
            ref = round_medians(reference["samples_s"], reference["rounds"])
            info["reference_round_medians_s"] = [ref.get(r) for r in range(plan.rounds)]  # None: round missed
            info["normalised_latency"] = normalised_latency(record.samples_s, record.sample_rounds,
                                                            info["reference_round_medians_s"])
            info["drift_index"] = drift_index(ref)
            # normalised on the comparisons' statistic: each round's fastest tenth of calls, model and reference
            q = STATISTICS[STATISTIC]
            ref, own = (round_quantiles(x["samples_s"], x["rounds"], q) for x in (
                reference, {"samples_s": record.samples_s, "rounds": record.sample_rounds}))
            info[f"reference_round_{STATISTIC}_s"] = [ref.get(r) for r in range(plan.rounds)]
            common = sorted(set(own) & set(ref))
            # the trimmed geometric mean of the per-round ratios, as comparisons take it: one round where either
            # process was disturbed does not move a result's normalised throughput
            data["normalised_throughput"] = record.batch_size / paired_ratio(own, ref).ratio
            info["normalised_round_cv"] = drift_index([own[r] / ref[r] for r in common])
    data["extra"] = {**data["extra"], "rounds": info}
    return Record.from_json(data)


def measure_group(jobs: list[Job], plan: RoundPlan, *, target: str, precheck: Callable[[Job], Record | None],
                  failure: Callable[[Job, str], Record], python_of: Callable[[Job], str | None] = lambda job: None,
                  order_seed: int = 0, on_round: Callable[[list[Job], int], None] | None = None
                  ) -> Iterator[Record | list[Job]]:
    """Measure one group in rounds, yielding each record (skipped and early failures first, then the measured ones)
    and, last, the jobs that did not fit under the memory cap (a list, possibly empty); `on_round` is told the
    group's measured jobs after each round."""
    group = Group(plan, order_seed=order_seed)
    try:
        group.references, reference_note = _start_references(plan)
        leftover: list[Job] = []
        for index, job in enumerate(jobs):
            if not group.fits_another():
                leftover = jobs[index:]
                break
            skipped = precheck(job)
            if skipped is not None:
                yield skipped
                continue
            child = Child(f"{job.run_id}|{job.config_key}", target, job.to_dict(), python=python_of(job),
                          memory_limit_bytes=plan.memory_limit_bytes)
            if child.wait_ready(plan.timeout_s):
                group.members.append((job, child))
            else:
                yield _record_of(job, child.outcome, failure)
        if group.members:
            members = [job for job, _ in group.members]
            run_rounds(group, None if on_round is None else lambda index: on_round(members, index))
        references = []
        for child in group.references:
            ok, value = child.finish(plan.timeout_s)
            if ok:
                references.append(value)
            else:
                failed = f"reference {plan.reference} failed: {value}"
                reference_note = f"{reference_note}; {failed}" if reference_note else failed
        keys = [job.config_key for job, _ in group.members]
        for job, child in group.members:
            record = _record_of(job, child.finish(plan.timeout_s), failure)
            yield rounds_extra(record, references, plan, keys, reference_note)
        yield leftover
    finally:
        group.close()


def _record_of(job: Job, outcome: tuple[bool, Any], failure: Callable[[Job, str], Record]) -> Record:
    ok, value = outcome
    return Record.from_json(value) if ok else failure(job, str(value))


def interleave(jobs: list[Job], plan: RoundPlan, store: Callable[[Record], None], *, target: str,
               precheck: Callable[[Job], Record | None], failure: Callable[[Job, str], Record],
               python_of: Callable[[Job], str | None] = lambda job: None,
               on_round: Callable[[list[Job], int], None] | None = None) -> None:
    """Measure jobs group by group in interleaved rounds, storing each record as soon as its group ends;
    `on_round(group jobs, round index)` follows the rounds."""
    queue = plan_groups(jobs, plan.group_size)
    index = 0
    while queue:
        group = queue.pop(0)
        for item in measure_group(group, plan, target=target, precheck=precheck, failure=failure,
                                  python_of=python_of, order_seed=plan.seed + index, on_round=on_round):
            if isinstance(item, Record):
                store(item)
            elif item:
                queue.insert(0, item)
        index += 1


def burst_seconds(time_budget_s: float, rounds: int) -> float:
    """Seconds per burst so that a configuration gets its time budget over all rounds."""
    if not (rounds >= 1 and time_budget_s > 0 and math.isfinite(time_budget_s)):
        raise ValueError(f"need rounds >= 1 and a positive finite budget, got {rounds}, {time_budget_s}")
    return time_budget_s / rounds

