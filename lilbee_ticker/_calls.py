"""The coroutines a tick submits to the runtime's loop, and how their futures are awaited.

Everything here that is ``async`` runs on the runtime's event loop thread,
the only thread allowed to touch the pool. The rest runs on the thread
running the tick.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, TypeVar

from lilbee_ticker import _clock
from lilbee_ticker._protocols import Pool

__all__ = ["Countdown", "Gate", "Survey", "outcome", "ping_if_alive", "survey_pool"]

_T = TypeVar("_T")
_Future = concurrent.futures.Future


class Countdown:
    """A done-callback for a batch of futures that sets ``done`` when all have finished.

    Futures run their callbacks on whichever thread finishes them (the loop
    thread on a result, the cancelling thread on ``cancel()``), which is why
    ``concurrent.futures.wait()`` is not used: it does not wake on
    ``cancel()`` of a ``run_coroutine_threadsafe`` future.
    """

    __slots__ = ("_left", "_lock", "done")

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()  # guards _left
        self._left = count
        self.done = threading.Event()
        if count == 0:
            self.done.set()

    def __call__(self, _future: _Future[Any]) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.done.set()


class Gate:
    """Lets the coroutines of one step of a tick start only while the tick still wants them.

    Cancelling a ``run_coroutine_threadsafe`` future before the loop has
    started its coroutine does not stop the coroutine from starting: the task
    is created and takes its first step before the cancellation reaches it.
    Each of our coroutines therefore checks its gate first, on the loop, and
    does nothing once the ticker has given up on it or is stopping.
    """

    __slots__ = ("_stop_event", "closed")

    def __init__(self, stop_event: threading.Event) -> None:
        self._stop_event = stop_event
        self.closed = False  # set by the ticker thread, read on the loop thread

    @property
    def open(self) -> bool:
        return not self.closed and not self._stop_event.is_set()


class Survey:
    """What the survey coroutine learned, written on the loop thread.

    The ticker thread reads it once the survey's future is done, or, after a
    timeout, reads ``live`` to tell a blocked loop (``None``: the survey never
    ran) from a hung ``reap_idle()``. Each attribute is assigned once, whole,
    so such a read sees either nothing or a complete value.
    """

    __slots__ = ("live", "reap_error", "reaped", "registered")

    def __init__(self) -> None:
        self.registered: tuple[str, ...] | None = None
        self.live: tuple[str, ...] | None = None
        self.reaped: tuple[str, ...] = ()
        self.reap_error: BaseException | None = None


async def survey_pool(pool: Pool, into: Survey, gate: Gate) -> None:
    """Read which roles are alive and, if any are, reap the idle ones (on the loop)."""
    if not gate.open:
        return
    registered = tuple(pool.registered_roles)
    live = tuple(role for role in registered if pool.accessor(role).is_alive)
    into.registered = registered
    into.live = live
    if not live:
        return
    try:
        into.reaped = tuple(await pool.reap_idle())
    except Exception as exc:  # reported in the TickReport, never raised
        into.reap_error = exc


async def ping_if_alive(pool: Pool, role: str, gate: Gate) -> float | None:
    """Ping ``role`` if it is alive right now; return the round trip in seconds.

    The check and the ping's start happen in one step of the loop, so a role
    that was reaped or died since the survey is left alone (``None``):
    pinging it would spawn it again.
    """
    if not gate.open or not pool.accessor(role).is_alive:
        return None
    start = _clock.monotonic()
    await pool.ping_role(role)
    return _clock.monotonic() - start


def outcome(future: _Future[_T]) -> tuple[_T | None, BaseException | None]:
    """Return ``(result, None)`` or ``(None, exception)`` of a finished future."""
    try:
        error = future.exception(timeout=0)
    except concurrent.futures.CancelledError as cancelled:
        return None, cancelled
    if error is not None:
        return None, error
    return future.result(timeout=0), None
