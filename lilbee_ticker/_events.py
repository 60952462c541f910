"""What a ticker tells: its log events, each state change once, and the on_change hook.

:class:`Events` is called by the thread holding the tick slot (and, for the
lifecycle events, by the ticker's thread), never under a lock. It logs:

* each tick at debug;
* a pool-wide problem (loop, snapshot, reap) once at warning when it starts,
  at debug while it lasts, and once at info when it ends;
* one event per role status transition, then calls the ``on_change`` hook,
  isolated so that a broken hook cannot stop the ticker or the other hooks.

A logging call that raises (a closed stdout, a broken processor) never kills
the ticker: the first such error is handed to ``on_error`` instead.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from lilbee_ticker import _log
from lilbee_ticker._health import HealthStatus, RoleHealth, Transition
from lilbee_ticker._outcome import safe_repr
from lilbee_ticker._report import TickReport

__all__ = ["Events", "OnChange"]

OnChange = Callable[[RoleHealth | None, RoleHealth], object]
"""The type of an ``on_change`` hook: ``hook(old, new)``; the return value is ignored."""

# The event and level for each status a role can move to.
_TRANSITION_EVENTS: dict[HealthStatus, tuple[str, str]] = {
    HealthStatus.UNKNOWN: ("role.unknown", "debug"),
    HealthStatus.HEALTHY: ("role.healthy", "info"),
    HealthStatus.FAILING: ("role.failing", "warning"),
    HealthStatus.UNHEALTHY: ("role.unhealthy", "warning"),
    HealthStatus.DOWN: ("role.down", "info"),
    HealthStatus.REMOVED: ("role.removed", "info"),
}


class Events:
    """The log events and hook calls of one ticker.

    Args:
        name: The ticker's name, bound as ``ticker`` on every event.
        on_change: The hook, or None.
        on_error: Called with the first exception a logging call raised.
    """

    __slots__ = ("_on_change", "_on_error", "_ongoing", "_runtime_told", "name")

    def __init__(
        self,
        name: str,
        on_change: OnChange | None,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.name = name
        self._on_change = on_change
        self._on_error = on_error
        # Which pool-wide problems are logged at warning already.
        self._ongoing: set[str] = set()
        self._runtime_told = False

    def emit(self, level: str, event: str, **fields: Any) -> None:
        """Log ``event`` at ``level`` with the ticker's name; never raise."""
        try:
            _log.emit(level, event, ticker=self.name, **fields)
        except Exception as exc:
            self._on_error(exc)

    def stop_timeout(
        self, timeout: float, thread: threading.Thread | None, running: tuple[str, ...]
    ) -> None:
        """Say that ``stop()`` gave up waiting, and on what."""
        alive = thread is not None and thread.is_alive()
        self.emit(
            "warning", "ticker.stop_timeout", timeout_s=timeout, thread_alive=alive, running=running
        )

    def runtime_unavailable(self, call: str, exc: BaseException | None) -> None:
        """Say once that the runtime refuses work."""
        if not self._runtime_told:
            self._runtime_told = True
            error = "runtime.submit() refuses work" if exc is None else safe_repr(exc)
            self.emit("warning", "runtime.unavailable", call=call, error=error)

    def tick(self, report: TickReport, late: collections.deque[object]) -> None:
        """Log the tick at debug, each problem once when it starts and ends, and late reaps."""
        if _log.enabled("debug"):
            self.emit(
                "debug",
                "tick.completed",
                number=report.number,
                duration_ms=round(report.duration_s * 1000.0, 3),
                live=report.live,
                reaped=report.reaped,
                pinged=report.pinged,
                failed=tuple(report.failed),
            )
        self._problems(report)
        while late:
            # A reap that outlived its deadline ended: its deadline's report
            # said "timed out"; this tells the rest.
            outcome = late.popleft()
            if isinstance(outcome, BaseException):
                self._problem("reap", "reap.failed", error=outcome, late=True)
            elif _log.enabled("debug"):
                self.emit("debug", "reap.finished_late", reaped=safe_repr(outcome))

    def _problems(self, report: TickReport) -> None:
        if report.interrupted:
            return  # a stop is not evidence about the pool
        if report.loop_error is None:
            self._resolved("loop")
        else:
            self._problem("loop", "loop.unresponsive", error=report.loop_error)
            return  # nothing below is evidence either: the loop never finished it
        if report.snapshot_error is None:
            self._resolved("snapshot")
        else:
            self._problem("snapshot", "snapshot.failed", error=report.snapshot_error)
        if report.reap_error is None:
            if report.live:
                self._resolved("reap")
        else:
            self._problem("reap", "reap.failed", error=report.reap_error)
        if report.failed and _log.enabled("debug"):
            for role, error in report.failed.items():
                # Per-ping detail; the role.* events say when a role's health changes.
                self.emit("debug", "ping.failed", role=role, error=safe_repr(error))

    def _problem(self, key: str, event: str, *, error: BaseException, **fields: Any) -> None:
        first = key not in self._ongoing
        self._ongoing.add(key)
        self.emit("warning" if first else "debug", event, error=safe_repr(error), **fields)

    def _resolved(self, key: str) -> None:
        if key in self._ongoing:
            self._ongoing.discard(key)
            self.emit("info", f"{key}.recovered")

    def transitions(self, transitions: list[Transition]) -> BaseException | None:
        """Announce every transition; return a KeyboardInterrupt or SystemExit a hook raised.

        Any other exception from a hook, ``asyncio.CancelledError`` included,
        is logged and ignored. ``KeyboardInterrupt`` and ``SystemExit`` mean
        "stop the program": the rest of this tick's hooks are skipped, and the
        caller raises the exception once the tick is published.
        """
        for old, new in transitions:
            fatal = self._announce(old, new)
            if fatal is not None:
                return fatal
        return None

    def _announce(self, old: RoleHealth | None, new: RoleHealth) -> BaseException | None:
        """Log one event for a status transition, then call the on_change hook."""
        event, level = _TRANSITION_EVENTS[new.status]
        recovering = old is not None and old.status in (
            HealthStatus.FAILING,
            HealthStatus.UNHEALTHY,
        )
        if new.status is HealthStatus.HEALTHY and recovering:
            event = "role.recovered"
        elif new.status is HealthStatus.DOWN and old is None:
            level = "debug"  # first seen down: it was never alive, nothing stopped
        fields: dict[str, Any] = {
            "role": new.role,
            "status": new.status.value,
            "previous": None if old is None else old.status.value,
        }
        if new.status in (HealthStatus.FAILING, HealthStatus.UNHEALTHY):
            fields["consecutive_failures"] = new.consecutive_failures
            fields["error"] = new.last_error
        self.emit(level, event, **fields)
        hook = self._on_change
        if hook is None:
            return None
        try:
            hook(old, new)
        except (KeyboardInterrupt, SystemExit) as exc:
            self.emit("error", "hook.failed", role=new.role, hook=safe_repr(hook), exc_info=exc)
            return exc
        except BaseException as exc:
            # A broken hook must not stop the ticker or the other hooks; a
            # CancelledError from one is no cancellation of the ticker's.
            self.emit("error", "hook.failed", role=new.role, hook=safe_repr(hook), exc_info=exc)
        return None
