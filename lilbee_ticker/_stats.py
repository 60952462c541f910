"""Counters a ticker keeps, for an application to export to its own metrics system."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses

from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._report import TickReport

__all__ = ["TickerStats"]

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
        counted_failures = [
            error
            for error in report.failed.values()
            if not (report.interrupted and isinstance(error, _CANCELLATIONS))
        ]
        reap_ran = bool(report.live)  # the survey calls reap_idle() exactly when a role is live
        timeouts = sum(isinstance(e, CallTimeoutError) for e in counted_failures)
        timeouts += isinstance(report.reap_error, CallTimeoutError)
        timeouts += isinstance(report.snapshot_error, CallTimeoutError)
        lag = report.loop_lag_s
        busy = report.loop_busy_s
        longest = report.duration_s
        if self.max_tick_duration_s is not None:
            longest = max(longest, self.max_tick_duration_s)
        return TickerStats(
            ticks=self.ticks + 1,
            skipped_ticks=self.skipped_ticks + report.skipped,
            interrupted_ticks=self.interrupted_ticks + report.interrupted,
            reaps=self.reaps + reap_ran,
            reap_failures=self.reap_failures
            + (
                report.reap_error is not None
                and not (report.interrupted and isinstance(report.reap_error, _CANCELLATIONS))
            ),
            roles_reaped=self.roles_reaped + len(report.reaped),
            pings=self.pings + len(report.pinged) + len(counted_failures),
            ping_failures=self.ping_failures + len(counted_failures),
            timeouts=self.timeouts + timeouts,
            snapshot_failures=self.snapshot_failures
            + (report.snapshot_error is not None and not report.interrupted),
            loop_stalls=self.loop_stalls + (report.loop_error is not None),
            last_loop_lag_s=lag if lag is not None else self.last_loop_lag_s,
            loop_lag_count=self.loop_lag_count + (lag is not None),
            loop_lag_sum_s=self.loop_lag_sum_s + (lag or 0.0),
            max_loop_lag_s=(
                self.max_loop_lag_s if lag is None else max(lag, self.max_loop_lag_s or 0.0)
            ),
            last_loop_busy_s=busy if busy is not None else self.last_loop_busy_s,
            max_loop_busy_s=(
                self.max_loop_busy_s if busy is None else max(busy, self.max_loop_busy_s or 0.0)
            ),
            last_tick_duration_s=report.duration_s,
            max_tick_duration_s=longest,
        )
