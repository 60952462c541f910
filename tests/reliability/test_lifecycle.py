"""The lifecycle under random sequences of operations, from several threads: a state machine.

Hypothesis drives a ticker (and, when the runtime is shut down or the ticker is
spent, a new one) through start, stop, stop with tiny timeouts, tick (also from
the runtime's loop thread, and from every on_change hook), setting the stop
event, joining, the context manager, roles dying and coming back, and the
runtime shutting down, some of them from several threads at once. Every
operation runs in a caller thread bounded in time, so that a deadlock fails the
test instead of hanging it. A model says what each operation must do; after
every step the invariants are checked.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from lilbee_ticker import (
    HealthTicker,
    LoopRuntime,
    RoleHealth,
    RuntimeUnavailableError,
    TickerUsageError,
    TickReport,
)
from lilbee_ticker.testing import Delay, FakePool

from .conftest import Figures
from .support import LONG, Outcome, call_within, scaled

ROLES = ("embed", "chat", "rerank")
# Far above anything a correct operation needs, even on two loaded cores; an
# operation that deadlocks never returns at all, so the bound only has to end the
# wait. The tiny-timeout stops are held to their own timeout plus the same slack.
BOUND_S = 10.0
SLACK_S = 1.0
STOP_TIMEOUT_S = 5.0
# No pool call here takes more than a few milliseconds, so no tick ever times out.
CALL_TIMEOUT_S = 2.0

# What the machines of one test did, summed for the figures.
_TOTALS: collections.Counter[str] = collections.Counter()


class OverlapPool(FakePool):
    """A :class:`FakePool` that notices two ticks running at once.

    A tick reads ``registered_roles`` first (its survey), and its reap and pings
    have finished, or been cancelled and unwound on the loop, before the next
    tick's survey runs there. A survey that starts while a reap or a ping is in
    flight therefore belongs to a tick that overlaps another.
    """

    def __init__(self, loop_thread: threading.Thread | None) -> None:
        super().__init__(ROLES, loop_thread=loop_thread)
        self._busy = 0  # reaps and pings in flight; loop thread only
        self.overlaps = 0

    @property
    def registered_roles(self) -> tuple[str, ...]:
        """Every registered role; counts an overlap if a reap or ping is still in flight."""
        if self._busy:
            self.overlaps += 1
        roles: tuple[str, ...] = FakePool.registered_roles.fget(self)  # type: ignore[attr-defined]
        return roles

    async def reap_idle(self) -> tuple[str, ...]:
        """Reap, counted as in flight."""
        self._busy += 1
        try:
            return await super().reap_idle()
        finally:
            self._busy -= 1

    async def ping_role(self, role: str) -> None:
        """Ping, counted as in flight."""
        self._busy += 1
        try:
            await super().ping_role(role)
        finally:
            self._busy -= 1


@dataclasses.dataclass
class Model:
    """What the current ticker must be doing, from the operations that succeeded so far."""

    runtime_up: bool = True
    started: bool = False
    stop_called: bool = False
    event_set: bool = False
    ended: bool = False  # a stop() or join() returned True
    entered: bool = False  # inside a `with ticker:` left open by enter()

    @property
    def stopping(self) -> bool:
        return self.stop_called or self.event_set

    @property
    def startable(self) -> bool:
        return not (self.started or self.stopping)

    @property
    def must_run(self) -> bool:
        return self.started and not self.stopping and self.runtime_up and not self.ended

    @property
    def must_not_run(self) -> bool:
        return not self.started or self.ended

    @property
    def will_end(self) -> bool:
        """The thread, if any, ends by itself soon: stopped, or its runtime is gone."""
        return not self.started or self.stopping or not self.runtime_up

    def tick_error(self) -> type[Exception] | None:
        if self.stopping:
            return TickerUsageError
        if not self.runtime_up:
            return RuntimeUnavailableError
        return None


def _expect(outcome: Outcome[Any], error: type[Exception] | None, what: str) -> None:
    """Check that an operation raised exactly the documented ``error``, or nothing."""
    if error is None:
        if outcome.error is not None:
            raise AssertionError(f"{what} raised {outcome.error!r}") from outcome.error
    elif not isinstance(outcome.error, error):
        raise AssertionError(
            f"{what} should raise {error.__name__}, got {outcome.error!r}"
        ) from outcome.error


def _in_threads(count: int, fn: Callable[[], Any]) -> list[Outcome[Any]]:
    """Call ``fn`` from ``count`` threads released at once; every call must return in bound."""
    barrier = threading.Barrier(count)

    def released() -> Any:
        barrier.wait(BOUND_S)
        return fn()

    outcomes: list[Outcome[Any] | None] = [None] * count

    def run(index: int) -> None:
        outcomes[index] = call_within(BOUND_S, released)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * BOUND_S)
    assert all(o is not None for o in outcomes), "a caller thread never came back: a deadlock"
    return [o for o in outcomes if o is not None]


class Lifecycle(RuleBasedStateMachine):
    """A ticker and its runtime, driven through random sequences of operations."""

    def __init__(self) -> None:
        super().__init__()
        self.runtimes: list[LoopRuntime] = []
        self.pools: list[OverlapPool] = []
        self.tickers: list[HealthTicker] = []
        self.contexts = contextlib.ExitStack()
        self.operations = 0
        # What tick() called from an on_change hook raised, by exception name.
        self.hook_ticks: collections.Counter[str] = collections.Counter()
        self._new_runtime()
        self._new_ticker(interval_s=0.005, application_event=False)

    # -- building ----------------------------------------------------------------------

    def _new_runtime(self) -> None:
        self.runtime = LoopRuntime(name=f"sm-runtime-{len(self.runtimes)}").start()
        self.runtimes.append(self.runtime)
        self.pool = OverlapPool(self.runtime.thread)
        self.pool.set_ping("chat", Delay(0.002))  # ticks that last long enough to overlap
        self.pools.append(self.pool)

    def _new_ticker(self, interval_s: float, *, application_event: bool) -> None:
        """A new ticker, with its own stop event or with one the application passes in.

        The two take different paths: setting the ticker's own event cancels the tick in
        flight, while an application's event is noticed by a tick polling it.
        """
        ticker = HealthTicker(
            self.pool,
            self.runtime,
            interval_s=interval_s,
            call_timeout_s=CALL_TIMEOUT_S,
            stop_event=threading.Event() if application_event else None,
            name=f"sm-ticker-{len(self.tickers)}",
            on_change=lambda old, new: self._tick_from_a_hook(ticker, old, new),
        )
        self.ticker = ticker
        self.event = ticker.stop_event
        self.tickers.append(ticker)
        self.model = Model(runtime_up=self.runtime.is_running)
        self.last_number = 0

    def _tick_from_a_hook(
        self, ticker: HealthTicker, _old: RoleHealth | None, _new: RoleHealth
    ) -> None:
        """An on_change hook that calls tick(), which is documented to raise there."""
        try:
            ticker.tick()
        except Exception as exc:
            self.hook_ticks[type(exc).__name__] += 1
        else:
            self.hook_ticks["returned"] += 1

    def _call(self, fn: Callable[[], Any], what: str) -> Outcome[Any]:
        self.operations += 1
        return call_within(BOUND_S, fn, what=what)

    def _saw(self, report: TickReport) -> None:
        assert isinstance(report, TickReport)
        assert report.number > self.last_number, "tick numbers must only grow"
        self.last_number = report.number

    def _started(self, outcome: Outcome[Any], what: str) -> bool:
        _expect(outcome, None if self.model.startable else TickerUsageError, what)
        if outcome.error is None:
            self.model.started = True
            return True
        return False

    def _stopped(self, ended: bool) -> None:
        self.model.stop_called = True
        if ended or not self.model.started:
            self.model.ended = True

    # -- rules: the ticker -------------------------------------------------------------

    @rule()
    def start(self) -> None:
        self._started(self._call(self.ticker.start, "start()"), "start()")

    @rule(count=st.integers(2, 4))
    def start_from_threads(self, count: int) -> None:
        startable = self.model.startable
        outcomes = _in_threads(count, self.ticker.start)
        self.operations += count
        winners = [o for o in outcomes if o.error is None]
        for outcome in outcomes:
            if outcome.error is not None:
                _expect(outcome, TickerUsageError, "a losing start()")
        assert len(winners) == (1 if startable else 0), f"{len(winners)} start() calls succeeded"
        self.model.started = self.model.started or bool(winners)

    @rule()
    def stop(self) -> None:
        outcome = self._call(lambda: self.ticker.stop(STOP_TIMEOUT_S), "stop()")
        _expect(outcome, None, "stop()")
        assert outcome.value is True, "stop() left the thread running"
        self._stopped(True)

    @rule(timeout=st.sampled_from([0.0, 1e-6, 0.001, 0.01]))
    def stop_with_a_tiny_timeout(self, timeout: float) -> None:
        outcome = self._call(lambda: self.ticker.stop(timeout), f"stop({timeout})")
        _expect(outcome, None, f"stop({timeout})")
        assert outcome.elapsed_s <= timeout + SLACK_S, f"stop({timeout}) took {outcome.elapsed_s}"
        self._stopped(bool(outcome.value))

    @rule(count=st.integers(2, 4))
    def stop_from_threads(self, count: int) -> None:
        outcomes = _in_threads(count, lambda: self.ticker.stop(STOP_TIMEOUT_S))
        self.operations += count
        for outcome in outcomes:
            _expect(outcome, None, "a concurrent stop()")
            assert outcome.value is True
        self._stopped(True)

    @rule()
    def set_the_stop_event(self) -> None:
        self.event.set()
        self.operations += 1
        self.model.event_set = True

    @rule()
    def join(self) -> None:
        if self.model.will_end:
            outcome = self._call(lambda: self.ticker.join(STOP_TIMEOUT_S), "join()")
            _expect(outcome, None, "join()")
            assert outcome.value is True, "the thread did not end although it was told to"
            self.model.ended = self.model.ended or self.model.started
        else:
            outcome = self._call(lambda: self.ticker.join(0.01), "join(0.01)")
            _expect(outcome, None, "join(0.01)")
            assert outcome.value is False, "join() says a running ticker's thread ended"

    @rule()
    def tick(self) -> None:
        outcome = self._call(self.ticker.tick, "tick()")
        _expect(outcome, self.model.tick_error(), "tick()")
        if outcome.error is None:
            assert isinstance(outcome.value, TickReport)
            self._saw(outcome.value)

    @precondition(lambda self: self.model.runtime_up)
    @rule()
    def tick_from_the_loop_thread(self) -> None:
        async def tick_on_the_loop() -> TickReport:
            return self.ticker.tick()

        outcome = self._call(lambda: self.runtime.run(tick_on_the_loop()), "tick() on the loop")
        _expect(outcome, TickerUsageError, "tick() on the runtime's loop thread")

    @rule(count=st.integers(2, 3))
    def tick_from_threads(self, count: int) -> None:
        error = self.model.tick_error()

        def two_ticks() -> list[TickReport]:
            return [self.ticker.tick(), self.ticker.tick()]

        outcomes = _in_threads(count, two_ticks)
        self.operations += 2 * count
        numbers: list[int] = []
        for outcome in outcomes:
            _expect(outcome, error, "a concurrent tick()")
            if outcome.error is None:
                assert isinstance(outcome.value, list)
                numbers += [report.number for report in outcome.value]
        assert len(numbers) == len(set(numbers)), f"two ticks got the same number: {numbers}"
        if numbers:
            self.last_number = max(self.last_number, *numbers)

    @rule()
    def wait_for_the_next_tick(self) -> None:
        last = self.ticker.last_report
        number = (0 if last is None else last.number) + 1
        if self.model.must_run:
            outcome = self._call(lambda: self.ticker.wait_for_tick(number, 5.0), "wait_for_tick")
            _expect(outcome, None, "wait_for_tick()")
            assert outcome.value is not None, "a running ticker stalled"
            self._saw(outcome.value)
        elif self.model.stopping:
            # A stopped ticker answers at once, however long the caller would wait.
            outcome = self._call(lambda: self.ticker.wait_for_tick(10**9, 5.0), "wait_for_tick")
            _expect(outcome, None, "wait_for_tick()")
            assert outcome.value is None or outcome.value.number < 10**9
            assert outcome.elapsed_s < SLACK_S, "wait_for_tick() waited on a stopped ticker"

    @rule()
    def with_block(self) -> None:
        startable = self.model.startable

        runtime_up = self.model.runtime_up

        def body() -> bool:
            with self.ticker as inside:
                return inside.is_running

        outcome = self._call(body, "with ticker:")
        _expect(outcome, None if startable else TickerUsageError, "with ticker:")
        if outcome.error is None:
            assert outcome.value or not runtime_up, "not running inside its with block"
            self.model.started = True
            self._stopped(True)  # __exit__ stopped it with stop()'s default timeout

    @rule()
    def enter(self) -> None:
        outcome = self._call(lambda: self.contexts.enter_context(self.ticker), "__enter__")
        if self._started(outcome, "__enter__"):
            self.model.entered = True

    @precondition(lambda self: self.model.entered)
    @rule()
    def exit(self) -> None:
        _expect(self._call(self.contexts.close, "exit"), None, "__exit__")
        self.model.entered = False
        self._stopped(True)

    # -- rules: the world around it ------------------------------------------------------

    @rule(role=st.sampled_from(ROLES), alive=st.booleans())
    def role_appears_or_dies(self, role: str, alive: bool) -> None:
        self.pool.set_alive(role, alive)
        self.operations += 1

    @precondition(lambda self: self.model.runtime_up)
    @rule()
    def shut_the_runtime_down(self) -> None:
        outcome = self._call(lambda: self.runtime.shutdown(STOP_TIMEOUT_S), "runtime.shutdown()")
        _expect(outcome, None, "runtime.shutdown()")
        assert outcome.value is True
        self.model.runtime_up = False

    @precondition(lambda self: self.model.stopping or not self.model.runtime_up)
    @rule(interval_s=st.sampled_from([0.002, 0.01, 0.05]), application_event=st.booleans())
    def replace_the_ticker(self, interval_s: float, application_event: bool) -> None:
        """Replace a spent ticker, or one whose runtime is gone (then with a new runtime)."""
        _expect(self._call(self.contexts.close, "exit"), None, "__exit__")
        outcome = self._call(lambda: self.ticker.stop(STOP_TIMEOUT_S), "stop()")
        assert outcome.value is True
        if not self.model.runtime_up:
            self._new_runtime()
        self._new_ticker(interval_s, application_event=application_event)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def is_running_tells_the_truth(self) -> None:
        running = self.ticker.is_running
        thread_alive = any(
            t.name == self.ticker.name and t.is_alive() for t in threading.enumerate()
        )
        if self.model.must_run:
            assert running, "is_running is False for a ticker that must be running"
        if self.model.must_not_run:
            assert not running and not thread_alive, "a thread runs for a ticker that must not"
        if not running:
            assert not thread_alive, "is_running is False but its thread is alive"

    @invariant()
    def ticks_never_overlap(self) -> None:
        assert all(pool.overlaps == 0 for pool in self.pools), "two ticks ran at once"

    @invariant()
    def tick_from_a_hook_is_refused(self) -> None:
        assert set(self.hook_ticks) <= {"TickerUsageError"}, f"tick() in a hook: {self.hook_ticks}"

    @invariant()
    def no_ticker_crashed(self) -> None:
        for ticker in self.tickers:
            assert ticker.exception is None, f"{ticker.name} crashed: {ticker.exception!r}"

    def teardown(self) -> None:
        self.contexts.close()
        for ticker in self.tickers:
            assert ticker.stop(STOP_TIMEOUT_S), f"{ticker.name} outlived stop()"
        for runtime in self.runtimes:
            assert runtime.shutdown(STOP_TIMEOUT_S)
            assert runtime.stuck_at_shutdown == ()
        for pool in self.pools:
            assert pool.violations == ()
        alive = [t.name for t in threading.enumerate() if t.name.startswith("sm-")]
        assert alive == [], f"threads left behind: {alive}"
        _TOTALS["examples"] += 1
        _TOTALS["operations"] += self.operations
        _TOTALS["tickers"] += len(self.tickers)
        _TOTALS["runtimes"] += len(self.runtimes)
        _TOTALS["hook_ticks_refused"] += self.hook_ticks["TickerUsageError"]


def test_lifecycle_state_machine(seed: int, figures: Figures) -> None:
    """Any sequence of lifecycle operations, from any threads, keeps every documented promise."""
    _TOTALS.clear()

    @hypothesis.seed(seed)
    class SeededLifecycle(Lifecycle):
        """The machine, with this test's seed."""

    run_state_machine_as_test(
        SeededLifecycle,
        settings=settings(
            max_examples=scaled(60, 500),
            stateful_step_count=scaled(30, 60),
            deadline=None,
            database=None,
            derandomize=False,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    figures.record(long=LONG, **_TOTALS)
