"""One tick's job on the loop: what it may do (its gate) and what it learned (its state).

Built on the ticker thread (``_tickrun``), run on the loop (``_calls`` and
``_restarts``), and read back by the ticker thread, as ``TickState.facts``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from lilbee_ticker._callbook import CallBook
from lilbee_ticker._lazy import Meter
from lilbee_ticker._outcome import PingOutcome
from lilbee_ticker._protocols import Pool

__all__ = ["SURVEY", "Gate", "Stops", "TickJob", "TickState"]

# What the tick's own coroutine runs of the pool's code in its steps, for a
# message naming what blocked the loop.
SURVEY = "the survey (registered_roles, accessor(role).is_alive)"


class Stops(Protocol):
    """What a gate reads to know that the ticker is stopping (its ``_wake.Wake``)."""

    def is_set(self) -> bool:
        """True once the ticker is stopping."""
        ...


# What a pool call raises is that call's failure: every Exception, a
# CancelledError the pool raised itself (an inner wait of the pool's that was
# cancelled), and any other BaseException. KeyboardInterrupt and SystemExit
# are recorded as failures too, then end the loop's run, as asyncio would
# (see _end_the_loop_if_fatal).


class Gate:
    """Lets a tick's coroutine start, and start its pings, only while the tick still wants them.

    A coroutine submitted to a busy loop may start long after the ticker has
    given up on it. So the coroutine checks its gate first, on the loop, and
    does nothing once the ticker has given up on it or is stopping.
    """

    __slots__ = ("_stops", "closed")

    def __init__(self, stops: Stops) -> None:
        self._stops = stops
        self.closed = False  # set by the ticker thread, read on the loop thread

    def open(self) -> bool:
        """Return True while the tick still wants its calls made."""
        return not self.closed and not self._stops.is_set()


class TickState(Meter):
    """What :func:`run_tick` learned, written on the loop thread as it goes.

    The ticker thread reads it once the tick's future is done, or, after
    giving up on it, reads whatever is there (see :meth:`facts`).
    Each attribute is assigned whole, and ``outcomes`` is created with all its
    keys before any ping starts and only its values change after, so such a
    read sees, per item, either nothing yet or a complete value.
    """

    __slots__ = (
        "gated",
        "live",
        "loop",
        "loop_late",
        "outcomes",
        "reap_ended_at",
        "reap_error",
        "reaped",
        "registered",
        "restart_durations",
        "restart_errors",
        "restart_gone",
        "restarted",
        "snapshot_error",
        "started_at",
        "submitted_at",
        "survey_failures",
        "task",
    )

    def __init__(self) -> None:
        super().__init__()
        self.submitted_at: float | None = None  # monotonic; set by the ticker thread
        self.started_at: float | None = None  # monotonic time the loop started the tick
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.snapshot_error: BaseException | None = None
        self.registered: tuple[str, ...] | None = None
        self.live: tuple[str, ...] | None = None
        self.survey_failures: dict[str, BaseException] = {}
        self.reaped: tuple[str, ...] = ()
        self.reap_error: BaseException | None = None
        self.reap_ended_at: float | None = None  # monotonic; the reap step is over
        self.outcomes: dict[str, PingOutcome] = {}
        # Restarts: started, what ended one (or its timeout), how long those
        # that answered took, and those not made because the role was down.
        self.restarted: list[str] = []
        self.restart_errors: dict[str, BaseException] = {}
        self.restart_durations: dict[str, float] = {}
        self.restart_gone: list[str] = []
        # True once a closed gate (the ticker gave up or is stopping) made the
        # coroutine skip a step: the tick did not do all it was to do.
        self.gated = False
        # (step, seconds): the loop woke that late for a step's deadline, so
        # the calls still running then are the loop's fault, not theirs.
        self.loop_late: tuple[str, float] | None = None

    def facts(self) -> dict[str, Any]:
        """What the loop has recorded so far, as ``TickRecord`` fields: the thread's final word.

        Read on the ticker thread once it stops waiting; the mappings are
        copied, so nothing the loop does afterwards changes the record.
        """
        facts = {name: getattr(self, name) for name in _SHARED_FACTS}
        started, submitted = self.started_at, self.submitted_at
        facts["survey_failures"] = dict(self.survey_failures)
        facts["outcomes"] = dict(self.outcomes)
        facts["restarted"] = tuple(self.restarted)
        facts["restart_errors"] = dict(self.restart_errors)
        facts["restart_gone"] = tuple(self.restart_gone)
        facts["reap_done"] = self.reap_ended_at is not None
        facts["loop_busy_s"] = None if started is None else self.loop_busy_s
        facts["loop_lag_s"] = (
            None if started is None or submitted is None else max(0.0, started - submitted)
        )
        return facts


# The TickState attributes a TickRecord takes as they are.
_SHARED_FACTS = (
    "snapshot_error",
    "registered",
    "live",
    "reaped",
    "reap_error",
    "gated",
    "loop_late",
)


class TickJob:
    """Everything one run of :func:`run_tick` needs; built on the ticker thread."""

    __slots__ = ("book", "gate", "ping_timeout", "pool", "restart", "state", "timeout")

    def __init__(
        self,
        pool: Pool,
        book: CallBook,
        gate: Gate,
        timeout: float,
        ping_timeout: float | None,
        restart: tuple[str, ...] = (),
    ) -> None:
        self.pool = pool
        self.restart = restart  # the roles to restart instead of pinging, if alive
        self.book = book
        self.gate = gate
        self.timeout = timeout
        # The bound passed to ping_role(role, timeout=...), or None for a pool
        # whose ping_role takes no timeout keyword.
        self.ping_timeout = ping_timeout
        self.state = TickState()
