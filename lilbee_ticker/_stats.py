"""Counters a ticker keeps, for an application to export to its own metrics system."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from typing import Any

from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._report import TickReport

__all__ = ["StatsBook", "TickerStats"]

# A cancellation, of either kind: asyncio's and concurrent.futures' are different classes.
_CANCELLATIONS = (asyncio.CancelledError, concurrent.futures.CancelledError)


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

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added :attr:`loop_stalls`, and the loop lag and loop busy figures.
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

    def add(self, report: TickReport) -> TickerStats:
        """Return these counters with ``report`` counted in."""
        return _stats(_count(dataclasses.astuple(self), report))


_Tally = tuple[
    int,  # ticks
    int,  # skipped_ticks
    int,  # interrupted_ticks
    int,  # reaps
    int,  # reap_failures
    int,  # roles_reaped
    int,  # pings
    int,  # ping_failures
    int,  # timeouts
    int,  # snapshot_failures
    int,  # loop_stalls
    float | None,  # last_loop_lag_s
    int,  # loop_lag_count
    float,  # loop_lag_sum_s
    float | None,  # max_loop_lag_s
    float | None,  # last_loop_busy_s
    float | None,  # max_loop_busy_s
    float | None,  # last_tick_duration_s
    float | None,  # max_tick_duration_s
]
"""TickerStats' fields, in order, as a plain tuple."""

_FIELDS = tuple(field.name for field in dataclasses.fields(TickerStats))


def _stats(tally: _Tally) -> TickerStats:
    fields: dict[str, Any] = dict(zip(_FIELDS, tally, strict=True))
    return TickerStats(**fields)


def _count(tally: _Tally, report: TickReport) -> _Tally:
    """Return ``tally`` with ``report`` counted in."""
    (
        ticks,
        skipped_ticks,
        interrupted_ticks,
        reaps,
        reap_failures,
        roles_reaped,
        pings,
        ping_failures,
        timeouts,
        snapshot_failures,
        loop_stalls,
        last_loop_lag_s,
        loop_lag_count,
        loop_lag_sum_s,
        max_loop_lag_s,
        last_loop_busy_s,
        max_loop_busy_s,
        _,
        max_tick_duration_s,
    ) = tally
    interrupted = report.interrupted
    failed = report.failed
    if failed:
        counted_failures = [
            error
            for error in failed.values()
            if not (interrupted and isinstance(error, _CANCELLATIONS))
        ]
        failures = len(counted_failures)
        timed_out = sum(isinstance(error, CallTimeoutError) for error in counted_failures)
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
    return (
        ticks + 1,
        skipped_ticks + report.skipped,
        interrupted_ticks + interrupted,
        # The survey calls reap_idle() exactly when a role is live.
        reaps + bool(report.live),
        reap_failures
        + (reap_error is not None and not (interrupted and isinstance(reap_error, _CANCELLATIONS))),
        roles_reaped + len(report.reaped),
        pings + len(report.pinged) + failures,
        ping_failures + failures,
        timeouts + timed_out,
        snapshot_failures + (snapshot_error is not None and not interrupted),
        loop_stalls + (report.loop_error is not None),
        lag if lag is not None else last_loop_lag_s,
        loop_lag_count + (lag is not None),
        loop_lag_sum_s + (lag or 0.0),
        max_loop_lag_s if lag is None else max(lag, max_loop_lag_s or 0.0),
        busy if busy is not None else last_loop_busy_s,
        max_loop_busy_s if busy is None else max(busy, max_loop_busy_s or 0.0),
        duration,
        duration if max_tick_duration_s is None else max(duration, max_tick_duration_s),
    )


class StatsBook:
    """A ticker's counters, counted in a plain tuple; the :class:`TickerStats` made on read.

    :meth:`add` is called by the tick slot holder only, and replaces the
    tuple whole, so a reader on any thread sees one tick's counters
    together, without a lock. :attr:`stats` makes the ``TickerStats`` once
    per tick, on first read; two readers racing make equal ones, and either
    may stay.
    """

    __slots__ = ("_made", "_tally")

    def __init__(self) -> None:
        empty = TickerStats()
        self._tally: _Tally = dataclasses.astuple(empty)
        self._made = (self._tally, empty)

    def add(self, report: TickReport) -> None:
        """Count ``report`` in."""
        self._tally = _count(self._tally, report)

    @property
    def stats(self) -> TickerStats:
        """The counters as of the latest :meth:`add`."""
        tally = self._tally
        made_from, made = self._made
        if made_from is not tally:
            made = _stats(tally)
            self._made = (tally, made)
        return made
