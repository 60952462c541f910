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

Everything ``async`` here runs on the runtime's event loop thread, the only
thread allowed to touch the pool. The calls in flight are kept in a
``_callbook.CallBook``; each runs as a ``_lazy.LazyCoroutine``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Iterable
from typing import Any

from lilbee_ticker import _clock, _restarts
from lilbee_ticker._callbook import Countdown
from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._job import TickJob, TickState
from lilbee_ticker._lazy import LazyCoroutine, quiet, start_task
from lilbee_ticker._outcome import NotAlive, PingOutcome, as_alive, safe_repr

__all__ = ["abort", "late_grace", "role_names", "run_tick"]


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
            f"{what} must give an iterable of role names (str), got {safe_repr(value)} of type "
            f"{type(value).__name__}" + _hint(value, what)
        )
    names: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str):
            raise TypeError(
                f"{what} must give role names (str), but one item is {safe_repr(item)} of type "
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
    quiet(task)
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
            alive = as_alive(pool.accessor(role).is_alive, role)
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
        reap = start_task(
            loop,
            LazyCoroutine(
                functools.partial(_reap_call, awaitable, state),
                state,
                countdown.one_ended,
                "reap_idle()",
            ),
        )
        quiet(reap)
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
    skipped = _restarts.not_pinged(job)
    to_ping = [role for role in targets if role not in skipped] if skipped else targets
    if not targets:
        return
    outcomes: dict[str, PingOutcome] = dict.fromkeys(to_ping)
    state.outcomes = outcomes
    tasks: dict[str, asyncio.Task[None]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    countdown = Countdown()
    busy = book.pings
    book.starting()
    try:
        restarts = _restarts.start(job, loop, countdown, targets) if job.restart else {}
        for role in to_ping:
            if role in busy:
                outcomes[role] = CallTimeoutError(
                    f"ping_role({role!r})", timeout, still_running=True
                )
                continue
            countdown.one_started()
            ping = start_task(
                loop,
                LazyCoroutine(
                    functools.partial(_ping, job, role, outcomes),
                    state,
                    functools.partial(book.ping_ended, countdown, role),
                    f"ping_role({role!r})",
                ),
            )
            ping._log_destroy_pending = False  # type: ignore[attr-defined]  # see _quiet
            book.add_ping(role, ping)
            tasks[role] = ping
    finally:
        book.started()  # idle again if every ping ended eagerly, or none started
    if not tasks and not restarts:
        return
    try:
        # Pings started eagerly (Python 3.12+) that have all ended need no
        # wait, no timer and no loop iteration at all.
        await countdown.wait(deadline)
    except asyncio.CancelledError:
        # The tick itself was cancelled (a stop, or the runtime shutting
        # down): take its probes down with it.
        for ping in tasks.values():
            book.cancel_ping(ping)  # and never a restart: it runs on
        raise
    pending = countdown.left > 0
    late = loop.time() - deadline if pending else 0.0
    if late > late_grace(timeout) and state.loop_late is None:
        # The loop woke this late for the deadline: it was blocked, and the
        # pings still running may only have needed it to run. Not their fault.
        # A reap it woke late for already says so: the first lateness stands.
        state.loop_late = ("pings", late)
    if restarts:
        _restarts.settle(job, restarts)
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
        alive = as_alive(pool.accessor(role).is_alive, role)
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


def not_awaitable(call: str, member: str, value: object) -> TypeError:
    """The error for a pool method that returned something that cannot be awaited."""
    return TypeError(
        f"{call} returned {safe_repr(value)} (a {type(value).__name__}), not an awaitable: make "
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
