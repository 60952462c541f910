"""Per-role health: thresholds, transitions, hooks, snapshots, counters and log-once events."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import (
    CallTimeoutError,
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    LoopUnresponsiveError,
    RoleHealth,
    TickerStats,
    TickerUsageError,
)
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import Crash, Delay, Fail, Hang, ManualClock, Succeed

from .conftest import MakePool

H, F, U, D, Q = (
    HealthStatus.HEALTHY,
    HealthStatus.FAILING,
    HealthStatus.UNHEALTHY,
    HealthStatus.DOWN,
    HealthStatus.UNKNOWN,
)


class Recorder:
    """An on_change hook that records each call and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[RoleHealth | None, RoleHealth]] = []
        self.threads: list[str] = []

    def __call__(self, old: RoleHealth | None, new: RoleHealth) -> None:
        self.calls.append((old, new))
        self.threads.append(threading.current_thread().name)

    def statuses(self, role: str) -> list[tuple[HealthStatus | None, HealthStatus]]:
        return [
            (None if old is None else old.status, new.status)
            for old, new in self.calls
            if new.role == role
        ]


def _status_after_each_tick(ticker: HealthTicker, role: str, ticks: int) -> list[HealthStatus]:
    statuses = []
    for _ in range(ticks):
        ticker.tick()
        statuses.append(ticker.health()[role].status)
    return statuses


# -- thresholds -------------------------------------------------------------------


def test_failure_threshold_one_goes_straight_to_unhealthy(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """With failure_threshold=1 the first failed ping makes the role unhealthy."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Fail())
    hook = Recorder()
    ticker = make_ticker(pool, failure_threshold=1, on_change=hook)
    assert _status_after_each_tick(ticker, "chat", 3) == [U, U, U]
    assert hook.statuses("chat") == [(None, U)]
    assert not ticker.healthy


def test_failure_threshold_n(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A role is failing from its first failed ping and unhealthy at the Nth in a row."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Succeed(), Fail(), Fail(), Fail(), Fail())
    hook = Recorder()
    ticker = make_ticker(pool, failure_threshold=3, on_change=hook)
    assert _status_after_each_tick(ticker, "chat", 5) == [H, F, F, U, U]
    assert hook.statuses("chat") == [(None, H), (H, F), (F, U)]
    record = ticker.health()["chat"]
    assert record.consecutive_failures == 4
    assert record.failures == 4
    assert record.pings == 5
    assert record.last_error == "ConnectionError: scripted ping failure"


def test_a_success_below_the_threshold_resets_the_failure_streak(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Fail(), Fail(), Succeed(), Fail(), Fail())
    ticker = make_ticker(pool, failure_threshold=3)
    assert _status_after_each_tick(ticker, "chat", 5) == [F, F, H, F, F]


def test_recovery_needs_success_threshold_successes(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """With success_threshold=2 an unhealthy role needs two good pings in a row to recover."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Fail(), Fail(), Succeed(), Fail(), Succeed(), Succeed(), Succeed())
    hook = Recorder()
    ticker = make_ticker(pool, failure_threshold=2, success_threshold=2, on_change=hook)
    with capture_logs() as logs:
        statuses = _status_after_each_tick(ticker, "chat", 7)
    assert statuses == [F, U, U, U, U, H, H]
    assert hook.statuses("chat") == [(None, F), (F, U), (U, H)]
    recovered = [e for e in logs if e["event"] == "role.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["log_level"] == "info"
    assert ticker.health()["chat"].consecutive_successes == 3


def test_role_that_goes_down_and_comes_back(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A reaped role is down (one role.down event); when it is used again it is healthy again."""
    clock = ManualClock()
    pool = make_pool(("embed", "chat"), max_idle_s=10, clock=clock)
    hook = Recorder()
    ticker = make_ticker(pool, on_change=hook)
    with capture_logs() as logs:
        ticker.tick()
        pool.use("chat")
        clock.advance(11)
        pool.use("chat")
        assert ticker.tick().reaped == ("embed",)
        ticker.tick()
        pool.use("embed")  # a real call spawns it again
        ticker.tick()
    assert hook.statuses("embed") == [(None, H), (H, D), (D, H)]
    down = [e for e in logs if e["event"] == "role.down"]
    assert len(down) == 1
    assert down[0]["log_level"] == "info"
    assert down[0]["role"] == "embed"
    assert ticker.health()["embed"].status is H


def test_crashed_role_goes_failing_then_down_with_streaks_reset(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A worker that dies during its ping fails, then is down; its streaks start again."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Crash())
    ticker = make_ticker(pool)
    assert _status_after_each_tick(ticker, "chat", 2) == [F, D]
    record = ticker.health()["chat"]
    assert record.consecutive_failures == 0
    assert record.failures == 1
    assert record.last_error is not None
    assert "crashed" in record.last_error


def test_never_spawned_role_is_down_without_a_down_warning(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A role first seen not alive is DOWN, announced at debug: nothing stopped."""
    pool = make_pool(("vision",), alive=False)
    hook = Recorder()
    with capture_logs() as logs:
        make_ticker(pool, on_change=hook).tick()
    assert hook.statuses("vision") == [(None, D)]
    assert [e["log_level"] for e in logs if e["event"] == "role.down"] == ["debug"]


def test_interrupted_tick_is_no_evidence(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A ping cancelled by stop() does not count as a failure."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Succeed(), Hang())
    ticker = make_ticker(pool, call_timeout_s=60)
    ticker.tick()
    stopper = threading.Thread(
        target=lambda: pool.wait_for_calls("ping_role", 2, timeout=5) and ticker.stop()
    )
    stopper.start()
    report = ticker.tick()
    stopper.join(5)
    assert report.interrupted
    assert ticker.health()["chat"].status is H
    assert ticker.health()["chat"].failures == 0
    assert ticker.stats().ping_failures == 0


# -- hooks ------------------------------------------------------------------------------


def test_hook_runs_on_the_ticker_thread_once_per_transition(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """Background transitions call the hook on the ticker's thread, never for unchanged status."""
    pool = make_pool(("embed", "chat"))
    pool.script_ping("chat", *[Succeed()] * 3)
    pool.set_ping("chat", Fail())
    hook = Recorder()
    ticker = make_ticker(
        pool, interval_s=0.005, call_timeout_s=10, name="hooked", on_change=hook
    ).start()
    wait_for_ticks(ticker, 15)
    ticker.stop()
    assert set(hook.threads) == {"hooked"}
    assert hook.statuses("embed") == [(None, H)]
    assert hook.statuses("chat") == [(None, H), (H, F), (F, U)]


def test_raising_hook_is_logged_and_does_not_stop_the_tick(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """A hook that raises is logged with its traceback; other transitions and ticks go on."""
    pool = make_pool(("embed", "chat"))
    seen: list[str] = []

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        seen.append(new.role)
        raise RuntimeError(f"hook broke on {new.role}")

    ticker = make_ticker(pool, interval_s=0.005, call_timeout_s=10, on_change=hook)
    with capture_logs() as logs:
        ticker.start()
        report = wait_for_ticks(ticker, 3)
    assert seen == ["embed", "chat"]  # both transitions of the first tick
    failures = [e for e in logs if e["event"] == "hook.failed"]
    assert len(failures) == 2
    assert failures[0]["log_level"] == "error"
    assert isinstance(failures[0]["exc_info"], RuntimeError)
    assert report.number >= 3
    assert ticker.is_running
    assert ticker.exception is None


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda ticker: ticker.tick(), id="tick"),
        pytest.param(lambda ticker: ticker.wait_for_tick(1, timeout=5), id="wait_for_tick"),
    ],
)
def test_a_hook_waiting_for_its_own_tick_is_refused(
    make_pool: MakePool, make_ticker: MakeTicker, call: Callable[[HealthTicker], object]
) -> None:
    """tick() or wait_for_tick() from a hook would wait for its own tick, so it raises."""
    errors: list[BaseException] = []
    ticker: HealthTicker

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        try:
            call(ticker)
        except TickerUsageError as exc:
            errors.append(exc)

    ticker = make_ticker(make_pool(("chat",)), on_change=hook)
    ticker.tick()
    assert len(errors) == 1
    assert "from inside a tick" in str(errors[0])


def test_stop_from_a_hook_on_the_ticker_thread(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """stop() from the ticker's own thread returns False at once and the thread ends after."""
    results: list[bool] = []
    ticker: HealthTicker

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        results.append(ticker.stop(timeout=5))

    pool = make_pool(("chat",))
    # Bound before start(): the first tick's hook may run before start() returns.
    ticker = make_ticker(pool, interval_s=0.005, call_timeout_s=10, on_change=hook)
    ticker.start()
    assert ticker.wait_for_tick(10**6, timeout=5) is None  # returns when the thread ends
    assert results == [False]
    assert ticker.stop(timeout=5)
    assert ticker.last_report is not None
    assert ticker.last_report.number == 1


# -- snapshots and the healthy flag -------------------------------------------------------


def test_health_is_empty_before_the_first_tick(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """No tick, no records; healthy is True."""
    ticker = make_ticker(make_pool(("chat",)))
    assert dict(ticker.health()) == {}
    assert ticker.healthy


def test_health_snapshot_is_read_only(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """The mapping cannot be changed by its reader."""
    ticker = make_ticker(make_pool(("chat",)))
    ticker.tick()
    with pytest.raises(TypeError):
        ticker.health()["chat"] = None  # type: ignore[index]


def test_healthy_only_turns_false_for_unhealthy(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Failing (below the threshold) and down roles leave healthy True; unhealthy does not."""
    pool = make_pool(("embed", "chat"), alive=["chat"])
    pool.set_ping("chat", Fail())
    ticker = make_ticker(pool, failure_threshold=2)
    ticker.tick()
    assert ticker.health()["chat"].status is F
    assert ticker.health()["embed"].status is D
    assert ticker.healthy
    ticker.tick()
    assert ticker.health()["chat"].status is U
    assert not ticker.healthy


def test_health_does_not_wait_for_a_tick_in_progress(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """While a tick hangs on a ping, health() returns the previous snapshot at once."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Succeed(), Hang())
    ticker = make_ticker(pool, call_timeout_s=60, interval_s=0.005)
    ticker.tick()
    before = ticker.health()
    ticker.start()
    assert pool.wait_for_calls("ping_role", 2, timeout=5)
    assert ticker.health() is before
    assert ticker.healthy


def test_snapshots_are_consistent_while_ticks_run(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """Readers on other threads never see records from two different ticks in one snapshot.

    Every role gets the same random outcome on each tick, so within any one
    tick's snapshot all records must agree.
    """
    roles = tuple(f"r{i}" for i in range(6))
    pool = make_pool(roles)
    rng = random.Random(1234)
    plan = [rng.choice([Succeed(), Fail()]) for _ in range(300)]
    for role in roles:
        pool.script_ping(role, *plan)
    ticker = make_ticker(
        pool, interval_s=0.001, call_timeout_s=10, failure_threshold=2, success_threshold=2
    )
    torn: list[Any] = []
    snapshots = 0
    done = threading.Event()

    def read() -> None:
        nonlocal snapshots
        # Each read is followed by a short bounded wait so the readers share
        # the GIL with the ticker instead of starving it.
        while not done.wait(0.0002):
            records = list(ticker.health().values())
            snapshots += 1
            shapes = {
                (r.status, r.consecutive_failures, r.consecutive_successes, r.pings)
                for r in records
            }
            if len(shapes) > 1:
                torn.append(shapes)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        ticker.start()
        wait_for_ticks(ticker, len(plan))
    finally:
        # Stopped here, not by make_ticker's teardown: a ticker still ticking
        # after the call phase logs while pytest prints the test's result.
        assert ticker.stop(timeout=5)
        done.set()
        for reader in readers:
            reader.join(5)
    assert torn == []
    assert snapshots > len(plan)


# -- counters and latency ---------------------------------------------------------------


def test_stats_count_what_happened(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """stats() counts ticks, skips, reaps, pings, failures and timeouts."""
    clock = ManualClock()
    pool = make_pool(("embed", "chat", "rerank"), max_idle_s=10, clock=clock)
    pool.script_ping("chat", Fail(), Hang())
    ticker = make_ticker(pool, call_timeout_s=0.1)
    assert ticker.stats() == TickerStats()
    ticker.tick()  # 3 pings, chat fails
    ticker.tick()  # 3 pings, chat times out
    clock.advance(11)
    ticker.tick()  # all three reaped, no pings
    ticker.tick()  # nothing alive: skipped
    stats = ticker.stats()
    assert stats.ticks == 4
    assert stats.skipped_ticks == 1
    assert stats.reaps == 3
    assert stats.roles_reaped == 3
    assert stats.pings == 6
    assert stats.ping_failures == 2
    assert stats.timeouts == 1
    assert stats.reap_failures == 0
    assert stats.interrupted_ticks == 0
    assert stats.last_tick_duration_s is not None
    assert stats.max_tick_duration_s is not None
    assert stats.max_tick_duration_s >= 0.1  # the tick that waited out the timeout
    assert stats.last_tick_duration_s <= stats.max_tick_duration_s
    assert isinstance(ticker.last_report and ticker.last_report.snapshot_error, type(None))
    assert CallTimeoutError  # the timed-out ping was a CallTimeoutError, counted above


def test_stats_read_during_ticks_are_each_one_ticks_counters(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stats() read from other threads while ticks run never mixes two ticks' counters.

    Every tick here pings both roles, one failing: whole counters always
    have pings == 2 * ticks and ping_failures == ticks. And each read equals
    TickerStats.add applied report by report, the documented rule.
    """
    pool = make_pool(("embed", "chat"))
    pool.set_ping("chat", Fail())
    ticker = make_ticker(pool)
    done = threading.Event()
    torn: list[TickerStats] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            stats = ticker.stats()
            reads += 1
            if stats.pings != 2 * stats.ticks or stats.ping_failures != stats.ticks:
                torn.append(stats)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    expected = TickerStats()
    try:
        for _ in range(60):
            expected = expected.add(ticker.tick())
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=10)
    assert torn == []
    assert reads > 0
    assert ticker.stats() == expected


def test_latency_is_measured_and_kept(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """Each successful ping's round trip is in the report and the role's record."""
    pool = make_pool(("chat", "embed"))
    pool.set_ping("chat", Delay(0.05))
    ticker = make_ticker(pool)
    report = ticker.tick()
    assert report.latencies["chat"] >= 0.05
    assert report.latencies["embed"] < report.latencies["chat"]
    assert ticker.health()["chat"].last_latency_s == report.latencies["chat"]


# -- log once ---------------------------------------------------------------------------


def test_a_role_failing_a_thousand_ticks_logs_unhealthy_once(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """1,000 failed pings in a row give one role.failing and one role.unhealthy warning."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Fail(ConnectionError("refused")))
    ticker = make_ticker(pool, failure_threshold=3)
    with capture_logs() as logs:
        for _ in range(1000):
            ticker.tick()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["role.failing", "role.unhealthy"]
    assert warnings[1]["role"] == "chat"
    assert warnings[1]["consecutive_failures"] == 3
    assert warnings[1]["error"] == "ConnectionError: refused"
    assert ticker.health()["chat"].consecutive_failures == 1000


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["failure_threshold", "success_threshold"])
@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "must be an int >= 1, got 0"),
        (-2, ValueError, "must be an int >= 1, got -2"),
        (True, TypeError, "must be an int >= 1, got True of type bool"),
        (1.5, TypeError, "must be an int >= 1, got 1.5 of type float"),
        ("3", TypeError, "must be an int >= 1, got '3' of type str"),
        (None, TypeError, "must be an int >= 1, got None of type NoneType"),
    ],
)
def test_bad_thresholds(
    make_pool: MakePool,
    lilbee_runtime: LoopRuntime,
    argument: str,
    value: Any,
    error: type[Exception],
    message: str,
) -> None:
    """Thresholds must be ints >= 1; the error names the argument and the value."""
    with pytest.raises(error, match=f"^{argument} {re.escape(message)}"):
        HealthTicker(make_pool(), lilbee_runtime, **{argument: value})


def test_bad_on_change(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """on_change must be callable or None."""
    with pytest.raises(TypeError, match=r"^on_change must be a callable taking"):
        HealthTicker(make_pool(), lilbee_runtime, on_change="print")  # type: ignore[arg-type]


# -- regressions found in review ---------------------------------------------------------


def test_a_stop_during_the_pings_is_not_a_reap_failure(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """When a stop cuts the ping phase short, the reap that had finished is not reported failed."""
    pool = make_pool(("chat", "embed"))
    pool.set_ping("chat", Hang())
    ticker = make_ticker(pool, call_timeout_s=60)
    stopper = threading.Thread(
        target=lambda: pool.wait_for_calls("ping_role", role="chat", timeout=5) and ticker.stop()
    )
    stopper.start()
    report = ticker.tick()
    stopper.join(5)
    assert report.interrupted
    assert report.reap_error is None
    assert ticker.stats().reap_failures == 0
    assert ticker.stats().reaps == 1


def test_a_tick_abandoned_during_the_reap_says_nothing_about_live_roles(
    make_pool: MakePool, lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """Roles alive at the survey are not marked DOWN when the tick gave up before their pings."""
    pool = make_pool(("chat",))
    ticker = make_ticker(pool, call_timeout_s=0.2)
    ticker.tick()
    release = threading.Event()
    original = pool.reap_idle

    async def reap_that_blocks_the_loop() -> tuple[str, ...]:
        release.wait(10)  # a misbehaving pool: blocks the whole loop
        return await original()

    pool.reap_idle = reap_that_blocks_the_loop  # type: ignore[method-assign]
    try:
        report = ticker.tick()
    finally:
        release.set()
    # The loop never came back from the reap: that is the loop's fault, not the reap's.
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert report.loop_error.stage == "reap"
    assert report.reap_error is None and report.failed == {}
    assert report.live == ("chat",)
    assert ticker.health()["chat"].status is H  # unchanged: no evidence either way


def test_a_role_gone_before_its_ping_is_reported_gone_and_down(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A role that dies between the survey and its ping is in report.gone and marked DOWN."""
    pool = make_pool(("embed", "chat"))
    ticker = make_ticker(pool)
    ticker.tick()
    original = pool.reap_idle

    async def reap_and_lose_embed() -> tuple[str, ...]:
        pool.set_alive("embed", False)  # crashes during the reap, unreported
        return await original()

    pool.reap_idle = reap_and_lose_embed  # type: ignore[method-assign]
    report = ticker.tick()
    assert report.gone == ("embed",)
    assert ticker.health()["embed"].status is D


def test_wait_for_tick_on_an_event_loop_thread_is_refused(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """wait_for_tick() on the runtime's loop would stall the tick it waits for, so it raises."""
    ticker = make_ticker(make_pool(("chat",)), interval_s=0.05, call_timeout_s=10).start()

    async def wait_on_loop() -> object:
        return ticker.wait_for_tick(1, timeout=5)

    with pytest.raises(TickerUsageError, match=r"asyncio.to_thread\(ticker.wait_for_tick, n\)"):
        lilbee_runtime.run(wait_on_loop(), timeout=10)
