"""`StepEvent` and `step()`: drive a ticker's background thread one tick at a time.

Public through :mod:`lilbee_ticker.testing`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

from lilbee_ticker._report import TickReport
from lilbee_ticker._ticker import HealthTicker
from lilbee_ticker._validate import check_count, check_seconds

__all__ = ["StepEvent", "step"]


class StepEvent(threading.Event):
    """A stop event that a test can also "time out" on demand, to step a ticker's thread.

    A :class:`threading.Event` in every way, and in addition :meth:`release`
    asks every ticker made with it for one tick now, as if its interval had
    run out, and makes the next ``wait()`` on the event itself return False
    at once. So with a long ``interval_s`` the background thread ticks only
    when the test says so. Setting the event stops the ticker, at once.

    The ticker's thread waits on its own clock, as in production, and the
    event is watched as any application's event is: stepping a ticker takes
    the path users run, with no polling.

    Releases are counted: a release made while the thread is still busy is
    used when it is done, and one made before :meth:`~HealthTicker.start`
    ticks at once after it.

    Thread safety: every method may be called from any thread.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       A ticker no longer waits on the event itself, so it no longer polls it.
    """

    def __init__(self) -> None:
        super().__init__()
        # _step_cond guards _releases and _wakes; notified on release() and set().
        self._step_cond = threading.Condition(threading.Lock())
        self._releases = 0
        self._wakes: weakref.WeakSet[_Asks] = weakref.WeakSet()

    def _lilbee_ticker_attach(self, wake: _Asks) -> None:
        """Called by a ticker made with this event: its releases ask ``wake`` for ticks."""
        with self._step_cond:
            self._wakes.add(wake)
            pending = self._releases  # made before the ticker: it ticks for them too
        if pending:
            wake.ask(pending)

    def set(self) -> None:
        """Set the event: every waiter returns True, now and until :meth:`clear`."""
        super().set()
        with self._step_cond:
            self._step_cond.notify_all()

    def release(self, count: int = 1) -> None:
        """Ask each ticker for ``count`` ticks, and let ``count`` waits return False at once."""
        count = check_count("count", count)
        with self._step_cond:
            self._releases += count
            self._step_cond.notify_all()
            wakes = list(self._wakes)
        for wake in wakes:
            wake.ask(count)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the event is set, a release is made, or ``timeout`` passes.

        Returns:
            True if the event is set; False after a release or a timeout.
        """
        with self._step_cond:
            self._step_cond.wait_for(lambda: self.is_set() or self._releases > 0, timeout)
            if self.is_set():
                return True
            if self._releases > 0:
                self._releases -= 1
            return False


class _Asks(Protocol):
    def ask(self, count: int | None = None) -> None: ...


def step(ticker: HealthTicker, *, timeout: float = 10.0) -> TickReport:
    """Make ``ticker``'s background thread run exactly one tick; return that tick's report.

    The ticker must be running, with a :class:`StepEvent` as its stop event
    and an ``interval_s`` long enough that it never ticks on its own during
    the test (an hour, say).

    Raises:
        TypeError: The ticker's stop event is not a :class:`StepEvent`.
        AssertionError: The thread did not complete the tick within
            ``timeout`` seconds, or another tick (manual, or an interval that
            ran out) got in between, so the tick would not be the stepped one.

    .. versionadded:: 0.1.0
    """
    event = ticker.stop_event
    if not isinstance(event, StepEvent):
        raise TypeError(
            f"step() needs a ticker whose stop_event is a StepEvent, got {type(event).__name__}: "
            "create it with HealthTicker(..., stop_event=StepEvent(), interval_s=3600)"
        )
    timeout = check_seconds("timeout", timeout)
    if not ticker.is_running:
        raise AssertionError(f"ticker {ticker.name!r} is not running: start() it before step()")
    last = ticker.last_report
    number = 1 if last is None else last.number + 1
    event.release()
    report = ticker.wait_for_tick(number, timeout=timeout)
    if report is None:
        raise AssertionError(
            f"ticker {ticker.name!r} did not complete tick {number} within {timeout:g}s "
            f"(running: {ticker.is_running})"
        )
    if report.number != number:
        raise AssertionError(
            f"ticker {ticker.name!r}: expected the stepped tick {number}, but tick "
            f"{report.number} completed too; use a longer interval_s and no manual tick()"
        )
    return report
