"""One tick, from the ticker's thread: submit it, follow the loop, and record what it did.

A :class:`TickRun` crosses to the runtime's loop once, through
``runtime.submit()``, with the coroutine of ``_calls.run_tick``. The loop
bounds the reap and the pings by ``call_timeout_s`` with its own timers; this
thread follows the tick with real-time checkpoints of its own, so that a loop
that stops running callbacks, or a runtime that went away, is told apart
from a slow call, and it wakes as soon as the tick ends or the ticker stops.
It then hands back a ``_verdict.TickRecord`` built from the loop's
``TickState`` as it stands (``TickState.facts``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
from collections.abc import Coroutine
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._callbook import CallBook
from lilbee_ticker._calls import abort, run_tick
from lilbee_ticker._exceptions import RuntimeUnavailableError
from lilbee_ticker._job import SURVEY, Gate, TickJob, TickState
from lilbee_ticker._lazy import LazyCoroutine
from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._settings import BACKSTOP_GRACE_S, Settings
from lilbee_ticker._verdict import Ending, TickRecord
from lilbee_ticker._wake import Lifecycle

__all__ = ["TickRun", "submit"]

# While a tick waits on the loop, how often it looks at an application's stop
# event that no relay watches (a manual tick() on a ticker that is not running).
_STOP_CHECK_S = 0.025

_TICK = "the tick (survey, reap_idle(), ping_role())"


def _nothing() -> Coroutine[Any, Any, None]:
    async def nothing() -> None:
        return None

    return nothing()


def submit(
    runtime: Runtime, coro: LazyCoroutine, ticker: str, call: str
) -> concurrent.futures.Future[Any]:
    """Submit ``coro`` to ``runtime``.

    Raises:
        RuntimeUnavailableError: ``runtime.submit()`` raised an Exception,
            chained as its cause. A ``KeyboardInterrupt`` or ``SystemExit``
            it raises propagates as itself.
    """
    try:
        return runtime.submit(coro)
    except Exception as exc:
        coro.close()  # it never ran: no "coroutine was never awaited" warning
        raise RuntimeUnavailableError(ticker, call) from exc
    except BaseException:
        coro.close()
        raise


class TickRun:
    """One tick: submitted on construction, run by :meth:`wait`, given up by :meth:`abort`.

    Args:
        settings: The ticker's settings.
        pool: The pool, read on the loop only.
        runtime: Where the tick runs.
        book: The ticker's calls in flight, shared by its ticks.
        life: The ticker's thread and stop; its wake is poked when the tick's
            future is done. An application's event that no relay watches (a
            manual tick of a ticker not running) is looked at every
            ``_STOP_CHECK_S`` while the tick waits.
        restart: The roles to restart this tick (instead of pinging them).

    Raises:
        RuntimeUnavailableError: ``runtime.submit()`` refused the tick.
    """

    __slots__ = ("_future", "_settings", "_unwatched", "_wake", "job", "started_at")

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        runtime: Runtime,
        book: CallBook,
        life: Lifecycle,
        restart: tuple[str, ...] = (),
    ) -> None:
        self._settings = settings
        self._wake = wake = life.wake
        self._unwatched = None if life.running() else life.app_event
        self.job = TickJob(
            pool, book, Gate(wake), settings.call_timeout_s, settings.ping_timeout, restart
        )
        state = self.job.state
        state.submitted_at = _clock.monotonic()
        self._future = submit(
            runtime,
            LazyCoroutine(functools.partial(run_tick, self.job), state, label=SURVEY),
            settings.name,
            _TICK,
        )
        # Done while the loop's thread wakes up for the tick. News is cleared
        # only now: a tick that already ended, or a stop already requested,
        # is seen by wait() before it waits.
        self.started_at = _clock.wall_clock()
        wake.clear_news()
        self._future.add_done_callback(self._done)

    def _done(self, _future: concurrent.futures.Future[Any]) -> None:
        # Runs on whichever thread finished the future; it never blocks long.
        self._wake.news()

    def wait(self, runtime: Runtime, number: int) -> TickRecord:
        """Follow the tick to its end, a stop, or a missed checkpoint; return its record.

        A tick that did not finish is aborted: nothing not yet started
        starts, and its pings are cancelled; never its reap.
        """
        ending, stage, waited = self._follow(runtime)
        if ending is not Ending.FINISHED:
            self.abort()
        state = self.job.state
        if stage == "reap" and state.registered is None and state.snapshot_error is None:
            stage = "survey"  # the reap's budget began with the survey, which never ended
        future = self._future
        cancelled = ending is Ending.FINISHED and future.cancelled()
        escaped = None
        if ending is Ending.FINISHED and not cancelled:
            escaped = future.exception(timeout=0)
        inside = state.inside
        blocked = None
        if ending is Ending.LOOP_STALLED and inside is not None:
            blocked = (inside[0], max(0.0, _clock.monotonic() - inside[1]))
        return TickRecord(
            number=number,
            started_at=self.started_at,
            duration_s=max(0.0, _clock.monotonic() - (state.submitted_at or 0.0)),
            ending=ending,
            stall_stage=stage,
            waited_s=waited,
            escaped=escaped,
            cancelled=cancelled,
            blocked_inside=blocked,
            **state.facts(),
        )

    def abort(self) -> None:
        """Give up on the tick: nothing not yet started starts, and its pings are cancelled.

        The cancelling is done on the loop, through ``call_soon_threadsafe``,
        and never through the tick's future: cancelling a
        ``run_coroutine_threadsafe`` future whose loop has been closed makes
        ``concurrent.futures`` log an "Event loop is closed" traceback.
        """
        job = self.job
        job.gate.closed = True
        # The coroutine records its loop before it looks at the gate, so if
        # it got past the gate, its loop is known here.
        loop = job.state.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed just now: nothing of it runs any more
            loop.call_soon_threadsafe(abort, job)

    def _stopping(self) -> bool:
        if self._wake.stopped:
            return True
        event = self._unwatched
        if event is not None and event.is_set():
            self._wake.stop()  # the application's event is set: the ticker stops
            return True
        return False

    def _follow(self, runtime: Runtime) -> tuple[Ending, str, float]:
        """Block until the tick's future is done, the ticker stops, or the loop misses a deadline.

        The loop must start the tick within ``call_timeout_s`` of the submit,
        and come back from the reap, then from the pings, within their
        deadlines plus a grace. A loop that misses a checkpoint is not running
        callbacks: blocked by a synchronous call, or stopped. Which of the two
        it is, a runtime that has gone away or a stalled loop, is asked of
        the runtime itself: a gone runtime's ``submit()`` refuses.

        Returns:
            How the wait ended, the step the loop was in, and seconds waited.
        """
        future, state = self._future, self.job.state
        timeout = self._settings.call_timeout_s
        step = timeout + BACKSTOP_GRACE_S
        slice_s = step if self._unwatched is None else _STOP_CHECK_S
        stage = "start"
        budget = _clock.Budget(timeout)
        waited = 0.0
        while True:
            if future.done():
                return Ending.FINISHED, stage, waited
            if self._stopping():
                return Ending.STOPPED, stage, waited
            if budget.spent:
                moved_on = _next_stage(stage, state, step)
                if moved_on is not None:
                    stage, budget = moved_on
                    continue
                if future.done():
                    return Ending.FINISHED, stage, waited
                if _refuses(runtime):
                    return Ending.RUNTIME_GONE, stage, waited
                return Ending.LOOP_STALLED, stage, waited
            left = budget.left
            budget.wait(self._wake.wait_for_news, slice_s)
            waited += left - budget.left


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


def _refuses(runtime: Runtime) -> bool:
    """True if ``runtime.submit()`` now refuses work: the runtime is gone.

    The probe is a coroutine that does nothing, and is created only if the
    loop ever runs it, so a probe a stopped loop never runs leaves nothing
    behind.
    """
    probe = LazyCoroutine(_nothing, label="a probe of the runtime")
    try:
        runtime.submit(probe)
    except Exception:
        probe.close()
        return True
    except BaseException:
        probe.close()
        raise
    return False
