"""Counters a ticker keeps, for an application to export to its own metrics system."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._outcome import is_cancellation
from lilbee_ticker._report import TickReport

__all__ = ["StatsBook", "Tally", "TickerStats"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TickerStats:
    """Counters over every tick of one ticker, background and manual.

    All counts are totals since the ticker was created; export them as
    monotonic counters (Prometheus ``_total``), and the durations as gauges.

    Thread safety: immutable, so safe to share between threads;
    :meth:`HealthTicker.stats` returns a new one after every tick.

    Attributes:
        ticks: Ticks run.
        skipped_ticks: Ticks that found no role alive, so neither reaped nor pinged.
        interrupted_ticks: Ticks cut short by a stop.
        reaps: Ticks that found a role alive and so had a reap due (a reap
            not started because an earlier one was still running counts,
            as a failure).
        reap_failures: Reaps that raised, timed out, or could not start
            because an earlier reap was still running.
        roles_reaped: Roles reaped, summed over all reaps.
        pings: Pings with a known outcome (a ping cancelled by a stop has none).
        ping_failures: Pings that raised or timed out.
        timeouts: Calls reported as a :class:`CallTimeoutError`: they
            outlived ``call_timeout_s``, or were not made because the same
            call was still running.
        snapshot_failures: Ticks that could not read which roles were alive
            (not counting ticks a stop cut short).
        loop_stalls: Ticks whose loop stopped running their callbacks
            (:attr:`TickReport.loop_error`).
        last_loop_lag_s: :attr:`TickReport.loop_lag_s` of the latest tick
            that the loop started, or ``None``.
        loop_lag_count: Ticks that the loop started, whose lag is summed up
            in :attr:`loop_lag_sum_s`.
        loop_lag_sum_s: The loop lags of those ticks, added up: with
            :attr:`loop_lag_count`, the mean lag (a Prometheus summary).
        max_loop_lag_s: The longest loop lag seen, or ``None``.
        last_loop_busy_s: :attr:`TickReport.loop_busy_s` of the latest tick
            that the loop started, or ``None``.
        max_loop_busy_s: The longest a tick held the loop, or ``None``.
        last_tick_duration_s: Duration of the latest tick, or ``None``.
        max_tick_duration_s: Duration of the longest tick, or ``None``.
        restarts: Restarts the ticker began (see :class:`RestartPolicy`).
        restart_failures: Restarts that raised or outlived ``call_timeout_s``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added :attr:`loop_stalls`, the loop lag and loop busy figures, and
       :attr:`restarts` and :attr:`restart_failures`.
    """

    ticks: int = 0
    skipped_ticks: int = 0
    interrupted_ticks: int = 0
    reaps: int = 0
    reap_failures: int = 0
    roles_reaped: int = 0
    pings: int = 0
    ping_failures: int = 0
    timeouts: int = 0
    snapshot_failures: int = 0
    loop_stalls: int = 0
    last_loop_lag_s: float | None = None
    loop_lag_count: int = 0
    loop_lag_sum_s: float = 0.0
    max_loop_lag_s: float | None = None
    last_loop_busy_s: float | None = None
    max_loop_busy_s: float | None = None
    last_tick_duration_s: float | None = None
    max_tick_duration_s: float | None = None
    restarts: int = 0
    restart_failures: int = 0

    def add(self, report: TickReport) -> TickerStats:
        """Return these counters with ``report`` counted in."""
        return TickerStats(**count(Tally(**dataclasses.asdict(self)), report)._asdict())


class Tally(NamedTuple):
    """TickerStats' fields as a plain named tuple, cheap to replace once per tick."""

    ticks: int = 0
    skipped_ticks: int = 0
    interrupted_ticks: int = 0
    reaps: int = 0
    reap_failures: int = 0
    roles_reaped: int = 0
    pings: int = 0
    ping_failures: int = 0
    timeouts: int = 0
    snapshot_failures: int = 0
    loop_stalls: int = 0
    last_loop_lag_s: float | None = None
    loop_lag_count: int = 0
    loop_lag_sum_s: float = 0.0
    max_loop_lag_s: float | None = None
    last_loop_busy_s: float | None = None
    max_loop_busy_s: float | None = None
    last_tick_duration_s: float | None = None
    max_tick_duration_s: float | None = None
    restarts: int = 0
    restart_failures: int = 0


if Tally._fields != tuple(field.name for field in dataclasses.fields(TickerStats)):
    raise AssertionError("Tally and TickerStats must have the same fields")  # pragma: no cover


def count(tally: Tally, report: TickReport) -> Tally:
    """Return ``tally`` with ``report`` counted in."""
    interrupted = report.interrupted
    failed = report.failed
    if failed:
        counted = [e for e in failed.values() if not (interrupted and is_cancellation(e))]
        failures = len(counted)
        timed_out = sum(isinstance(error, CallTimeoutError) for error in counted)
    else:
        failures = timed_out = 0
    reap_error = report.reap_error
    snapshot_error = report.snapshot_error
    if reap_error is not None or snapshot_error is not None:
        timed_out += isinstance(reap_error, CallTimeoutError)
        timed_out += isinstance(snapshot_error, CallTimeoutError)
    lag = report.loop_lag_s
    busy = report.loop_busy_s
    duration = report.duration_s
    return Tally(
        ticks=tally.ticks + 1,
        skipped_ticks=tally.skipped_ticks + report.skipped,
        interrupted_ticks=tally.interrupted_ticks + interrupted,
        # The survey calls reap_idle() exactly when a role is live.
        reaps=tally.reaps + bool(report.live),
        reap_failures=tally.reap_failures
        + (reap_error is not None and not (interrupted and is_cancellation(reap_error))),
        roles_reaped=tally.roles_reaped + len(report.reaped),
        pings=tally.pings + len(report.pinged) + failures,
        ping_failures=tally.ping_failures + failures,
        timeouts=tally.timeouts + timed_out,
        snapshot_failures=tally.snapshot_failures
        + (snapshot_error is not None and not interrupted),
        loop_stalls=tally.loop_stalls + (report.loop_error is not None),
        last_loop_lag_s=lag if lag is not None else tally.last_loop_lag_s,
        loop_lag_count=tally.loop_lag_count + (lag is not None),
        loop_lag_sum_s=tally.loop_lag_sum_s + (lag or 0.0),
        max_loop_lag_s=tally.max_loop_lag_s
        if lag is None
        else max(lag, tally.max_loop_lag_s or 0.0),
        last_loop_busy_s=busy if busy is not None else tally.last_loop_busy_s,
        max_loop_busy_s=(
            tally.max_loop_busy_s if busy is None else max(busy, tally.max_loop_busy_s or 0.0)
        ),
        last_tick_duration_s=duration,
        max_tick_duration_s=max(duration, tally.max_tick_duration_s or 0.0),
        restarts=tally.restarts + len(report.restarted),
        restart_failures=tally.restart_failures + len(report.restart_errors),
    )


class StatsBook:
    """Makes a ticker's :class:`TickerStats` from the tallies it publishes, once per tally.

    The ticker counts each tick into a new :class:`Tally` (see :func:`count`)
    and publishes it whole, with the tick's health, so a reader on any
    thread sees one tick's counters together, without a lock. :meth:`stats`
    makes the ``TickerStats`` on first read; two readers racing make equal
    ones, and either may stay.
    """

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made = (EMPTY, TickerStats())

    def stats(self, tally: Tally) -> TickerStats:
        """The counters of ``tally``."""
        made_from, made = self._made
        if made_from is not tally:
            made = TickerStats(**tally._asdict())
            self._made = (tally, made)
        return made


EMPTY = Tally()
