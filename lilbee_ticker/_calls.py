"""The coroutine a tick submits to the runtime's loop, and what it leaves for the ticker.

One tick is one round trip to the loop: :func:`run_tick` surveys the pool,
reaps, and pings the survivors all at once, on the loop, bounding the reap
and the pings by ``call_timeout_s`` with the loop's own timers. It writes
what it learns into a :class:`TickState` as it goes, so that the ticker
thread can still report what happened if it has to give up on the whole
coroutine (a blocked loop, or a loop whose clock does not advance).

Everything ``async`` here runs on the runtime's event loop thread, the only
thread allowed to touch the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import threading
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._protocols import Pool

__all__ = ["Gate", "NotAlive", "TickState", "Waiter", "error_of", "run_tick"]


class NotAlive(enum.Enum):
    """The outcome of a ping that was skipped because its role was no longer alive."""

    NOT_ALIVE = "not alive"


PingOutcome = float | BaseException | NotAlive | None
"""A round trip in seconds, the exception the ping raised, NOT_ALIVE, or None (no outcome yet)."""


class Gate:
    """Lets a tick's coroutine start, and start its pings, only while the tick still wants them.

    Cancelling a ``run_coroutine_threadsafe`` future before the loop has
    started its coroutine does not stop the coroutine from starting: the task
    is created and takes its first step before the cancellation reaches it.
    So the coroutine checks its gate first, on the loop, and does nothing
    once the ticker has given up on it or is stopping.
    """

    __slots__ = ("_stop_event", "closed")

    def __init__(self, stop_event: threading.Event) -> None:
        self._stop_event = stop_event
        self.closed = False  # set by the ticker thread, read on the loop thread

    @property
    def open(self) -> bool:
        """True while the tick still wants its calls made."""
        return not self.closed and not self._stop_event.is_set()


class TickState:
    """What :func:`run_tick` learned, written on the loop thread as it goes.

    The ticker thread reads it once the tick's future is done, or, after
    giving up on it, reads whatever is there. Each attribute is assigned
    whole, ``outcomes`` is created with all its keys before any ping starts
    and only its values change after, so such a read sees, per item, either
    nothing yet or a complete value.
    """

    __slots__ = (
        "live",
        "outcomes",
        "reap_done",
        "reap_error",
        "reaped",
        "registered",
        "surveyed_at",
    )

    def __init__(self) -> None:
        self.surveyed_at: float | None = None  # monotonic time the loop started the survey
        self.registered: tuple[str, ...] | None = None
        self.live: tuple[str, ...] | None = None
        self.reaped: tuple[str, ...] = ()
        self.reap_error: BaseException | None = None
        self.reap_done = False
        self.outcomes: dict[str, PingOutcome] = {}


async def run_tick(pool: Pool, state: TickState, gate: Gate, timeout: float) -> None:
    """Survey, reap, then ping every survivor at once; each step bounded by ``timeout``."""
    if not gate.open:
        return
    state.surveyed_at = _clock.monotonic()
    registered = tuple(pool.registered_roles)
    live = tuple(role for role in registered if pool.accessor(role).is_alive)
    state.registered = registered
    state.live = live
    if not live:
        return
    await _reap(pool, state, timeout)
    targets = [role for role in live if role not in state.reaped]
    if not targets or not gate.open:
        return
    outcomes: dict[str, PingOutcome] = dict.fromkeys(targets)
    state.outcomes = outcomes
    pings = [asyncio.ensure_future(_ping(pool, role, outcomes, gate)) for role in targets]
    try:
        _, pending = await asyncio.wait(pings, timeout=timeout)
    except BaseException:
        for ping in pings:  # the tick was cancelled: take its pings down with it
            ping.cancel()
        raise
    for role, ping in zip(targets, pings, strict=True):
        if ping in pending:
            ping.cancel()
            outcomes[role] = CallTimeoutError(f"ping_role({role!r})", timeout)
        elif outcomes[role] is None:
            outcomes[role] = _unrecorded(role, ping)


async def _reap(pool: Pool, state: TickState, timeout: float) -> None:
    try:
        await _reap_bounded(pool, state, timeout)
    finally:
        state.reap_done = True


async def _reap_bounded(pool: Pool, state: TickState, timeout: float) -> None:
    try:
        reap = asyncio.ensure_future(pool.reap_idle())
    except Exception as exc:  # reap_idle() raised before returning an awaitable
        state.reap_error = exc
        return
    try:
        done, _ = await asyncio.wait((reap,), timeout=timeout)
    except BaseException:
        reap.cancel()  # the tick was cancelled: take the reap down with it
        raise
    if not done:
        reap.cancel()
        state.reap_error = CallTimeoutError("reap_idle()", timeout)
        return
    try:
        state.reaped = tuple(reap.result())
    except Exception as exc:  # reported in the TickReport, never raised
        state.reap_error = exc


async def _ping(pool: Pool, role: str, outcomes: dict[str, PingOutcome], gate: Gate) -> None:
    """Ping ``role`` if it is alive right now, and record the outcome.

    The check and the ping's start happen in one step of the loop, so a role
    that was reaped or died since the survey is left alone: pinging it would
    spawn it again.
    """
    if not gate.open:
        return  # the ticker gave up on this tick: no outcome
    if not pool.accessor(role).is_alive:
        outcomes[role] = NotAlive.NOT_ALIVE
        return
    start = _clock.monotonic()
    try:
        await pool.ping_role(role)
    except Exception as exc:
        outcomes[role] = exc
    else:
        outcomes[role] = _clock.monotonic() - start


def _unrecorded(role: str, ping: asyncio.Task[None]) -> BaseException:
    """The outcome of a ping that ended without recording one: the pool cancelled or broke it."""
    if ping.cancelled():
        return concurrent.futures.CancelledError(f"ping_role({role!r}) was cancelled on the loop")
    error = ping.exception()
    return error if error is not None else RuntimeError(f"ping_role({role!r}) left no outcome")


class Waiter:
    """A done-callback that wakes the ticker thread when the tick's future finishes.

    Futures run their callbacks on whichever thread finishes them: the loop
    thread on a result, the cancelling thread on ``cancel()``. That is why
    ``concurrent.futures.wait()`` is not used: it does not wake on
    ``cancel()`` of a ``run_coroutine_threadsafe`` future.
    """

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()

    def __call__(self, _future: concurrent.futures.Future[Any]) -> None:
        self.done.set()


def error_of(future: concurrent.futures.Future[Any]) -> BaseException | None:
    """Return the exception a finished future holds, its cancellation, or None."""
    try:
        return future.exception(timeout=0)
    except concurrent.futures.CancelledError as cancelled:
        return cancelled
