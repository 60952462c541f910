"""A tick's restarts, on the loop: the pool's cleanup, so waited for but never cancelled.

A restart replaces a role's worker through the pool's ``restart_role(role)``,
which must end the current process whatever state it is in. Like a reap, it
is cleanup that is not safe to cut short: the tick waits for it up to
``call_timeout_s`` (on the same deadline as the pings it runs beside), a
restart still running then is reported as a ``CallTimeoutError`` and left to
the pool's own bounds, and nothing of the ticker's (its deadline, a stop, the
tick's own cancellation) ever cancels it. A role has at most one restart in
flight, and is not pinged while it runs. Each restart's end, in time or
late, reaches the ticker thread through ``CallBook.restart_ends``.

Everything here runs on the runtime's loop thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._callbook import Countdown
from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._job import TickJob
from lilbee_ticker._lazy import LazyCoroutine, quiet, start_task
from lilbee_ticker._outcome import as_alive

__all__ = ["not_pinged", "settle", "start"]


def not_pinged(job: TickJob) -> set[str]:
    """The roles this tick does not ping: those it restarts, and those whose restart still runs."""
    if not job.restart and not job.book.restarts:
        return set()
    return set(job.restart).union(job.book.restarts)


def start(
    job: TickJob, loop: asyncio.AbstractEventLoop, countdown: Countdown, targets: list[str]
) -> dict[str, asyncio.Task[Any]]:
    """Start a restart of every role asked for that is among ``targets``; the book is opening."""
    state, book = job.state, job.book
    tasks: dict[str, asyncio.Task[Any]] = {}
    for role in job.restart:
        if role not in targets or role in book.restarts:
            continue  # reaped or not alive at the survey, or a restart still runs
        countdown.one_started()
        task = start_task(
            loop,
            LazyCoroutine(
                functools.partial(_restart, job, role),
                state,
                countdown.one_ended,
                f"restart_role({role!r})",
            ),
        )
        quiet(task)
        book.add_restart(role, task)
        tasks[role] = task
    return tasks


def settle(job: TickJob, tasks: dict[str, asyncio.Task[Any]]) -> None:
    """At the deadline: a restart still running is a timeout, and runs on, uncancelled."""
    state = job.state
    for role, task in tasks.items():
        if not task.done() and state.loop_late is None and role not in state.restart_errors:
            state.restart_errors[role] = CallTimeoutError(f"restart_role({role!r})", job.timeout)


async def _restart(job: TickJob, role: str) -> BaseException | None:
    """Restart ``role`` if it is alive right now; return what it raised, or None.

    The error is returned, not raised, so that the task ends cleanly and
    :meth:`CallBook._restart_done` hands it on. A KeyboardInterrupt or
    SystemExit is recorded, then raised, as asyncio would.
    """
    state, pool = job.state, job.pool
    if not job.gate.open():
        state.gated = True
        return None  # the ticker gave up on this tick before the restart began
    try:
        alive = as_alive(pool.accessor(role).is_alive, role)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        state.restart_errors[role] = exc
        return exc
    if not alive:
        state.restart_gone.append(role)  # down: the pool respawns it on its next call
        return None
    state.restarted.append(role)
    job.book.restart_started[role] = _clock.wall_clock()
    started = _clock.monotonic()
    try:
        awaitable: object = pool.restart_role(role)  # type: ignore[attr-defined]
        if type(awaitable) is not types.CoroutineType and not inspect.isawaitable(awaitable):
            raise TypeError(
                f"restart_role({role!r}) returned {awaitable!r}, not an awaitable: make "
                "restart_role an async def (a coroutine function)"
            )
        await awaitable
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError) as exc:
        # A cancellation is someone else's (the runtime shutting down): the
        # ticker never cancels a restart. Recorded, and not swallowed.
        state.restart_errors.setdefault(role, exc)
        raise
    except BaseException as exc:
        state.restart_errors.setdefault(role, exc)
        return exc
    state.restart_durations[role] = _clock.monotonic() - started
    return None
