"""Per-role health: the status model and the book that applies each tick's evidence."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import types
from collections.abc import Mapping, Sequence
from typing import Final

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

# One role's record as the book keeps it: a plain tuple of RoleHealth's
# fields after ``role``, in order. Building one costs a small fraction of a
# frozen dataclass, which matters at thousands of roles a tick; the public
# RoleHealth objects are made from these only when somebody reads them.
_Row = tuple[
    HealthStatus,  # status
    float,  # since
    int,  # consecutive_failures
    int,  # consecutive_successes
    float | None,  # last_ok_at
    float | None,  # last_failure_at
    str | None,  # last_error
    float | None,  # last_latency_s
    int,  # pings
    int,  # failures
]
_STATUS: Final = 0
_SINCE: Final = 1
_FAILS_IN_ROW: Final = 2
_OKS_IN_ROW: Final = 3
_LAST_OK: Final = 4
_LAST_FAILURE: Final = 5
_LAST_ERROR: Final = 6
_LATENCY: Final = 7
_PINGS: Final = 8
_FAILURES: Final = 9

_NO_RECORDS: Mapping[str, RoleHealth] = types.MappingProxyType({})
_NO_ROWS: dict[str, _Row] = {}


def _record(role: str, row: _Row) -> RoleHealth:
    return RoleHealth(
        role=role,
        status=row[_STATUS],
        since=row[_SINCE],
        consecutive_failures=row[_FAILS_IN_ROW],
        consecutive_successes=row[_OKS_IN_ROW],
        last_ok_at=row[_LAST_OK],
        last_failure_at=row[_LAST_FAILURE],
        last_error=row[_LAST_ERROR],
        last_latency_s=row[_LATENCY],
        pings=row[_PINGS],
        failures=row[_FAILURES],
    )


class HealthBook:
    """Applies each tick's evidence to the per-role records.

    :meth:`observe` is only ever called by the thread that holds the ticker's
    tick slot, so it needs no lock. It keeps each role's record as a row (a
    tuple) and replaces the whole dict of rows once per tick, never changing
    one it has published, so any thread may read at any time and see a whole
    tick's worth of records. :attr:`records` turns the rows into
    :class:`RoleHealth` objects on first read after a tick, and reuses the
    object of every role whose row that tick left as it was.
    """

    def __init__(self, failure_threshold: int, success_threshold: int) -> None:
        self._failure_threshold = failure_threshold
        self._success_threshold = success_threshold
        self._rows: dict[str, _Row] = _NO_ROWS
        # (the rows they were made from, the records): replaced whole by
        # whichever reader makes them first; two readers racing make the
        # same records, and either result may stay.
        self._made: tuple[dict[str, _Row], Mapping[str, RoleHealth]] = (_NO_ROWS, _NO_RECORDS)

    @property
    def records(self) -> Mapping[str, RoleHealth]:
        """The latest tick's records, read-only; made from the rows on first read."""
        rows = self._rows
        made_from, made = self._made
        if made_from is rows:
            return made
        records: dict[str, RoleHealth] = {}
        for role, row in rows.items():
            same = made.get(role) if made_from.get(role) is row else None
            records[role] = same if same is not None else _record(role, row)
        result = types.MappingProxyType(records)
        self._made = (rows, result)
        return result

    def observe(
        self, report: TickReport, registered: Sequence[str] | None, now: float
    ) -> list[Transition]:
        """Apply ``report`` and return the status transitions it caused, in role order.

        A tick that could not read the pool (``registered is None``) says
        nothing about any role. The work is linear in the number of roles,
        and a role the tick said nothing new about keeps its row.
        """
        if registered is None:
            return []
        old = self._rows
        reaped = report.reaped
        failed = report.failed
        gone = report.gone
        latencies = report.latencies
        dead = set(reaped).union(gone) if reaped or gone else ()
        alive = set(report.live)
        ignore_cancelled = report.interrupted
        rows: dict[str, _Row] = {}
        transitions: list[tuple[str, _Row | None, _Row]] = []
        for role in registered:
            previous = old.get(role)
            row = previous
            if row is None:
                row = (HealthStatus.UNKNOWN, now, 0, 0, None, None, None, None, 0, 0)
            if failed and role in failed:
                error = failed[role]
                if not (ignore_cancelled and _cancelled(error)):
                    row = self._failed(row, error, now)
            elif role not in alive or role in dead:
                # Not alive at the survey, reaped, or alive at the survey but
                # not at its ping (crashed in between).
                row = _down(row, now)
            elif role in latencies:  # its ping succeeded
                row = self._ok(row, latencies[role], now)
            # Otherwise the tick gave up before this role's ping: no evidence.
            rows[role] = row
            if previous is None or previous[_STATUS] is not row[_STATUS]:
                transitions.append((role, previous, row))
        self._rows = rows
        return [
            (None if before is None else _record(role, before), _record(role, after))
            for role, before, after in transitions
        ]

    def _failed(self, row: _Row, error: BaseException, now: float) -> _Row:
        failures_in_row = row[_FAILS_IN_ROW] + 1
        old_status = row[_STATUS]
        if failures_in_row >= self._failure_threshold or old_status is HealthStatus.UNHEALTHY:
            status = HealthStatus.UNHEALTHY
        else:
            status = HealthStatus.FAILING
        return (
            status,
            now if status is not old_status else row[_SINCE],
            failures_in_row,
            0,
            row[_LAST_OK],
            now,
            _describe(error),
            row[_LATENCY],
            row[_PINGS] + 1,
            row[_FAILURES] + 1,
        )

    def _ok(self, row: _Row, latency: float, now: float) -> _Row:
        successes_in_row = row[_OKS_IN_ROW] + 1
        status = old_status = row[_STATUS]
        if status is not HealthStatus.HEALTHY:
            recovering = status is HealthStatus.FAILING or status is HealthStatus.UNHEALTHY
            if not recovering or successes_in_row >= self._success_threshold:
                status = HealthStatus.HEALTHY
        return (
            status,
            now if status is not old_status else row[_SINCE],
            0,
            successes_in_row,
            now,
            row[_LAST_FAILURE],
            row[_LAST_ERROR],
            latency,
            row[_PINGS] + 1,
            row[_FAILURES],
        )


def _down(row: _Row, now: float) -> _Row:
    if row[_STATUS] is HealthStatus.DOWN:
        return row
    return (
        HealthStatus.DOWN,
        now,
        0,
        0,
        row[_LAST_OK],
        row[_LAST_FAILURE],
        row[_LAST_ERROR],
        row[_LATENCY],
        row[_PINGS],
        row[_FAILURES],
    )


def _cancelled(error: BaseException) -> bool:
    return isinstance(error, _CANCELLATIONS)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text
