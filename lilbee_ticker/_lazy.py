"""The tick's coroutines as the loop sees them: created lazily, metered, named.

:class:`LazyCoroutine` wraps each coroutine the ticker runs on the loop (the
tick itself, its reap, its pings). It creates the real coroutine only when
the loop first runs it, adds the time each step holds the loop to a
:class:`Meter`, records which call's step is running (so that a loop blocked
inside one of the ticker's own calls can be named), and says once that it
ended. :func:`start_task` starts one as a task of the ticker's own.
"""

from __future__ import annotations

import asyncio
import collections.abc
import sys
from collections.abc import Callable, Generator
from typing import Any

from lilbee_ticker import _clock

__all__ = ["LazyCoroutine", "Meter", "quiet", "start_task"]


class Meter:
    """Where a tick's steps record how long they held the loop, and which one runs now.

    Written on the loop thread only; the ticker thread reads :attr:`inside`
    (assigned whole) when the loop stops answering.
    """

    __slots__ = ("inside", "loop_busy_s", "metering")

    def __init__(self) -> None:
        # Seconds the tick's own steps (its coroutine's, its reap's and its
        # pings', the pool's synchronous work within them included) held the
        # loop; metering is True while one is being timed, so that a step run
        # inside another (an eagerly started task) is not counted twice.
        self.loop_busy_s = 0.0
        self.metering = False
        # (call, monotonic start) of the step running now, innermost first.
        self.inside: tuple[str, float] | None = None


class LazyCoroutine(collections.abc.Coroutine[Any, Any, Any]):
    """A coroutine that creates the real one only when the loop first runs it.

    A runtime that stops its loop without running what was submitted (as
    lilbee's does) would leave a plain coroutine unawaited, and Python warns
    about that when the coroutine is collected. One that never started here
    was never created, so nothing warns; once started it is the real one.

    Args:
        factory: Makes the real coroutine.
        meter: Where to add the time each step takes, and to say which
            call's step runs (:class:`Meter`), if anywhere.
        on_end: Called once, within the step that ends the coroutine (it
            returned or raised, or was thrown into before it started), after
            that step is metered. A tick waiting for this call is woken from
            there, not from a done-callback of the task one loop iteration
            later.
        label: The call, for messages: ``"reap_idle()"``, ``"ping_role('chat')"``.
    """

    __slots__ = ("_coro", "_factory", "_label", "_meter", "_on_end")

    def __init__(
        self,
        factory: Callable[[], collections.abc.Coroutine[Any, Any, Any]],
        meter: Meter | None = None,
        on_end: Callable[[], None] | None = None,
        label: str = "a coroutine of the ticker's",
    ) -> None:
        self._factory: Callable[[], collections.abc.Coroutine[Any, Any, Any]] | None = factory
        self._coro: collections.abc.Coroutine[Any, Any, Any] | None = None
        self._meter = meter
        self._on_end = on_end
        self._label = label

    @property
    def label(self) -> str:
        """The call this coroutine makes, for messages."""
        return self._label

    def __repr__(self) -> str:
        return f"<lilbee_ticker call {self._label}>"

    def _real(self) -> collections.abc.Coroutine[Any, Any, Any]:
        """The real coroutine, created on the first call."""
        coro = self._coro
        if coro is None:
            factory = self._factory
            if factory is None:
                raise RuntimeError("cannot reuse an already closed coroutine")
            self._factory = None
            coro = self._coro = factory()
        return coro

    def send(self, value: Any) -> Any:
        """Start the real coroutine on first use, then pass ``value`` on."""
        coro = self._coro
        if coro is None:
            coro = self._real()
        return self._step(coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise into the real coroutine; one that never started just raises."""
        error = typ if val is None else val
        if isinstance(error, type):
            error = error()
        if tb is not None:
            error = error.with_traceback(tb)
        coro = self._coro
        if coro is None:
            self._factory = None
            self._ended()
            raise error
        return self._step(coro.throw, error)

    def _step(self, step: Callable[[Any], Any], value: Any) -> Any:
        meter = self._meter
        if meter is None:
            try:
                return step(value)
            except BaseException:
                self._ended()
                raise
        outer = meter.inside
        nested = meter.metering  # inside a metered step: counted by that one
        start = _clock.monotonic()
        meter.inside = (self._label, start)
        meter.metering = True
        try:
            result = step(value)
        except BaseException:
            _close_step(meter, outer, nested, start)
            self._ended()  # after the metering: whoever it wakes reads a whole figure
            raise
        _close_step(meter, outer, nested, start)
        return result

    def _ended(self) -> None:
        on_end = self._on_end
        if on_end is not None:
            self._on_end = None
            on_end()

    def close(self) -> None:
        """Close the real coroutine, if it ever started."""
        self._factory = None
        if self._coro is not None:
            self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._real().__await__()


def quiet(task: asyncio.Task[Any] | None) -> None:
    """Let asyncio drop ``task`` silently if its loop is closed while it is pending.

    A runtime may stop its loop without cancelling what runs on it (lilbee's
    does). The ticker has then already reported the tick as interrupted, and
    asyncio's "Task was destroyed but it is pending!" would only be noise.
    ``_log_destroy_pending`` is the attribute asyncio itself reads for that.
    """
    if task is not None:
        task._log_destroy_pending = False  # type: ignore[attr-defined]


if sys.version_info >= (3, 12):

    def start_task(loop: asyncio.AbstractEventLoop, coro: LazyCoroutine) -> asyncio.Task[Any]:
        """Start a task of the tick's, running its first step at once (eagerly).

        A reap or ping that answers without waiting is then done before this
        returns: no loop iteration, no timer. asyncio's eager start keeps
        ``asyncio.current_task()`` right inside that first step.
        """
        return asyncio.Task(coro, loop=loop, name=coro.label, eager_start=True)

else:

    def start_task(loop: asyncio.AbstractEventLoop, coro: LazyCoroutine) -> asyncio.Task[Any]:
        """Start a task of the tick's; its first step runs at the loop's next iteration.

        Made directly, as on 3.12+, rather than through ``loop.create_task``:
        a tick's tasks are the ticker's own, and a loop's task factory is for
        the application's. Named for the call, so that a runtime that lists
        what was left running names it.
        """
        return asyncio.Task(coro, loop=loop, name=coro.label)


def _close_step(meter: Meter, outer: tuple[str, float] | None, nested: bool, start: float) -> None:
    meter.inside = outer
    if not nested:
        meter.loop_busy_s += _clock.monotonic() - start
        meter.metering = False
