"""Clocks, and the rule that turns a clock reading into the next wait.

The ticker's cadence and every bound on a wait must follow real time, even in
a test that has frozen or moved ``time.monotonic()`` with freezegun. Two
facts shape this module:

* freezegun replaces ``time.monotonic``, ``time.perf_counter`` and
  ``time.time`` (and every module attribute that points at them) but not
  ``time.clock_gettime``, so :func:`monotonic` reads ``CLOCK_MONOTONIC``
  through it where the platform has it.
* freezegun always freezes ``datetime.datetime.now()``, whatever the calling
  thread or stack depth, so while freezegun is active :func:`wall_clock`
  (used for timestamps that tests want to compare with frozen time) reads
  it rather than ``time.time()``, which freezegun leaves real when a
  :mod:`threading` frame is among its nearest callers (as in the ticker's
  own thread). Otherwise it reads the faster ``time.time()``.

Whatever :func:`monotonic` returns, :func:`next_wait` clamps the wait to
``[0, interval]`` so that a clock that stands still, jumps or runs backwards
can neither stall the ticker nor make it spin.
"""

from __future__ import annotations

import datetime
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["Budget", "monotonic", "next_deadline", "next_wait", "wall_clock"]

monotonic: Callable[[], float]
if hasattr(time, "clock_gettime") and hasattr(time, "CLOCK_MONOTONIC"):
    # A partial is not one of the functions freezegun looks for, so it
    # survives freezegun patching this module's attributes.
    monotonic = functools.partial(time.clock_gettime, time.CLOCK_MONOTONIC)
else:  # pragma: no cover - Windows; next_wait's clamping still applies there
    monotonic = functools.partial(time.monotonic)


# The real datetime class, kept inside a tuple: freezegun rewrites every
# module attribute that is the real class, but does not look into values.
# Found through the method resolution order, so that it is the real class
# even if this module is first imported while freezegun is active.
_REAL_DATETIME: Final = (
    next(
        cls
        for cls in datetime.datetime.__mro__
        if cls.__module__ == "datetime" and cls.__name__ == "datetime"
    ),
)


def wall_clock() -> float:
    """Return the wall-clock time in seconds since the epoch (UTC)."""
    # Look the class up at call time: freezegun swaps datetime.datetime. While
    # it is the real class, time.time() tells the same, several times faster.
    cls = datetime.datetime
    if cls is _REAL_DATETIME[0]:
        return time.time()
    return cls.now(datetime.timezone.utc).timestamp()


def next_deadline(previous: float, now: float, interval: float) -> float:
    """Return the deadline of the next tick after one that was due at ``previous``.

    Deadlines stay on a fixed-rate grid (``previous + interval``), so a tick
    that took part of the interval does not push the next one back, and a
    tick that ends a little after the next deadline (a late wake-up on a busy
    machine, or a tick that ran a whole interval) is followed at once by the
    next, keeping the grid. A stall longer than one interval (the tick ended
    more than an interval after its own deadline: a blocked loop, a suspended
    process, a clock that jumped forward) re-anchors the grid at
    ``now + interval``, as does a deadline more than an interval ahead (the
    clock moved back, or stands still): one tick, then the normal cadence,
    never a catch-up tick for what the stall missed.
    """
    deadline = previous + interval
    if now - interval <= previous and deadline <= now + interval:
        return deadline
    return now + interval


def next_wait(deadline: float, now: float, interval: float) -> float:
    """Return how long to wait for ``deadline``, clamped to ``[0, interval]``.

    A reading that is not a number waits a whole interval: never spin.
    """
    wait = deadline - now
    if math.isnan(wait):
        return interval
    return min(max(wait, 0.0), interval)


# A wake-up that the clock says took no time at all is charged this much: a
# clock that stands still (libfaketime can freeze CLOCK_MONOTONIC itself)
# must not let a stream of wake-ups keep a bounded wait going forever. On a
# working clock a wake-up always takes some time, so this never applies.
_MIN_WAKE_CHARGE_S = 0.001


class Budget:
    """A bounded amount of real time to spend waiting, in slices.

    A slice that times out is charged in full: the wait itself measured it.
    A slice cut short by a wake-up is charged what :func:`monotonic` says it
    took, clamped to ``[0, slice]``, and at least a millisecond if the clock
    says it took no time. So a clock that leaps forward costs at most one
    slice, and one that stands still or runs backwards still lets the budget
    run out: each wake-up then costs a millisecond, each timeout its slice.
    No slice is longer than :data:`threading.TIMEOUT_MAX`, so any budget a
    caller may ask for can be waited.
    """

    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def wait(self, waiter: Callable[[float], bool], slice_max: float) -> bool:
        """Call ``waiter(timeout)`` for the next slice; return what it returned.

        Returns False without calling ``waiter`` once the budget is spent.
        """
        timeout = min(self.left, slice_max, threading.TIMEOUT_MAX)
        if timeout <= 0.0:
            return False
        before = monotonic()
        woke = waiter(timeout)
        took = monotonic() - before
        if not woke or math.isnan(took):
            self.left -= timeout
        elif took <= 0.0:
            self.left -= min(_MIN_WAKE_CHARGE_S, timeout)
        else:
            self.left -= min(took, timeout)
        return woke

    @property
    def spent(self) -> bool:
        """True once nothing is left to wait."""
        return self.left <= 0.0
