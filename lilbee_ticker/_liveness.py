"""Is the ticker itself alive and seeing? A pure function from one reading to the answers.

A liveness probe that cannot fail is worse than none, so the ticker's own
state counts as much as the pool's: a dead ticker, or one that has not read
the pool for too long, is never healthy. Like :mod:`lilbee_ticker._verdict`,
this is kept apart from threads and clocks: :class:`Reading` is everything
the answer depends on, read once, and :func:`assess` turns it into a
:class:`Liveness` whose parts can never contradict each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from lilbee_ticker._health import HealthStatus, RoleHealth

__all__ = ["Liveness", "Reading", "assess"]


class Reading(NamedTuple):
    """What a ticker's health depends on, as read at one moment."""

    records: Mapping[str, RoleHealth]
    loop_stalls_in_row: int
    failure_threshold: int
    started: bool  # start() was called (a thread exists)
    thread_alive: bool
    stop_requested: bool
    forked: bool  # read in a child process of the one that made the ticker
    end_reason: str | None  # why the thread ended, once it has
    surveyed_age_s: float | None  # since the last tick that read the pool
    since_first_due_s: float | None  # since the first tick was due, once started
    stale_after_s: float


class Liveness(NamedTuple):
    """The answers: state, reason, whether ready, and why not healthy (empty when healthy)."""

    state: str
    reason: str | None
    ready: bool
    problems: tuple[str, ...]


def assess(reading: Reading) -> Liveness:
    """Decide the ticker's state, readiness and health problems from ``reading``."""
    reason = reading.end_reason
    if reading.forked:
        # The thread runs in the parent only: in the child nothing checks the pool.
        state, reason = ("crashed", "forked") if reading.started else ("stopped", reason)
    elif not reading.started:
        state = "stopped" if reading.stop_requested else "new"
    elif reason is None and reading.thread_alive:
        state = "running"
    else:
        state = "stopped" if reason in (None, "stopped") else "crashed"

    surveyed = reading.surveyed_age_s
    # Before the first tick that read the pool, staleness counts from when
    # that tick was due, not from start(): a long initial delay is no fault.
    stale_for = surveyed if surveyed is not None else reading.since_first_due_s
    stale = state == "running" and stale_for is not None and stale_for > reading.stale_after_s

    problems = [
        f"role {role!r} is unhealthy: {record.last_error}"
        + (
            f"; the ticker gave up restarting it after {record.restarts} restarts"
            if record.given_up
            else ""
        )
        for role, record in reading.records.items()
        if record.status is HealthStatus.UNHEALTHY
    ]
    stalls = reading.loop_stalls_in_row
    if stalls >= reading.failure_threshold:
        problems.append(f"the runtime's loop has been unresponsive for {stalls} ticks in a row")
    if state == "crashed":
        problems.append(f"the ticker's thread has ended ({reason})")
    elif stale:
        what = (
            "no tick has read the pool since the first was due"
            if surveyed is None
            else "the last tick that read the pool was"
        )
        problems.append(
            f"stale: {what} {stale_for:.3g}s ago, more than stale_after_s={reading.stale_after_s:g}"
        )
    ready = surveyed is not None and (state == "new" or (state == "running" and not stale))
    return Liveness(state, reason, ready, tuple(problems))
