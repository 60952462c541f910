"""Waking tickers at once when an application's own stop event is set, without polling.

A ticker's own stop event wakes the tick in progress when it is set (see
``_StopEvent``). An event the application passes in cannot call back, so a
tick waiting on the pool's loop would have to look at it every so often.
Instead, one daemon thread per such event blocks in ``event.wait()``, with
no timeout, and wakes every ticker that uses the event the moment it is set:
no wake-ups while nothing happens, and a stop noticed at once.

Only an event whose ``wait`` is :meth:`threading.Event.wait` itself is watched
this way: a subclass with a ``wait`` of its own (a test's stepping event, say)
may give that call a meaning a second waiter would disturb. Tickers on such
an event fall back to looking at it every 25 ms while a tick waits.

The watcher ends when its event is set, which :meth:`HealthTicker.stop`
does. An event that is never set keeps its one watcher waiting for as long
as the process lives; it is a daemon thread, and holds its tickers only
weakly.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

__all__ = ["Wakeable", "reset_after_fork", "watch"]


class Wakeable(Protocol):
    """What the watcher calls on each ticker when the event is set."""

    def _interrupt(self) -> None: ...


class _Watch:
    """One application event, its waiting thread, and the tickers it wakes."""

    __slots__ = ("done", "event", "thread", "tickers")

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.tickers: weakref.WeakSet[Wakeable] = weakref.WeakSet()
        self.done = False
        self.thread = threading.Thread(
            target=self._run, name="lilbee-ticker-stop-watch", daemon=True
        )

    def _run(self) -> None:
        self.event.wait()  # no timeout: this thread wakes once, when the event is set
        with _lock:
            self.done = True
            if _watches.get(id(self.event)) is self:
                del _watches[id(self.event)]
            tickers = list(self.tickers)
        for ticker in tickers:
            ticker._interrupt()


# _lock guards _watches (event id -> its live watch) and each watch's tickers
# and done flag. Held only for dictionary and set operations: never while
# waiting or calling a ticker.
_lock = threading.Lock()
_watches: dict[int, _Watch] = {}


def watch(event: threading.Event, ticker: Wakeable) -> bool:
    """Wake ``ticker`` when ``event`` is set; True if the event can be watched this way."""
    if getattr(type(event), "wait", None) is not threading.Event.wait:
        return False
    start = None
    with _lock:
        found = _watches.get(id(event))
        if found is None or found.done or found.event is not event:
            found = _Watch(event)
            _watches[id(event)] = found
            start = found
        found.tickers.add(ticker)
    if start is not None:
        start.thread.start()
    return True


def reset_after_fork() -> None:
    """In a forked child: forget the parent's watchers, whose threads did not come along."""
    global _lock
    _lock = threading.Lock()
    _watches.clear()
