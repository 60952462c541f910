"""What a tick means: a pure function from what was recorded to a :class:`TickReport`.

Deciding whose fault a failure is, is where a health checker's worst bugs
hide, so it lives here, apart from threads and loops, and is tested with
plain values. The rules:

* A call's outcome at its deadline is final; the loop settled it once
  (see ``_calls.settle``), and the record holds the ticker's copy.
* A role is blamed only when the loop was responsive and the runtime alive.
  A tick the ticker stopped, or whose runtime went away, is *interrupted*
  and blames no one: no cancellation in it counts against a role. A tick
  whose loop stopped running callbacks, or woke for a deadline too late,
  carries a :class:`LoopUnresponsiveError` and blames no role for the calls
  the loop had not finished.
* Otherwise each call's own outcome stands: a success, the exception it
  raised (a ``CancelledError`` the pool raised itself included), or a
  :class:`CallTimeoutError`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import types
from collections.abc import Mapping

from lilbee_ticker._exceptions import LoopUnresponsiveError
from lilbee_ticker._outcome import NotAlive, PingOutcome, is_cancellation
from lilbee_ticker._report import NO_FAILURES, NO_LATENCIES, TickReport

__all__ = ["Ending", "TickRecord", "decide"]


class Ending(enum.Enum):
    """How the ticker's wait for a tick ended."""

    FINISHED = "finished"
    """The tick's coroutine ended (its future is done)."""
    STOPPED = "stopped"
    """The ticker was stopped while it waited."""
    RUNTIME_GONE = "runtime_gone"
    """The loop missed a deadline and ``runtime.submit()`` now refuses: the runtime is gone."""
    LOOP_STALLED = "loop_stalled"
    """The loop missed a deadline while ``runtime.submit()`` still accepts work."""


@dataclasses.dataclass(kw_only=True, slots=True)
class TickRecord:
    """Everything the ticker knows about one tick when it stops waiting for it.

    Attributes:
        number: The tick's number.
        started_at: Wall-clock start, seconds since the epoch.
        duration_s: Real seconds the ticker spent on the tick.
        ending: How the wait ended.
        stall_stage: For ``LOOP_STALLED``, the step the loop did not finish.
        waited_s: For ``LOOP_STALLED``, how long the ticker waited.
        escaped: The exception the tick's coroutine ended with, if it ended so.
        cancelled: The tick's future was cancelled (by the runtime, or a stop).
        loop_lag_s: Seconds from submit to the tick's first step on the loop.
        snapshot_error: What the survey raised.
        registered: Every role the survey read, or None if it did not finish.
        live: The roles alive at the survey, or None if it did not finish.
        survey_failures: Roles whose accessor or ``is_alive`` raised.
        reaped: The roles ``reap_idle()`` returned.
        reap_error: What the reap raised, or its recorded timeout.
        reap_done: The reap step is over (finished, failed or timed out).
        outcomes: Each pinged role's outcome, as settled on the loop.
        gated: The coroutine skipped a step because the ticker gave up on it
            or was stopping: the tick is interrupted.
        loop_late: The first step whose deadline the loop woke for late, and
            by how much: the calls still running then, and every call of the
            tick's after it, are the loop's fault.
        loop_busy_s: Seconds the tick's own steps held the loop, or None if
            the loop never started the tick.
        restarted: The roles whose restart began.
        restart_errors: What ended a restart (as it stood when the ticker
            stopped waiting), or its ``CallTimeoutError``.
        restart_gone: Roles to restart that were not alive: not restarted.
        blocked_inside: For ``LOOP_STALLED``, the ticker's own call whose
            step the loop was running and had not finished, and for how
            many seconds, or None if the loop was not inside one of ours.
    """

    number: int
    started_at: float
    duration_s: float
    ending: Ending
    stall_stage: str = "start"
    waited_s: float = 0.0
    escaped: BaseException | None = None
    cancelled: bool = False
    loop_lag_s: float | None = None
    snapshot_error: BaseException | None = None
    registered: tuple[str, ...] | None = None
    live: tuple[str, ...] | None = None
    survey_failures: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)
    reaped: tuple[str, ...] = ()
    reap_error: BaseException | None = None
    reap_done: bool = False
    outcomes: Mapping[str, PingOutcome] = dataclasses.field(default_factory=dict)
    gated: bool = False
    loop_late: tuple[str, float] | None = None
    loop_busy_s: float | None = None
    blocked_inside: tuple[str, float] | None = None
    restarted: tuple[str, ...] = ()
    restart_errors: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)
    restart_gone: tuple[str, ...] = ()


def decide(record: TickRecord) -> TickReport:
    """Turn what was recorded about a tick into its report."""
    ending = record.ending
    interrupted = (
        ending in (Ending.STOPPED, Ending.RUNTIME_GONE)
        or (ending is Ending.FINISHED and record.cancelled)
        or record.gated
    )
    loop_error: BaseException | None = None
    if ending is Ending.LOOP_STALLED:
        loop_error = LoopUnresponsiveError(
            record.stall_stage, record.waited_s, blocked_inside=record.blocked_inside
        )
    elif record.loop_late is not None and not interrupted:
        stage, late = record.loop_late
        loop_error = LoopUnresponsiveError(stage, late)
    # An exception the coroutine ended with that no step recorded: a bug in
    # the ticker, or a BaseException from the pool that ended the loop's run.
    escaped = None if record.cancelled else record.escaped
    blameless = interrupted or loop_error is not None

    snapshot_error = record.snapshot_error
    if record.live is None and snapshot_error is None and not blameless:
        snapshot_error = escaped
    reap_error = record.reap_error
    live = record.live or ()
    if live and not record.reap_done and reap_error is None and not blameless:
        reap_error = escaped

    pinged: list[str] = []
    gone: list[str] = []
    failed: dict[str, BaseException] = dict(record.survey_failures)
    latencies: dict[str, float] = {}
    for role, outcome in record.outcomes.items():
        if type(outcome) is float:  # the usual outcome first: a round trip
            pinged.append(role)
            latencies[role] = outcome
        elif outcome is None:
            if interrupted:
                failed[role] = concurrent.futures.CancelledError(
                    f"ping_role({role!r}) was cancelled: {_why_interrupted(ending)}"
                )
            elif escaped is not None and loop_error is None:
                failed[role] = escaped
            # Otherwise the loop never finished the ping (a stalled loop), or
            # someone else cancelled it: no evidence about the role.
        elif isinstance(outcome, BaseException):
            if interrupted and is_cancellation(outcome):
                # Whose cancellation it was cannot be told once the tick was
                # interrupted (on Python 3.10 at all): no evidence, no blame.
                outcome = concurrent.futures.CancelledError(
                    f"ping_role({role!r}) was cancelled: {_why_interrupted(ending)}"
                )
            failed[role] = outcome
        elif isinstance(outcome, NotAlive):
            gone.append(role)
        else:
            pinged.append(role)
            latencies[role] = outcome

    return TickReport(
        number=record.number,
        started_at=record.started_at,
        duration_s=record.duration_s,
        live=live,
        reaped=record.reaped,
        pinged=tuple(pinged),
        gone=tuple(gone) + record.restart_gone,
        failed=types.MappingProxyType(failed) if failed else NO_FAILURES,
        latencies=types.MappingProxyType(latencies) if latencies else NO_LATENCIES,
        reap_error=reap_error,
        snapshot_error=snapshot_error,
        loop_error=loop_error,
        loop_lag_s=record.loop_lag_s,
        loop_busy_s=record.loop_busy_s,
        interrupted=interrupted,
        restarted=record.restarted,
        restart_errors=(
            types.MappingProxyType(dict(record.restart_errors))
            if record.restart_errors
            else NO_FAILURES
        ),
    )


def _why_interrupted(ending: Ending) -> str:
    if ending is Ending.RUNTIME_GONE:
        return "the runtime shut down"
    if ending is Ending.STOPPED:
        return "the ticker stopped"
    return "the tick was cancelled on the loop"
