"""Turn-taking: ticks never overlap, and whoever waits for one is woken when it is published.

The background thread and every caller of ``tick()`` take turns in one
*slot*; ``wait_for_tick()`` waits for a report. This is the one home of the
rules that keep that safe when a signal handler runs ``stop()`` on a thread
that is in the middle of it:

* the lock is reentrant, so such a handler can take it;
* the slot and the lock are only ever taken in bounded slices, giving up as
  soon as the ticker is stopping, so that a handler's ``stop()`` can wait
  for the ticker's thread to end while the thread it interrupted holds one;
* the lock is never held while waiting on a future, submitting to the loop,
  joining a thread, logging or calling a hook. The slot is not a lock in
  that sense: it is the turn itself, held for the whole tick, and every
  wait for it is bounded by the tick in progress's own worst case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lilbee_ticker import _clock
from lilbee_ticker._report import TickReport

__all__ = ["TickTurns"]

# How long a claim of the slot, or a notify, waits for its lock at a time
# before it looks again whether the ticker is stopping.
_LOCK_SLICE_S = 0.01

# wait() is woken at once by a published report, a stop and the thread
# ending; this bounds only how late it notices a wake-up that a notify had
# to skip (see notify).
_WAITER_CHECK_S = 0.25


class TickTurns:
    """The tick slot, and the threads waiting for a tick's report.

    ``_lock`` guards ``_waiters``; ``_changed``, on the same lock, is
    notified when the slot is freed, a report is published, the ticker
    stops or its thread ends (skipped while nobody waits). ``_slot`` is held
    by the thread running a tick; the holder alone writes :attr:`owner`
    and :attr:`generation`, and everything the tick changes.

    Args:
        bound: How long a claim may wait for the tick in progress (its
            worst case, with a margin).
        stopping: True once the ticker is stopping; read without a lock.
    """

    __slots__ = (
        "_bound",
        "_changed",
        "_lock",
        "_slot",
        "_stopping",
        "_waiters",
        "generation",
        "owner",
    )

    def __init__(self, bound: float, stopping: Callable[[], bool]) -> None:
        self._bound = bound
        self._stopping = stopping
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._slot = threading.Lock()
        self._waiters = 0  # threads in wait(); changed under _lock, read without it
        self.owner: int | None = None  # the ident of the thread running a tick
        # Counts claims: a waiter whose turn has not come yet starts its bound
        # again whenever the slot changes hands, so it is bounded by the tick
        # in progress, not by the length of the queue.
        self.generation = 0

    @property
    def bound(self) -> float:
        """How long a claim waits for the tick in progress."""
        return self._bound

    def mine(self) -> bool:
        """True if the calling thread runs the tick in progress."""
        return self.owner == threading.get_ident()

    def claim(self) -> bool:
        """Wait (bounded) until no other tick runs, then take the slot.

        Returns:
            True with the slot taken; False if the ticker is stopping, or
            the tick in progress outlived the bound.
        """
        slot = self._slot
        if slot.acquire(blocking=False):  # the usual case: nobody else ticks
            if not self._stopping():
                self._took()
                return True
            slot.release()
            return False
        budget = _clock.Budget(self._bound)
        generation = self.generation
        while not self._stopping():
            if budget.wait(self._take, _LOCK_SLICE_S):
                if self._stopping():
                    slot.release()
                    return False
                self._took()
                return True
            if generation != self.generation:
                generation = self.generation
                budget = _clock.Budget(self._bound)  # the slot moved on: a new turn
            elif budget.spent:
                return False
        return False

    def claim_or_raise(self, usage: Callable[[str, str], Exception]) -> None:
        """Take the slot for a manual ``tick()``, or raise why it cannot be taken.

        Raises:
            TickerUsageError: The ticker is stopping (made by ``usage``).
            TimeoutError: The tick in progress outlived the bound.
        """
        if self.claim():
            return
        if self._stopping():
            raise usage(
                "tick() was called on a stopped ticker (stop() was called or its "
                "stop_event is set)",
                "create a new HealthTicker to tick again",
            )
        raise TimeoutError(
            f"tick(): the tick in progress on another thread did not end within {self._bound:g}s"
        )

    def release(self) -> None:
        """Free the slot and wake the waiters."""
        self.owner = None
        self._slot.release()
        self.notify()

    def notify(self) -> None:
        """Wake the threads in :meth:`wait`, never blocking long on the lock.

        The lock may be held by the main thread, interrupted by a signal
        handler whose ``stop()`` waits for this very thread to end. So once
        the ticker is stopping, this gives up on the lock after a short wait:
        the waiters then notice on their own, within ``_WAITER_CHECK_S``.
        """
        if not self._waiters:
            # Nobody waits: no lock to take. A waiter counts itself in, under
            # the lock, before it first looks at what this would announce,
            # which is always set before this runs: it cannot miss it.
            return
        while not self._changed.acquire(timeout=_LOCK_SLICE_S):
            if self._stopping():
                return
        try:
            self._changed.notify_all()
        finally:
            self._changed.release()

    def wait(
        self,
        number: int,
        budget: _clock.Budget,
        latest: Callable[[], TickReport | None],
        over: Callable[[], bool],
    ) -> TickReport | None:
        """Wait within ``budget`` until ``latest()`` is tick ``number`` or later, or ``over()``."""
        with self._changed:
            self._waiters += 1
            try:
                while True:
                    report = latest()
                    if report is not None and report.number >= number:
                        return report
                    if over() or budget.spent:
                        return None
                    budget.wait(self._changed.wait, _WAITER_CHECK_S)
            finally:
                self._waiters -= 1

    def reinit_after_fork(self) -> None:
        """In a forked child: locks nobody holds."""
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._slot = threading.Lock()
        self.owner = None

    def _take(self, timeout: float) -> bool:
        return self._slot.acquire(timeout=timeout)

    def _took(self) -> None:
        self.owner = threading.get_ident()
        self.generation += 1
