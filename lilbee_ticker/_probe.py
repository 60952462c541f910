"""`Probe`: what a ``/healthz`` endpoint serves, as one immutable value."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Probe"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Probe:
    """A ticker's health as a liveness or readiness endpoint serves it.

    A ``/healthz`` handler is three lines in any framework::

        probe = ticker.probe()
        return probe.status_code, probe.body  # 200 or 503, and a JSON-able dict

    and a ``/readyz`` handler the same with :attr:`ready_status_code`.

    Attributes:
        healthy: :attr:`HealthTicker.healthy` at the time of the probe.
        ready: :attr:`HealthTicker.ready` at the time of the probe.
        state: :attr:`HealthTicker.state`: ``"new"``, ``"running"``,
            ``"stopped"`` or ``"crashed"``.
        reason: Why the background thread ended (``"stopped"``,
            ``"crashed"`` or ``"runtime_unavailable"``), or ``None``.
        ticker: The ticker's name.
        last_tick_age_s: Seconds since the last tick that read the pool, or
            ``None`` if none has.
        problems: Why the ticker is not healthy, one sentence each; empty
            when it is.
        roles: ``(role, status, consecutive_failures, restarts, given_up)``
            for each role (see :class:`RoleHealth`).
        supervised: The ticker restarts unhealthy roles (it has a
            :class:`RestartPolicy`); only then does :attr:`body` give each
            role's ``restarts`` and ``given_up``.

    Thread safety: immutable, so safe to share between threads.

    .. versionadded:: 0.2.0
    """

    healthy: bool
    ready: bool
    state: str
    reason: str | None
    ticker: str
    last_tick_age_s: float | None
    problems: tuple[str, ...]
    roles: tuple[tuple[str, str, int, int, bool], ...]
    supervised: bool = False

    @property
    def status_code(self) -> int:
        """200 when healthy, else 503: the HTTP status a liveness endpoint answers with."""
        return 200 if self.healthy else 503

    @property
    def ready_status_code(self) -> int:
        """200 when ready, else 503: the HTTP status a readiness endpoint answers with."""
        return 200 if self.ready else 503

    @property
    def body(self) -> dict[str, Any]:
        """A new JSON-serialisable dict with everything above; changing it changes nothing here."""
        return {
            "healthy": self.healthy,
            "ready": self.ready,
            "state": self.state,
            "reason": self.reason,
            "ticker": self.ticker,
            "last_tick_age_s": self.last_tick_age_s,
            "problems": list(self.problems),
            "roles": {
                role: (
                    {
                        "status": status,
                        "consecutive_failures": failures,
                        "restarts": restarts,
                        "given_up": given_up,
                    }
                    if self.supervised
                    else {"status": status, "consecutive_failures": failures}
                )
                for role, status, failures, restarts, given_up in self.roles
            },
        }
