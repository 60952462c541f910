"""Stop, wake and fork: what a ticker's thread waits on, and who may wake it.

* :class:`Wake` is the ticker's own: its thread's clock (``threading.Timer``'s
  idea: a wait that times out when a tick is due), its stop signal, the
  ticks asked for on demand, and the news that wakes a tick waiting on the
  loop. The ticker only ever *reads* an event the application lent it.
* :class:`Relay` carries an application's stop event into the wakes of the
  tickers lent it: one daemon thread per event, waiting on it in slices, so
  that the event being set stops them at once, and so that the relay ends,
  within one slice, once no running ticker needs it. Nothing is ever set on
  the application's event.
* :class:`Lifecycle` is the ticker's thread: started once, stopped through
  the wake, joined within a bound, and tied to the process that made it.
* :func:`register` keeps every ticker for the fork handler, which gives a
  forked child's tickers locks that nobody holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import NamedTuple, Protocol

from lilbee_ticker import _clock, _log
from lilbee_ticker._exceptions import TickerUsageError

__all__ = [
    "Lifecycle",
    "OwnStopEvent",
    "Relay",
    "Thread",
    "Wake",
    "in_event_loop_thread",
    "join",
    "register",
    "relay",
]

# How often a relay looks whether its ticker still needs it. The application's
# event wakes it at once; this only bounds how long a relay outlives its ticker.
RELAY_SLICE_S = 0.25


class _Bell:
    """A binary semaphore: :meth:`ring` never blocks, :meth:`wait` is bounded.

    Rings coalesce; a wait takes one. It is a plain lock held while nobody
    rang, so ringing is ``release()``, which never waits, even in a signal
    handler that interrupted the very thread that is waiting.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def ring(self) -> None:
        with contextlib.suppress(RuntimeError):  # rung already, and not yet heard
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        return self._lock.acquire(timeout=max(0.0, min(timeout, threading.TIMEOUT_MAX)))


class Wake:
    """A ticker's clock and its stop: what its thread waits on.

    It holds no lock anyone else could hold. The state is three values,
    each written whole: ``stopped``, the ticks ``_asked`` for (a deque:
    appends and pops are atomic), and ``_news``. Two bells wake the two
    waits: the thread's clock (:meth:`wait_for_tick`) and a tick following
    the loop (:meth:`wait_for_news`); only one thread waits on each at a
    time, and a wake-up for nothing is checked and waited again. So
    :meth:`stop` and :meth:`ask` never block: a signal handler may call them
    on any thread, whatever that thread was doing.

    Thread safety: every method may be called from any thread, and from a
    signal handler.
    """

    __slots__ = ("__weakref__", "_asked", "_clock", "_news", "_news_bell", "retired", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self.retired = False  # the ticker's thread has ended: nothing waits on this any more
        self._asked: collections.deque[int] = collections.deque()  # ticks asked, not begun
        self._news = False  # a tick in progress has something new to look at
        self._clock = _Bell()
        self._news_bell = _Bell()

    def is_set(self) -> bool:
        """True once stopped: a wake reads as the ticker's stop event would."""
        return self.stopped

    def done(self) -> bool:
        """True once nothing needs to wake this: stopped, or its thread has ended."""
        return self.stopped or self.retired

    def stop(self) -> None:
        """Stop: wake the thread's clock and any tick waiting on the loop, for good."""
        self.stopped = True
        self._clock.ring()
        self._news_bell.ring()

    def ask(self, count: int | None = None) -> None:
        """Ask for a tick now; ``count`` ticks if given, else one however often asked."""
        if count is None:
            if not self._asked:  # a race only adds a tick asked for anyway
                self._asked.append(1)
        else:
            self._asked.extend([1] * count)
        self._clock.ring()

    def news(self) -> None:
        """Tell a tick waiting on the loop that something changed (its future, a stop)."""
        self._news = True
        self._news_bell.ring()

    def wait_for_tick(self, timeout: float) -> str:
        """Wait for the next tick: ``"stop"``, ``"asked"`` or ``"due"`` (the timeout ran out)."""
        budget = _clock.Budget(timeout)
        while True:
            if self.stopped:
                return "stop"
            if self._asked:
                try:
                    self._asked.popleft()
                except IndexError:  # taken by no one else: only this thread waits here
                    continue
                return "asked"
            if budget.spent:
                return "due"
            budget.wait(self._clock.wait, budget.left)

    def wait_for_news(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for news or a stop; False only if the whole timeout passed.

        A ring left over from an earlier tick wakes it for nothing: that is a
        wake-up, not a timeout, so the caller looks again and waits on.
        """
        woke = self._news or self.stopped or self._news_bell.wait(timeout)
        self._news = False
        return woke

    def clear_news(self) -> None:
        """Forget news from before a tick began."""
        self._news = False

    def reinit_after_fork(self) -> None:
        """In a forked child: bells nobody holds (their holder did not come along)."""
        self._clock = _Bell()
        self._news_bell = _Bell()


class OwnStopEvent(threading.Event):
    """The stop event a ticker makes for itself when none is lent: setting it stops the ticker."""

    def __init__(self, wake: Wake) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        """Set the event and stop its ticker."""
        super().set()
        self._wake.stop()


def join(thread: threading.Thread | None, budget: _clock.Budget) -> bool:
    """Join ``thread`` within ``budget``; False if it is still alive or is this thread."""
    if thread is None:
        return True
    if thread is threading.current_thread():
        return False

    def joined(timeout: float) -> bool:
        thread.join(timeout)
        return not thread.is_alive()

    while thread.is_alive() and not budget.spent:
        budget.wait(joined, budget.left)
    return not thread.is_alive()


class _Event(Protocol):
    def wait(self, timeout: float | None = ...) -> bool: ...
    def is_set(self) -> bool: ...


class Relay:
    """Stops every :class:`Wake` that uses an application's event when it is set.

    One daemon thread per event, shared by all the running tickers lent it
    (:func:`relay`). It waits on the event in slices of
    :data:`RELAY_SLICE_S`, and ends when the event is set (stopping every
    wake), or once none of its wakes needs it any more: each is stopped, or
    retired because its ticker's thread ended. A :class:`threading.Event`,
    subclasses included, is waited on through :meth:`threading.Event.wait`
    itself, so that a subclass's own ``wait`` (a ``testing.StepEvent``'s)
    keeps its meaning.
    """

    __slots__ = ("_wait", "event", "thread", "wakes")

    def __init__(self, event: _Event) -> None:
        self.event = event
        self.wakes: set[Wake] = set()  # guarded by _relays_lock
        self._wait: Callable[[float], bool]
        if isinstance(event, threading.Event) and (
            type(event).wait is threading.Event.wait or hasattr(event, "_lilbee_ticker_attach")
        ):
            # Event's own wait, also for a StepEvent, whose wait() takes its releases.
            self._wait = lambda timeout: threading.Event.wait(event, timeout)
        else:
            self._wait = event.wait  # a class that keeps its own state: its own wait
        self.thread = threading.Thread(
            target=self._run, name="lilbee-ticker-stop-watch", daemon=True
        )

    def _run(self) -> None:
        try:
            self._relay()
        except BaseException as exc:
            # The event cannot be watched: stop its tickers rather than leave
            # them deaf to it, and say so; a thread never dies silently.
            with _relays_lock:
                wakes, self.wakes = self.wakes, set()
                if _relays.get(id(self.event)) is self:
                    del _relays[id(self.event)]
            with contextlib.suppress(Exception):
                _log.emit("critical", "relay.crashed", exc_info=exc, wakes=len(wakes))
            for wake in wakes:
                wake.stop()

    def _relay(self) -> None:
        while True:
            is_set = self._wait(RELAY_SLICE_S)
            with _relays_lock:
                if not is_set:
                    self.wakes = {wake for wake in self.wakes if not wake.done()}
                if is_set or not self.wakes:
                    wakes, self.wakes = self.wakes, set()
                    if _relays.get(id(self.event)) is self:
                        del _relays[id(self.event)]
                    break
        for wake in wakes:  # outside the lock: stop() notifies under the wake's own
            wake.stop()


# _relays_lock guards _relays (event id -> its relay) and every relay's wakes;
# held for set and dict operations only, never while waiting or stopping a wake.
_relays_lock = threading.Lock()
_relays: dict[int, Relay] = {}


def relay(event: _Event, wake: Wake) -> None:
    """Have ``event`` being set stop ``wake``, through the event's one relay thread."""
    start = None
    with _relays_lock:
        found = _relays.get(id(event))
        if found is None or found.event is not event:
            found = start = _relays[id(event)] = Relay(event)
        found.wakes.add(wake)
    if start is not None:
        start.thread.start()


def in_event_loop_thread() -> bool:
    """True on a thread running an asyncio event loop."""
    # The low-level getter asyncio itself exports: nothing raised and caught.
    return asyncio._get_running_loop() is not None


class Thread(NamedTuple):
    """How a ticker's thread stands, as read at one moment."""

    started: bool
    alive: bool
    stop_requested: bool
    forked: bool
    end_reason: str | None
    since_first_due_s: float | None


class Lifecycle:
    """A ticker's thread and stop: started once, stopped through its :class:`Wake`.

    ``_lock`` (reentrant: a signal handler may stop a ticker while its thread
    is in start()) guards ``thread``, set in :meth:`start` and read by
    :meth:`stop`. An application's event, if one was lent, is only read:
    :meth:`stop` stops the wake, and a :class:`Relay` carries the event into it.
    """

    __slots__ = (
        "_lock",
        "_name",
        "_pid",
        "app_event",
        "end_reason",
        "started_mono",
        "stop_called",
        "stop_event",
        "thread",
        "wake",
    )

    def __init__(self, name: str, app_event: threading.Event | None) -> None:
        self._name = name
        self.wake = Wake()
        self.app_event = app_event
        self.stop_event = OwnStopEvent(self.wake) if app_event is None else app_event
        attach = getattr(app_event, "_lilbee_ticker_attach", None)
        if callable(attach):  # a testing.StepEvent: its releases ask for ticks
            attach(self.wake)
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self.thread: threading.Thread | None = None
        self.started_mono: float | None = None
        self.end_reason: str | None = None  # set by the thread just before it ends
        self.stop_called = False  # stop() was called

    @property
    def pid(self) -> int:
        """The process the ticker was made in."""
        return self._pid

    def forked(self) -> bool:
        """True in a child process of the one that made the ticker."""
        return os.getpid() != self._pid

    def stopping(self) -> bool:
        """True once the ticker is stopping: stopped, or its application's event set."""
        app = self.app_event
        return self.wake.stopped or (app is not None and app.is_set())

    def running(self) -> bool:
        """True while the thread is alive, in this process."""
        thread = self.thread
        return thread is not None and not self.forked() and thread.is_alive()

    def over(self) -> bool:
        """True once no more background ticks will come: stopping, or the thread has ended."""
        thread = self.thread
        ended = self.end_reason is not None  # set by the thread just before it ends
        return self.stopping() or ended or (thread is not None and not thread.is_alive())

    def start(self, target: Callable[[], None], name: str) -> str | None:
        """Start the thread (and a relay for a lent event); return why it cannot, or None."""
        with self._lock:
            if self.thread is not None:
                return "start() was called on a ticker that was already started"
            if self.stop_called:
                return "start() was called on a ticker that was already stopped"
            if self.stopping() or self.stop_event.is_set():
                return "start() was called but its stop_event is already set"
            self.started_mono = _clock.monotonic()
            if self.app_event is not None:
                relay(self.app_event, self.wake)
            thread = threading.Thread(target=target, name=name, daemon=True)
            try:
                thread.start()  # under the lock: stop() never sees a thread it cannot join
            except BaseException:
                self.wake.retired = True  # its relay lets go of it
                raise
            self.thread = thread
        return None

    def stop(self) -> threading.Thread | None:
        """Stop the ticker (never setting a lent event); return the thread to join."""
        self.stop_called = True
        if self.app_event is None:
            self.stop_event.set()  # the ticker's own: it stops the wake too
        else:
            self.wake.stop()
        with self._lock:
            return self.thread

    def ended(self, reason: str) -> None:
        """Record why the thread ends, and let its relay go; called by the thread itself."""
        self.end_reason = reason
        self.wake.retired = True  # its relay, if any, lets go of it within a slice

    def facts(self, first_delay_s: float) -> Thread:
        """How the thread stands now."""
        thread, started = self.thread, self.started_mono
        due = None if started is None else max(0.0, _clock.monotonic() - started - first_delay_s)
        return Thread(
            started=thread is not None,
            alive=thread is not None and thread.is_alive(),
            stop_requested=self.wake.stopped,
            forked=self.forked(),
            end_reason=self.end_reason,
            since_first_due_s=due,
        )

    def reinit_after_fork(self) -> None:
        """In a forked child: locks nobody holds.

        The stop event's too, a lent one included: the parent's relay takes
        its lock on every wait, and no thread of the child can be holding it.
        """
        self._lock = threading.RLock()
        self.wake.reinit_after_fork()
        if isinstance(self.stop_event, threading.Event):
            self.stop_event._at_fork_reinit()  # type: ignore[attr-defined]  # Event's own reset

    # -- misuse that would hang or act on another process's ticker is refused -----

    def usage(self, problem: str, fix: str) -> TickerUsageError:
        """The error for a call that cannot work, naming the fix."""
        return TickerUsageError(self._name, problem, fix)

    def refuse_if_forked(self, call: str) -> None:
        """Refuse ``call`` in a child process of the one that made the ticker."""
        if self.forked():
            raise self.usage(
                f"{call} was called in a child process, but the ticker and its runtime "
                f"belong to process {self._pid}",
                "create a new runtime and a new HealthTicker in the child",
            )

    def refuse_never_started(self, call: str, *, ticked: bool) -> None:
        """Refuse to wait on a ticker never started and never ticked: no tick would come.

        One driven by ``tick()`` calls (``ticked``: one ran or runs) may be
        waited on: another thread's next ``tick()`` is a tick to come.
        """
        if self.thread is None and not ticked:
            raise self.usage(
                f"{call} was called on a ticker that was never started and is not "
                "ticking, so no tick would come",
                "call start() first (or use `with HealthTicker(...)`), or tick() for a tick now",
            )

    def refuse_to_block(self, call: str, hook_fix: str, to_thread: str, *, in_tick: bool) -> None:
        """Refuse a blocking ``call`` that would wait for itself, naming the fix.

        ``to_thread`` is what a coroutine passes to ``asyncio.to_thread`` instead.
        """
        if in_tick or threading.current_thread() is self.thread:
            raise self.usage(
                f"{call} was called from inside a tick (from an on_change hook, or the "
                "ticker's own thread), where it would wait for itself",
                hook_fix,
            )
        if in_event_loop_thread():
            raise self.usage(
                f"{call} blocks, and was called from a thread running an asyncio event loop, "
                "which would stall that loop (and deadlock if it is the runtime's)",
                f"call it from a coroutine as `await asyncio.to_thread({to_thread})`",
            )


class _Forkable(Protocol):
    def _reinit_after_fork(self) -> None: ...


# Every ticker in this process, for the fork handler below. Weak, so that
# the registry keeps no ticker alive.
_TICKERS: weakref.WeakSet[_Forkable] = weakref.WeakSet()


def register(ticker: _Forkable) -> None:
    """Give ``ticker`` fresh locks in a forked child (see ``_reinit_after_fork``)."""
    _TICKERS.add(ticker)


def _reinit_in_forked_child() -> None:
    """In a child just forked: give every ticker locks and events that nobody holds.

    A fork copies a lock in whatever state it was in, and the thread that
    held it does not exist in the child: without this, a child that stops a
    parent's ticker could wait forever on a lock the parent's ticker thread
    held at the moment of the fork.
    """
    global _relays_lock
    _relays_lock = threading.Lock()
    _relays.clear()  # their threads did not come along
    for ticker in list(_TICKERS):
        ticker._reinit_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_reinit_in_forked_child)
