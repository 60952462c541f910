"""Fault injection at the pool's edge: a pool whose every call may misbehave, and a slow runtime.

:class:`ChaosPool` fits :class:`lilbee_ticker.Pool` and runs on a real loop. Each call
draws from a seeded :class:`random.Random` whether to raise, hang until cancelled,
answer slowly, kill its worker, flip a role between alive and dead, or reap live
roles at random. It counts every call and how it ended, so a test can check that
the ticker's reports account for each one. :class:`SlowSubmitRuntime` is a
:class:`lilbee_ticker.LoopRuntime` whose ``submit`` sometimes blocks its caller.
:class:`TickLedger` is a stop event that books every report the ticker's thread
publishes, and can hold the thread between two ticks so that a test can look at
a quiet system.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import enum
import math
import random
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from lilbee_ticker import (
    CallTimeoutError,
    HealthTicker,
    LoopRuntime,
    LoopUnresponsiveError,
    TickReport,
)
from lilbee_ticker._wake import Wake
from lilbee_ticker.testing import WrongThreadError

__all__ = [
    "ChaosPool",
    "Fault",
    "FaultRates",
    "InjectedFault",
    "ReportTally",
    "SlowSubmitRuntime",
    "TickLedger",
]

_T = TypeVar("_T")


class InjectedFault(Exception):
    """An exception a :class:`ChaosPool` raised on purpose.

    Attributes:
        call: The pool call that raised it: ``"registered_roles"``, ``"is_alive"``,
            ``"reap_idle"`` or ``"ping_role"``.
        serial: Its number, unique in its pool; sums of serials identify which
            faults a set of reports carries.
    """

    def __init__(self, call: str, serial: int) -> None:
        super().__init__(f"injected fault #{serial} in {call}")
        self.call = call
        self.serial = serial


class Fault(str, enum.Enum):
    """What one asynchronous pool call does instead of, or before, its work."""

    NONE = "none"
    RAISE = "raise"
    HANG = "hang"  # pings: until cancelled; reaps: until the pool's own bound, past call_timeout_s
    SLOW = "slow"
    CRASH = "crash"  # pings only: the worker dies and the ping raises


@dataclasses.dataclass(frozen=True)
class FaultRates:
    """The probability of each fault, per call."""

    raise_: float = 0.05
    hang: float = 0.008
    slow: float = 0.10
    crash: float = 0.02
    slow_max_s: float = 0.005
    """A slow call answers after up to this long: far below the soak's call_timeout_s."""
    flip: float = 0.03
    """Any call flips a random role between alive and dead (a crash, or a spawn by a user)."""
    reap: float = 0.03
    """``reap_idle()`` reaps each live role with this probability."""
    sync_raise: float = 0.003
    """``registered_roles`` and ``is_alive`` raise."""
    slow_submit: float = 0.02
    slow_submit_max_s: float = 0.005
    reap_hang_s: float = 0.4
    """A hung reap ends by the pool's own bound after this long, as a real pool's close does
    (a ticker never cancels a reap); it is past the soak's call_timeout_s."""


class ChaosPool:
    """A pool whose every call may misbehave, with a ledger of every call and how it ended.

    Only the loop thread touches its state (a call from any other thread raises
    :class:`WrongThreadError` and is counted in ``counts["violations"]``), so it
    needs no lock. Read ``counts`` on the loop (:meth:`settled`) or after the loop
    thread has ended.

    ``counts`` keys: ``<call>`` for every call of ``registered_roles``,
    ``is_alive``, ``reap_idle`` and ``ping_role``; ``<call>.ok``, ``<call>.raised``
    and ``<call>.cancelled`` for how each ended; ``fault.<kind>`` for each fault
    injected; ``raised`` and ``serial_sum`` over every :class:`InjectedFault`;
    ``roles_reaped``, ``spawned``, ``in_flight`` and ``violations``.
    """

    def __init__(
        self,
        roles: tuple[str, ...],
        rng: random.Random,
        rates: FaultRates,
        loop_thread: threading.Thread,
    ) -> None:
        self._roles = roles
        self._rng = rng
        self._rates = rates
        self._loop_thread = loop_thread
        self._alive = dict.fromkeys(roles, True)
        self.counts: collections.Counter[str] = collections.Counter()

    # -- the pool protocol (loop thread only) ---------------------------------------------

    @property
    def registered_roles(self) -> tuple[str, ...]:
        """Every role, alive or not; may raise."""
        self._enter("registered_roles")
        self._maybe_raise_sync("registered_roles")
        return self._roles

    def accessor(self, role: str) -> _Accessor:
        """A handle whose ``is_alive`` may raise."""
        return _Accessor(self, role)

    async def reap_idle(self) -> tuple[str, ...]:
        """Misbehave as drawn, then reap each live role with probability ``rates.reap``.

        A hung reap ends by the pool's own bound, reaping nothing.
        """
        self._enter("reap_idle")
        fault = self._draw(crash=False)
        await self._misbehave("reap_idle", fault, role=None)
        if fault is Fault.HANG:
            self.counts["reap_idle.late"] += 1
            self.counts["reap_idle.ok"] += 1
            return ()
        reaped = tuple(
            role for role, alive in self._alive.items() if alive and self._chance(self._rates.reap)
        )
        for role in reaped:
            self._alive[role] = False
        self.counts["roles_reaped"] += len(reaped)
        self.counts["reap_idle.ok"] += 1
        return reaped

    async def ping_role(self, role: str) -> None:
        """Spawn ``role`` if it is dead, as a real call would, then misbehave as drawn."""
        self._enter("ping_role")
        if not self._alive[role]:
            self._alive[role] = True
            self.counts["spawned"] += 1
        await self._misbehave("ping_role", self._draw(crash=True), role=role)
        self.counts["ping_role.ok"] += 1

    # -- for the test ----------------------------------------------------------------------

    async def settled(self, timeout: float = 5.0) -> collections.Counter[str]:
        """On the loop: let cancelled calls unwind and late reaps end, then copy ``counts``.

        A call the ticker cancelled from its own thread unwinds on the loop a moment
        later, and a hung reap ends by the pool's own bound; a call that never ends
        stays in flight, and shows in ``in_flight``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.counts["in_flight"] and loop.time() < deadline:
            await asyncio.sleep(0.001)
        return collections.Counter(self.counts)

    # -- internals ---------------------------------------------------------------------------

    def _enter(self, call: str) -> None:
        thread = threading.current_thread()
        if thread is not self._loop_thread:
            self.counts["violations"] += 1
            raise WrongThreadError(call, thread.name, self._loop_thread.name)
        self.counts[call] += 1
        if self._chance(self._rates.flip):
            role = self._rng.choice(self._roles)
            self._alive[role] = not self._alive[role]
            self.counts["fault.flip"] += 1

    def _chance(self, probability: float) -> bool:
        return self._rng.random() < probability

    def _fault(self, call: str) -> InjectedFault:
        serial = self.counts["raised"] + 1
        self.counts["raised"] = serial
        self.counts[f"{call}.raised"] += 1
        self.counts["serial_sum"] += serial
        return InjectedFault(call, serial)

    def _maybe_raise_sync(self, call: str) -> None:
        if self._chance(self._rates.sync_raise):
            self.counts["fault.sync_raise"] += 1
            raise self._fault(call)

    def _draw(self, *, crash: bool) -> Fault:
        rates = self._rates
        draw = self._rng.random()
        for fault, rate in (
            (Fault.RAISE, rates.raise_),
            (Fault.HANG, rates.hang),
            (Fault.SLOW, rates.slow),
            (Fault.CRASH, rates.crash if crash else 0.0),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return Fault.NONE

    async def _misbehave(self, call: str, fault: Fault, role: str | None) -> None:
        if fault is not Fault.NONE:
            self.counts[f"fault.{fault.value}"] += 1
        self.counts["in_flight"] += 1
        try:
            if fault is Fault.HANG and call == "reap_idle":
                await asyncio.sleep(self._rates.reap_hang_s)
            elif fault is Fault.HANG:
                await asyncio.Event().wait()
            elif fault is Fault.SLOW:
                await asyncio.sleep(self._rng.uniform(0.0, self._rates.slow_max_s))
            elif fault is Fault.RAISE:
                raise self._fault(call)
            elif fault is Fault.CRASH and role is not None:
                self._alive[role] = False
                raise self._fault(call)
        except asyncio.CancelledError:
            self.counts[f"{call}.cancelled"] += 1
            raise
        finally:
            self.counts["in_flight"] -= 1


class _Accessor:
    __slots__ = ("_pool", "_role")

    def __init__(self, pool: ChaosPool, role: str) -> None:
        self._pool = pool
        self._role = role

    @property
    def is_alive(self) -> bool:
        pool = self._pool
        pool._enter("is_alive")
        pool._maybe_raise_sync("is_alive")
        return pool._alive[self._role]


class SlowSubmitRuntime(LoopRuntime):
    """A :class:`LoopRuntime` whose ``submit`` sometimes blocks its caller first.

    Only the ticker's thread may call :meth:`submit` (it draws from an unlocked
    random generator); a test reaches the loop with
    ``asyncio.run_coroutine_threadsafe(coro, runtime.loop)`` instead.
    """

    def __init__(self, rng: random.Random, rates: FaultRates, *, name: str) -> None:
        super().__init__(name=name)
        self._rng = rng
        self._rates = rates
        self.slow_submits = 0

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Block for up to ``rates.slow_submit_max_s`` now and then, then submit ``coro``."""
        if self._rng.random() < self._rates.slow_submit:
            self.slow_submits += 1
            # The fault itself: a submit that blocks the thread calling it, as a
            # runtime busy with its own lock would. Not a synchronisation sleep.
            time.sleep(self._rng.uniform(0.0, self._rates.slow_submit_max_s))
        return super().submit(coro)


@dataclasses.dataclass
class ReportTally:
    """Totals over a run of :class:`TickReport`, checked one report at a time as it is added.

    Constant size whatever the number of ticks: the first few problems are kept
    as text, the rest only counted.
    """

    reports: int = 0
    last_number: int = 0
    gaps: int = 0
    interrupted: int = 0
    skipped: int = 0
    reaps: int = 0  # reap steps: ticks that found a role alive
    reaps_still_running: int = 0  # reap steps that found the last reap still running
    roles_reaped: int = 0
    pinged: int = 0
    timeouts: int = 0  # CallTimeoutError, anywhere in a report
    snapshot_timeouts: int = 0
    ping_timeouts: int = 0
    reap_timeouts: int = 0
    cancelled: int = 0  # CancelledError from a stop, anywhere in a report
    # A tick whose loop woke late for a deadline (a starved machine) blames the
    # loop, not the calls still running then: a reap left running without a
    # timeout, pings cancelled without one. Counted here, so that the calls the
    # pool saw still add up exactly.
    loop_late_ticks: int = 0
    loop_late_reaps: int = 0  # reaps left running at a deadline the loop woke late for
    loop_late_pings: int = 0  # pings left without an outcome in such a tick
    loop_late_least_s: float = math.inf  # the least lateness any report blamed on the loop
    # (step, call) -> count, step being "snapshot", "reap" or "ping".
    injected: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    injected_serial_sum: int = 0
    max_duration_s: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)
    problem_count: int = 0

    def add(self, report: TickReport) -> None:
        """Count ``report`` in, and note anything about it that cannot be right."""
        self.reports += 1
        if report.number != self.last_number + 1:
            self.gaps += abs(report.number - self.last_number - 1)
            self._problem(report, f"follows tick {self.last_number}")
        self.last_number = report.number
        self.max_duration_s = max(self.max_duration_s, report.duration_s)
        self.interrupted += report.interrupted
        self.skipped += report.skipped
        self.reaps += bool(report.live)
        error = report.reap_error
        self.reaps_still_running += isinstance(error, CallTimeoutError) and error.still_running
        self.roles_reaped += len(report.reaped)
        self.pinged += len(report.pinged)
        self._check_shape(report)
        self._count_loop_late(report)
        self._classify(report, "snapshot", report.snapshot_error)
        self._classify(report, "reap", report.reap_error)
        for error in report.failed.values():
            self._classify(report, "ping", error)

    def injected_at(self, step: str) -> int:
        """Injected faults reported for ``step``: ``"snapshot"``, ``"reap"`` or ``"ping"``."""
        return sum(n for (at, _), n in self.injected.items() if at == step)

    def injected_from(self, call: str) -> int:
        """Injected faults reported that ``call`` raised, e.g. ``"is_alive"``."""
        return sum(n for (_, source), n in self.injected.items() if source == call)

    def _check_shape(self, report: TickReport) -> None:
        # reaped need not be a subset of live: a role may be spawned between the survey
        # and the reap, and reap_idle() reports what it reaped.
        live, reaped = set(report.live), set(report.reaped)
        pinged, failed = set(report.pinged), set(report.failed)
        if not pinged <= live - reaped:
            self._problem(report, "pinged a role that was not live after the reap")
        for role in failed - (live - reaped):
            error = report.failed[role]
            if not (isinstance(error, InjectedFault) and error.call == "is_alive"):
                self._problem(report, f"failed {role!r}, not live after the reap, with {error!r}")
        if pinged & failed:
            self._problem(report, f"both pinged and failed: {pinged & failed}")
        if set(report.latencies) != pinged:
            self._problem(report, "latencies do not match the pinged roles")
        if report.snapshot_error is not None and (live or reaped or pinged or failed):
            self._problem(report, "did work although it could not read the pool")

    def _count_loop_late(self, report: TickReport) -> None:
        error = report.loop_error
        if error is None:
            return
        if not isinstance(error, LoopUnresponsiveError) or error.stage not in ("reap", "pings"):
            self._problem(report, f"unexpected loop error {error!r}")
            return
        self.loop_late_ticks += 1
        self.loop_late_least_s = min(self.loop_late_least_s, error.waited_s)
        self.loop_late_reaps += error.stage == "reap"
        answered = set(report.pinged) | set(report.failed) | set(report.gone)
        self.loop_late_pings += len(set(report.live) - set(report.reaped) - answered)

    def _classify(self, report: TickReport, step: str, error: BaseException | None) -> None:
        if error is None:
            return
        if isinstance(error, InjectedFault):
            self.injected[step, error.call] += 1
            self.injected_serial_sum += error.serial
        elif isinstance(error, CallTimeoutError):
            self.timeouts += 1
            if error.still_running:
                return  # the same call as an earlier timeout: counted there
            if step == "snapshot":
                self.snapshot_timeouts += 1
            elif step == "reap":
                self.reap_timeouts += 1
            else:
                self.ping_timeouts += 1
        elif isinstance(error, concurrent.futures.CancelledError) and report.interrupted:
            self.cancelled += 1
        else:
            self._problem(report, f"unexpected {step} error {error!r}")

    def _problem(self, report: TickReport, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 10:
            self.problems.append(f"tick {report.number}: {text}")


class TickLedger(threading.Event):
    """A stop event that books every report the ticker's thread publishes, and can hold the thread.

    :meth:`watch` puts the ledger on the ticker's own clock (its private
    ``Wake``), which the thread waits on once between two ticks, after it
    has published the previous tick's report. Reading ``last_report`` there
    sees every background tick's report exactly once, in order, without
    racing the thread. While a hold is asked for, that wait blocks until the
    hold is released or the event is set: the ticker is then between ticks,
    with no call of its own in flight. Setting the event stops the ticker, as
    any application's event does.

    Thread safety: ``tally`` is written only by the ticker's thread; read it while
    the thread is held or after it has ended. Every method may be called from any
    thread.
    """

    def __init__(self) -> None:
        super().__init__()
        # _ledger_cond guards _hold and _held, and is notified by set().
        self._ledger_cond = threading.Condition(threading.Lock())
        self._hold = False
        self._held = False
        self.ticker: HealthTicker | None = None
        self.tally = ReportTally()
        self._booked: TickReport | None = None

    def watch(self, ticker: HealthTicker) -> None:
        """Book ``ticker``'s reports between its ticks; call before ``start()``."""
        self.ticker = ticker
        ticker._life.wake = _LedgerWake(self)

    def set(self) -> None:
        """Set the event: the ticker stops, held or not."""
        super().set()
        with self._ledger_cond:
            self._ledger_cond.notify_all()

    def between_ticks(self) -> None:
        """Book the latest report and wait out a hold; called by the ticker's thread."""
        self._book()
        with self._ledger_cond:
            if self._hold and not self.is_set():
                self._held = True
                self._ledger_cond.notify_all()
                # Bounded so that a test that forgets to release cannot wedge a thread forever.
                self._ledger_cond.wait_for(lambda: self.is_set() or not self._hold, 60.0)
                self._held = False

    def hold(self, timeout: float) -> bool:
        """Stop the ticker's thread at its next wait between ticks; True once it is held there."""
        with self._ledger_cond:
            self._hold = True
            return self._ledger_cond.wait_for(lambda: self._held, timeout)

    def release(self) -> None:
        """Let a held ticker go on ticking."""
        with self._ledger_cond:
            self._hold = False
            self._ledger_cond.notify_all()

    def _book(self) -> None:
        ticker = self.ticker
        report = None if ticker is None else ticker.last_report
        if report is not None and report is not self._booked:
            self._booked = report
            self.tally.add(report)


class _LedgerWake(Wake):
    """The ticker's own clock, with the ledger's booking before each wait."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: TickLedger) -> None:
        super().__init__()
        self._ledger = ledger

    def wait_for_tick(self, timeout: float) -> str:
        self._ledger.between_ticks()
        return super().wait_for_tick(timeout)
