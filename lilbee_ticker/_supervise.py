"""Supervision: when the ticker restarts an unhealthy role, with backoff and a restart budget.

The policy is Erlang/OTP's restart intensity with Kubernetes' back-off:

* A role that turns ``UNHEALTHY`` (failed pings in a row while alive) is
  restarted through the pool's ``restart_role(role)``; the first restart of
  a streak comes at once. A role that is not alive (``DOWN``) is never
  restarted: the pool respawns it on its next call, and a reaped worker
  stays reaped. A role healthy again before its restart is due is left alone.
* Restart ``k + 1`` waits at least ``min(backoff_s * 2 ** (k - 1), max_backoff_s)``
  after restart ``k`` ended.
* A role that would need more than ``max_restarts`` restarts within
  ``period_s`` is given up on: no more restarts, it stays ``UNHEALTHY``,
  and one error event says so.
* A role healthy for ``reset_after_s`` starts over: no backoff, a fresh
  budget, and a given-up role is supervised again.

:class:`Supervisor` keeps this per role. Only the thread holding the tick
slot calls it, so it needs no lock; what it knows reaches the health records
as :class:`RestartFacts`.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from lilbee_ticker import _clock
from lilbee_ticker._callbook import RestartEnd
from lilbee_ticker._exceptions import CallTimeoutError
from lilbee_ticker._outcome import describe

if TYPE_CHECKING:
    from lilbee_ticker._report import TickReport

Emit = Callable[..., None]


class _Health(Protocol):
    """What the supervisor reads of a role's health: a health ``Row`` or a ``RoleHealth``."""

    @property
    def status(self) -> enum.Enum: ...
    @property
    def last_error(self) -> str | None: ...


# Reads each role's latest health: the board's rows, which cost nothing to
# read, rather than RoleHealth records.
Records = Callable[[], Mapping[str, _Health]]

__all__ = ["NO_SUPERVISION", "RestartFacts", "RestartPolicy", "Supervisor", "Unsupervised"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RestartPolicy:
    """How a :class:`HealthTicker` restarts unhealthy roles: backoff and a restart budget.

    Pass one as ``HealthTicker(..., restart=RestartPolicy())``; the default
    ``restart=None`` keeps the ticker a pure observer. The pool must then
    have a ``restart_role(role)`` coroutine (see :class:`Pool`).

    Attributes:
        max_restarts: Restarts allowed within ``period_s``; a role that would
            need one more is given up on. An int >= 1.
        period_s: The window of the restart budget, in seconds; finite, > 0.
        backoff_s: The wait after the first restart of a streak ends before
            a second may start; it doubles with each restart. Finite, >= 0.
        max_backoff_s: The longest wait between two restarts; finite,
            >= ``backoff_s``.
        reset_after_s: How long a role must be healthy to start over, with
            no backoff and a fresh budget; finite, > 0.

    Raises:
        TypeError, ValueError: A field is not a number in its range; the
            message names it.

    Thread safety: immutable.

    .. versionadded:: 0.2.0
    """

    max_restarts: int = 3
    period_s: float = 300.0
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    reset_after_s: float = 600.0

    def __post_init__(self) -> None:
        count = self.max_restarts
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _bad("max_restarts", count, "an int >= 1")
        for name, zero_ok in (
            ("period_s", False),
            ("backoff_s", True),
            ("max_backoff_s", True),
            ("reset_after_s", False),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _bad(name, value, "a number of seconds", TypeError)
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                raise _bad(
                    name, value, "a finite number of seconds " + (">= 0" if zero_ok else "> 0")
                )
            object.__setattr__(self, name, float(value))
        if self.max_backoff_s < self.backoff_s:
            raise _bad(
                "max_backoff_s", self.max_backoff_s, f"at least backoff_s ({self.backoff_s:g})"
            )

    def backoff(self, restarts: int) -> float:
        """Seconds to wait after restart number ``restarts`` (of a streak) ended."""
        if restarts < 1:
            return 0.0
        return min(self.backoff_s * 2.0 ** min(restarts - 1, 64), self.max_backoff_s)


def _bad(name: str, value: object, rule: str, kind: type[Exception] = ValueError) -> Exception:
    return kind(f"RestartPolicy {name} must be {rule}, got {value!r}")


class RestartFacts(NamedTuple):
    """What a role's health record says about its restarts."""

    restarts: int = 0
    last_restart_at: float | None = None  # wall clock
    last_restart_ended_at: float | None = None  # wall clock
    last_restart_error: str | None = None  # how the last one ended, or None if it answered
    given_up: bool = False


class _Role:
    __slots__ = ("ended", "facts", "failed_since", "healthy_since", "running", "streak", "window")

    def __init__(self) -> None:
        # A ping failed since the last restart ended: the new worker is broken
        # too. Until one has, a restarted role is left for its pings to judge.
        self.failed_since = True
        self.facts = RestartFacts()
        self.streak = 0  # restarts since the last reset
        self.window: collections.deque[float] = collections.deque()  # their monotonic starts
        self.running = False
        self.ended: float | None = None  # monotonic end of the last restart
        self.healthy_since: float | None = None


class Supervisor:
    """Decides which roles to restart, and keeps what their restarts did.

    Args:
        policy: The restart policy.
        emit: ``emit(level, event, **fields)``: the ticker's logging.

    Thread safety: called by the thread holding the tick slot only.
    """

    __slots__ = ("_emit", "_policy", "_roles", "facts")

    def __init__(self, policy: RestartPolicy, emit: Emit) -> None:
        self._policy = policy
        self._emit = emit
        self._roles: dict[str, _Role] = {}
        # Per role, as the health records show it; replaced whole when it changes.
        self.facts: Mapping[str, RestartFacts] = {}

    # -- what the ticker calls, once per tick -------------------------------------

    def before(self, read: Records) -> tuple[str, ...]:
        """The roles this tick restarts: unhealthy, not given up, and past their backoff.

        A role that would need a restart beyond its budget is given up on
        here, with one ``role.given_up`` event. ``read()`` gives the records.
        """
        records = read()
        unhealthy = [role for role, record in records.items() if _unhealthy(record)]
        if not unhealthy:
            return ()
        restart, given_up = self.due(unhealthy, _clock.monotonic())
        policy = self._policy
        for role in given_up:
            self._emit(
                "error",
                "role.given_up",
                role=role,
                restarts=self._roles[role].facts.restarts,
                max_restarts=policy.max_restarts,
                period_s=policy.period_s,
                error=records[role].last_error,
            )
        return tuple(restart)

    def after(
        self,
        report: TickReport,
        read: Records,
        ends: collections.deque[RestartEnd],
    ) -> Mapping[str, RestartFacts]:
        """Count the tick's restarts in, and every restart that has ended; return the facts."""
        now, wall = _clock.monotonic(), _clock.wall_clock()
        records = read() if report.restarted else {}
        for role in report.restarted:
            self.started(role, now, wall)
            record = records.get(role)
            reason = None if record is None else record.last_error
            self._emit(
                "warning",
                "role.restarting",
                role=role,
                restarts=self._roles[role].facts.restarts,
                reason=reason,
            )
        for role, failure in report.restart_errors.items():
            if isinstance(failure, CallTimeoutError):  # it runs on; its end comes later
                self._emit("warning", "role.restart_failed", role=role, error=describe(failure))
        failed = () if report.interrupted else report.failed  # a stop is no evidence
        for role in failed:  # a failed ping since a restart: the new worker fails too
            state = self._roles.get(role)
            if state is not None and not state.running:
                state.failed_since = True
        while ends:
            role, error, began, ended = ends.popleft()
            self.ended(role, error, now, began, ended)
            if error is None:
                self._emit("info", "role.restarted", role=role)
            else:
                self._emit("warning", "role.restart_failed", role=role, error=describe(error))
        return self.facts

    def observe_records(self, read: Records) -> bool:
        """Start over the roles healthy long enough; True if a restart is due right now."""
        records = read()
        now = _clock.monotonic()
        healthy = {role for role, record in records.items() if record.status.value == "healthy"}
        for role in self.observe(healthy, set(records), now):
            self._emit("info", "role.supervised", role=role)
        return any(
            _unhealthy(record) and self._may_restart(self._roles.get(role), now)
            for role, record in records.items()
        )

    # -- the rules ---------------------------------------------------------------------

    def _may_restart(self, state: _Role | None, now: float) -> bool:
        if state is None:
            return True
        if state.facts.given_up or state.running or not state.failed_since:
            return False
        return state.ended is None or now - state.ended >= self._policy.backoff(state.streak)

    def due(self, unhealthy: list[str], now: float) -> tuple[list[str], list[str]]:
        """The unhealthy roles to restart now, and those just given up on."""
        policy = self._policy
        restart: list[str] = []
        given_up: list[str] = []
        for role in unhealthy:
            state = self._roles.get(role) or self._roles.setdefault(role, _Role())
            if not self._may_restart(state, now):
                continue
            window = state.window
            while window and now - window[0] > policy.period_s:
                window.popleft()
            if len(window) >= policy.max_restarts:
                state.facts = state.facts._replace(given_up=True)
                given_up.append(role)
                continue
            restart.append(role)
        if given_up:
            self._publish()
        return restart, given_up

    def started(self, role: str, now: float, wall: float) -> None:
        """A restart of ``role`` started."""
        state = self._roles.setdefault(role, _Role())
        state.running = True
        state.failed_since = False
        state.streak += 1
        state.window.append(now)
        state.facts = state.facts._replace(restarts=state.facts.restarts + 1, last_restart_at=wall)
        self._publish()

    def ended(
        self, role: str, error: BaseException | None, now: float, began: float | None, wall: float
    ) -> None:
        """A restart of ``role`` ended: it answered (``error`` None) or failed.

        ``began`` and ``wall`` are its wall-clock start and end, as the loop
        saw them. A restart that failed leaves the old worker: its next
        failed ping is not needed before another restart.
        """
        state = self._roles.get(role)
        if state is None:
            return
        state.running = False
        state.ended = now
        if error is not None:
            state.failed_since = True
        text = None if error is None else describe(error)
        facts = state.facts._replace(last_restart_ended_at=wall, last_restart_error=text)
        state.facts = facts if began is None else facts._replace(last_restart_at=began)
        self._publish()

    def observe(self, healthy: set[str], registered: set[str], now: float) -> list[str]:
        """Start over roles healthy for ``reset_after_s``; return those supervised again."""
        back: list[str] = []
        for role in list(self._roles):
            state = self._roles[role]
            if role not in registered and not state.running:
                del self._roles[role]
                continue
            if role not in healthy:
                state.healthy_since = None
                continue
            if state.healthy_since is None:
                state.healthy_since = now
            if state.streak and now - state.healthy_since >= self._policy.reset_after_s:
                state.streak = 0
                state.window.clear()
                state.ended = None
                if state.facts.given_up:
                    state.facts = state.facts._replace(given_up=False)
                    back.append(role)
        self._publish()
        return back

    def _publish(self) -> None:
        self.facts = {
            role: state.facts for role, state in self._roles.items() if state.facts.restarts
        }


def _unhealthy(record: Any) -> bool:
    return bool(record.status.value == "unhealthy")


class Unsupervised:
    """A ticker's supervision with ``restart=None``: it restarts nothing."""

    __slots__ = ()

    def before(self, read: Records) -> tuple[str, ...]:
        """No role is restarted."""
        return ()

    def after(
        self,
        report: TickReport,
        read: Records,
        ends: collections.deque[RestartEnd],
    ) -> Mapping[str, RestartFacts]:
        """Nothing to count."""
        return {}

    def observe_records(self, read: Records) -> bool:
        """No restart is ever due."""
        return False


NO_SUPERVISION = Unsupervised()
