"""What a ticker publishes after each tick, and every answer read from it.

The thread holding the tick slot counts a tick into health and counters and
publishes them, with the report, as one :class:`Published` value replaced
whole. Every reader (``health()``, ``stats()``, ``probe()``, ``healthy``,
the Prometheus collector) takes one such value and derives all its answers
from it, so that no answer contradicts another: a scrape that says healthy
never lists an unhealthy role beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from lilbee_ticker import _clock
from lilbee_ticker._health import NO_FACTS, NO_ROWS, HealthBook, RoleHealth, Rows, Transition
from lilbee_ticker._liveness import Liveness, Reading, assess
from lilbee_ticker._probe import Probe
from lilbee_ticker._report import TickReport
from lilbee_ticker._settings import Settings
from lilbee_ticker._stats import EMPTY, StatsBook, Tally, TickerStats, count
from lilbee_ticker._supervise import RestartFacts
from lilbee_ticker._wake import Lifecycle

__all__ = ["Board", "Published"]


class Published(NamedTuple):
    """What the latest tick published: one consistent reading for any thread."""

    report: TickReport | None
    rows: Rows
    tally: Tally
    surveyed: float | None  # monotonic end of the latest tick that read the pool
    stalls: int  # ticks in a row whose loop stopped running their callbacks
    restarts: Mapping[str, RestartFacts]  # what each role's restarts did, if any


class Board:
    """Counts each tick in and publishes it; turns one reading into every answer.

    :meth:`count` and :meth:`announce` are called by the tick slot holder
    only; :attr:`published` is replaced whole, so no reader needs a lock.
    Every reader takes :attr:`published` once.
    """

    __slots__ = ("_health", "_life", "_settings", "_stats", "published")

    def __init__(self, settings: Settings, life: Lifecycle) -> None:
        self._settings = settings
        self._life = life
        self._health = HealthBook(settings.failure_threshold, settings.success_threshold)
        self._stats = StatsBook()
        self.published = Published(None, NO_ROWS, EMPTY, None, 0, NO_FACTS)

    def count(
        self,
        report: TickReport,
        registered: Sequence[str] | None,
        restarts: Mapping[str, RestartFacts] = NO_FACTS,
    ) -> list[Transition]:
        """Publish ``report``'s health, counters and ``restarts``; return its transitions.

        ``registered`` is None when the tick could not read the pool.
        """
        old = self.published
        now = _clock.wall_clock()
        rows, transitions = self._health.observe(report, registered, now, restarts)
        if report.loop_error is not None:
            stalls = old.stalls + 1
        else:
            stalls = old.stalls if report.interrupted else 0  # a stop is no evidence
        surveyed = old.surveyed if registered is None else _clock.monotonic()
        tally = count(old.tally, report)
        self.published = Published(old.report, rows, tally, surveyed, stalls, restarts)
        return transitions

    def announce(self, report: TickReport) -> None:
        """Publish ``report`` itself, once its hooks have run."""
        self.published = self.published._replace(report=report)

    def latest(self) -> TickReport | None:
        """The latest tick's report, once its hooks have run."""
        return self.published.report

    def rows(self) -> Rows:
        """The latest health rows: each role's status and last error, cheap to read per tick."""
        return self.published.rows

    def records(self) -> Mapping[str, RoleHealth]:
        """The latest health records."""
        published = self.published
        return self._health.records(published.rows, published.restarts)

    def stats(self) -> TickerStats:
        """The latest counters."""
        return self._stats.stats(self.published.tally)

    def liveness(self) -> Liveness:
        """State, readiness and problems, from one reading."""
        return assess(self._reading(self.published)[0])

    def probe(self) -> Probe:
        """The probe, from one reading."""
        return self.scrape()[0]

    def scrape(self) -> tuple[Probe, Mapping[str, RoleHealth], TickerStats]:
        """The probe, the records it was made from, and the counters: one reading."""
        published = self.published
        reading, records = self._reading(published)
        live = assess(reading)
        age = reading.surveyed_age_s
        probe = Probe(
            healthy=not live.problems,
            ready=live.ready,
            state=live.state,
            reason=live.reason,
            ticker=self._settings.name,
            last_tick_age_s=None if age is None else round(age, 3),
            problems=live.problems,
            supervised=self._settings.restart is not None,
            roles=tuple(
                (
                    role,
                    record.status.value,
                    record.consecutive_failures,
                    record.restarts,
                    record.given_up,
                )
                for role, record in records.items()
            ),
        )
        return probe, records, self._stats.stats(published.tally)

    def _reading(self, published: Published) -> tuple[Reading, Mapping[str, RoleHealth]]:
        records = self._health.records(published.rows, published.restarts)
        settings, surveyed = self._settings, published.surveyed
        thread = self._life.facts(settings.first_delay_s)
        reading = Reading(
            records=records,
            loop_stalls_in_row=published.stalls,
            failure_threshold=settings.failure_threshold,
            started=thread.started,
            thread_alive=thread.alive,
            stop_requested=thread.stop_requested,
            forked=thread.forked,
            end_reason=thread.end_reason,
            surveyed_age_s=None if surveyed is None else max(0.0, _clock.monotonic() - surveyed),
            since_first_due_s=thread.since_first_due_s,
            stale_after_s=settings.stale_after_s,
        )
        return reading, records
