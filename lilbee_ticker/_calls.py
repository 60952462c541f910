"""The coroutine a tick submits to the runtime's loop, and the calls it keeps there.

One tick is one round trip to the loop: :func:`run_tick` surveys the pool,
reaps, and pings the survivors all at once, on the loop, bounding the reap
and the pings by ``call_timeout_s`` with the loop's own timers. It writes
what it learns into a :class:`TickState` as it goes, so that the ticker
thread can still report what happened if it has to stop waiting for the
whole coroutine (a stopped or blocked loop, or a stop).

Two rules from real pools shape it:

* **A reap is the pool's, a ping is ours.** ``reap_idle()`` may be closing
  a worker process, and a reap cancelled part-way leaves the process running
  and unknown to the pool. So a reap is never cancelled: at its deadline the
  tick records a timeout and stops waiting for it, and it runs on under the
  pool's own bounds. A ping is a probe: at its deadline it is cancelled.
* **No call overlaps itself.** A :class:`CallBook` keeps the ticker's calls
  that are still running on the loop, at most one reap and one ping per
  role. While one is running, later ticks report it as still running
  instead of calling again, so a hung worker cannot collect a pile of
  pings, nor a slow close a pile of reaps.

The outcome of a call at its deadline is final: outcomes are settled once
(:func:`settle`), and a call that returns late, swallows its cancellation or
raises afterwards changes nothing.

Everything ``async`` here, and every method of :class:`CallBook` but
:attr:`CallBook.idle`, runs on the runtime's event loop thread, the only
thread allowed to touch the pool.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import enum
import functools
import inspect
import sys
import threading
import types
from collections.abc import Callable, Generator, Iterable
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._protocols import Pool

__all__ = [
    "CallBook",
    "Gate",
    "LazyCoroutine",
    "NotAlive",
    "PingOutcome",
    "TickJob",
    "TickState",
    "abort",
    "late_grace",
    "role_names",
    "run_tick",
]


class NotAlive(enum.Enum):
    """The outcome of a ping that was skipped because its role was no longer alive."""

    NOT_ALIVE = "not alive"


PingOutcome = float | BaseException | NotAlive | None
"""A round trip in seconds, the exception the ping raised, NOT_ALIVE, or None (no outcome yet)."""

# What a pool call raises is that call's failure: every Exception, a
# CancelledError the pool raised itself (an inner wait of the pool's that was
# cancelled), and any other BaseException. KeyboardInterrupt and SystemExit
# are recorded as failures too, then end the loop's run, as asyncio would
# (see _end_the_loop_if_fatal).


class Gate:
    """Lets a tick's coroutine start, and start its pings, only while the tick still wants them.

    A coroutine submitted to a busy loop may start long after the ticker has
    given up on it. So the coroutine checks its gate first, on the loop, and
    does nothing once the ticker has given up on it or is stopping.
    """

    __slots__ = ("_stop_event", "closed")

    def __init__(self, stop_event: threading.Event) -> None:
        self._stop_event = stop_event
        self.closed = False  # set by the ticker thread, read on the loop thread

    def open(self) -> bool:
        """Return True while the tick still wants its calls made."""
        return not self.closed and not self._stop_event.is_set()


class TickState:
    """What :func:`run_tick` learned, written on the loop thread as it goes.

    The ticker thread reads it once the tick's future is done, or, after
    giving up on it, reads whatever is there (see :meth:`outcomes_now`).
    Each attribute is assigned whole, and ``outcomes`` is created with all its
    keys before any ping starts and only its values change after, so such a
    read sees, per item, either nothing yet or a complete value.
    """

    __slots__ = (
        "gated",
        "live",
        "loop",
        "loop_busy_s",
        "loop_late",
        "metering",
        "outcomes",
        "reap_ended_at",
        "reap_error",
        "reaped",
        "registered",
        "snapshot_error",
        "started_at",
        "submitted_at",
        "survey_failures",
        "task",
    )

    def __init__(self) -> None:
        self.submitted_at: float | None = None  # monotonic; set by the ticker thread
        self.started_at: float | None = None  # monotonic time the loop started the tick
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.snapshot_error: BaseException | None = None
        self.registered: tuple[str, ...] | None = None
        self.live: tuple[str, ...] | None = None
        self.survey_failures: dict[str, BaseException] = {}
        self.reaped: tuple[str, ...] = ()
        self.reap_error: BaseException | None = None
        self.reap_ended_at: float | None = None  # monotonic; the reap step is over
        self.outcomes: dict[str, PingOutcome] = {}
        # True once a closed gate (the ticker gave up or is stopping) made the
        # coroutine skip a step: the tick did not do all it was to do.
        self.gated = False
        # (step, seconds): the loop woke that late for a step's deadline, so
        # the calls still running then are the loop's fault, not theirs.
        self.loop_late: tuple[str, float] | None = None
        # Seconds the tick's own steps (its coroutine's, its reap's and its
        # pings', the pool's synchronous work within them included) held the
        # loop; metering is True while one is being timed, so that a step run
        # inside another (an eagerly started task) is not counted twice.
        self.loop_busy_s = 0.0
        self.metering = False

    def outcomes_now(self) -> dict[str, PingOutcome]:
        """Return a copy of the ping outcomes as they stand: the ticker thread's final word."""
        return dict(self.outcomes)


class CallBook:
    """The ticker's calls still running on the loop: at most one reap and one ping per role.

    One per ticker, shared by all its ticks. Its tasks are added by
    :func:`run_tick`, the reap removed by its done-callback and each ping
    by :meth:`ping_ended` from its own last step, all on the loop thread,
    so it needs no lock. The ticker thread only waits on :attr:`idle`,
    which is set whenever no call is running.
    """

    __slots__ = ("_cancelling", "_opening", "abandoned", "idle", "late", "pings", "reap")

    def __init__(self) -> None:
        self.reap: asyncio.Task[Any] | None = None
        # The reap a tick stopped waiting for; when it ends, its result or
        # error goes to ``late``, which the ticker thread drains (a deque:
        # appends and pops are atomic).
        self.abandoned: asyncio.Task[Any] | None = None
        self.late: collections.deque[object] = collections.deque()
        self.pings: dict[str, asyncio.Task[None]] = {}
        # Pings the ticker itself cancelled (deadline or stop): their
        # CancelledError is ours, not the pool's.
        self._cancelling: set[asyncio.Task[None]] = set()
        self.idle = threading.Event()
        self.idle.set()
        # True from starting() to started(): calls are being started, and
        # some may not be recorded yet.
        self._opening = False

    def starting(self) -> None:
        """Say that calls are about to start, before their tasks exist; :meth:`started` ends it.

        A task started eagerly (Python 3.12+) runs the pool's code before
        :meth:`add_reap` or :meth:`add_ping` can record it; the ticker thread,
        reading :attr:`idle` meanwhile, must already see a call in flight.
        And a ping that ends eagerly leaves the book at once: until every
        call of the step is started and recorded, that must not set
        :attr:`idle`, while a later call of the same step may still run.
        """
        self._opening = True
        if self.idle.is_set():  # only this thread sets it: no race
            self.idle.clear()

    def started(self) -> None:
        """Every call of the step is started and recorded: :attr:`idle` may be set again."""
        self._opening = False
        self.settle_idle()

    def add_reap(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` as the reap in flight until it ends; :meth:`starting` came first."""
        self.reap = task
        task.add_done_callback(self._reap_done)

    def add_ping(self, role: str, task: asyncio.Task[None]) -> None:
        """Keep ``task`` as ``role``'s ping in flight until :meth:`ping_ended`.

        :meth:`starting` came first. A ping that already ended (eagerly, on
        Python 3.12+) is not kept: its :meth:`ping_ended` has come already.
        """
        if not task.done():
            self.pings[role] = task

    def ping_ended(self, countdown: Countdown, role: str) -> None:
        """``role``'s ping ended: called from its own last step (``LazyCoroutine``'s on_end).

        No done-callback of the task is needed, and none of its loop
        iterations: at most one ping per role is in flight, so the ping in
        the book for ``role`` is this one, if it was recorded yet.
        """
        task = self.pings.pop(role, None)
        if task is not None:
            self._cancelling.discard(task)
        countdown.one_ended()
        self.settle_idle()

    def cancel_ping(self, task: asyncio.Task[None]) -> None:
        """Cancel a ping of ours, remembering that its CancelledError is ours."""
        if not task.done():
            self._cancelling.add(task)
            task.cancel()

    def cancel_pings(self) -> None:
        """Cancel every ping in flight (the reap is never cancelled)."""
        for task in tuple(self.pings.values()):
            self.cancel_ping(task)

    def cancelled_by_us(self, task: asyncio.Task[Any] | None) -> bool:
        """True if the ticker asked ``task`` to cancel."""
        return task in self._cancelling

    @property
    def size(self) -> int:
        """How many calls are in flight."""
        return len(self.pings) + (self.reap is not None)

    def _reap_done(self, task: asyncio.Task[Any]) -> None:
        if self.reap is task:
            self.reap = None
        # Retrieved here, always, so asyncio never logs "exception was never
        # retrieved" for a reap nobody waited for to the end.
        outcome: object = (
            asyncio.CancelledError("reap_idle() was cancelled on the loop")
            if task.cancelled()
            else task.exception() or task.result()
        )
        if self.abandoned is task:
            self.abandoned = None
            self.late.append(outcome)
        self.settle_idle()

    def settle_idle(self) -> None:
        """Set :attr:`idle` if no call is in flight (and none is being started)."""
        if self._opening:
            return
        if self.reap is None and not self.pings:
            self.idle.set()


class Countdown:
    """Wakes a tick waiting for its calls when the last one ends, or at the deadline.

    One waiter future and one timer for all the calls of a step, where
    ``asyncio.wait`` would add and then remove a callback on each task. Each
    call counts itself in before it starts (:meth:`one_started`) and out from
    within its own last step (:meth:`one_ended`, through
    :class:`LazyCoroutine`'s ``on_end``), so the tick resumes in the loop
    iteration after the last call ends, not one later, as a done-callback
    would. A call started eagerly (Python 3.12+) may end before the tick
    waits at all; the tick then does not wait. Used on the loop thread only.
    """

    __slots__ = ("left", "waiter")

    def __init__(self) -> None:
        self.left = 0  # calls counted in and not yet out
        self.waiter: asyncio.Future[None] | None = None  # made when the tick waits

    def one_started(self) -> None:
        """A call is about to start."""
        self.left += 1

    def one_ended(self) -> None:
        """A call counted here has ended."""
        self.left -= 1
        if self.left == 0:
            self.wake()

    def wake(self) -> None:
        """Wake the waiting tick, if it waits (the last call ended, or the deadline came)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, deadline: float) -> None:
        """Wait until every call counted here has ended, or until ``deadline`` (loop time).

        The calls are left alone, whichever comes first, and also when the
        waiting tick is cancelled: only the waiter future is cancelled then.
        """
        if self.left == 0:
            return
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = loop.call_at(deadline, self.wake)
        try:
            await self.waiter
        finally:
            timer.cancel()


class TickJob:
    """Everything one run of :func:`run_tick` needs; built on the ticker thread."""

    __slots__ = ("book", "gate", "ping_timeout", "pool", "state", "timeout")

    def __init__(
        self,
        pool: Pool,
        book: CallBook,
        gate: Gate,
        timeout: float,
        ping_timeout: float | None,
    ) -> None:
        self.pool = pool
        self.book = book
        self.gate = gate
        self.timeout = timeout
        # The bound passed to ping_role(role, timeout=...), or None for a pool
        # whose ping_role takes no timeout keyword.
        self.ping_timeout = ping_timeout
        self.state = TickState()


class LazyCoroutine(collections.abc.Coroutine[Any, Any, Any]):
    """A coroutine that creates the real one only when the loop first runs it.

    A runtime that stops its loop without running what was submitted (as
    lilbee's does) would leave a plain coroutine unawaited, and Python warns
    about that when the coroutine is collected. One that never started here
    was never created, so nothing warns; once started it is the real one.

    Args:
        factory: Makes the real coroutine.
        meter: Where to add the time each step takes
            (:attr:`TickState.loop_busy_s`), if anywhere.
        on_end: Called once, within the step that ends the coroutine (it
            returned or raised, or was thrown into before it started), after
            that step is metered. A tick waiting for this call is woken from
            there, not from a done-callback of the task one loop iteration
            later.
    """

    __slots__ = ("_coro", "_factory", "_meter", "_on_end")

    def __init__(
        self,
        factory: Callable[[], collections.abc.Coroutine[Any, Any, Any]],
        meter: TickState | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._factory: Callable[[], collections.abc.Coroutine[Any, Any, Any]] | None = factory
        self._coro: collections.abc.Coroutine[Any, Any, Any] | None = None
        self._meter = meter
        self._on_end = on_end

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
        if meter is None or meter.metering:  # not metered, or inside a metered step
            try:
                return step(value)
            except BaseException:
                self._ended()
                raise
        meter.metering = True
        start = _clock.monotonic()
        try:
            result = step(value)
        except BaseException:
            meter.loop_busy_s += _clock.monotonic() - start
            meter.metering = False
            self._ended()  # after the metering: whoever it wakes reads a whole figure
            raise
        meter.loop_busy_s += _clock.monotonic() - start
        meter.metering = False
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


def _quiet(task: asyncio.Task[Any] | None) -> None:
    """Let asyncio drop ``task`` silently if its loop is closed while it is pending.

    A runtime may stop its loop without cancelling what runs on it (lilbee's
    does). The ticker has then already reported the tick as interrupted, and
    asyncio's "Task was destroyed but it is pending!" would only be noise.
    ``_log_destroy_pending`` is the attribute asyncio itself reads for that.
    """
    if task is not None:
        task._log_destroy_pending = False  # type: ignore[attr-defined]


def settle(outcomes: dict[str, PingOutcome], role: str, outcome: PingOutcome) -> None:
    """Record ``role``'s outcome unless it already has one: the first outcome is final."""
    if outcomes.get(role) is None:
        outcomes[role] = outcome


_STR_TYPE = frozenset({str})


def role_names(value: object, what: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of distinct role names, in order, or raise ``TypeError``.

    ``what`` names the pool member the value came from, for the message.
    """
    # The common case first, checked in C: a tuple or list of exact str
    # names without repeats.
    if (
        (type(value) is tuple or type(value) is list)
        and set(map(type, value)) <= _STR_TYPE
        and len(set(value)) == len(value)
    ):
        return tuple(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{what} must give an iterable of role names (str), got {value!r} of type "
            f"{type(value).__name__}" + _hint(value, what)
        )
    names: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str):
            raise TypeError(
                f"{what} must give role names (str), but one item is {item!r} of type "
                f"{type(item).__name__}"
            )
        names[item] = None
    return tuple(names)


def _hint(value: object, what: str) -> str:
    if callable(value) and what == "registered_roles":
        return "; it is a method: make registered_roles a property or a sequence"
    return ""


async def run_tick(job: TickJob) -> None:
    """Survey, reap, then ping every survivor at once; each step bounded by ``job.timeout``."""
    state = job.state
    task = asyncio.current_task()
    _quiet(task)
    # Recorded before the gate is read: a ticker that closes the gate and
    # then finds no loop here knows this coroutine will stop at the gate.
    state.loop = asyncio.get_running_loop()
    state.task = task
    if not job.gate.open():
        state.gated = True
        return
    state.started_at = _clock.monotonic()
    if not _survey(job):
        return
    live = state.live or ()
    if live and not job.gate.open():
        state.gated = True
        return
    if live:
        await _reap(job)
    state.reap_ended_at = _clock.monotonic()
    if live and not job.gate.open():
        state.gated = True
        return
    if live:
        await _ping_all(job, live)


def _survey(job: TickJob) -> bool:
    """Read which roles are registered and alive; True if the tick may go on.

    A role whose accessor or ``is_alive`` raises fails alone: it is recorded
    in ``survey_failures`` and neither reaped for nor pinged.
    """
    pool, state = job.pool, job.state
    try:
        registered = role_names(pool.registered_roles, "registered_roles")
    except GeneratorExit:
        raise
    except BaseException as exc:
        state.snapshot_error = exc
        _end_the_loop_if_fatal(exc)
        return False
    live: list[str] = []
    for role in registered:
        try:
            alive = bool(pool.accessor(role).is_alive)
        except GeneratorExit:
            raise
        except BaseException as exc:
            state.survey_failures[role] = exc
            if _end_the_loop_if_fatal(exc):
                return False
            continue
        if alive:
            live.append(role)
    state.registered = registered
    state.live = tuple(live)
    return True


async def _reap(job: TickJob) -> None:
    """Start ``reap_idle()`` unless one is still running; wait for it up to the deadline.

    The reap runs as a task of its own that the tick never cancels: not at
    the deadline, and not when the tick itself is cancelled (a
    :class:`Countdown` wait cancels only its own waiter future). Its
    deadline counts from before ``reap_idle()`` is called, so the
    synchronous work before its first ``await`` counts against the bound,
    on every Python (on 3.12+ that first step runs at once, eagerly).
    """
    state, timeout = job.state, job.timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    countdown = Countdown()
    reap = _start_reap(job, loop, countdown)
    if reap is None:
        return
    await countdown.wait(deadline)  # a cancelled tick leaves the reap alone
    if not reap.done():
        job.book.abandoned = reap  # runs on; its late outcome goes to book.late
        late = loop.time() - deadline
        if late > late_grace(timeout):
            state.loop_late = ("reap", late)  # the loop woke late: not the reap's fault
        elif state.reap_error is None:
            state.reap_error = CallTimeoutError("reap_idle()", timeout)
        return
    if reap.cancelled():  # cancelled by someone else: the runtime shutting down
        if state.reap_error is None:
            state.reap_error = asyncio.CancelledError("reap_idle() was cancelled on the loop")
        return
    error = reap.exception()
    if error is not None or state.reap_error is not None:
        if state.reap_error is None:
            state.reap_error = error
        return
    try:
        state.reaped = role_names(reap.result(), "reap_idle()")
    except TypeError as exc:
        state.reap_error = exc


def _start_reap(
    job: TickJob, loop: asyncio.AbstractEventLoop, countdown: Countdown
) -> asyncio.Task[Any] | None:
    """Call ``reap_idle()`` and start its task, counted in ``countdown``; None if none started.

    The book says a call is starting before the pool's code first runs, and
    only then is the gate read again: a stop() that finds the book idle has
    closed the gate before, so no reap starts after it returned.
    """
    state, book, timeout = job.state, job.book, job.timeout
    if book.reap is not None:
        state.reap_error = CallTimeoutError("reap_idle()", timeout, still_running=True)
        return None
    book.starting()
    try:
        if not job.gate.open():
            state.gated = True
            return None
        try:
            # Typed as object: the Pool protocol promises a coroutine, but a pool
            # that breaks it must get a clear error, not an odd one from await.
            awaitable: object = job.pool.reap_idle()
        except GeneratorExit:
            raise
        except BaseException as exc:
            state.reap_error = exc
            _end_the_loop_if_fatal(exc)
            return None
        if type(awaitable) is not types.CoroutineType and not inspect.isawaitable(awaitable):
            state.reap_error = not_awaitable("reap_idle()", "reap_idle", awaitable)
            return None
        countdown.one_started()
        reap = _start_task(
            loop,
            LazyCoroutine(
                functools.partial(_reap_call, awaitable, state), state, countdown.one_ended
            ),
        )
        _quiet(reap)
        book.add_reap(reap)
        return reap
    finally:
        book.started()


async def _reap_call(awaitable: Any, state: TickState) -> Any:
    """Await the pool's reap; a KeyboardInterrupt or SystemExit is recorded, then ends the loop."""
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        if state.reap_error is None:
            state.reap_error = exc
        _end_the_loop_if_fatal(exc)
        return None


async def _ping_all(job: TickJob, live: tuple[str, ...]) -> None:
    """Ping every live role that was not reaped, all at once, and settle each outcome."""
    state, book, timeout = job.state, job.book, job.timeout
    reaped = set(state.reaped)
    targets = [role for role in live if role not in reaped]
    if not targets:
        return
    outcomes: dict[str, PingOutcome] = dict.fromkeys(targets)
    state.outcomes = outcomes
    tasks: dict[str, asyncio.Task[None]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    countdown = Countdown()
    busy = book.pings
    book.starting()
    try:
        for role in targets:
            if role in busy:
                outcomes[role] = CallTimeoutError(
                    f"ping_role({role!r})", timeout, still_running=True
                )
                continue
            countdown.one_started()
            ping = _start_task(
                loop,
                LazyCoroutine(
                    functools.partial(_ping, job, role, outcomes),
                    state,
                    functools.partial(book.ping_ended, countdown, role),
                ),
            )
            ping._log_destroy_pending = False  # type: ignore[attr-defined]  # see _quiet
            book.add_ping(role, ping)
            tasks[role] = ping
    finally:
        book.started()  # idle again if every ping ended eagerly, or none started
    if not tasks:
        return
    try:
        # Pings started eagerly (Python 3.12+) that have all ended need no
        # wait, no timer and no loop iteration at all.
        await countdown.wait(deadline)
    except asyncio.CancelledError:
        # The tick itself was cancelled (a stop, or the runtime shutting
        # down): take its probes down with it.
        for ping in tasks.values():
            book.cancel_ping(ping)
        raise
    pending = countdown.left > 0
    late = loop.time() - deadline if pending else 0.0
    if late > late_grace(timeout):
        # The loop woke this late for the deadline: it was blocked, and the
        # pings still running may only have needed it to run. Not their fault.
        state.loop_late = ("pings", late)
    if not pending and None not in outcomes.values():
        return  # every ping ended, each with its outcome: nothing left to settle
    for role, ping in tasks.items():
        if pending and not ping.done():
            if state.loop_late is None:
                # The verdict first, then the cancel: whatever the ping does
                # when cancelled cannot change it.
                settle(outcomes, role, CallTimeoutError(f"ping_role({role!r})", timeout))
            book.cancel_ping(ping)
        elif outcomes[role] is None and not ping.cancelled() and job.gate.open():
            settle(outcomes, role, RuntimeError(f"ping_role({role!r}) left no outcome"))
        # A ping cancelled by someone else (the runtime), or stopped at the
        # gate, leaves no outcome: no evidence.


async def _ping(job: TickJob, role: str, outcomes: dict[str, PingOutcome]) -> None:
    """Ping ``role`` if it is alive right now, and settle the outcome.

    The check and the ping's start happen in one step of the loop, so a role
    that was reaped or died since the survey is left alone: pinging it would
    spawn it again.
    """
    if not job.gate.open():
        job.state.gated = True
        return  # the ticker gave up on this tick: no outcome
    pool = job.pool
    try:
        alive = bool(pool.accessor(role).is_alive)
    except GeneratorExit:
        raise
    except BaseException as exc:
        settle(outcomes, role, exc)
        _end_the_loop_if_fatal(exc)
        return
    if not alive:
        settle(outcomes, role, NotAlive.NOT_ALIVE)
        return
    start = _clock.monotonic()
    try:
        if job.ping_timeout is None:
            awaitable: object = pool.ping_role(role)
        else:
            awaitable = pool.ping_role(role, timeout=job.ping_timeout)  # type: ignore[call-arg]
        if type(awaitable) is not types.CoroutineType and not inspect.isawaitable(awaitable):
            raise not_awaitable(f"ping_role({role!r})", "ping_role", awaitable)
        await awaitable
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if job.book.cancelled_by_us(task) or _cancel_requested(task):
            # Ours (the deadline already settled it, or the ticker stopped), or
            # someone else's request to cancel this task (the runtime shutting
            # down): not the pool's failure, and not ours to swallow.
            raise
        settle(outcomes, role, exc)  # the pool's own: an inner wait of its was cancelled
    except GeneratorExit:
        raise
    except BaseException as exc:
        settle(outcomes, role, exc)
        _end_the_loop_if_fatal(exc)
    else:
        settle(outcomes, role, _clock.monotonic() - start)


if sys.version_info >= (3, 12):

    def _start_task(loop: asyncio.AbstractEventLoop, coro: LazyCoroutine) -> asyncio.Task[Any]:
        """Start a task of the tick's, running its first step at once (eagerly).

        A reap or ping that answers without waiting is then done before this
        returns: no loop iteration, no timer. asyncio's eager start keeps
        ``asyncio.current_task()`` right inside that first step.
        """
        return asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def _start_task(loop: asyncio.AbstractEventLoop, coro: LazyCoroutine) -> asyncio.Task[Any]:
        """Start a task of the tick's; its first step runs at the loop's next iteration.

        Made directly, as on 3.12+, rather than through ``loop.create_task``:
        a tick's tasks are the ticker's own, and a loop's task factory is for
        the application's.
        """
        return asyncio.Task(coro, loop=loop)


def not_awaitable(call: str, member: str, value: object) -> TypeError:
    """The error for a pool method that returned something that cannot be awaited."""
    return TypeError(
        f"{call} returned {value!r} (a {type(value).__name__}), not an awaitable: make "
        f"{member} an async def (a coroutine function), as the lilbee_ticker.Pool protocol says"
    )


def _end_the_loop_if_fatal(error: BaseException) -> bool:
    """Let a KeyboardInterrupt or SystemExit from the pool end the loop's run, as asyncio would.

    asyncio lets these two out of ``run_forever()`` when a task raises them.
    They are raised again from a loop callback rather than from the ticker's
    task, so that the task itself ends cleanly, after recording the error,
    and asyncio has no "exception was never retrieved" to report about it.
    Every other exception is the call's failure, and nothing more.

    Returns:
        True if ``error`` is one of the two.
    """
    if not isinstance(error, (KeyboardInterrupt, SystemExit)):
        return False
    asyncio.get_running_loop().call_soon(_raise, error)
    return True


def _raise(error: BaseException) -> None:
    raise error


def late_grace(timeout: float) -> float:
    """How late the loop may wake for a deadline before the lateness is the loop's fault.

    Half the bound, at least 0.1 s (timers on a busy machine wake a little
    late) and at most a second (the ticker thread's own grace).
    """
    return min(1.0, max(0.1, timeout / 2))


def _cancel_requested(task: asyncio.Task[Any] | None) -> bool:
    """True if someone asked ``task`` to cancel, rather than code in it raising CancelledError.

    Python 3.11 and later count the requests (``Task.cancelling()``). On 3.10
    the two cannot be told apart, and this returns False: the error is then
    the pool's own, unless the whole tick was cancelled too (the runtime
    shutting down): the tick is then interrupted, and the verdict takes no
    cancellation in an interrupted tick as evidence.
    """
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


def abort(job: TickJob) -> None:
    """On the loop: cancel the tick's pings and stop its coroutine; never the reap."""
    job.gate.closed = True
    job.book.cancel_pings()
    task = job.state.task
    if task is not None and not task.done():
        task.cancel()
