"""The designs under test, each driving the same pool through the same runtime.

1. :class:`HealthTickerContender`: ``lilbee_ticker.HealthTicker`` as shipped.
2. :class:`BareCoroutineContender`: the floor. A minimal thread whose clock
   is a plain :class:`threading.Event` submits one bare coroutine per tick
   (:func:`bare_tick`: survey, reap and every ping under one
   :func:`asyncio.gather`) with :func:`asyncio.run_coroutine_threadsafe` on
   the same loop, and waits with ``future.result()``. It does the same work
   as HealthTicker with nothing else: no health records, no report, no
   timeouts on the loop. Every figure of HealthTicker is read against it.
3. :class:`AsyncioLoopContender`: the design HealthTicker replaced. A
   coroutine on its own event loop, in its own thread, sleeps
   ``interval_s``, then awaits each call it submits to the runtime, one
   after another (``await asyncio.wrap_future(runtime.submit(...))``). It is
   stopped by cancelling the future of that coroutine.
4. :class:`TimerContender`: a :class:`threading.Timer` whose function runs a
   tick and then arms the next timer, so each tick gets a new thread.
5. :class:`APSchedulerContender`: an APScheduler 3.x ``BackgroundScheduler``
   with one interval job, as its documentation sets one up.

Every design does the same pool work per tick: it reads, on the loop, which
roles are alive and, if any are, calls ``reap_idle()``; then each surviving
role is pinged. HealthTicker does all of it in one coroutine, so a tick is
one ``runtime.submit()`` whatever the number of roles. The baselines share
:func:`survey_and_reap` and then submit each ping on its own: 1 + N submits
per tick. The asyncio design pings one role after another, as the old
ticker did. The two thread designs get the best tick body that is easy to
write with the standard library (:func:`tick_blocking`): all pings at once,
one bounded wait. So what tells them apart from HealthTicker is their
scheduling and its single round trip, not a weaker body. None of the
baselines repeats the old ticker's bug of pinging, and so respawning, a
worker it had just reaped: all four do the same work.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import datetime
import logging
import threading
import time
from typing import Any, ClassVar

from benchmarks.system import ThreadCounters, read_own_thread
from lilbee_ticker import HealthTicker, Pool, Runtime

__all__ = [
    "CONTENDERS",
    "APSchedulerContender",
    "AsyncioLoopContender",
    "BareCoroutineContender",
    "Contender",
    "HealthTickerContender",
    "TimerContender",
    "bare_tick",
    "loop_of",
    "survey_and_reap",
    "tick_blocking",
]

_log = logging.getLogger("benchmarks")

# How long the harness waits for a contender to start or stop before it
# declares the run broken; far above any figure measured here.
_GIVE_UP_S = 30.0


async def survey_and_reap(pool: Pool) -> tuple[str, ...]:
    """On the loop: return the roles alive now, less those that ``reap_idle()`` reaps."""
    live = [role for role in pool.registered_roles if pool.accessor(role).is_alive]
    if not live:
        return ()
    reaped = set(await pool.reap_idle())
    return tuple(role for role in live if role not in reaped)


async def bare_tick(pool: Pool) -> None:
    """On the loop: the floor's whole tick, survey and reap, then every ping under one gather."""
    live = await survey_and_reap(pool)
    if live:
        await asyncio.gather(*(pool.ping_role(role) for role in live), return_exceptions=True)


def loop_of(runtime: object) -> asyncio.AbstractEventLoop:
    """Return the event loop behind ``runtime`` (a ``LoopRuntime``, or a wrapper with ``.loop``)."""
    loop = getattr(runtime, "loop", None)
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"the floor needs the runtime's loop; {runtime!r} has no .loop")
    return loop


def tick_blocking(pool: Pool, runtime: Runtime, call_timeout_s: float) -> None:
    """Run one tick from a plain thread: survey and reap, then ping the survivors all at once.

    Each of the two waits is bounded by ``call_timeout_s``; calls still
    running then are cancelled. Nothing here notices a stop: a stop waits
    for the tick to end, as it does with ``threading.Timer.cancel()`` and
    ``BackgroundScheduler.shutdown(wait=True)``.
    """
    survey = runtime.submit(survey_and_reap(pool))
    try:
        live = survey.result(call_timeout_s)
    except concurrent.futures.TimeoutError:
        survey.cancel()
        return
    if not live:
        return
    pings = [runtime.submit(pool.ping_role(role)) for role in live]
    _, pending = concurrent.futures.wait(pings, call_timeout_s)
    for future in pending:
        future.cancel()


class Contender(abc.ABC):
    """One ticker design, set up to tick ``pool`` through ``runtime`` every ``interval_s``.

    A contender runs once: :meth:`start`, then :meth:`stop`, then :meth:`close`.

    Args:
        pool: The pool to reap and ping, only ever touched on the runtime's loop.
        runtime: Runs the pool's coroutines on its loop.
        interval_s: Seconds between ticks.
        call_timeout_s: Seconds a tick waits for pool calls, where the design
            bounds its waits (the asyncio design does not).
        name: A name unique in the process, for the design's threads.

    Attributes:
        durations: Seconds each tick took, from the survey's submission to
            the last ping's result, as the design's tick body measures it.
        errors: Ticks that raised (each is logged).
        record_retired: Set it to make a design whose threads end while it
            runs (:class:`TimerContender`) record their final counters in
            :attr:`retired`, by native thread id.
    """

    key: ClassVar[str]
    """A short identifier, used as the key in the JSON results."""

    label: ClassVar[str]
    """The name in tables and plots."""

    pings_one_at_a_time: ClassVar[bool] = False
    """True if a tick pings its roles one after another, so it lasts N pings."""

    def __init__(
        self,
        pool: Pool,
        runtime: Runtime,
        *,
        interval_s: float,
        call_timeout_s: float,
        name: str,
    ) -> None:
        self.pool = pool
        self.runtime = runtime
        self.interval_s = interval_s
        self.call_timeout_s = call_timeout_s
        self.name = name
        self.durations: list[float] = []
        self.errors = 0
        self.record_retired = False
        self.retired: dict[int, ThreadCounters] = {}
        # _ticked guards _ticks and durations, and is notified after each tick.
        self._ticked = threading.Condition()
        self._ticks = 0

    @abc.abstractmethod
    def start(self) -> None:
        """Start ticking; the first tick is due ``interval_s`` from now."""

    @abc.abstractmethod
    def stop(self) -> float:
        """Stop the way the design stops, and block until its work has really ended.

        Returns:
            :func:`time.perf_counter` at the moment the design's thread (or,
            for the asyncio design, its task) was seen to have ended.
        """

    def close(self) -> None:  # noqa: B027 - optional: only the asyncio design has a loop to close
        """Release what :meth:`stop` leaves behind; not part of any measured stop."""

    def wait_for_ticks(self, count: int, timeout: float) -> bool:
        """Block until ``count`` ticks have completed; False if ``timeout`` passed first."""
        with self._ticked:
            return self._ticked.wait_for(lambda: self._ticks >= count, timeout)

    def _record_tick(self, duration: float) -> None:
        with self._ticked:
            self._ticks += 1
            self.durations.append(duration)
            self._ticked.notify_all()

    def _tick_logged(self) -> None:
        """Run :func:`tick_blocking` and record its duration; log what it raises."""
        start = time.perf_counter()
        try:
            tick_blocking(self.pool, self.runtime, self.call_timeout_s)
        except Exception:
            self.errors += 1
            _log.exception("%s: tick failed", self.name)
        self._record_tick(time.perf_counter() - start)


def _thread_named(name: str) -> threading.Thread:
    for thread in threading.enumerate():
        if thread.name == name:
            return thread
    raise LookupError(f"no running thread is named {name!r}")


class _TimedTicker(HealthTicker):
    """A HealthTicker that times each tick end to end, as a ``tick()`` caller waits for it.

    ``TickReport.duration_s`` is stamped before the health bookkeeping, the
    log event and the report's publication; this times all of them, from
    the tick's start to its report being published: what ``tick()`` waits
    for, less taking the tick slot. Measurement only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.end_to_end: list[float] = []  # appended by the tick's thread only

    def _tick(self) -> Any:
        start = time.perf_counter()
        try:
            return super()._tick()
        finally:
            self.end_to_end.append(time.perf_counter() - start)


class HealthTickerContender(Contender):
    """``lilbee_ticker.HealthTicker``, started and stopped through its public API.

    Attributes:
        app_event: Set it before :meth:`start` to pass the ticker a plain
            :class:`threading.Event` of the application's as its ``stop_event``
            (watched by lilbee_ticker's watcher thread), instead of letting
            the ticker make its own.
    """

    key = "health_ticker"
    label = "HealthTicker"

    app_event = False
    _ticker: _TimedTicker | None = None
    _thread: threading.Thread | None = None
    _seen = 0  # the number of the last report wait_for_ticks() saw

    def start(self) -> None:
        """Create the ticker and start its thread."""
        self._ticker = _TimedTicker(
            self.pool,
            self.runtime,
            interval_s=self.interval_s,
            call_timeout_s=self.call_timeout_s,
            stop_event=threading.Event() if self.app_event else None,
            name=self.name,
        )
        self._ticker.start()
        self._thread = _thread_named(self.name)

    def stop(self) -> float:
        """Call ``HealthTicker.stop()``, which cancels the tick in flight and joins the thread."""
        ticker = self._started()
        if not ticker.stop(timeout=_GIVE_UP_S):
            raise RuntimeError(f"{self.name}: stop() did not end the thread in {_GIVE_UP_S}s")
        ended = time.perf_counter()
        self._keep_durations()
        return ended

    def _keep_durations(self) -> None:
        # Once the thread has ended, end_to_end is complete; the ticks whose
        # reports wait_for_ticks() saw are kept (not one a stop interrupted).
        self.durations[:] = self._started().end_to_end[: self._seen]

    def stop_via_event(self) -> float:
        """Set the ticker's ``stop_event``, as an application-wide shutdown would; join it.

        It is the ticker's own event unless :attr:`app_event` was set, in which
        case it is the application's plain event, which lilbee_ticker's
        watcher thread relays to the ticker.
        """
        ticker = self._started()
        assert self._thread is not None
        ticker.stop_event.set()
        self._thread.join(_GIVE_UP_S)
        ended = time.perf_counter()
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name}: the thread outlived its stop_event by {_GIVE_UP_S}s")
        ticker.stop()
        self._keep_durations()
        return ended

    def wait_for_ticks(self, count: int, timeout: float) -> bool:
        """Wait with ``HealthTicker.wait_for_tick()``, keeping each tick's end-to-end time.

        The time is the whole tick, bookkeeping included (see
        :class:`_TimedTicker`), not the report's ``duration_s``.
        """
        ticker = self._started()
        deadline = time.perf_counter() + timeout
        while self._seen < count:
            left = deadline - time.perf_counter()
            if left <= 0.0:
                return False
            report = ticker.wait_for_tick(self._seen + 1, timeout=left)
            if report is None:
                return False
            if report.number > self._seen:
                self._seen = report.number
        return True

    def _started(self) -> _TimedTicker:
        if self._ticker is None:
            raise RuntimeError(f"{self.name}: start() first")
        return self._ticker


class BareCoroutineContender(Contender):
    """The floor: a plain thread submits :func:`bare_tick` and waits for its result.

    The thread's clock is ``stop.wait(timeout)`` on a plain
    :class:`threading.Event`, on a fixed-rate grid that skips missed slots.
    Each tick is one :func:`asyncio.run_coroutine_threadsafe` on the
    runtime's loop and one ``future.result(call_timeout_s)``. :meth:`stop`
    sets the event and cancels the future in flight (which cancels the
    gathered pings on the loop), then joins the thread.
    """

    key = "bare"
    label = "bare coroutine"

    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._loop = loop_of(self.runtime)
        self._stop = threading.Event()
        # _lock guards _current, so that stop() cancels the future in flight
        # or the loop sees _stop set before it submits another.
        self._lock = threading.Lock()
        self._current: concurrent.futures.Future[None] | None = None
        self._count = getattr(self.runtime, "count", None)  # CountingRuntime's tally
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.interval_s
        deadline = time.monotonic() + interval
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            start = time.perf_counter()
            with self._lock:
                if self._stop.is_set():
                    break
                future = asyncio.run_coroutine_threadsafe(bare_tick(self.pool), self._loop)
                self._current = future
            if self._count is not None:
                self._count()
            try:
                future.result(self.call_timeout_s)
            except concurrent.futures.TimeoutError:
                future.cancel()
            except concurrent.futures.CancelledError:
                pass
            except Exception:
                self.errors += 1
                _log.exception("%s: tick failed", self.name)
            self._record_tick(time.perf_counter() - start)
            deadline += interval
            now = time.monotonic()
            while deadline <= now:  # skip missed slots: no catch-up burst
                deadline += interval

    def stop(self) -> float:
        """Set the event, cancel the tick in flight, join the thread."""
        if self._thread is None:
            raise RuntimeError(f"{self.name}: start() first")
        with self._lock:
            self._stop.set()
            current = self._current
        if current is not None:
            current.cancel()
        self._thread.join(_GIVE_UP_S)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name}: the thread outlived stop() by {_GIVE_UP_S}s")
        return time.perf_counter()


class AsyncioLoopContender(Contender):
    """The asyncio design HealthTicker replaced: a task on its own loop, one call at a time.

    The task sleeps ``interval_s``, then awaits the survey and then each ping
    in turn through ``asyncio.wrap_future(runtime.submit(...))``, with no
    timeout. :meth:`stop` cancels the future that
    ``run_coroutine_threadsafe`` returned for it, and then waits until the
    task is really done: the future reports cancelled at once, while the task
    runs until the cancellation reaches it on its loop.
    """

    key = "asyncio"
    label = "asyncio loop"
    pings_one_at_a_time = True

    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _future: concurrent.futures.Future[None] | None = None
    _done_at = 0.0  # written on the loop before _done is set

    def start(self) -> None:
        """Start the loop's thread and schedule the ticking task on it."""
        self._running, self._done = threading.Event(), threading.Event()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        self._future = asyncio.run_coroutine_threadsafe(self._tick_forever(), loop)
        # Its done-callback is installed in its first step: a cancel before
        # that step would end it unseen.
        if not self._running.wait(_GIVE_UP_S):
            raise RuntimeError(f"{self.name}: the task did not start in {_GIVE_UP_S}s")

    async def _tick_forever(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(self._task_done)
        self._running.set()
        while True:
            await asyncio.sleep(self.interval_s)
            start = time.perf_counter()
            try:
                live = await asyncio.wrap_future(self.runtime.submit(survey_and_reap(self.pool)))
                for role in live:
                    try:
                        await asyncio.wrap_future(self.runtime.submit(self.pool.ping_role(role)))
                    except Exception:  # one failed ping does not end the round
                        self.errors += 1
            except Exception:
                self.errors += 1
                _log.exception("%s: tick failed", self.name)
            self._record_tick(time.perf_counter() - start)

    def _task_done(self, _task: asyncio.Task[Any]) -> None:
        self._done_at = time.perf_counter()
        self._done.set()

    def stop(self) -> float:
        """Cancel the task's future, then wait until the task is done."""
        if self._future is None:
            raise RuntimeError(f"{self.name}: start() first")
        self._future.cancel()
        if not self._done.wait(_GIVE_UP_S):
            raise RuntimeError(f"{self.name}: the task outlived its cancel by {_GIVE_UP_S}s")
        return self._done_at

    def close(self) -> None:
        """Stop the loop, join its thread and close it."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_GIVE_UP_S)
        loop.close()


class TimerContender(Contender):
    """A ``threading.Timer`` whose function runs one tick and then arms the next timer.

    The next tick is due ``interval_s`` after this one ends, so the period is
    the interval plus the tick plus a thread start. :meth:`stop` cancels the
    pending timer and joins the threads; a tick already running finishes first.
    """

    key = "timer"
    label = "threading.Timer"

    _timer: threading.Timer | None = None
    _firing: threading.Thread | None = None  # the thread running a tick, if any

    def start(self) -> None:
        """Arm the first timer."""
        # _lock guards _stopped and _timer, so that stop() and a re-arm
        # never cross: after stop() sets _stopped no timer is armed.
        self._lock = threading.Lock()
        self._stopped = False
        self._arm()

    def _arm(self) -> None:
        with self._lock:
            if self._stopped:
                return
            timer = threading.Timer(self.interval_s, self._fire)
            timer.name = f"{self.name}-timer"
            timer.daemon = True
            self._timer = timer
            timer.start()

    def _fire(self) -> None:
        self._firing = threading.current_thread()
        try:
            self._tick_logged()
        finally:
            self._arm()
            if self.record_retired:  # measurement only: this thread's /proc entry ends with it
                self.retired[threading.get_native_id()] = read_own_thread()

    def stop(self) -> float:
        """Cancel the armed timer and join it and the thread running a tick, if any."""
        if self._timer is None:
            raise RuntimeError(f"{self.name}: start() first")
        with self._lock:
            self._stopped = True
            timer = self._timer
        timer.cancel()  # a timer whose tick already began runs it to the end
        for thread in (timer, self._firing):
            if thread is not None:
                thread.join(_GIVE_UP_S)
                if thread.is_alive():
                    raise RuntimeError(f"{self.name}: {thread.name} outlived stop()")
        return time.perf_counter()


class APSchedulerContender(Contender):
    """An APScheduler 3.x ``BackgroundScheduler`` running one ``"interval"`` job.

    The scheduler keeps its defaults: its own thread, a thread-pool executor
    (workers started on demand), ``coalesce=True`` and ``max_instances=1``,
    so a late or overlapping run is merged or skipped, never doubled. The
    trigger is fixed-rate. :meth:`stop` is ``shutdown(wait=True)``, which
    waits for a running job and joins the scheduler's thread and workers.
    """

    key = "apscheduler"
    label = "APScheduler"

    _scheduler: Any = None  # apscheduler ships no type hints

    def start(self) -> None:
        """Create the scheduler, add the interval job and start it."""
        from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
            BackgroundScheduler,
        )

        scheduler = BackgroundScheduler(timezone=datetime.timezone.utc)
        scheduler.add_job(
            self._tick_logged,
            "interval",
            seconds=self.interval_s,
            id=self.name,
            coalesce=True,
            max_instances=1,
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> float:
        """Shut the scheduler down, waiting for a running job; it joins its own threads."""
        if self._scheduler is None:
            raise RuntimeError(f"{self.name}: start() first")
        self._scheduler.shutdown(wait=True)
        return time.perf_counter()


CONTENDERS: tuple[type[Contender], ...] = (
    HealthTickerContender,
    BareCoroutineContender,
    AsyncioLoopContender,
    TimerContender,
    APSchedulerContender,
)
"""Every contender, HealthTicker first: the figure every ratio is taken against."""
