"""The demo's scripted scenario: a real pool, a real ticker, and three things going wrong.

:func:`play` starts a :class:`~lilbee_ticker.LoopRuntime`, a
:class:`ProcessPool` with three roles and a :class:`~lilbee_ticker.HealthTicker`,
then, narrating each step:

1. uses every worker, which spawns them;
2. stops using ``embed``, which the pool reaps once it has been idle for
   ``max_idle_s``, and which the ticker then leaves down;
3. kills ``chat``'s worker with ``SIGKILL``, which the pool sees at once
   and tells the ticker (``on_crash=ticker.tick_soon``), so a tick reports
   it down at once; a request then gets ``chat`` a new worker;
4. freezes ``rerank``'s worker with ``SIGSTOP``: its pings time out, the
   other roles are pinged in the same ticks, and it is reported unhealthy;
   the ticker's :class:`~lilbee_ticker.RestartPolicy` then restarts it
   through :meth:`ProcessPool.restart_role`, which ends the stopped process
   with ``SIGKILL``; the next request gets a new process, and the role is
   healthy again. Nothing sends ``SIGCONT``.

Each step waits for the ticker's own ``on_change`` hook or for a tick, never
for a fixed time, and checks what it expected: the :class:`Outcome`. The
roles that should stay up get a steady trickle of requests meanwhile, as in
an application.

Every narration event has a dotted name (``demo.started``, ``step.started``,
``expect.passed``, ...) and its human sentence in a ``message`` field of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
import types
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from lilbee_ticker import (
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    RestartPolicy,
    RoleHealth,
    TickerStats,
)
from lilbee_ticker.demo import _figures as figures
from lilbee_ticker.demo._errors import PoolClosedError, WorkerError
from lilbee_ticker.demo._pool import ProcessPool

__all__ = [
    "ROLES",
    "DemoSettings",
    "Expectation",
    "Outcome",
    "Terminated",
    "interrupts_deferred",
    "minimum_duration_s",
    "play",
]

_T = TypeVar("_T")

IDLE, KILLED, FROZEN = "embed", "chat", "rerank"
ROLES = (IDLE, KILLED, FROZEN)

# Extra real time every wait for an event allows beyond the ticks it needs,
# for a machine busy with other work. The checks count ticks, not seconds,
# so this only decides how long a failing demo takes to say so.
_SLACK_S = 2.0

# How long shutting down (ticker, requests, workers, loop) may take.
_SHUTDOWN_S = 5.0


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The demo's timings, all in seconds; every other one follows from ``interval_s``.

    The ones that follow are rounded to three significant digits, so that the
    ticker's own messages ("did not finish within 0.11s") show the figures
    the narration does.

    Attributes:
        interval_s: Seconds between the ticker's ticks.
        max_idle_s: How long a worker may go unused before the pool reaps it.
        duration_s: The most the whole scenario may take.
        failure_threshold: Failed pings in a row that make a role unhealthy.
    """

    interval_s: float = 1.0
    max_idle_s: float = 3.0
    duration_s: float = 60.0
    failure_threshold: int = 3

    @property
    def call_timeout_s(self) -> float:
        """The ticker's bound on each step of a tick: half an interval."""
        return figures.seconds(self.interval_s / 2)

    @property
    def work_s(self) -> float:
        """The fake work one request does."""
        return figures.seconds(self.interval_s / 20)

    @property
    def request_period_s(self) -> float:
        """The pause between two requests to a role that is kept busy."""
        return figures.seconds(self.interval_s / 2)

    @property
    def unresponsive_after_s(self) -> float:
        """How long the pool lets a ping go unanswered before it kills the worker.

        Far longer than the ticker takes to restart it, so that the frozen
        worker is seen to be unhealthy and then restarted by the ticker,
        rather than killed by the pool on its own.
        """
        return figures.seconds(self.interval_s * (self.failure_threshold + 10))

    @property
    def restart_policy(self) -> RestartPolicy:
        """The ticker's restart policy: the library's defaults, scaled down to the demo's ticks.

        The first restart comes at once, as always; a second would wait two
        intervals, doubling up to sixteen; at most three restarts in a hundred
        intervals, and a role healthy for twenty intervals starts over.
        """
        interval = self.interval_s
        return RestartPolicy(
            max_restarts=3,
            period_s=figures.seconds(100 * interval),
            backoff_s=figures.seconds(2 * interval),
            max_backoff_s=figures.seconds(16 * interval),
            reset_after_s=figures.seconds(20 * interval),
        )


def minimum_duration_s(interval_s: float, max_idle_s: float, failure_threshold: int = 3) -> float:
    """The least time the scenario can take, counted in ticks; below it, it can never pass.

    The idle worker is reaped at the first tick after ``max_idle_s`` of idleness;
    after that tick the scenario waits for 2 ticks (it stays down), none for the
    killed worker (the pool's on_crash asks for a tick at once),
    ``failure_threshold`` (the frozen worker becomes unhealthy) and 1 (it is
    restarted at once, and the tick after finds it healthy). Spawning the
    workers and shutting down take more on top.
    """
    # The small epsilon keeps 0.6 / 0.2 (2.9999999999999996 in floats) at 3.
    reap_tick = math.floor(max_idle_s / interval_s + 1e-9) + 1
    ticks = reap_tick + 2 + failure_threshold + 1
    return figures.seconds(ticks * interval_s)


@dataclasses.dataclass(frozen=True)
class Expectation:
    """One thing the scenario expected, and whether it held.

    Attributes:
        name: What was expected, as a sentence.
        passed: Whether it held.
        detail: What was seen.
    """

    name: str
    passed: bool
    detail: str


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt``.

    It subclasses ``KeyboardInterrupt`` so that it stops the scenario exactly
    as Ctrl-C does, through the same handlers and the same bounded shutdown.
    """


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the scenario saw.

    Attributes:
        expectations: Every expectation checked, in order; the scenario stops
            at the first one that could not be checked.
        health: Each role's health record at the end.
        stats: The ticker's counters at the end.
        pids: Each role's worker process at the end, or ``None``.
        spawns: How many workers each role had in all.
        elapsed_s: How long the scenario took, shutdown included.
    """

    expectations: tuple[Expectation, ...]
    health: Mapping[str, RoleHealth]
    stats: TickerStats
    pids: Mapping[str, int | None]
    spawns: Mapping[str, int]
    elapsed_s: float

    @property
    def passed(self) -> bool:
        """True if every expectation held."""
        return bool(self.expectations) and all(e.passed for e in self.expectations)

    @property
    def failures(self) -> tuple[Expectation, ...]:
        """The expectations that did not hold."""
        return tuple(e for e in self.expectations if not e.passed)


class _Abort(Exception):
    """An expected event did not come: the scenario cannot go on."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class _Seen:
    """One status transition, as the ticker's on_change hook told it."""

    index: int  # its place in the log: the bookmark just after it is index + 1
    tick: int
    at: float  # monotonic time the hook ran
    new: RoleHealth


class _Transitions:
    """Every status transition the ticker announced, in order, for another thread to wait on."""

    def __init__(self) -> None:
        # _changed's lock guards _seen; record() notifies it.
        self._changed = threading.Condition(threading.Lock())
        self._seen: list[_Seen] = []
        self.ticker: HealthTicker | None = None  # set once, before the ticker starts

    def record(self, old: RoleHealth | None, new: RoleHealth) -> None:
        """The ticker's on_change hook: called on its thread, once per transition."""
        # Hooks run before their tick's report is published, so the latest
        # report is the previous tick's.
        last = None if self.ticker is None else self.ticker.last_report
        tick = 1 if last is None else last.number + 1
        with self._changed:
            self._seen.append(_Seen(len(self._seen), tick, time.monotonic(), new))
            self._changed.notify_all()

    def mark(self) -> int:
        """Return a bookmark: :meth:`wait_for` after it looks only at later transitions."""
        with self._changed:
            return len(self._seen)

    def wait_for(
        self, role: str, statuses: frozenset[HealthStatus], since: int, timeout: float
    ) -> _Seen | None:
        """Wait until ``role`` moves to one of ``statuses`` after bookmark ``since``."""

        def find() -> _Seen | None:
            for seen in self._seen[since:]:
                if seen.new.role == role and seen.new.status in statuses:
                    return seen
            return None

        with self._changed:
            return self._changed.wait_for(find, timeout)


class _Traffic:
    """A steady trickle of requests to some roles, as an application would send.

    Lives on the runtime's loop: every method is a coroutine run there.
    """

    def __init__(self, pool: ProcessPool, period_s: float, work_s: float, log: Any) -> None:
        self._pool = pool
        self._period_s = period_s
        self._work_s = work_s
        self._log = log
        # role -> (its task, the future that asks the task to stop)
        self._running: dict[str, tuple[asyncio.Task[None], asyncio.Future[None]]] = {}

    async def start(self, role: str) -> None:
        """Start sending requests to ``role`` (the first at once)."""
        if role in self._running:
            return
        stop = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._send(role, stop), name=f"demo-traffic-{role}")
        self._running[role] = (task, stop)

    async def stop(self, role: str) -> None:
        """Stop sending requests to ``role`` and wait until its last request is answered."""
        entry = self._running.pop(role, None)
        if entry is not None:
            task, stop = entry
            stop.set_result(None)
            await task

    async def cancel_all(self) -> None:
        """Stop every role's requests at once, without waiting for answers."""
        entries = list(self._running.values())
        self._running.clear()
        for task, _ in entries:
            task.cancel()
        await asyncio.gather(*(task for task, _ in entries), return_exceptions=True)

    async def _send(self, role: str, stop: asyncio.Future[None]) -> None:
        while not stop.done():
            try:
                await self._pool.call(role, self._work_s)
            except PoolClosedError:
                return
            except WorkerError as exc:
                self._log.debug("demo.request_failed", role=role, error=str(exc))
            await asyncio.wait((stop,), timeout=self._period_s)


def play(settings: DemoSettings, log: Any) -> Outcome:
    """Play the scenario with real processes, narrating to ``log``; return what it saw.

    Everything it starts is stopped before it returns or raises: the ticker,
    the pool's worker processes and the runtime. A ``KeyboardInterrupt``
    (:class:`Terminated` too) stops the scenario at once and is raised again
    after that shutdown; a second one during the shutdown is held back.

    Args:
        settings: The timings.
        log: A structlog logger for the narration.
    """
    started = time.monotonic()
    transitions = _Transitions()
    runtime = LoopRuntime(name="lilbee-demo-runtime")
    pool = ProcessPool(
        ROLES,
        max_idle_s=settings.max_idle_s,
        unresponsive_after_s=settings.unresponsive_after_s,
        stop_timeout_s=min(0.25, settings.call_timeout_s),
        name="demo-pool",
    )
    traffic = _Traffic(pool, settings.request_period_s, settings.work_s, log)
    ticker = HealthTicker(
        pool,
        runtime,
        interval_s=settings.interval_s,
        call_timeout_s=settings.call_timeout_s,
        failure_threshold=settings.failure_threshold,
        name="demo-ticker",
        on_change=transitions.record,
        restart=settings.restart_policy,
    )
    transitions.ticker = ticker
    # The pool is made before its ticker, so it is told now: a worker that
    # dies makes the pool ask for a tick at once (tick_soon never blocks, so
    # the pool's loop thread may call it).
    pool.on_crash = ticker.tick_soon
    script = _Script(settings, runtime, pool, ticker, traffic, transitions, log, started)
    health: Mapping[str, RoleHealth] = types.MappingProxyType({})
    stats = TickerStats()
    ends: dict[str, tuple[int | None, int]] = {}
    policy = settings.restart_policy
    log.info(
        "demo.started",
        message="The demo starts: a pool of real worker processes and a health ticker",
        roles=list(ROLES),
        interval_s=settings.interval_s,
        call_timeout_s=settings.call_timeout_s,
        max_idle_s=settings.max_idle_s,
        failure_threshold=settings.failure_threshold,
        max_restarts=policy.max_restarts,
        backoff_s=policy.backoff_s,
    )
    try:
        # Ctrl-C is held back while the two start, for a few milliseconds: a
        # LoopRuntime.start() cut short after it made its loop but before its
        # thread runs it leaves a loop that no shutdown() closes.
        with interrupts_deferred():
            runtime.start(timeout=_SHUTDOWN_S)
            ticker.start()
        try:
            script.run()
        except _Abort as abort:
            script.check(abort.name, False, abort.detail)
        health, stats = ticker.health(), ticker.stats()
        ends = runtime.run(_ends(pool), timeout=_SHUTDOWN_S)
    finally:
        with interrupts_deferred():
            _shut_down(ticker, traffic, pool, runtime, log)
    script.check_shutdown(ticker)
    return Outcome(
        expectations=tuple(script.expectations),
        health=health,
        stats=stats,
        pids={role: pid for role, (pid, _) in ends.items()},
        spawns={role: spawns for role, (_, spawns) in ends.items()},
        elapsed_s=time.monotonic() - started,
    )


class _Script:
    """The scenario's steps, run on the calling thread; the pool is reached through the runtime."""

    def __init__(
        self,
        settings: DemoSettings,
        runtime: LoopRuntime,
        pool: ProcessPool,
        ticker: HealthTicker,
        traffic: _Traffic,
        transitions: _Transitions,
        log: Any,
        started: float,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.pool = pool
        self.ticker = ticker
        self.traffic = traffic
        self.transitions = transitions
        self.log = log
        self.deadline = started + settings.duration_s
        self.expectations: list[Expectation] = []
        self.pids_seen: set[int] = set()
        self.signals_sent: list[str] = []  # "SIGKILL to chat", in order

    # -- helpers -------------------------------------------------------------------

    def check(self, name: str, passed: bool, detail: str) -> bool:
        """Record an expectation and narrate it."""
        self.expectations.append(Expectation(name, passed, detail))
        if passed:
            self.log.info(
                "expect.passed",
                message=f"expected: {name}",
                expectation=name,
                result="pass",
                detail=detail,
            )
        else:
            self.log.error(
                "expect.failed",
                message=f"expected: {name}",
                expectation=name,
                result="FAIL",
                detail=detail,
            )
        return passed

    def step(self, number: int, message: str) -> None:
        """Narrate the start of step ``number``."""
        self.log.info("step.started", message=f"Step {number}: {message}", step=number)

    def time_left(self, wanted: float, what: str) -> float:
        """Return ``wanted``, or less if the demo's duration ends sooner; abort if it has."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.out_of_time(what)
        return min(wanted, left)

    def out_of_time(self, what: str) -> _Abort:
        return _Abort(
            what,
            f"ran out of time: the demo may take "
            f"{figures.seconds_text(self.settings.duration_s)}s in all",
        )

    def run_on_loop(self, coro: Coroutine[Any, Any, _T], what: str) -> _T:
        try:
            return self.runtime.run(coro, timeout=self.time_left(_SHUTDOWN_S, what))
        except TimeoutError as exc:
            if self.deadline <= time.monotonic():
                raise self.out_of_time(what) from exc
            raise _Abort(what, f"{type(exc).__name__}: {exc}") from exc
        except WorkerError as exc:
            raise _Abort(what, f"{type(exc).__name__}: {exc}") from exc

    def wait_for(self, role: str, statuses: set[HealthStatus], since: int, ticks: float) -> _Seen:
        names = " or ".join(status.value for status in statuses)
        what = f"{role} becomes {names}"
        wanted = ticks * self.settings.interval_s + _SLACK_S
        seen = self.transitions.wait_for(
            role, frozenset(statuses), since, self.time_left(wanted, what)
        )
        if seen is None:
            if self.deadline <= time.monotonic():
                raise self.out_of_time(what)
            status = self.ticker.health().get(role)
            now = "unknown" if status is None else status.status.value
            raise _Abort(what, f"it did not within {figures.seconds_text(wanted)}s; it is {now}")
        return seen

    def wait_for_tick(self, number: int) -> None:
        what = f"tick {number}"
        wanted = max(number - self.last_tick(), 0) * self.settings.interval_s + _SLACK_S
        if self.ticker.wait_for_tick(number, self.time_left(wanted, what)) is None:
            if self.deadline <= time.monotonic():
                raise self.out_of_time(what)
            raise _Abort(
                what, f"the ticker did not complete it within {figures.seconds_text(wanted)}s"
            )

    def last_tick(self) -> int:
        report = self.ticker.last_report
        return 0 if report is None else report.number

    # -- the steps -------------------------------------------------------------------

    def run(self) -> None:
        """Play every step in order; raise :class:`_Abort` if an expected event does not come."""
        since = self.use_every_worker()
        self.reap_the_idle_worker(since)
        self.kill_a_worker()
        self.freeze_a_worker()

    def signal(self, role: str, signum: signal.Signals) -> tuple[int, float]:
        """Pause ``role``'s requests and send its worker ``signum``; return its pid and when."""
        pid, at = self.run_on_loop(
            _pause_and_signal(self.traffic, self.pool, role, signum),
            f"send {signum.name} to {role}",
        )
        self.signals_sent.append(f"{signum.name} to {role}")
        return pid, at

    def use_every_worker(self) -> int:
        """Step 1; return a bookmark just after the idle role was found healthy."""
        self.step(1, "every role gets a request, and each worker is spawned by its first request")
        since = self.transitions.mark()
        pids = {}
        for role in ROLES:
            pids[role] = self.run_on_loop(
                self.pool.call(role, self.settings.work_s), f"a request to {role}"
            )
            if role != IDLE:
                # At once, not after the last spawn: starting a worker can
                # take a while on a busy machine, and these must never idle.
                self.run_on_loop(self.traffic.start(role), f"requests to {role}")
        self.pids_seen.update(pids.values())
        self.check(
            "every worker answered a request, each in its own process",
            len(set(pids.values())) == len(ROLES),
            ", ".join(f"{role} pid {pid}" for role, pid in pids.items()),
        )
        healthy = {
            role: self.wait_for(role, {HealthStatus.HEALTHY}, since, ticks=2) for role in ROLES
        }
        self.log.info(
            "demo.all_healthy",
            message=f"The ticker found every worker healthy; {IDLE} gets no more requests",
        )
        # IDLE may already have been reaped by now, on a slow machine: step 2
        # looks for its reaping from the moment it was healthy.
        return healthy[IDLE].index + 1

    def reap_the_idle_worker(self, since: int) -> None:
        max_idle = self.settings.max_idle_s
        self.step(
            2, f"{IDLE} goes idle; the pool reaps it after {figures.seconds_text(max_idle)}s unused"
        )
        seen = self.wait_for(
            IDLE, {HealthStatus.DOWN}, since, ticks=max_idle / self.settings.interval_s + 2
        )
        reaped = self.ticker.stats().roles_reaped
        self.check(
            f"idle {IDLE} was reaped",
            reaped >= 1,
            f"at tick {seen.tick}, once idle longer than {figures.seconds_text(max_idle)}s; "
            f"roles reaped: {reaped}",
        )
        self.wait_for_tick(seen.tick + 2)
        alive, spawns = self.run_on_loop(_probe(self.pool, IDLE), f"read {IDLE}")
        status = self.ticker.health()[IDLE].status
        self.check(
            f"reaped {IDLE} stayed down: health checks did not respawn it",
            not alive and spawns == 1 and status is HealthStatus.DOWN,
            f"two ticks later: alive={alive}, processes started={spawns}, status={status.value}",
        )

    def kill_a_worker(self) -> None:
        interval = self.settings.interval_s
        self.step(
            3,
            f"{KILLED}'s worker is killed with SIGKILL, as the OOM killer would; "
            "no request comes meanwhile, but the pool sees the death and asks the "
            "ticker for a tick at once",
        )
        since = self.transitions.mark()
        before = self.last_tick()
        pid, killed_at = self.signal(KILLED, signal.SIGKILL)
        seen = self.wait_for(
            KILLED,
            {HealthStatus.DOWN, HealthStatus.FAILING, HealthStatus.UNHEALTHY},
            since,
            ticks=2,
        )
        after_s = seen.at - killed_at
        # The cadence alone would report it at the next tick: up to a whole
        # interval away, half of one on average.
        self.check(
            f"SIGKILLed {KILLED} was noticed at once, by a tick the pool asked for",
            after_s < interval / 4,
            f"pid {pid} killed after tick {before}; tick {seen.tick} reported it "
            f"{seen.new.status.value} {figures.seconds_text(after_s)}s later "
            f"(the interval is {figures.seconds_text(interval)}s)",
        )
        new_pid = self.run_on_loop(
            self.pool.call(KILLED, self.settings.work_s), f"a request to {KILLED}"
        )
        self.pids_seen.add(new_pid)
        self.check(
            f"the next request to {KILLED} got a new worker",
            new_pid != pid,
            f"pid {pid} -> pid {new_pid}",
        )
        self.run_on_loop(self.traffic.start(KILLED), f"requests to {KILLED}")

    def freeze_a_worker(self) -> None:
        settings = self.settings
        self.step(
            4,
            f"{FROZEN}'s worker is frozen with SIGSTOP; its pings time out after "
            f"{figures.seconds_text(settings.call_timeout_s)}s, after "
            f"{settings.failure_threshold} in a row it is unhealthy, and the ticker "
            "restarts it; no one sends SIGCONT",
        )
        since = self.transitions.mark()
        before = self.last_tick()
        others_before = self.ticker.health().get(KILLED)
        # If a step below aborts, the worker stays frozen: closing the pool
        # kills it after its stop timeout, as it would any hung worker.
        pid, _ = self.signal(FROZEN, signal.SIGSTOP)
        failing = self.wait_for(FROZEN, {HealthStatus.FAILING}, since, ticks=2)
        error = failing.new.last_error or ""
        self.check(
            f"frozen {FROZEN}'s pings timed out",
            error.startswith("CallTimeoutError"),
            f"tick {failing.tick}: {error}",
        )
        unhealthy = self.wait_for(
            FROZEN, {HealthStatus.UNHEALTHY}, since, ticks=settings.failure_threshold + 2
        )
        self.check(
            f"frozen {FROZEN} was reported unhealthy",
            unhealthy.tick <= before + 1 + settings.failure_threshold,
            f"frozen after tick {before}; unhealthy at tick {unhealthy.tick} after "
            f"{unhealthy.new.consecutive_failures} failed pings",
        )
        self.check_others_answered(others_before, unhealthy.tick - failing.tick + 1)
        self.log.info(
            "demo.restarting",
            message=f"Nothing will thaw {FROZEN}; the ticker's restart policy takes over",
        )
        # The restart comes at the tick right after the one that found it
        # unhealthy, at once; the tick after that pings the new worker.
        healthy = self.wait_for(FROZEN, {HealthStatus.HEALTHY}, unhealthy.index + 1, ticks=3)
        self.check_restarted(pid, unhealthy, healthy)
        new_pid = self.run_on_loop(
            self.pool.call(FROZEN, settings.work_s), f"a request to {FROZEN}"
        )
        self.pids_seen.add(new_pid)
        self.check(
            f"the next request to {FROZEN} got a new worker, and {FROZEN} is healthy again",
            new_pid != pid and self.ticker.health()[FROZEN].status is HealthStatus.HEALTHY,
            f"pid {pid} -> pid {new_pid}; tick {healthy.tick} reported it healthy",
        )
        self.run_on_loop(self.traffic.start(FROZEN), f"requests to {FROZEN}")
        self.check(
            f"no SIGCONT was sent: the restart alone healed {FROZEN}",
            not any(sent.startswith("SIGCONT") for sent in self.signals_sent),
            "signals the demo sent: " + ", ".join(self.signals_sent),
        )

    def check_restarted(self, pid: int, unhealthy: _Seen, healthy: _Seen) -> None:
        record = healthy.new
        crashes = self.run_on_loop(_crashes(self.pool, FROZEN), f"read {FROZEN}")
        self.check(
            f"the ticker restarted frozen {FROZEN} once, through ProcessPool.restart_role",
            record.restarts == 1
            and record.last_restart_ended_at is not None
            and record.last_restart_error is None,
            f"unhealthy at tick {unhealthy.tick}, healthy at tick {healthy.tick}; "
            f"restarts={record.restarts}, the last one "
            + (
                "still running"
                if record.last_restart_ended_at is None
                else f"ended with {record.last_restart_error}"
                if record.last_restart_error
                else "ended well"
            ),
        )
        # A stopped process ignores SIGTERM: only SIGKILL ends it. It is
        # collected before the new worker starts, so not even a zombie is left.
        gone = not _process_exists(pid)
        self.check(
            f"{FROZEN}'s frozen process was ended with SIGKILL, and collected",
            gone and crashes == 1,
            f"pid {pid} {'is gone' if gone else 'STILL EXISTS'}; the pool counted "
            f"{crashes} crash{'' if crashes == 1 else 'es'} of {FROZEN}",
        )

    def check_others_answered(self, before: RoleHealth | None, ticks: int) -> None:
        after = self.ticker.health().get(KILLED)
        pings = 0 if after is None else after.pings - (0 if before is None else before.pings)
        failures = (
            0 if after is None else after.failures - (0 if before is None else before.failures)
        )
        longest = self.ticker.stats().max_tick_duration_s or 0.0
        self.check(
            f"a frozen worker did not hold up the others: {KILLED} was pinged in the same ticks",
            pings >= ticks and failures == 0,
            f"{KILLED}: {pings} pings, {failures} failures in {ticks} ticks; longest tick "
            f"{figures.seconds_text(longest)}s "
            f"(call timeout {figures.seconds_text(self.settings.call_timeout_s)}s)",
        )

    def check_shutdown(self, ticker: HealthTicker) -> None:
        """After shutdown: the ticker had no error and every worker process is gone."""
        if ticker.exception is not None:
            self.check("the ticker ran without errors", False, repr(ticker.exception))
        left = sorted(pid for pid in self.pids_seen if _process_exists(pid))
        self.check(
            "every worker process exited at shutdown",
            not left,
            f"still running: {left}" if left else f"{len(self.pids_seen)} processes, all gone",
        )


async def _probe(pool: ProcessPool, role: str) -> tuple[bool, int]:
    accessor = pool.accessor(role)
    return accessor.is_alive, accessor.spawns


async def _ends(pool: ProcessPool) -> dict[str, tuple[int | None, int]]:
    return {
        role: (pool.accessor(role).pid, pool.accessor(role).spawns)
        for role in pool.registered_roles
    }


async def _crashes(pool: ProcessPool, role: str) -> int:
    return pool.accessor(role).crashes


async def _pause_and_signal(
    traffic: _Traffic, pool: ProcessPool, role: str, signum: signal.Signals
) -> tuple[int, float]:
    """Stop ``role``'s requests, wait for the last answer, then signal its worker.

    With nothing in flight when the signal lands, the worker's pings are
    what shows its state (work in flight would count as a sign of life).

    Returns:
        The worker's pid, and the monotonic time the signal was sent.
    """
    await traffic.stop(role)
    pid = pool.accessor(role).pid
    if pid is None:
        raise WorkerError(role, None, "has no worker to signal")
    at = time.monotonic()
    os.kill(pid, signum)
    return pid, at


def _shut_down(
    ticker: HealthTicker, traffic: _Traffic, pool: ProcessPool, runtime: LoopRuntime, log: Any
) -> None:
    """Stop the ticker, the requests, the workers and the loop, in that order; all bounded."""
    ticker.stop(timeout=_SHUTDOWN_S)
    try:
        runtime.run(traffic.cancel_all(), timeout=_SHUTDOWN_S)
        runtime.run(pool.aclose(), timeout=_SHUTDOWN_S)
    except Exception as exc:
        # The workers still die: with the loop's thread (their death signal),
        # and through the pool's exit hook.
        log.error("demo.shutdown_failed", error=repr(exc))
    finally:
        runtime.shutdown(timeout=_SHUTDOWN_S)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM during a bounded shutdown, and raise the first after.

    Ctrl-C is raised as ``KeyboardInterrupt`` and SIGTERM as :class:`Terminated`.
    Only the main thread receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: types.FrameType | None) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise Terminated if caught[0] == signal.SIGTERM else KeyboardInterrupt


def _process_exists(pid: int) -> bool:
    """True if ``pid`` names a process, a zombie included (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
