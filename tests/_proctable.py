"""The process table, read from /proc, to prove that no worker process outlives its test.

Linux only, like the death signal the workers rely on there. A process is
identified by its pid *and* its start time, so a pid the kernel reuses for
another process is never mistaken for the worker that had it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import select
import sys
import time

import pytest

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process table from /proc"
)

_PROC = pathlib.Path("/proc")


@dataclasses.dataclass(frozen=True)
class Proc:
    """One process as /proc showed it."""

    pid: int
    ppid: int
    state: str  # "R", "S", "T" (stopped), "Z" (exited, not yet collected), ...
    start: int  # start time in clock ticks since boot: tells a reused pid apart
    cmdline: str

    @property
    def is_resource_tracker(self) -> bool:
        """True for the resource tracker, a helper multiprocessing starts once per parent."""
        return "multiprocessing.resource_tracker" in self.cmdline


def read(pid: int) -> Proc | None:
    """Return process ``pid`` as /proc shows it now, or ``None`` if there is none."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself contain spaces and ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        state=fields[0],
        start=int(fields[19]),
        cmdline=cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
    )


def children(ppid: int) -> list[Proc]:
    """Every process whose parent is ``ppid``, exited ones not yet collected included."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            proc = read(int(entry.name))
            if proc is not None and proc.ppid == ppid:
                found.append(proc)
    return found


def workers_of(ppid: int) -> list[Proc]:
    """The children of ``ppid`` other than multiprocessing's resource tracker."""
    return [proc for proc in children(ppid) if not proc.is_resource_tracker]


def running(proc: Proc) -> bool:
    """True while the very process ``proc`` exists and has not exited.

    A zombie has exited: it waits only for its parent (or, for an orphan, for
    init, which may be slow) to collect its status.
    """
    now = read(proc.pid)
    return now is not None and now.start == proc.start and now.state != "Z"


def wait_until_exited(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait up to ``timeout`` seconds for every process in ``procs`` to exit; return the rest.

    A pidfd becomes readable when its process exits, so this waits on an
    event, not a clock. Where pidfds are not available (Linux before 5.3) it
    reads the table in short bounded waits instead: no other event reports
    the exit of a process that is not our child.
    """
    waiting = [proc for proc in procs if running(proc)]
    fds: dict[int, Proc] = {}
    try:
        for proc in waiting:
            with contextlib.suppress(OSError):  # exited since, or no pidfd here
                fd = os.pidfd_open(proc.pid)
                fds[fd] = proc
        # Opened after reading the table: check that each pidfd names the
        # same process, not one that was given its pid meanwhile.
        pending = {fd: proc for fd, proc in fds.items() if running(proc)}
        unwatched = [proc for proc in waiting if proc not in fds.values()]
        deadline = time.monotonic() + timeout
        while pending or any(running(proc) for proc in unwatched):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(
                list(pending), [], [], min(left, 0.05) if unwatched else left
            )
            for fd in ready:
                pending.pop(fd)
        return [proc for proc in waiting if running(proc)]
    finally:
        for fd in fds:
            os.close(fd)
