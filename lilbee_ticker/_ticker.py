"""`HealthTicker`: a daemon thread that reaps and pings a worker pool on a cadence.

The design in one paragraph: the thread's clock is ``stop_event.wait(t)``.
When the wait times out, one tick runs. A tick crosses to the runtime's event
loop only through ``runtime.submit()``, once, and never touches the pool
itself: one coroutine (see ``_calls.run_tick``) reads which roles are alive
and, if any are, reaps idle ones, then pings every survivor at once, each
checking on the loop that its role is still alive right before pinging it,
so a reaped worker is never spawned again by its own health check. The loop
bounds the reap and the pings by ``call_timeout_s``; the ticker's wait for
the tick follows the loop's progress with real-time checkpoints of its own,
so a loop that stops running callbacks, or a runtime that goes away, is
told apart from a slow call (see ``_verdict``), and it wakes as soon as the
tick finishes or the ticker is stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import os
import threading
import types
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple, TypeVar

from lilbee_ticker import _clock, _log, _watch
from lilbee_ticker._calls import CallBook, Gate, LazyCoroutine, TickJob, TickState, abort, run_tick
from lilbee_ticker._exceptions import RuntimeUnavailableError, TickerUsageError
from lilbee_ticker._health import HealthBook, HealthStatus, RoleHealth
from lilbee_ticker._liveness import Reading, assess
from lilbee_ticker._probe import Probe
from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._report import TickReport
from lilbee_ticker._stats import StatsBook, TickerStats
from lilbee_ticker._validate import check_attributes, check_count, check_name, check_seconds
from lilbee_ticker._verdict import Ending, TickRecord, decide

__all__ = ["HealthTicker", "OnChange"]

_T = TypeVar("_T")
_Future = concurrent.futures.Future

OnChange = Callable[[RoleHealth | None, RoleHealth], object]
"""The type of an ``on_change`` hook: ``hook(old, new)``; the return value is ignored."""

# The structlog event and level for each status a role can move to.
_TRANSITION_EVENTS: dict[HealthStatus, tuple[str, str]] = {
    HealthStatus.UNKNOWN: ("role.unknown", "debug"),
    HealthStatus.HEALTHY: ("role.healthy", "info"),
    HealthStatus.FAILING: ("role.failing", "warning"),
    HealthStatus.UNHEALTHY: ("role.unhealthy", "warning"),
    HealthStatus.DOWN: ("role.down", "info"),
}

# While a tick waits on the loop it wakes this often to notice that a
# stop_event the application passed in was set, if that event is of a kind
# that cannot be watched (a subclass with a wait() of its own; see _watch).
# stop(), the ticker's own event and a plain threading.Event wake it at once.
_STOP_CHECK_S = 0.025

# How much longer than its own worst case a tick() call waits for the tick
# that another thread is running before giving up.
_SLOT_GRACE_S = 1.0

# How much later than the loop's own deadline for a step (call_timeout_s
# for the reap, as long again for the pings) the ticker waits for the loop to
# come back from it before taking the loop to be unresponsive: room for the
# loop's wake-ups on a busy machine.
_BACKSTOP_GRACE_S = 1.0

# A pool whose ping_role() takes a timeout keyword gets the ticker's bound
# less this share of it (at most _POOL_MARGIN_MAX_S), so that its own timeout
# ends the call, cleanly, just before the ticker's deadline would cancel it.
_POOL_MARGIN = 0.1
_POOL_MARGIN_MAX_S = 1.0

# wait_for_tick() and a tick() waiting its turn are woken at once by a
# completed tick, stop() and the thread ending; this bounds only how late they
# notice a stop_event set directly on a ticker whose thread is not running, or
# a wake-up the ticker's thread had to skip (see _notify).
_WAITER_CHECK_S = 0.25

# How long the ticker's own thread, or a tick() waiting its turn, waits for
# the lock at a time before it looks again whether the ticker is stopping
# (see _notify and _claim_slot).
_LOCK_SLICE_S = 0.01


def _in_event_loop_thread() -> bool:
    # The low-level getter asyncio itself exports: no exception raised and
    # caught on every tick of a thread that runs no loop.
    return asyncio._get_running_loop() is not None


class _StopEvent(threading.Event):
    """A ticker's own stop event: setting it also wakes a tick in progress, as stop() does.

    So a tick waiting on the pool wakes at once however the event is set,
    without having to poll it, and cancels its pings. It holds the ticker
    only weakly.
    """

    def __init__(self, on_set: weakref.WeakMethod[Callable[[], None]]) -> None:
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        """Set the event, then wake the ticker's tick in progress."""
        super().set()
        wake = self._on_set()
        if wake is not None:
            wake()


def _nothing() -> Coroutine[Any, Any, None]:
    async def nothing() -> None:
        return None

    return nothing()


# Every ticker in this process, for the fork handler below. Weak, so that
# the registry keeps no ticker alive.
_TICKERS: weakref.WeakSet[HealthTicker] = weakref.WeakSet()


def _reinit_in_forked_child() -> None:
    """In a child just forked: give every ticker locks and events that nobody holds.

    A fork copies a lock in whatever state it was in, and the thread that
    held it does not exist in the child: without this, a child that sets a
    parent ticker's own stop event could wait forever on a lock the parent's
    ticker thread held at the moment of the fork.
    """
    _watch.reset_after_fork()
    for ticker in list(_TICKERS):
        ticker._reinit_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_reinit_in_forked_child)


def _reinit_event(event: threading.Event) -> None:
    # threading.Event's own after-fork reset (the interpreter uses it on its
    # own events); an event without one is left as it is.
    reinit = getattr(event, "_at_fork_reinit", None)
    if reinit is not None:
        reinit()


def _check_roles_member(pool: object) -> None:
    """Refuse a pool whose ``registered_roles`` is a plain method.

    The ticker reads ``pool.registered_roles`` as a value (a property or a
    sequence), so a method would only fail at every tick. Read statically:
    no property of the pool runs here.

    Raises:
        TypeError: ``registered_roles`` is a function defined on the class.
    """
    member = inspect.getattr_static(pool, "registered_roles")
    if isinstance(member, (types.FunctionType, staticmethod, classmethod)):
        raise TypeError(
            f"pool.registered_roles must be a property or a sequence of role names, but "
            f"{type(pool).__qualname__}.registered_roles is a method: decorate it with "
            "@property (or make it a tuple attribute)"
        )


def _check_clock_event(event: object) -> None:
    """Refuse a stop event whose ``wait(timeout)`` cannot serve as the thread's clock.

    The thread blocks in ``event.wait(timeout)`` and reads the bool it
    returns. An ``asyncio.Event`` has the three methods, but its ``wait`` is a
    coroutine function that takes no timeout: it would kill the thread at its
    first wait.

    Raises:
        TypeError: ``wait`` is a coroutine function or takes no timeout.
    """
    wait = getattr(event, "wait", None)
    kind = f"{type(event).__module__}.{type(event).__qualname__}"
    if inspect.iscoroutinefunction(wait):
        raise TypeError(
            f"stop_event must block in wait(timeout), as threading.Event does, but {kind}'s "
            f"wait is a coroutine function (got {event!r}): pass a threading.Event, and set it "
            "from the event loop with loop.call_soon_threadsafe or directly"
        )
    try:
        signature = inspect.signature(wait)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # a builtin without a signature: trusted
    try:
        signature.bind(1.0)
    except TypeError:
        raise TypeError(
            f"stop_event.wait must take a timeout in seconds, as threading.Event.wait does, "
            f"but {kind}.wait{signature} does not (got {event!r}): pass a threading.Event"
        ) from None


def _pool_ping_timeout(pool: object, call_timeout_s: float) -> float | None:
    """The ``timeout=`` to pass to ``pool.ping_role``, or None if it takes no such keyword.

    Read from the signature without calling or running anything on the pool.
    """
    try:
        member = inspect.getattr_static(pool, "ping_role")
    except AttributeError:
        return None
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    try:
        parameter = inspect.signature(member).parameters.get("timeout")
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.kind not in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    ):
        return None
    return call_timeout_s - min(call_timeout_s * _POOL_MARGIN, _POOL_MARGIN_MAX_S)


class _View(NamedTuple):
    """One consistent reading of a ticker's health; see ``HealthTicker._view``."""

    state: str
    reason: str | None
    age: float | None
    problems: tuple[str, ...]
    ready: bool
    records: Mapping[str, RoleHealth]


class HealthTicker:
    """Reap idle workers and ping live ones on a fixed cadence, from a daemon thread.

    Every ``interval_s`` seconds the ticker's thread runs one tick: it reads
    which roles are alive, calls the pool's ``reap_idle()``, then pings every
    role that is still alive, all pings at once. The tick is one coroutine
    submitted to ``runtime``; the reap and the pings may take at most
    ``call_timeout_s`` each, and a call still running then is reported as a
    :class:`CallTimeoutError`, a verdict nothing the call does later changes.
    A ping is then cancelled: it is the ticker's own probe. A reap is not: it
    may be closing a worker process, so it runs on under the pool's own
    bounds, and no new reap starts until it ends. No call ever overlaps
    itself. The outcome of each tick is a :class:`TickReport`.

    A ticker runs once, like :class:`threading.Thread`. Use it as a context
    manager, or call :meth:`start` and :meth:`stop`; setting its
    :attr:`stop_event` from anywhere also stops it.

    Args:
        pool: The worker pool, see :class:`Pool`. Its state is only ever read
            on the runtime's loop.
        runtime: Runs coroutines on the pool's loop, see :class:`Runtime`.
        interval_s: Seconds between the starts of two ticks; finite, > 0.
        call_timeout_s: Real seconds to wait for each step of a tick (the
            reap, then all pings together); finite, > 0. A pool whose
            ``ping_role`` takes a ``timeout`` keyword is passed this bound
            less a tenth (at most 1 s), so that it ends a slow ping itself.
        stop_event: The event the thread waits on. Pass an application-wide
            shutdown event to stop the ticker with everything else; by
            default a new :class:`threading.Event`. It must not be set yet
            when the ticker starts.
        name: The thread's name, also bound as ``ticker`` on every log event.
        failure_threshold: Failed pings in a row that turn a role from
            ``FAILING`` to ``UNHEALTHY``; an int >= 1.
        success_threshold: Successful pings in a row that turn a failing or
            unhealthy role ``HEALTHY`` again; an int >= 1.
        on_change: Called as ``on_change(old, new)`` with two
            :class:`RoleHealth` records (``old`` is ``None`` for a role seen
            for the first time) once per status transition, on the thread
            running the tick, after the tick's health records are published.
            An exception it raises is logged and ignored, except
            ``KeyboardInterrupt`` and ``SystemExit``, which are raised once
            the tick is published.
        initial_delay_s: Seconds from :meth:`start` to the first tick;
            ``None`` (the default) waits one ``interval_s``, as the asyncio
            ticker did, and ``0`` ticks at once. Finite, >= 0.
        stale_after_s: How old the last tick that read the pool may get
            before a running ticker is no longer :attr:`healthy`; by default
            ``2 * interval_s + 2 * call_timeout_s + 1``. Finite, > 0.

    Raises:
        TypeError: An argument has the wrong type, or ``pool`` or ``runtime``
            lacks part of its protocol, or ``stop_event`` cannot serve as a
            clock (an ``asyncio.Event``).
        ValueError: ``interval_s`` or ``call_timeout_s`` is not a finite
            number > 0, a threshold is < 1, or ``name`` is empty.

    Thread safety: every public method and property may be called from any
    thread. Ticks never overlap: :meth:`tick` and the background thread take
    turns.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        pool: Pool,
        runtime: Runtime,
        *,
        interval_s: float = 30.0,
        call_timeout_s: float = 10.0,
        stop_event: threading.Event | None = None,
        name: str = "lilbee-health-ticker",
        failure_threshold: int = 3,
        success_threshold: int = 1,
        on_change: OnChange | None = None,
        initial_delay_s: float | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        check_attributes(
            "pool",
            pool,
            "lilbee_ticker.Pool",
            ("registered_roles", "accessor", "reap_idle", "ping_role"),
            callables=("accessor", "reap_idle", "ping_role"),
        )
        _check_roles_member(pool)
        check_attributes(
            "runtime", runtime, "lilbee_ticker.Runtime", ("submit",), callables=("submit",)
        )
        self._interval_s = check_seconds("interval_s", interval_s)
        self._call_timeout_s = check_seconds("call_timeout_s", call_timeout_s)
        self._name = check_name(name)
        self._failure_threshold = check_count("failure_threshold", failure_threshold)
        self._success_threshold = check_count("success_threshold", success_threshold)
        if on_change is not None and not callable(on_change):
            raise TypeError(
                "on_change must be a callable taking (old, new) or None, "
                f"got {on_change!r} of type {type(on_change).__name__}"
            )
        self._on_change = on_change
        self._initial_delay_s = (
            None
            if initial_delay_s is None
            else check_seconds("initial_delay_s", initial_delay_s, allow_zero=True)
        )
        if stale_after_s is None:
            self._stale_after_s = 2 * self._interval_s + 2 * self._call_timeout_s + 1.0
        else:
            self._stale_after_s = check_seconds("stale_after_s", stale_after_s)
            if self._stale_after_s <= self._interval_s:
                raise ValueError(
                    f"stale_after_s must be longer than interval_s ({self._interval_s:g}s), "
                    f"got {stale_after_s!r}: between two ticks the last one is up to an "
                    "interval old, so a healthy ticker would turn stale; leave it None for "
                    "2 * interval_s + 2 * call_timeout_s + 1"
                )
        self._owns_stop_event = stop_event is None
        if stop_event is None:
            stop_event = _StopEvent(weakref.WeakMethod(self._interrupt))
        else:
            check_attributes(
                "stop_event",
                stop_event,
                "threading.Event",
                ("wait", "set", "is_set"),
                callables=("wait", "set", "is_set"),
            )
            _check_clock_event(stop_event)
        self._pool = pool
        self._runtime = runtime
        self._stop_event = stop_event
        self._pid = os.getpid()
        self._ping_timeout = _pool_ping_timeout(pool, self._call_timeout_s)
        # The ticker's calls still running on the loop; see CallBook for its
        # rules (only the loop thread changes it; this thread only waits on
        # its idle event).
        self._book = CallBook()
        # Set when the tick in progress may have something new to look at:
        # its future is done, or the ticker is stopping. One event for the
        # ticker's life (ticks take turns), cleared at the start of a tick.
        self._wake = threading.Event()

        # _lock guards _thread and _report_waiters, and _changed (on the same
        # lock) is notified when the slot is freed, a report is published,
        # stop() is called or the thread ends, for wait_for_tick() (skipped
        # while nobody waits, see _notify). It is only ever held for a few
        # assignments: never while waiting on a future, submitting to the
        # loop, joining a thread, logging or calling a hook.
        #
        # A signal handler may run stop() on the main thread at any bytecode,
        # including while that very thread holds this lock, or the slot. The
        # lock is reentrant, so the handler can take it; and the ticker's own
        # thread only ever takes it, or the slot, in bounded slices, giving up
        # once the ticker is stopping (see _notify and _claim_slot), so the
        # handler's stop() can wait for that thread to end. The other
        # attributes are written by one thread at a time (the slot holder, or
        # a single assignment), so they need no lock.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # The tick slot: held by whichever thread runs a tick, so that ticks
        # take turns. A plain lock, taken in bounded slices: never waited on
        # through a condition, whose wake-up would take _lock back unbounded.
        self._slot = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_requested = False
        # The ident of the thread running a tick, or None: the tick slot.
        # Ticks take turns; the holder alone may touch _health, _ongoing,
        # _stats, _tick_count, _loop_stalls_in_row and _job.
        self._slot_owner: int | None = None
        # Counts claims of the slot: a waiter whose turn has not come yet
        # starts its bound again whenever the slot changes hands, so it is
        # bounded by the tick in progress, not by the length of the queue.
        self._slot_generation = 0
        self._tick_count = 0
        # Threads in wait_for_tick(); changed under _lock, read without it.
        self._report_waiters = 0
        self._stats = StatsBook()
        self._health = HealthBook(self._failure_threshold, self._success_threshold)
        # The job of the tick in progress, for stop() to find; None between ticks.
        self._job: TickJob | None = None
        self._last_report: TickReport | None = None
        self._exception: BaseException | None = None
        self._runtime_lost = False
        # Ticks in a row whose loop stopped running their callbacks.
        self._loop_stalls_in_row = 0
        # Monotonic times: start() (set once), and the end of the latest tick
        # that read the pool (the slot holder writes it). And why the thread
        # ended, set by the thread just before it does.
        # True once an application's stop event is watched for this ticker,
        # so a tick need not look at it every _STOP_CHECK_S (see _watch).
        self._watched = False
        self._started_mono: float | None = None
        self._surveyed_mono: float | None = None
        self._end_reason: str | None = None

        # Which pool-wide problems (snapshot, reap) are already logged at
        # warning, so that one lasting many ticks is logged once when it
        # starts and once when it ends.
        self._ongoing: set[str] = set()
        _TICKERS.add(self)

    # -- public API ----------------------------------------------------------

    @property
    def name(self) -> str:
        """The ticker's name, also its thread's name."""
        return self._name

    @property
    def interval_s(self) -> float:
        """Seconds between the starts of two background ticks."""
        return self._interval_s

    @property
    def call_timeout_s(self) -> float:
        """Real seconds each step of a tick may take before it is cancelled."""
        return self._call_timeout_s

    @property
    def stop_event(self) -> threading.Event:
        """The event the thread waits on as its clock; setting it stops the ticker."""
        return self._stop_event

    @property
    def is_running(self) -> bool:
        """True while the background thread is alive (in this process)."""
        thread = self._thread
        return thread is not None and not self._forked() and thread.is_alive()

    @property
    def last_report(self) -> TickReport | None:
        """The report of the most recent tick, background or manual, or ``None``."""
        return self._last_report

    @property
    def exception(self) -> BaseException | None:
        """The last unexpected exception inside the ticker's own code, or ``None``.

        Failures of the pool's calls are not here: they are in each
        :class:`TickReport`. This is for bugs, which are also logged with
        their traceback.
        """
        return self._exception

    @property
    def failure_threshold(self) -> int:
        """Failed pings in a row that make a role unhealthy."""
        return self._failure_threshold

    @property
    def success_threshold(self) -> int:
        """Successful pings in a row that make a failing or unhealthy role healthy again."""
        return self._success_threshold

    def health(self) -> Mapping[str, RoleHealth]:
        """Return every registered role's health record, as of the latest tick.

        The mapping is a read-only snapshot that one tick replaced as a whole,
        so its records are consistent with each other. It is read without a
        lock and without touching the pool: safe to call from any thread at
        any rate, for example from a ``/healthz`` handler, and it never waits
        for a tick in progress. Empty until the first tick has read the pool.
        """
        return self._health.records

    @property
    def initial_delay_s(self) -> float | None:
        """Seconds from :meth:`start` to the first tick, or ``None`` for one interval.

        .. versionadded:: 0.2.0
        """
        return self._initial_delay_s

    @property
    def stale_after_s(self) -> float:
        """How old the last tick that read the pool may get before a running ticker is unhealthy.

        .. versionadded:: 0.2.0
        """
        return self._stale_after_s

    @property
    def state(self) -> str:
        """The ticker's state: ``"new"``, ``"running"``, ``"stopped"`` or ``"crashed"``.

        ``"stopped"`` is an orderly end (:meth:`stop` or the stop event);
        ``"crashed"`` is any other end of the background thread: a bug, a
        ``KeyboardInterrupt`` or ``SystemExit``, or a runtime that went away.
        In a forked child a ticker that was started in the parent is
        ``"crashed"`` too, with reason ``"forked"``: its thread does not run
        there, so nothing checks the pool.

        .. versionadded:: 0.2.0
        """
        return self._view().state

    @property
    def healthy(self) -> bool:
        """True unless something says the pool, or the ticker itself, is not well.

        What a liveness probe serves. It is False while any of these holds:

        * some role is :attr:`HealthStatus.UNHEALTHY`;
        * the runtime's loop has missed its deadlines for ``failure_threshold``
          ticks in a row (:attr:`TickReport.loop_error`);
        * the background thread has ended other than by :meth:`stop` or its
          stop event (:attr:`state` is ``"crashed"``, for example because the
          runtime went away): nobody checks the pool any more;
        * the ticker is running, but its last tick that read the pool is
          older than :attr:`stale_after_s` (or, before its first such tick,
          it started longer ago than that): it is blind.

        Before :meth:`start`, and after an orderly stop, only the roles and
        the loop count: a new ticker is healthy, and a stopped one keeps the
        verdict of its last tick. A role that is down (reaped, crashed or
        never spawned) or still failing below ``failure_threshold`` does not
        make the ticker unhealthy.

        .. versionchanged:: 0.2.0
           Also False for an unresponsive loop, a crashed thread, or a
           stale ticker.
        """
        return not self._view().problems

    @property
    def ready(self) -> bool:
        """True once a tick has read the pool, while the ticker is new or running and not stale.

        What a readiness probe serves: the health checks are under way. It
        is False before the first tick that read the pool (which comes one
        ``interval_s`` after :meth:`start`, or ``initial_delay_s``), and
        False again while the ticker is dead, stopped or stale.

        .. versionadded:: 0.2.0
        """
        return self._view().ready

    def probe(self) -> Probe:
        """Return what a ``/healthz`` endpoint serves, now, without waiting or touching the pool.

        The result's :attr:`Probe.status_code` is 200 when :attr:`healthy`,
        else 503, and its :attr:`Probe.body` a JSON-serialisable dict with
        ``healthy``, ``ready``, ``state``, ``reason`` (why the thread ended,
        or ``None``), ``last_tick_age_s`` (age of the last tick that read the
        pool, or ``None``), ``problems`` (why it is not healthy) and
        ``roles`` (each role's ``status`` and ``consecutive_failures``).

        Thread safety: reads only snapshots; safe from any thread at any rate.

        .. versionadded:: 0.2.0
        """
        view = self._view()
        roles = tuple(
            (role, record.status.value, record.consecutive_failures)
            for role, record in view.records.items()
        )
        return Probe(
            healthy=not view.problems,
            ready=view.ready,
            state=view.state,
            reason=view.reason,
            ticker=self._name,
            last_tick_age_s=None if view.age is None else round(view.age, 3),
            problems=view.problems,
            roles=roles,
        )

    def _view(self) -> _View:
        """Read everything health depends on once, and derive every answer from that reading.

        So a probe never contradicts itself (healthy, yet "crashed"), even
        when the thread ends or the staleness bound passes while it is read.
        """
        records = self._health.records
        thread = self._thread
        surveyed = self._surveyed_mono
        started = self._started_mono
        now = _clock.monotonic()
        age = None if surveyed is None else max(0.0, now - surveyed)
        reading = Reading(
            records=records,
            loop_stalls_in_row=self._loop_stalls_in_row,
            failure_threshold=self._failure_threshold,
            started=thread is not None,
            thread_alive=thread is not None and thread.is_alive(),
            stop_requested=self._stop_requested,
            forked=self._forked(),
            end_reason=self._end_reason,
            surveyed_age_s=age,
            since_first_due_s=(
                None if started is None else max(0.0, now - started - self._first_delay())
            ),
            stale_after_s=self._stale_after_s,
        )
        live = assess(reading)
        return _View(live.state, live.reason, age, live.problems, live.ready, records)

    def _first_delay(self) -> float:
        return self._interval_s if self._initial_delay_s is None else self._initial_delay_s

    def stats(self) -> TickerStats:
        """Return the ticker's counters, as of the latest completed tick."""
        return self._stats.stats

    def start(self) -> HealthTicker:
        """Start the background thread and return the ticker.

        Raises:
            TickerUsageError: The ticker was already started, was stopped, its
                ``stop_event`` is already set, or it was created in another
                process (before a fork).
        """
        self._refuse_if_forked("start()")
        problem: str | None = None
        with self._lock:
            if self._thread is not None:
                problem = "start() was called on a ticker that was already started"
            elif self._stop_requested:
                problem = "start() was called on a ticker that was already stopped"
            elif self._stop_event.is_set():
                problem = "start() was called but its stop_event is already set"
            else:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._started_mono = _clock.monotonic()
                # Started under the lock so that stop() never sees a thread it
                # cannot join. Thread.start() only waits for the new thread to
                # begin, and _run() does not need the lock to begin.
                thread.start()
                self._thread = thread
        if problem is None:
            self._watch_stop_event()  # outside the lock: it may start the watcher's thread
            return self
        raise TickerUsageError(
            self._name,
            problem,
            "a ticker runs once, like threading.Thread: create a new HealthTicker "
            "(with a stop_event that is not set) to start again",
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the ticker: set the stop event, cancel its pings, and wait for it to end.

        It waits, up to ``timeout`` in all, for the thread to end and for
        every call the ticker started to end on the loop: pings are
        cancelled, but a reap in flight is left to finish under the pool's
        own bounds (cancelling it could leave a worker process running that
        the pool no longer knows). So give it a ``timeout`` longer than your
        pool's slowest reap if the pool is drained right after.

        Safe to call before :meth:`start`, more than once, and from any thread,
        including the ticker's own thread (from a hook), where it cannot wait
        for itself and returns ``False`` at once (the thread then ends as soon
        as the current tick returns), and the runtime's loop thread, where the
        join blocks the loop for as long as the thread takes to end (the tick
        in flight is cancelled first, so that is brief). From a signal handler
        it works while the main thread is in a ticker call, but like most
        locking code it is not async-signal-safe: a handler that interrupts
        ``stop()`` itself may block. Prefer setting a flag in the handler, or
        ``loop.add_signal_handler()``.

        Args:
            timeout: Longest time to wait for the thread to end, in seconds;
                finite and >= 0.

        Returns:
            True if the thread has ended (or never started) and no call the
            ticker started is still running, False if something was still
            running when ``timeout`` passed. Called from a thread running an
            event loop, it cannot wait for the calls (they may need that very
            loop) and returns whether the thread has ended.

        Raises:
            TypeError: ``timeout`` is not a real number.
            ValueError: ``timeout`` is negative or not finite.
        """
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        if self._forked():
            return True  # the thread lives only in the parent process
        # A flag first: it needs no lock, so the ticker's thread sees it even
        # if this runs in a signal handler that interrupted a holder.
        self._stop_requested = True
        self._stop_event.set()
        self._interrupt()
        with self._changed:  # reentrant: fine even if this thread already holds it
            thread = self._thread
            self._changed.notify_all()
        budget = _clock.Budget(timeout)
        ended = self._join(thread, budget)
        # From inside a tick of this thread's own (a signal handler), its calls
        # can only end once the handler has returned: do not wait for them.
        if ended and self._slot_owner != threading.get_ident():
            ended = self._wait_for_calls(budget)
        if not ended and thread is not threading.current_thread():
            self._emit("warning", "ticker.stop_timeout", timeout_s=timeout)
        return ended

    def join(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds for the background thread to end.

        For an application that stops the ticker by setting a shared
        :attr:`stop_event` and then waits for its components to finish.
        Unlike :meth:`stop`, it neither sets the event nor cancels anything.

        Returns:
            True if the thread has ended (or never started); False if it is
            still running after ``timeout``, or if called from the ticker's
            own thread, which cannot wait for itself.
        """
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        if self._forked():
            return True
        return self._join(self._thread, _clock.Budget(timeout))

    def tick(self) -> TickReport:
        """Run one full tick now, in the calling thread, and return its report.

        It waits its turn if the background thread is in a tick. It also
        records the report as :attr:`last_report` and counts in the ticker's
        tick numbers.

        Raises:
            TickerUsageError: The ticker is stopped, or the call comes from
                the ticker's own thread or a thread running an event loop,
                where it would wait for itself (use
                ``await asyncio.to_thread(ticker.tick)`` from a coroutine).
            RuntimeUnavailableError: ``runtime.submit()`` raised.
            TimeoutError: The tick in progress on another thread did not end
                within its own worst-case bound.
        """
        self._refuse_if_forked("tick()")
        if (self._thread is not None and threading.current_thread() is self._thread) or (
            self._slot_owner == threading.get_ident()
        ):
            raise TickerUsageError(
                self._name,
                "tick() was called from inside a tick (from an on_change hook, or the "
                "ticker's own thread), where it would wait for itself",
                "return from the hook and let the current tick finish",
            )
        if _in_event_loop_thread():
            raise TickerUsageError(
                self._name,
                "tick() blocks, and was called from a thread running an asyncio event loop, "
                "which would stall that loop (and deadlock if it is the runtime's)",
                "call it from a coroutine as `await asyncio.to_thread(ticker.tick)`",
            )
        self._watch_stop_event()
        if not self._claim_slot(background=False):
            raise TimeoutError(
                f"ticker {self._name!r}: the tick in progress on another thread did not end "
                f"within {self._slot_timeout():g}s"
            )
        try:
            return self._tick()
        finally:
            self._release_slot()

    def wait_for_tick(self, number: int = 1, timeout: float = 60.0) -> TickReport | None:
        """Block until tick ``number`` has completed; return the latest report.

        Useful to hold back readiness until the first health check has run,
        and in tests to wait for the background thread without sleeping.

        Args:
            number: The tick to wait for, 1-based; a completed tick returns
                at once.
            timeout: Longest wait in seconds; finite and >= 0.

        Returns:
            The latest report (its ``number`` is at least ``number``), or
            ``None`` if ``timeout`` passed, the ticker was stopped, or its
            thread ended first.
        """
        number = check_count("number", number)
        budget = _clock.Budget(check_seconds("timeout", timeout, allow_zero=True))
        report = self._last_report
        if report is not None and report.number >= number:
            return report
        if self._forked():
            return None  # no thread ticks here; and the lock may be held by one that is gone
        if self._slot_owner == threading.get_ident():
            raise TickerUsageError(
                self._name,
                "wait_for_tick() was called from inside a tick (from an on_change hook), "
                "where it would wait for itself",
                "return from the hook; the tick's report is published right after it",
            )
        if _in_event_loop_thread():
            raise TickerUsageError(
                self._name,
                "wait_for_tick() blocks, and was called from a thread running an asyncio "
                "event loop, which would stall that loop (and the tick, if it is the runtime's)",
                "call it from a coroutine as `await asyncio.to_thread(ticker.wait_for_tick, n)`",
            )
        with self._changed:
            self._report_waiters += 1
            try:
                while True:
                    report = self._last_report
                    if report is not None and report.number >= number:
                        return report
                    if self._stopping() or budget.spent or self._thread_ended():
                        return None
                    budget.wait(self._changed.wait, _WAITER_CHECK_S)
            finally:
                self._report_waiters -= 1

    def __enter__(self) -> HealthTicker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self.is_running:
            state = "running"
        elif self._thread is not None or self._stop_requested:
            state = "stopped"
        else:
            state = "new"
        return (
            f"<HealthTicker {self._name!r} {state} interval_s={self._interval_s:g} "
            f"ticks={self._tick_count}>"
        )

    # -- the thread ----------------------------------------------------------

    def _run(self) -> None:
        """The thread's body: tick on the cadence until stopped; never die silently."""
        self._emit(
            "info",
            "ticker.started",
            interval_s=self._interval_s,
            call_timeout_s=self._call_timeout_s,
        )
        reason = "stopped"
        try:
            self._tick_on_cadence()
        except RuntimeUnavailableError:
            reason = "runtime_unavailable"  # logged where it was found
        except BaseException as exc:
            reason = "crashed"
            self._exception = exc
            self._emit("critical", "ticker.crashed", exc_info=exc)
        finally:
            self._end_reason = reason
            self._notify()  # wake wait_for_tick(): no more ticks will come
            self._emit("info", "ticker.stopped", reason=reason, ticks=self._tick_count)

    def _tick_on_cadence(self) -> None:
        """Wait on the stop event as the clock; each time it times out, run one tick."""
        interval = self._interval_s
        first = interval if self._initial_delay_s is None else self._initial_delay_s
        now = _clock.monotonic()
        deadline = now + first
        wait = first  # the first wait is the initial delay, whatever the clock says
        while not self._stop_event.wait(wait):
            # The wait timed out, so the tick is due. That is trusted over the
            # clock's reading, which a test may have frozen or moved.
            if self._claim_slot(background=True):
                try:
                    self._tick()
                except RuntimeUnavailableError:
                    raise
                except Exception as exc:
                    self._exception = exc
                    self._emit("error", "tick.crashed", exc_info=exc)
                finally:
                    self._release_slot()
                if self._runtime_lost:
                    raise RuntimeUnavailableError(self._name, "the tick")
            now = _clock.monotonic()
            deadline = _clock.next_deadline(deadline, now, interval)
            wait = _clock.next_wait(deadline, now, interval)

    # -- one tick --------------------------------------------------------------

    def _slot_timeout(self) -> float:
        # The longest a tick can take (see _await_tick), with a margin of its own.
        return 3 * self._call_timeout_s + 2 * _BACKSTOP_GRACE_S + _SLOT_GRACE_S

    def _claim_slot(self, *, background: bool) -> bool:
        """Wait (bounded) until no other tick runs, then mark one as running.

        The bound is the worst case of the tick in progress, and starts again
        whenever the slot changes hands, so many threads calling :meth:`tick`
        at once all get their turn. The slot is taken in short slices, each
        charged to the bound, and a background claim gives up as soon as the
        ticker is stopping: a signal handler's stop() may be waiting for this
        thread to end while the thread it interrupted holds the slot.

        Raises:
            TickerUsageError: For a manual tick, the ticker is stopped.
        """
        if self._slot.acquire(blocking=False):  # the usual case: nobody else ticks
            if not self._stopping():
                self._slot_owner = threading.get_ident()
                self._slot_generation += 1
                return True
            self._slot.release()  # answered below
        bound = self._slot_timeout()
        budget = _clock.Budget(bound)
        generation = self._slot_generation
        while True:
            if self._stopping():
                if background:
                    return False
                raise TickerUsageError(
                    self._name,
                    "tick() was called on a stopped ticker (stop() was called or its "
                    "stop_event is set)",
                    "create a new HealthTicker to tick again",
                )
            if budget.wait(self._take_slot, _LOCK_SLICE_S):
                if self._stopping():
                    self._slot.release()
                    continue  # answered at the top of the loop
                self._slot_owner = threading.get_ident()
                self._slot_generation += 1
                return True
            if generation != self._slot_generation:
                generation = self._slot_generation
                budget = _clock.Budget(bound)  # the slot moved on: a new turn
            elif budget.spent:
                return False

    def _take_slot(self, timeout: float) -> bool:
        return self._slot.acquire(timeout=timeout)

    def _release_slot(self) -> None:
        self._slot_owner = None
        self._slot.release()
        self._notify()

    def _notify(self) -> None:
        """Wake the threads waiting on ``_changed``, never blocking long on its lock.

        The lock may be held by the main thread, interrupted by a signal
        handler whose stop() waits for this very thread to end. So once the
        ticker is stopping, this gives up on the lock after a short wait:
        the waiters then notice on their own, within ``_WAITER_CHECK_S``.
        """
        if not self._report_waiters:
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

    def _tick(self) -> TickReport:
        """Run one tick; the caller holds the tick slot."""
        self._tick_count += 1  # the slot holder alone writes it
        number = self._tick_count
        job = TickJob(
            self._pool, self._book, Gate(self._stop_event), self._call_timeout_s, self._ping_timeout
        )
        state = job.state
        state.submitted_at = start = _clock.monotonic()
        future = self._submit(
            LazyCoroutine(functools.partial(run_tick, job), state),
            "the tick (survey, reap_idle(), ping_role())",
        )
        # What follows is done while the loop's thread wakes up for the tick.
        # The wake-up is cleared only now: a tick that already ended, or a
        # stop already requested, is seen by _await_tick before it waits.
        started_at = _clock.wall_clock()
        self._wake.clear()
        future.add_done_callback(self._on_tick_done)
        self._job = job
        try:
            ending, stage, waited = self._await_tick(future, state)
        finally:
            self._job = None
        if ending is not Ending.FINISHED:
            self._abort(job)  # cancel its pings, end its coroutine; never its reap
        if ending is Ending.RUNTIME_GONE:
            self._runtime_unavailable("the tick", None)

        cancelled = ending is Ending.FINISHED and future.cancelled()
        escaped = None
        if ending is Ending.FINISHED and not cancelled:
            escaped = future.exception(timeout=0)
        loop_lag = None
        if state.started_at is not None and state.submitted_at is not None:
            loop_lag = max(0.0, state.started_at - state.submitted_at)
        record = TickRecord(
            number=number,
            started_at=started_at,
            duration_s=max(0.0, _clock.monotonic() - start),
            ending=ending,
            stall_stage=stage,
            waited_s=waited,
            escaped=escaped,
            cancelled=cancelled,
            loop_lag_s=loop_lag,
            snapshot_error=state.snapshot_error,
            registered=state.registered,
            live=state.live,
            survey_failures=dict(state.survey_failures),
            reaped=state.reaped,
            reap_error=state.reap_error,
            reap_done=state.reap_ended_at is not None,
            outcomes=state.outcomes_now(),
            gated=state.gated,
            loop_late=state.loop_late,
            loop_busy_s=state.loop_busy_s if state.started_at is not None else None,
        )
        report = decide(record)
        registered = record.registered if report.snapshot_error is None else None
        transitions = self._health.observe(report, registered, _clock.wall_clock())
        if registered is not None:
            self._surveyed_mono = _clock.monotonic()
        if report.loop_error is not None:
            self._loop_stalls_in_row += 1
        elif not report.interrupted:
            self._loop_stalls_in_row = 0
        self._stats.add(report)
        self._log_report(report)
        self._log_late_reaps()
        fatal = self._announce_all(transitions)
        # Published last, so that whoever waits for this tick finds its
        # health records updated and its hooks already run; and published
        # even when a hook raised KeyboardInterrupt or SystemExit, which is
        # raised only after.
        self._last_report = report  # the waiters are woken when the slot is released
        if fatal is not None:
            raise fatal
        return report

    def _submit(self, coro: Coroutine[Any, Any, _T], call: str) -> _Future[_T]:
        """Submit ``coro`` to the runtime.

        Raises:
            RuntimeUnavailableError: ``runtime.submit()`` raised an Exception.
                A ``KeyboardInterrupt`` or ``SystemExit`` it raises propagates
                as itself.
        """
        try:
            return self._runtime.submit(coro)
        except Exception as exc:
            coro.close()  # it never ran: no "coroutine was never awaited" warning
            self._runtime_unavailable(call, exc)
            raise RuntimeUnavailableError(self._name, call) from exc
        except BaseException:
            coro.close()
            raise

    def _on_tick_done(self, _future: _Future[Any]) -> None:
        # Runs on whichever thread finished the future; setting an event never blocks.
        self._wake.set()

    def _watch_stop_event(self) -> None:
        """Have an application's stop event wake this ticker when it is set (see ``_watch``)."""
        if not self._owns_stop_event and not self._watched:
            self._watched = _watch.watch(self._stop_event, self)

    def _interrupt(self) -> None:
        """Wake the tick in progress, so it notices the stop and cancels its pings.

        From the thread running the tick itself (a hook, or a signal handler
        that interrupted a tick() on the main thread), the tick is not
        waiting, and that thread may be inside ``_wake.wait()`` holding the
        event's own lock: the pings are cancelled on the loop instead, whose
        ending of the tick then wakes it.
        """
        if self._slot_owner != threading.get_ident():
            self._wake.set()
            return
        job = self._job
        if job is not None:
            self._abort(job)

    def _abort(self, job: TickJob) -> None:
        """Give up on ``job``: nothing not yet started starts, and its pings are cancelled.

        The cancelling is done on the loop, through ``call_soon_threadsafe``,
        and never through the tick's future: cancelling a
        ``run_coroutine_threadsafe`` future whose loop has been closed makes
        ``concurrent.futures`` log an "Event loop is closed" traceback.
        """
        job.gate.closed = True
        # The coroutine records its loop before it looks at the gate, so if
        # it got past the gate, its loop is known here.
        loop = job.state.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed just now: nothing of it runs any more
            loop.call_soon_threadsafe(abort, job)

    def _await_tick(self, future: _Future[None], state: TickState) -> tuple[Ending, str, float]:
        """Block until the tick's future is done, the ticker stops, or the loop misses a deadline.

        The loop bounds the reap and the pings with its own timers. This
        thread follows the tick with real-time checkpoints of its own: the
        loop must start the tick within ``call_timeout_s`` of the submit,
        and come back from the reap, then from the pings, within their
        deadlines plus a grace. A loop that misses a checkpoint is not running
        callbacks: blocked by a synchronous call, or stopped. Which of the two
        it is, a runtime that has gone away or a stalled loop, is asked of
        the runtime itself: a gone runtime's ``submit()`` refuses.

        Returns:
            How the wait ended, the step the loop was in, and seconds waited.
        """
        timeout = self._call_timeout_s
        step = timeout + _BACKSTOP_GRACE_S
        # Setting the ticker's own stop event wakes this wait, and so does an
        # application's plain threading.Event, through its watcher. Another
        # kind of event cannot, so for it the wait is sliced.
        slice_s = step if self._owns_stop_event or self._watched else _STOP_CHECK_S
        stage = "start"
        budget = _clock.Budget(timeout)
        waited = 0.0
        while True:
            if future.done():
                return Ending.FINISHED, stage, waited
            if self._stopping():
                return Ending.STOPPED, stage, waited
            if budget.spent:
                moved_on = self._next_stage(stage, state, step)
                if moved_on is not None:
                    stage, budget = moved_on
                    continue
                if future.done():
                    return Ending.FINISHED, stage, waited
                if self._runtime_refuses():
                    return Ending.RUNTIME_GONE, stage, waited
                return Ending.LOOP_STALLED, stage, waited
            left = budget.left
            if budget.wait(self._wake.wait, slice_s):
                self._wake.clear()  # what it stood for is checked above
            waited += left - budget.left

    @staticmethod
    def _next_stage(stage: str, state: TickState, step: float) -> tuple[str, _clock.Budget] | None:
        """The next checkpoint, if the loop got past ``stage``; None if it did not.

        Each step's budget runs from the loop's own record of when the step
        began, clamped to ``[0, step]`` so a clock that jumps cannot stretch it.
        """
        if stage == "start":
            began = state.started_at
            following = "reap"
        elif stage == "reap":
            began = state.reap_ended_at
            following = "pings"
        else:
            return None
        if began is None:
            return None
        left = min(max(began + step - _clock.monotonic(), 0.0), step)
        return following, _clock.Budget(left)

    def _runtime_refuses(self) -> bool:
        """True if ``runtime.submit()`` now refuses work: the runtime is gone.

        The probe is a coroutine that does nothing, and is created only if the
        loop ever runs it, so a probe a stopped loop never runs leaves nothing
        behind.
        """
        probe = LazyCoroutine(_nothing)
        try:
            self._runtime.submit(probe)
        except Exception:
            probe.close()
            return True
        except BaseException:
            probe.close()
            raise
        return False

    def _wait_for_calls(self, budget: _clock.Budget) -> bool:
        """Wait within ``budget`` until no call the ticker started runs on the loop.

        It does not wait when the runtime is gone (nothing will run there
        again), or on a thread running an event loop, which may be the very
        loop the calls need.
        """
        idle = self._book.idle
        if idle.is_set() or self._runtime_lost or _in_event_loop_thread():
            return True
        while not budget.spent:
            if budget.wait(idle.wait, budget.left):
                return True
        return idle.is_set()

    @staticmethod
    def _join(thread: threading.Thread | None, budget: _clock.Budget) -> bool:
        if thread is None:
            return True
        if thread is threading.current_thread():
            return False

        def join(timeout: float) -> bool:
            thread.join(timeout)
            return not thread.is_alive()

        while thread.is_alive() and not budget.spent:
            budget.wait(join, budget.left)
        return not thread.is_alive()

    def _thread_ended(self) -> bool:
        """True once a started background thread has ended: no more ticks will come."""
        thread = self._thread
        return thread is not None and not thread.is_alive()

    def _stopping(self) -> bool:
        return self._stop_requested or self._stop_event.is_set()

    def _runtime_unavailable(self, call: str, exc: BaseException | None) -> None:
        # Only the slot holder submits, so one thread at a time gets here.
        first = not self._runtime_lost
        self._runtime_lost = True
        if first:
            error = "runtime.submit() refuses work" if exc is None else repr(exc)
            self._emit("warning", "runtime.unavailable", call=call, error=error)

    # -- logging -----------------------------------------------------------------

    def _log_report(self, report: TickReport) -> None:
        """Log the tick at debug, and each problem once when it starts and once when it ends."""
        if _log.enabled("debug"):
            self._emit(
                "debug",
                "tick.completed",
                number=report.number,
                duration_ms=round(report.duration_s * 1000.0, 3),
                live=report.live,
                reaped=report.reaped,
                pinged=report.pinged,
                failed=tuple(report.failed),
            )
        if report.interrupted:
            return  # a stop is not evidence about the pool
        if report.loop_error is None:
            self._resolved("loop")
        else:
            self._problem("loop", "loop.unresponsive", error=report.loop_error)
            return  # nothing below is evidence either: the loop never finished it
        if report.snapshot_error is None:
            self._resolved("snapshot")
        else:
            self._problem("snapshot", "snapshot.failed", error=report.snapshot_error)
        if report.reap_error is None:
            if report.live:
                self._resolved("reap")
        else:
            self._problem("reap", "reap.failed", error=report.reap_error)
        if report.failed and _log.enabled("debug"):
            for role, error in report.failed.items():
                # Per-ping detail; the role.* events say when a role's health changes.
                self._emit("debug", "ping.failed", role=role, error=repr(error))

    def _log_late_reaps(self) -> None:
        """Log how each reap that outlived its deadline ended, once it has.

        Its deadline's report already said "timed out"; this tells the rest:
        which roles it reaped in the end, or what it raised.
        """
        late = self._book.late
        while late:
            outcome = late.popleft()
            if isinstance(outcome, BaseException):
                self._problem("reap", "reap.failed", error=outcome, late=True)
            elif _log.enabled("debug"):
                self._emit("debug", "reap.finished_late", reaped=repr(outcome))

    def _problem(self, key: str, event: str, *, error: BaseException, **fields: Any) -> None:
        first = key not in self._ongoing
        self._ongoing.add(key)
        self._emit("warning" if first else "debug", event, error=repr(error), **fields)

    def _resolved(self, key: str) -> None:
        if key in self._ongoing:
            self._ongoing.discard(key)
            self._emit("info", f"{key}.recovered")

    def _announce_all(
        self, transitions: list[tuple[RoleHealth | None, RoleHealth]]
    ) -> BaseException | None:
        """Announce every transition; return a KeyboardInterrupt or SystemExit a hook raised.

        Any other exception from a hook, ``asyncio.CancelledError`` included,
        is logged and ignored. ``KeyboardInterrupt`` and ``SystemExit`` mean
        "stop the program": the rest of this tick's hooks are skipped, and the
        caller raises the exception once the tick is published.
        """
        for old, new in transitions:
            fatal = self._announce(old, new)
            if fatal is not None:
                return fatal
        return None

    def _announce(self, old: RoleHealth | None, new: RoleHealth) -> BaseException | None:
        """Log one event for a status transition, then call the on_change hook."""
        event, level = _TRANSITION_EVENTS[new.status]
        recovering = old is not None and old.status in (
            HealthStatus.FAILING,
            HealthStatus.UNHEALTHY,
        )
        if new.status is HealthStatus.HEALTHY and recovering:
            event = "role.recovered"
        elif new.status is HealthStatus.DOWN and old is None:
            level = "debug"  # first seen down: it was never alive, nothing stopped
        fields: dict[str, Any] = {
            "role": new.role,
            "status": new.status.value,
            "previous": None if old is None else old.status.value,
        }
        if new.status in (HealthStatus.FAILING, HealthStatus.UNHEALTHY):
            fields["consecutive_failures"] = new.consecutive_failures
            fields["error"] = new.last_error
        self._emit(level, event, **fields)
        hook = self._on_change
        if hook is None:
            return None
        try:
            hook(old, new)
        except (KeyboardInterrupt, SystemExit) as exc:
            self._emit("error", "hook.failed", role=new.role, hook=repr(hook), exc_info=exc)
            return exc
        except BaseException as exc:
            # A broken hook must not stop the ticker or the other hooks; a
            # CancelledError from one is no cancellation of the ticker's.
            self._emit("error", "hook.failed", role=new.role, hook=repr(hook), exc_info=exc)
        return None

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        """Log ``event`` at ``level`` with the ticker's name; never let logging kill the ticker.

        If the application's logging itself raises (a closed stdout, a broken
        processor), the ticker keeps doing its job, the pool's health, and
        keeps the first such error as :attr:`exception`, where a test fixture
        or an operator will find it: it cannot be logged.
        """
        try:
            _log.emit(level, event, ticker=self._name, **fields)
        except Exception as exc:
            if self._exception is None:
                self._exception = exc

    # -- process identity ------------------------------------------------------

    def _reinit_after_fork(self) -> None:
        """Replace or reset every lock and event of this ticker (in a forked child only)."""
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._slot = threading.Lock()
        _reinit_event(self._wake)
        _reinit_event(self._book.idle)
        if isinstance(self._stop_event, threading.Event):
            # Also an application's: the ticker's thread takes its lock on
            # every wait, and no thread of the child can be holding it.
            _reinit_event(self._stop_event)

    def _forked(self) -> bool:
        return os.getpid() != self._pid

    def _refuse_if_forked(self, call: str) -> None:
        if self._forked():
            raise TickerUsageError(
                self._name,
                f"{call} was called in a child process, but the ticker and its runtime "
                f"belong to process {self._pid}",
                "create a new runtime and a new HealthTicker in the child",
            )
