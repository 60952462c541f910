"""The ticker's calls still running on the loop, and the countdown a step waits on.

Everything here runs on the runtime's event loop thread, except
:attr:`CallBook.idle` (waited on by ``stop()``) and :meth:`CallBook.running`
(a read-out for messages), which any thread may use.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
from typing import Any

from lilbee_ticker import _clock

__all__ = ["CallBook", "Countdown", "RestartEnd"]

RestartEnd = tuple[str, "BaseException | None", "float | None", float]
"""How a restart ended: (role, what it raised or None, its wall-clock start, its end)."""


class CallBook:
    """The ticker's calls still running on the loop: at most one reap and one ping per role.

    One per ticker, shared by all its ticks. Its tasks are added by
    :func:`run_tick`, the reap removed by its done-callback and each ping
    by :meth:`ping_ended` from its own last step, all on the loop thread,
    so it needs no lock. The ticker thread only waits on :attr:`idle`,
    which is set whenever no call is running.
    """

    __slots__ = (
        "_cancelling",
        "_opening",
        "abandoned",
        "idle",
        "late",
        "pings",
        "reap",
        "restart_ends",
        "restart_started",
        "restarts",
    )

    def __init__(self) -> None:
        self.reap: asyncio.Task[Any] | None = None
        # The reap a tick stopped waiting for; when it ends, its result or
        # error goes to ``late``, which the ticker thread drains (a deque:
        # appends and pops are atomic).
        self.abandoned: asyncio.Task[Any] | None = None
        self.late: collections.deque[object] = collections.deque()
        self.pings: dict[str, asyncio.Task[None]] = {}
        # Restarts in flight, never cancelled by the ticker, like the reap; each
        # one's (role, error or None, start, end) goes to restart_ends when it ends, for
        # the ticker thread to drain.
        self.restarts: dict[str, asyncio.Task[Any]] = {}
        self.restart_ends: collections.deque[RestartEnd] = collections.deque()
        # Wall-clock start of each restart in flight, written by the restart itself.
        self.restart_started: dict[str, float] = {}
        # Pings the ticker itself cancelled (deadline or stop): their
        # CancelledError is ours, not the pool's.
        self._cancelling: set[asyncio.Task[None]] = set()
        self.idle = threading.Event()
        self.idle.set()
        # True from starting() to started(): calls are being started, and
        # some may not be recorded yet.
        self._opening = False

    def starting(self) -> None:
        """Say that calls are about to start, before their tasks exist; :meth:`started` ends it.

        A task started eagerly (Python 3.12+) runs the pool's code before
        :meth:`add_reap` or :meth:`add_ping` can record it; the ticker thread,
        reading :attr:`idle` meanwhile, must already see a call in flight.
        And a ping that ends eagerly leaves the book at once: until every
        call of the step is started and recorded, that must not set
        :attr:`idle`, while a later call of the same step may still run.
        """
        self._opening = True
        if self.idle.is_set():  # only this thread sets it: no race
            self.idle.clear()

    def started(self) -> None:
        """Every call of the step is started and recorded: :attr:`idle` may be set again."""
        self._opening = False
        self.settle_idle()

    def add_reap(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` as the reap in flight until it ends; :meth:`starting` came first."""
        self.reap = task
        task.add_done_callback(self._reap_done)

    def add_restart(self, role: str, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` as ``role``'s restart in flight until it ends (after :meth:`starting`)."""
        self.restarts[role] = task
        task.add_done_callback(functools.partial(self._restart_done, role))

    def _restart_done(self, role: str, task: asyncio.Task[Any]) -> None:
        if self.restarts.get(role) is task:
            del self.restarts[role]
        error: BaseException | None
        if task.cancelled():
            error = asyncio.CancelledError(f"restart_role({role!r}) was cancelled on the loop")
        else:
            error = task.exception() or task.result()  # the coroutine returns its error
        started = self.restart_started.pop(role, None)
        self.restart_ends.append((role, error, started, _clock.wall_clock()))
        self.settle_idle()

    def add_ping(self, role: str, task: asyncio.Task[None]) -> None:
        """Keep ``task`` as ``role``'s ping in flight until :meth:`ping_ended`.

        :meth:`starting` came first. A ping that already ended (eagerly, on
        Python 3.12+) is not kept: its :meth:`ping_ended` has come already.
        """
        if not task.done():
            self.pings[role] = task

    def ping_ended(self, countdown: Countdown, role: str) -> None:
        """``role``'s ping ended: called from its own last step (``LazyCoroutine``'s on_end).

        No done-callback of the task is needed, and none of its loop
        iterations: at most one ping per role is in flight, so the ping in
        the book for ``role`` is this one, if it was recorded yet.
        """
        task = self.pings.pop(role, None)
        if task is not None:
            self._cancelling.discard(task)
        countdown.one_ended()
        self.settle_idle()

    def cancel_ping(self, task: asyncio.Task[None]) -> None:
        """Cancel a ping of ours, once, remembering that its CancelledError is ours.

        Once only: a ping that cleans up after its cancellation (or swallows
        it) must be let finish. A second cancel, from ``stop()`` after the
        deadline's, or from the tick's own cancellation after ``stop()``'s,
        would cut that cleanup short.
        """
        if not task.done() and task not in self._cancelling:
            self._cancelling.add(task)
            task.cancel()

    def cancel_pings(self) -> None:
        """Cancel every ping in flight (the reap is never cancelled)."""
        for task in tuple(self.pings.values()):
            self.cancel_ping(task)

    def cancelled_by_us(self, task: asyncio.Task[Any] | None) -> bool:
        """True if the ticker asked ``task`` to cancel."""
        return task in self._cancelling

    @property
    def size(self) -> int:
        """How many calls are in flight."""
        return len(self.pings) + len(self.restarts) + (self.reap is not None)

    def wait_idle(self, budget: _clock.Budget) -> bool:
        """Wait within ``budget`` until no call is in flight; True if none is. Any thread."""
        idle = self.idle
        while not idle.is_set() and not budget.spent:
            if budget.wait(idle.wait, budget.left):
                return True
        return idle.is_set()

    def running(self) -> tuple[str, ...]:
        """Name the calls in flight, as ``reap_idle()`` and ``ping_role('chat')``; any thread.

        A diagnostic read from outside the loop: ``dict.copy()`` is one step
        under the GIL, so it never sees the dictionary change size.
        """
        names = ["reap_idle()"] if self.reap is not None else []
        names += [f"restart_role({role!r})" for role in self.restarts.copy()]
        names += [f"ping_role({role!r})" for role in self.pings.copy()]
        return tuple(names)

    def _reap_done(self, task: asyncio.Task[Any]) -> None:
        if self.reap is task:
            self.reap = None
        # Retrieved here, always, so asyncio never logs "exception was never
        # retrieved" for a reap nobody waited for to the end.
        outcome: object = (
            asyncio.CancelledError("reap_idle() was cancelled on the loop")
            if task.cancelled()
            else task.exception() or task.result()
        )
        if self.abandoned is task:
            self.abandoned = None
            self.late.append(outcome)
        self.settle_idle()

    def settle_idle(self) -> None:
        """Set :attr:`idle` if no call is in flight (and none is being started)."""
        if self._opening:
            return
        if self.reap is None and not self.pings and not self.restarts:
            self.idle.set()


class Countdown:
    """Wakes a tick waiting for its calls when the last one ends, or at the deadline.

    One waiter future and one timer for all the calls of a step, where
    ``asyncio.wait`` would add and then remove a callback on each task. Each
    call counts itself in before it starts (:meth:`one_started`) and out from
    within its own last step (:meth:`one_ended`, through
    :class:`LazyCoroutine`'s ``on_end``), so the tick resumes in the loop
    iteration after the last call ends, not one later, as a done-callback
    would. A call started eagerly (Python 3.12+) may end before the tick
    waits at all; the tick then does not wait. Used on the loop thread only.
    """

    __slots__ = ("left", "waiter")

    def __init__(self) -> None:
        self.left = 0  # calls counted in and not yet out
        self.waiter: asyncio.Future[None] | None = None  # made when the tick waits

    def one_started(self) -> None:
        """A call is about to start."""
        self.left += 1

    def one_ended(self) -> None:
        """A call counted here has ended."""
        self.left -= 1
        if self.left == 0:
            self.wake()

    def wake(self) -> None:
        """Wake the waiting tick, if it waits (the last call ended, or the deadline came)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, deadline: float) -> None:
        """Wait until every call counted here has ended, or until ``deadline`` (loop time).

        The calls are left alone, whichever comes first, and also when the
        waiting tick is cancelled: only the waiter future is cancelled then.
        """
        if self.left == 0:
            return
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = loop.call_at(deadline, self.wake)
        try:
            await self.waiter
        finally:
            timer.cancel()
