"""The machine a run happened on, and the kernel's per-thread counters from ``/proc``.

A thread's wake-ups are its voluntary context switches: each time it blocks
(on a lock, an event, ``epoll``) and is woken again, the kernel counts one.
Its CPU time is read at nanosecond resolution from ``schedstat``; ``stat``'s
``utime + stime`` is kept too, but it counts whole clock ticks (10 ms here).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import platform
import resource
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ThreadCounters",
    "ThreadLedger",
    "machine",
    "open_fds",
    "process_counters",
    "read_own_thread",
    "read_thread",
    "rss_bytes",
]

_TASKS = pathlib.Path("/proc/self/task")
_CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class ThreadCounters:
    """Cumulative counters of one thread (or, summed, of several).

    Attributes:
        cpu_s: CPU time in seconds (``schedstat``: nanosecond resolution).
        stat_cpu_s: ``utime + stime`` from ``stat``, in seconds (clock-tick resolution).
        voluntary: Voluntary context switches: times the thread blocked and was woken.
        involuntary: Involuntary context switches: times it was preempted.
    """

    cpu_s: float = 0.0
    stat_cpu_s: float = 0.0
    voluntary: int = 0
    involuntary: int = 0

    def __add__(self, other: ThreadCounters) -> ThreadCounters:
        return ThreadCounters(
            self.cpu_s + other.cpu_s,
            self.stat_cpu_s + other.stat_cpu_s,
            self.voluntary + other.voluntary,
            self.involuntary + other.involuntary,
        )

    def __sub__(self, other: ThreadCounters) -> ThreadCounters:
        return ThreadCounters(
            self.cpu_s - other.cpu_s,
            self.stat_cpu_s - other.stat_cpu_s,
            self.voluntary - other.voluntary,
            self.involuntary - other.involuntary,
        )


def read_thread(native_id: int) -> ThreadCounters | None:
    """Read a thread's counters from ``/proc/self/task/<tid>``; ``None`` once it has ended."""
    task = _TASKS / str(native_id)
    try:
        stat = (task / "stat").read_text()
        status = (task / "status").read_text()
        schedstat = (task / "schedstat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    switches = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            switches[key] = int(value)
    return ThreadCounters(
        cpu_s=int(schedstat.split()[0]) / 1e9,
        stat_cpu_s=(utime + stime) * _CLOCK_TICK_S,
        voluntary=switches["voluntary_ctxt_switches"],
        involuntary=switches["nonvoluntary_ctxt_switches"],
    )


def read_own_thread() -> ThreadCounters:
    """Read the calling thread's counters cheaply, from the same kernel fields as ``/proc``.

    For a thread that is about to end, whose ``/proc`` entry will be gone
    when the harness looks: ``CLOCK_THREAD_CPUTIME_ID`` is the run time that
    ``schedstat`` shows, and ``RUSAGE_THREAD`` the switch counts of ``status``.
    """
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return ThreadCounters(
        cpu_s=time.thread_time(),
        stat_cpu_s=usage.ru_utime + usage.ru_stime,
        voluntary=usage.ru_nvcsw,
        involuntary=usage.ru_nivcsw,
    )


class ThreadLedger:
    """Counters of the threads a contender owns, over a stretch, even threads that came and went.

    Args:
        existing: Idents of the threads that were running before the
            contender started; every other thread is the contender's.
        retired: The contender's record of its threads that ended, by native
            id (see ``Contender.retired``); it is read, never changed.
    """

    def __init__(self, existing: Iterable[int], retired: Mapping[int, ThreadCounters]) -> None:
        self._existing = frozenset(existing)
        self._retired = retired
        self._start: dict[int, ThreadCounters] = {}
        self._retired_at_start: frozenset[int] = frozenset()

    @property
    def existing(self) -> frozenset[int]:
        """Idents of the threads that are not the contender's."""
        return self._existing

    def threads(self) -> list[threading.Thread]:
        """The contender's threads running now."""
        return [
            thread
            for thread in threading.enumerate()
            if thread.ident not in self._existing and thread.native_id is not None
        ]

    def _snapshot(self) -> dict[int, ThreadCounters]:
        readings = {}
        for thread in self.threads():
            assert thread.native_id is not None
            counters = read_thread(thread.native_id)
            if counters is not None:
                readings[thread.native_id] = counters
        return readings

    def begin(self) -> None:
        """Start the stretch."""
        self._retired_at_start = frozenset(self._retired)
        self._start = self._snapshot()

    def end(self) -> ThreadCounters:
        """End the stretch; return what the contender's threads did during it, summed."""
        end = self._snapshot()
        retired = {
            tid: counters
            for tid, counters in dict(self._retired).items()
            if tid not in self._retired_at_start
        }
        total = ThreadCounters()
        for tid in set(self._start) | set(end) | set(retired):
            final = end.get(tid) or retired.get(tid)
            if final is None:
                continue  # ended unrecorded; contenders that retire threads record them
            total += final - self._start.get(tid, ThreadCounters())
        return total


def process_counters() -> ThreadCounters:
    """The whole process's counters: every thread, including those that have ended."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ThreadCounters(
        cpu_s=time.process_time(),
        stat_cpu_s=usage.ru_utime + usage.ru_stime,
        voluntary=usage.ru_nvcsw,
        involuntary=usage.ru_nivcsw,
    )


def rss_bytes() -> int:
    """The process's resident set size, from ``/proc/self/status``."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def open_fds() -> int:
    """How many file descriptors the process has open."""
    return len(os.listdir("/proc/self/fd"))


def _cpu_model() -> str:
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Describe the machine, the interpreter, the packages and the date of this run."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "packages": {
            name: _version(name) for name in ("lilbee-ticker", "structlog", "apscheduler")
        },
    }
