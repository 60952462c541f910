"""Time to detect and time to recover, with real worker processes (the demo's ProcessPool).

Each trial starts a fresh :class:`~lilbee_ticker.HealthTicker` with the
library's default :class:`~lilbee_ticker.RestartPolicy` on one role of a
:class:`~lilbee_ticker.demo.ProcessPool`, waits until the role is healthy,
and then, each time from a healthy worker:

1. ``SIGKILL`` with ``pool.on_crash = ticker.tick_soon``: the time to the
   report that says ``DOWN``;
2. ``SIGKILL`` with no ``on_crash``, the cadence alone: the same time;
3. ``SIGSTOP``: the time to the report that says ``UNHEALTHY``;
4. from that report to the one that finds the restarted worker healthy, an
   answering new process; and the restart's own time, as ``restart_role()``
   took it on the loop.

Each signal is sent just after the tick that found the worker healthy (the
harness waits for that report), so the cadence alone takes its longest.
Every figure is a ratio to its bound from the configuration: ``interval_s``
for a death; ``failure_threshold * interval_s + call_timeout_s`` for a
freeze; one interval plus the restart's own time (that trial's) for the
recovery. Times are the ticker's own ``on_change`` hook (which runs just
before the report is published) against the moment the signal was sent, on
one monotonic clock.

The section's ticker and pool fail on purpose, so their warnings are
expected; :func:`hush_expected` keeps them off the benchmark's output.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import structlog

from lilbee_ticker import HealthStatus, HealthTicker, LoopRuntime, RestartPolicy, RoleHealth
from lilbee_ticker.demo import ProcessPool

__all__ = ["NAME", "hush_expected", "measure", "render_markdown"]

NAME = "bench-recovery"
"""The name of the section's pool, and the prefix of its tickers' names."""

_ROLE = "chat"

# How long the harness waits for something that takes a second at most
# before it declares the run broken.
_GIVE_UP_S = 30.0


def hush_expected(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: drop this section's own events below error; they are expected."""
    if method not in ("error", "critical", "exception"):
        ticker = event_dict.get("ticker")
        if event_dict.get("pool") == NAME or (isinstance(ticker, str) and ticker.startswith(NAME)):
            raise structlog.DropEvent
    return event_dict


class _TimedPool(ProcessPool):
    """A ProcessPool that keeps how long each ``restart_role()`` took on the loop."""

    def __init__(self) -> None:
        # A ping unanswered this long kills the worker: far beyond the
        # ticker's restart, so that the ticker, not the pool, heals a freeze.
        super().__init__((_ROLE,), unresponsive_after_s=60.0, stop_timeout_s=0.5, name=NAME)
        self.restart_s: list[float] = []

    async def restart_role(self, role: str) -> None:
        began = time.monotonic()
        try:
            await super().restart_role(role)
        finally:
            self.restart_s.append(time.monotonic() - began)


class _Watch:
    """The ticker's on_change hook: every transition with the monotonic time it was told."""

    def __init__(self) -> None:
        self._changed = threading.Condition()  # guards _seen
        self._seen: list[tuple[float, RoleHealth]] = []

    def __call__(self, old: RoleHealth | None, new: RoleHealth) -> None:
        at = time.monotonic()
        with self._changed:
            self._seen.append((at, new))
            self._changed.notify_all()

    def mark(self) -> int:
        """A bookmark: :meth:`wait` after it looks only at later transitions."""
        with self._changed:
            return len(self._seen)

    def wait(self, status: HealthStatus, since: int) -> tuple[float, int]:
        """Wait for the role's first move to ``status`` after ``since``; return when, and a mark."""

        def find() -> tuple[float, int] | None:
            for index in range(since, len(self._seen)):
                at, record = self._seen[index]
                if record.status is status:
                    return at, index + 1
            return None

        with self._changed:
            found = self._changed.wait_for(find, _GIVE_UP_S)
        if found is None:
            raise RuntimeError(
                f"{_ROLE} did not become {status.value} within {_GIVE_UP_S:g}s: "
                f"{[record.status.value for _, record in self._seen[since:]]}"
            )
        return found


async def _pid(pool: ProcessPool) -> int:
    pid = pool.accessor(_ROLE).pid
    if pid is None:
        raise RuntimeError(f"{_ROLE} has no worker")
    return pid


def _signal(runtime: LoopRuntime, pool: ProcessPool, signum: signal.Signals) -> float:
    """Send ``signum`` to the role's worker; return the monotonic time it was sent."""
    pid = runtime.run(_pid(pool), timeout=_GIVE_UP_S)
    sent = time.monotonic()
    os.kill(pid, signum)
    return sent


def _trial(
    runtime: LoopRuntime, pool: _TimedPool, number: int, config: Mapping[str, Any]
) -> dict[str, float]:
    """One trial on a fresh ticker; return each figure's seconds."""
    watch = _Watch()
    ticker = HealthTicker(
        pool,
        runtime,
        interval_s=config["interval_s"],
        call_timeout_s=config["call_timeout_s"],
        failure_threshold=config["failure_threshold"],
        initial_delay_s=0,
        restart=RestartPolicy(),
        on_change=watch,
        name=f"{NAME}-{number}",
    )
    found: dict[str, float] = {}

    def healthy_worker() -> int:
        mark = watch.mark()
        runtime.run(pool.call(_ROLE), timeout=_GIVE_UP_S)  # spawns one if there is none
        record = ticker.health().get(_ROLE)
        if record is None or record.status is not HealthStatus.HEALTHY:
            watch.wait(HealthStatus.HEALTHY, mark)
        return watch.mark()

    ticker.start()
    try:
        for key, on_crash in (("kill_on_crash", ticker.tick_soon), ("kill_cadence", None)):
            mark = healthy_worker()
            pool.on_crash = on_crash
            sent = _signal(runtime, pool, signal.SIGKILL)
            at, _ = watch.wait(HealthStatus.DOWN, mark)
            found[key] = at - sent
        pool.on_crash = ticker.tick_soon
        mark = healthy_worker()
        sent = _signal(runtime, pool, signal.SIGSTOP)
        unhealthy_at, mark = watch.wait(HealthStatus.UNHEALTHY, mark)
        found["stop_unhealthy"] = unhealthy_at - sent
        healthy_at, _ = watch.wait(HealthStatus.HEALTHY, mark)
        found["recovered"] = healthy_at - unhealthy_at
        if not pool.restart_s or ticker.health()[_ROLE].restarts != 1:
            raise RuntimeError(f"{_ROLE} recovered without one restart: {ticker.health()}")
        found["restart"] = pool.restart_s[-1]
    finally:
        pool.on_crash = None
        ticker.stop(timeout=_GIVE_UP_S)
    return found


def measure(
    trials: int,
    interval_s: float,
    call_timeout_s: float,
    failure_threshold: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Run ``trials`` trials with real worker processes; return the section, ready for JSON."""
    config = {
        "interval_s": interval_s,
        "call_timeout_s": call_timeout_s,
        "failure_threshold": failure_threshold,
        "trials": trials,
    }
    samples: dict[str, list[float]] = {}
    with LoopRuntime(name=f"{NAME}-runtime") as runtime:
        pool = _TimedPool()
        try:
            for number in range(1, trials + 1):
                progress(f"recovery: trial {number} of {trials}, real worker processes")
                for key, seconds in _trial(runtime, pool, number, config).items():
                    samples.setdefault(key, []).append(seconds)
        finally:
            runtime.run(pool.aclose(), timeout=_GIVE_UP_S)
    interval, timeout = interval_s, call_timeout_s
    frozen = failure_threshold * interval + timeout
    recovery_bounds = [interval + restart for restart in samples["restart"]]
    rows = [
        _row(
            "kill_on_crash",
            "SIGKILL → the report that says DOWN, the pool calling tick_soon() from its crash path",
            f"interval_s = {interval * 1e3:g} ms",
            samples["kill_on_crash"],
            [interval] * trials,
        ),
        _row(
            "kill_cadence",
            "SIGKILL → the report that says DOWN, with no on_crash: the cadence alone",
            f"interval_s = {interval * 1e3:g} ms",
            samples["kill_cadence"],
            [interval] * trials,
        ),
        _row(
            "stop_unhealthy",
            "SIGSTOP → the report that says UNHEALTHY",
            f"failure_threshold * interval_s + call_timeout_s = {frozen * 1e3:g} ms",
            samples["stop_unhealthy"],
            [frozen] * trials,
        ),
        _row(
            "recovered",
            "UNHEALTHY → the report that finds the restarted worker healthy",
            "interval_s + the restart's own time (per trial)",
            samples["recovered"],
            recovery_bounds,
        ),
        _row(
            "restart",
            "the restart's own time: restart_role() (SIGKILL, collect, spawn, ready)",
            f"call_timeout_s = {timeout * 1e3:g} ms, what the ticker waits for it",
            samples["restart"],
            [timeout] * trials,
        ),
    ]
    return {
        "title": "Time to detect and to recover, with real worker processes",
        "description": (
            f"{trials} trials, each with a fresh HealthTicker (interval_s={interval:g}, "
            f"call_timeout_s={timeout:g}, failure_threshold={failure_threshold}, "
            "restart=RestartPolicy() with its defaults) on one role of the demo's ProcessPool. "
            "From a healthy worker each time: SIGKILL with the pool's on_crash set to the "
            "ticker's tick_soon(), SIGKILL with no on_crash, then SIGSTOP, which the ticker "
            "cures by restarting the worker through restart_role(). Each signal is sent just "
            "after the tick that found the worker healthy, the worst moment for the cadence. "
            "Each time runs from the signal (or the UNHEALTHY report) to the ticker's on_change "
            "hook for the report that says so; each ratio is that trial's time over its bound."
        ),
        "config": config,
        "rows": rows,
    }


def _row(
    row_id: str, metric: str, bound: str, seconds: Sequence[float], bounds: Sequence[float]
) -> dict[str, Any]:
    ratios = [value / limit for value, limit in zip(seconds, bounds, strict=True)]
    return {
        "id": row_id,
        "metric": metric,
        "bound": bound,
        "n": len(seconds),
        "median_ms": round(statistics.median(seconds) * 1e3, 2),
        "max_ms": round(max(seconds) * 1e3, 2),
        "median_ratio": round(statistics.median(ratios), 3),
        "max_ratio": round(max(ratios), 3),
        "samples_ms": [round(value * 1e3, 3) for value in seconds],
        "bounds_ms": [round(limit * 1e3, 3) for limit in bounds],
    }


def render_markdown(section: Mapping[str, Any]) -> list[str]:
    """The section as Markdown lines: a title, what was measured, and one table."""
    lines = [
        f"## {section['title']}",
        "",
        section["description"],
        "",
        "| Figure | Bound | Median | Max | Median ÷ bound | Max ÷ bound |",
        "|---|---|---|---|---|---|",
    ]
    for row in section["rows"]:
        lines.append(
            f"| {row['metric']} | {row['bound']} | {row['median_ms']:g} ms | "
            f"{row['max_ms']:g} ms | {row['median_ratio']:.3f} | {row['max_ratio']:.3f} |"
        )
    return lines
