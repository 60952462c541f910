"""Per-role health: the status model and the book that applies each tick's evidence."""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from lilbee_ticker._outcome import describe, is_cancellation
from lilbee_ticker._report import TickReport
from lilbee_ticker._supervise import RestartFacts

__all__ = ["HealthStatus", "RoleHealth"]


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
    REMOVED = "removed"
    """No longer registered: the pool dropped the role.

    A role is never in this status in :meth:`HealthTicker.health`: it is
    the ``new`` record of the one ``on_change(old, new)`` call, and the one
    ``role.removed`` event, that tell that the role left. If the pool
    registers it again, it comes back as a new role (``old`` is ``None``).

    .. versionadded:: 0.2.0
    """


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
            200 characters, or ``None``. An exception that cannot be printed
            shows as ``"<ValueError while formatting ExcType>"``.
        last_latency_s: Round trip of the last successful ping, in seconds.
        pings: Pings with a known outcome, in all.
        failures: Failed pings, in all.
        restarts: Restarts the ticker began for the role (see :class:`RestartPolicy`).
        last_restart_at: Wall-clock start of the last restart, or ``None``.
        last_restart_ended_at: Wall-clock end of the last restart, or ``None``
            (none yet, or it still runs).
        last_restart_error: How the last restart ended: ``None`` if it
            answered, else ``"ExceptionType: message"``.
        given_up: The ticker gave up restarting the role: it needed more
            restarts than the policy's budget allows; it stays ``UNHEALTHY``.

    The streak counters start again when the role goes :attr:`~HealthStatus.DOWN`:
    the next worker is a new process. The totals do not.

    Thread safety: immutable, so safe to share between threads.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added the restart fields and :attr:`given_up`.
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
    restarts: int = 0
    last_restart_at: float | None = None
    last_restart_ended_at: float | None = None
    last_restart_error: str | None = None
    given_up: bool = False


Transition = tuple[RoleHealth | None, RoleHealth]


class Row(NamedTuple):
    """One role's record as the book keeps it: RoleHealth's fields after ``role``.

    Building one costs a fraction of a frozen dataclass, which matters at
    thousands of roles a tick; the public :class:`RoleHealth` objects are
    made from these only when somebody reads them.
    """

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


Rows = dict[str, Row]


def _row(*fields: object) -> Row:
    """A Row from all its fields in order: a plain tuple's cost, not NamedTuple.__new__'s."""
    return tuple.__new__(Row, fields)


NO_FACTS: Mapping[str, RestartFacts] = types.MappingProxyType({})
_NO_RESTARTS = RestartFacts()

_NO_RECORDS: Mapping[str, RoleHealth] = types.MappingProxyType({})
NO_ROWS: Rows = {}


def _record(role: str, row: Row, restarts: RestartFacts = _NO_RESTARTS) -> RoleHealth:
    return RoleHealth(role=role, **row._asdict(), **restarts._asdict())


class HealthBook:
    """Applies each tick's evidence to the per-role records.

    :meth:`observe` is only ever called by the thread that holds the ticker's
    tick slot, so it needs no lock. It never changes a dict of rows it has
    returned: each tick gets a new one, which the ticker publishes whole, so
    any thread may read a published dict at any time. :meth:`records` turns
    rows into :class:`RoleHealth` objects on first read, and reuses the
    object of every role whose row the tick left as it was.
    """

    def __init__(self, failure_threshold: int, success_threshold: int) -> None:
        self._failure_threshold = failure_threshold
        self._success_threshold = success_threshold
        self._rows: Rows = NO_ROWS
        # (the rows they were made from, the records): replaced whole by
        # whichever reader makes them first; two readers racing make the
        # same records, and either result may stay.
        self._made: tuple[Rows, Mapping[str, RestartFacts], Mapping[str, RoleHealth]] = (
            NO_ROWS,
            NO_FACTS,
            _NO_RECORDS,
        )

    def records(
        self, rows: Rows, restarts: Mapping[str, RestartFacts] = NO_FACTS
    ) -> Mapping[str, RoleHealth]:
        """The records of ``rows`` (a dict :meth:`observe` returned) and ``restarts``, read-only."""
        made_rows, made_restarts, made = self._made
        if made_rows is rows and made_restarts is restarts:
            return made
        records: dict[str, RoleHealth] = {}
        for role, row in rows.items():
            facts = restarts.get(role, _NO_RESTARTS) if restarts else _NO_RESTARTS
            same = None
            if made_rows.get(role) is row and made_restarts.get(role, _NO_RESTARTS) is facts:
                same = made.get(role)
            records[role] = same if same is not None else _record(role, row, facts)
        result = types.MappingProxyType(records)
        self._made = (rows, restarts, result)
        return result

    def observe(
        self,
        report: TickReport,
        registered: Sequence[str] | None,
        now: float,
        restarts: Mapping[str, RestartFacts] = NO_FACTS,
    ) -> tuple[Rows, list[Transition]]:
        """Apply ``report``; return the new rows and the transitions it caused, in role order.

        A tick that could not read the pool (``registered is None``) says
        nothing about any role. A role no longer registered leaves with one
        transition to :attr:`HealthStatus.REMOVED`, after the others. The
        work is linear in the number of roles, and a role the tick said
        nothing new about keeps its row.
        """
        old = self._rows
        if registered is None:
            return old, []
        reaped = report.reaped
        failed = report.failed
        gone = report.gone
        latencies = report.latencies
        dead = set(reaped).union(gone) if reaped or gone else ()
        alive = set(report.live)
        ignore_cancelled = report.interrupted
        rows: Rows = {}
        transitions: list[tuple[str, Row | None, Row]] = []
        for role in registered:
            previous = old.get(role)
            row = previous
            if row is None:
                row = Row(HealthStatus.UNKNOWN, now)
            if failed and role in failed:
                error = failed[role]
                if not (ignore_cancelled and is_cancellation(error)):
                    row = self._failed(row, error, now)
            elif role not in alive or role in dead:
                # Not alive at the survey, reaped, or alive at the survey but
                # not at its ping (crashed in between).
                row = _down(row, now)
            elif role in latencies:  # its ping succeeded
                row = self._ok(row, latencies[role], now)
            # Otherwise the tick gave up before this role's ping: no evidence.
            rows[role] = row
            if previous is None or previous.status is not row.status:
                transitions.append((role, previous, row))
        if len(rows) != len(old) or not rows.keys() >= old.keys():
            for role, previous in old.items():
                if role not in rows:
                    transitions.append(
                        (role, previous, previous._replace(status=HealthStatus.REMOVED, since=now))
                    )
        self._rows = rows
        return rows, [
            (
                None if before is None else _record(role, before, restarts.get(role, _NO_RESTARTS)),
                _record(role, after, restarts.get(role, _NO_RESTARTS)),
            )
            for role, before, after in transitions
        ]

    def _failed(self, row: Row, error: BaseException, now: float) -> Row:
        failures_in_row = row.consecutive_failures + 1
        old_status = row.status
        if failures_in_row >= self._failure_threshold or old_status is HealthStatus.UNHEALTHY:
            status = HealthStatus.UNHEALTHY
        else:
            status = HealthStatus.FAILING
        return _row(
            status,
            now if status is not old_status else row.since,
            failures_in_row,
            0,
            row.last_ok_at,
            now,
            describe(error),
            row.last_latency_s,
            row.pings + 1,
            row.failures + 1,
        )

    def _ok(self, row: Row, latency: float, now: float) -> Row:
        successes_in_row = row.consecutive_successes + 1
        status = old_status = row.status
        if status is not HealthStatus.HEALTHY:
            recovering = status is HealthStatus.FAILING or status is HealthStatus.UNHEALTHY
            if not recovering or successes_in_row >= self._success_threshold:
                status = HealthStatus.HEALTHY
        return _row(
            status,
            now if status is not old_status else row.since,
            0,
            successes_in_row,
            now,
            row.last_failure_at,
            row.last_error,
            latency,
            row.pings + 1,
            row.failures,
        )


def _down(row: Row, now: float) -> Row:
    if row.status is HealthStatus.DOWN:
        return row
    return row._replace(
        status=HealthStatus.DOWN, since=now, consecutive_failures=0, consecutive_successes=0
    )
