"""Per-role health: the status model and the book that applies each tick's evidence."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import types
from collections.abc import Mapping, Sequence

from lilbee_ticker._report import TickReport

__all__ = ["HealthStatus", "RoleHealth"]

# A cancellation, of either kind: asyncio's and concurrent.futures' are different classes.
_CANCELLATIONS = (asyncio.CancelledError, concurrent.futures.CancelledError)

# last_error is for dashboards and logs, not for post-mortems: keep it short.
_MAX_ERROR_CHARS = 200


class HealthStatus(str, enum.Enum):
    """The health of one role, as the ticker last saw it.

    .. versionadded:: 0.1.0
    """

    UNKNOWN = "unknown"
    """Alive when last surveyed, but no ping has told anything yet."""
    HEALTHY = "healthy"
    """Its last ping succeeded (and, after failures, ``success_threshold`` in a row did)."""
    FAILING = "failing"
    """Its last ping failed, fewer than ``failure_threshold`` times in a row."""
    UNHEALTHY = "unhealthy"
    """Its ping failed ``failure_threshold`` times in a row, and it has not recovered."""
    DOWN = "down"
    """Registered but not alive: never spawned, reaped for idleness, or crashed."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RoleHealth:
    """The health record of one role, as of the latest tick that said anything about it.

    Attributes:
        role: The role's name.
        status: The role's :class:`HealthStatus`.
        since: Wall-clock time (seconds since the epoch) the status began.
        consecutive_failures: Failed pings in a row, up to now.
        consecutive_successes: Successful pings in a row, up to now.
        last_ok_at: Wall-clock time of the last successful ping, or ``None``.
        last_failure_at: Wall-clock time of the last failed ping, or ``None``.
        last_error: ``"ExceptionType: message"`` of the last failure, at most
            200 characters, or ``None``.
        last_latency_s: Round trip of the last successful ping, in seconds.
        pings: Pings with a known outcome, in all.
        failures: Failed pings, in all.

    The streak counters start again when the role goes :attr:`~HealthStatus.DOWN`:
    the next worker is a new process. The totals do not.

    Thread safety: immutable, so safe to share between threads.

    .. versionadded:: 0.1.0
    """

    role: str
    status: HealthStatus
    since: float
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_ok_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    last_latency_s: float | None = None
    pings: int = 0
    failures: int = 0


Transition = tuple[RoleHealth | None, RoleHealth]

_NO_RECORDS: Mapping[str, RoleHealth] = types.MappingProxyType({})


class HealthBook:
    """Applies each tick's evidence to the per-role records.

    :meth:`observe` is only ever called by the thread that holds the ticker's
    tick slot, so it needs no lock. :attr:`records` is replaced, never
    changed, so any thread may read it at any time and see a whole tick's
    worth of records.
    """

    def __init__(self, failure_threshold: int, success_threshold: int) -> None:
        self._failure_threshold = failure_threshold
        self._success_threshold = success_threshold
        self.records: Mapping[str, RoleHealth] = _NO_RECORDS

    def observe(
        self, report: TickReport, registered: Sequence[str] | None, now: float
    ) -> list[Transition]:
        """Apply ``report`` and return the status transitions it caused, in role order.

        A tick that could not read the pool (``registered is None``) says
        nothing about any role. The work is linear in the number of roles, and
        a role the tick said nothing new about keeps its record object.
        """
        if registered is None:
            return []
        old = self.records
        alive_after_reap = set(report.live).difference(report.reaped)
        failed = report.failed
        pinged = set(report.pinged)
        gone = set(report.gone)
        latencies = report.latencies
        ignore_cancelled = report.interrupted
        records: dict[str, RoleHealth] = {}
        transitions: list[Transition] = []
        for role in registered:
            previous = old.get(role)
            record = previous or RoleHealth(role=role, status=HealthStatus.UNKNOWN, since=now)
            error = failed.get(role)
            if error is not None:
                if not (ignore_cancelled and _cancelled(error)):
                    record = self._failed(record, error, now)
            elif role not in alive_after_reap or role in gone:
                # Not alive at the survey, reaped, or alive at the survey but
                # not at its ping (crashed in between).
                record = self._down(record, now)
            elif role in pinged:
                record = self._ok(record, latencies.get(role), now)
            # Otherwise the tick gave up before this role's ping: no evidence.
            records[role] = record
            if previous is None or previous.status is not record.status:
                transitions.append((previous, record))
        self.records = types.MappingProxyType(records)
        return transitions

    @property
    def healthy(self) -> bool:
        """True unless some role is :attr:`HealthStatus.UNHEALTHY`."""
        return all(r.status is not HealthStatus.UNHEALTHY for r in self.records.values())

    def _down(self, record: RoleHealth, now: float) -> RoleHealth:
        if record.status is HealthStatus.DOWN:
            return record
        return dataclasses.replace(
            record,
            status=HealthStatus.DOWN,
            since=now,
            consecutive_failures=0,
            consecutive_successes=0,
        )

    def _failed(self, record: RoleHealth, error: BaseException, now: float) -> RoleHealth:
        failures_in_row = record.consecutive_failures + 1
        if failures_in_row >= self._failure_threshold or record.status is HealthStatus.UNHEALTHY:
            status = HealthStatus.UNHEALTHY
        else:
            status = HealthStatus.FAILING
        return dataclasses.replace(
            record,
            status=status,
            since=now if status is not record.status else record.since,
            consecutive_failures=failures_in_row,
            consecutive_successes=0,
            last_failure_at=now,
            last_error=_describe(error),
            pings=record.pings + 1,
            failures=record.failures + 1,
        )

    def _ok(self, record: RoleHealth, latency: float | None, now: float) -> RoleHealth:
        successes_in_row = record.consecutive_successes + 1
        recovering = record.status in (HealthStatus.FAILING, HealthStatus.UNHEALTHY)
        if recovering and successes_in_row < self._success_threshold:
            status = record.status
        else:
            status = HealthStatus.HEALTHY
        return dataclasses.replace(
            record,
            status=status,
            since=now if status is not record.status else record.since,
            consecutive_failures=0,
            consecutive_successes=successes_in_row,
            last_ok_at=now,
            last_latency_s=latency,
            pings=record.pings + 1,
        )


def _cancelled(error: BaseException) -> bool:
    return isinstance(error, _CANCELLATIONS)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text
