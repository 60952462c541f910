"""`StepEvent` and `step()`: drive a ticker's background thread one tick at a time.

Public through :mod:`lilbee_ticker.testing`.
"""

from __future__ import annotations

import threading

from lilbee_ticker._report import TickReport
from lilbee_ticker._ticker import HealthTicker
from lilbee_ticker._validate import check_count, check_seconds

__all__ = ["StepEvent", "step"]


class StepEvent(threading.Event):
    """A stop event that a test can also "time out" on demand, to step a ticker's thread.

    A :class:`~lilbee_ticker.HealthTicker`'s thread uses its stop event as its
    clock: ``wait(timeout)`` returning False means "the interval has passed,
    tick now", and returning True means "stop". A ``StepEvent`` behaves
    exactly like a :class:`threading.Event`, and in addition :meth:`release`
    makes the next ``wait()`` return False at once, as if its timeout had
    run out. So with a long ``interval_s`` the background thread ticks only
    when the test says so, and no real time has to pass. Setting the event
    stops the ticker as usual.

    Releases are counted: a release made while the thread is still busy is
    used by its next wait.

    Thread safety: every method may be called from any thread.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        super().__init__()
        # _step_cond guards _step_flag and _releases. The methods of threading.Event
        # are all overridden: none of its own state is used.
        self._step_cond = threading.Condition(threading.Lock())
        self._step_flag = False
        self._releases = 0

    def is_set(self) -> bool:
        """Return True if the event is set."""
        return self._step_flag

    def set(self) -> None:
        """Set the event: every waiter returns True, now and until :meth:`clear`."""
        with self._step_cond:
            self._step_flag = True
            self._step_cond.notify_all()

    def clear(self) -> None:
        """Clear the event."""
        with self._step_cond:
            self._step_flag = False

    def release(self, count: int = 1) -> None:
        """Make the next ``count`` calls of :meth:`wait` return False at once."""
        count = check_count("count", count)
        with self._step_cond:
            self._releases += count
            self._step_cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the event is set, a release is made, or ``timeout`` passes.

        Returns:
            True if the event is set; False after a release or a timeout.
        """
        with self._step_cond:
            self._step_cond.wait_for(lambda: self._step_flag or self._releases > 0, timeout)
            if self._step_flag:
                return True
            if self._releases > 0:
                self._releases -= 1
            return False


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
