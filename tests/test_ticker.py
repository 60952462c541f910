"""What one tick does, how the thread runs and stops, and how misuse is refused."""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import os
import threading
import time

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import (
    CallTimeoutError,
    HealthStatus,
    LoopRuntime,
    LoopUnresponsiveError,
    RuntimeUnavailableError,
    TickerUsageError,
    _turns,
)
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import (
    Crash,
    Delay,
    Fail,
    FakePool,
    Hang,
    ManualClock,
    SlowClose,
    WorkerCrashedError,
)

from .conftest import MakePool

ROLES = ("embed", "chat", "rerank")


# -- one tick ---------------------------------------------------------------------


def test_no_live_roles_makes_no_reap_or_ping(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """With nothing alive a tick is a no-op: no reap, no ping, a skipped report."""
    pool = make_pool(ROLES, alive=False)
    report = make_ticker(pool).tick()
    assert report.skipped
    assert report.ok
    assert report.live == ()
    assert pool.count("reap_idle") == 0
    assert pool.count("ping_role") == 0


def test_tick_reaps_then_pings_every_live_role(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A tick calls reap_idle once and pings each live role once, and reports them."""
    pool = make_pool(ROLES, alive=["embed", "chat"])
    report = make_ticker(pool).tick()
    assert report.number == 1
    assert report.live == ("embed", "chat")
    assert set(report.pinged) == {"embed", "chat"}
    assert report.reaped == ()
    assert report.ok and not report.skipped
    assert set(report.latencies) == {"embed", "chat"}
    assert all(latency >= 0.0 for latency in report.latencies.values())
    assert pool.count("reap_idle") == 1
    assert pool.count("ping_role", "embed") == 1
    assert pool.count("ping_role", "chat") == 1
    assert pool.count("ping_role", "rerank") == 0
    methods = [call.method for call in pool.calls if call.method != "is_alive"]
    assert methods.index("reap_idle") < methods.index("ping_role")


def test_pool_is_only_touched_on_the_runtime_loop_thread(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """Every pool call of a tick runs on the runtime's loop thread."""
    pool = make_pool(ROLES)
    make_ticker(pool).tick()
    assert pool.calls
    assert {call.thread_id for call in pool.calls} == {lilbee_runtime.thread.ident}  # type: ignore[union-attr]


def test_one_failing_ping_does_not_stop_the_others(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A ping that raises is reported under its role; the other roles are still pinged."""
    pool = make_pool(ROLES)
    boom = ConnectionError("chat is gone")
    pool.set_ping("chat", Fail(boom))
    report = make_ticker(pool).tick()
    assert set(report.pinged) == {"embed", "rerank"}
    assert report.failed == {"chat": boom}
    assert not report.ok


def test_failing_reap_does_not_stop_pings(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A reap_idle that raises is reported, and every live role is still pinged."""
    pool = make_pool(ROLES)
    pool.set_reap(Fail(RuntimeError("reap broke")))
    report = make_ticker(pool).tick()
    assert isinstance(report.reap_error, RuntimeError)
    assert set(report.pinged) == set(ROLES)
    assert not report.ok


def test_reaped_role_is_not_respawned(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A worker reaped for idleness stays down: its ping is skipped, so it is not spawned again."""
    clock = ManualClock()
    pool = make_pool(ROLES, max_idle_s=60.0, clock=clock)
    ticker = make_ticker(pool)
    clock.advance(30)
    pool.use("chat")  # chat was used recently; the others go idle
    clock.advance(45)
    report = ticker.tick()
    assert set(report.reaped) == {"embed", "rerank"}
    assert report.pinged == ("chat",)
    assert pool.count("ping_role", "embed") == 0
    assert pool.spawns("embed") == 0 and not pool.is_alive("embed")
    assert pool.spawns("rerank") == 0 and not pool.is_alive("rerank")

    later = ticker.tick()
    assert later.live == ("chat",)
    assert pool.spawns("embed") == 0 and pool.spawns("rerank") == 0


def test_role_that_dies_between_survey_and_ping_is_not_pinged(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """The alive check runs on the loop right before each ping, after the reap."""
    pool = make_pool(ROLES)
    # reap_idle itself kills "embed" without reporting it, as a crash would.
    original = pool.reap_idle

    async def reap_and_lose_embed() -> tuple[str, ...]:
        pool.set_alive("embed", False)
        return await original()

    pool.reap_idle = reap_and_lose_embed  # type: ignore[method-assign]
    report = make_ticker(pool).tick()
    assert report.live == ROLES
    assert set(report.pinged) == {"chat", "rerank"}
    assert "embed" not in report.failed
    assert pool.spawns("embed") == 0


def test_pings_run_concurrently(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """Eight 100 ms pings take about one ping's time, not eight."""
    roles = tuple(f"role{i}" for i in range(8))
    pool = make_pool(roles)
    for role in roles:
        pool.set_ping(role, Delay(0.1))
    report = make_ticker(pool).tick()
    assert set(report.pinged) == set(roles)
    assert pool.max_concurrent_pings == 8
    assert report.duration_s < 0.4, report.duration_s  # sequential would be >= 0.8


def test_hung_ping_times_out_and_its_task_is_cancelled(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A ping outliving call_timeout_s is reported as a TimeoutError and cancelled on the loop."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    report = make_ticker(pool, call_timeout_s=0.2).tick()
    error = report.failed["chat"]
    assert isinstance(error, TimeoutError)
    assert isinstance(error, CallTimeoutError)
    assert error.call == "ping_role('chat')" and error.timeout_s == 0.2
    assert set(report.pinged) == {"embed", "rerank"}
    assert pool.wait_for_cancelled(1, timeout=5)
    assert [call.role for call in pool.cancelled] == ["chat"]


def test_slow_reap_times_out_is_never_cancelled_and_never_overlaps(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A reap past call_timeout_s is reported, left to finish, and not started again meanwhile."""
    pool = make_pool(ROLES)
    pool.script_reap(SlowClose(0.6))
    ticker = make_ticker(pool, call_timeout_s=0.2)
    first = ticker.tick()
    assert isinstance(first.reap_error, CallTimeoutError)
    assert not first.reap_error.still_running
    assert first.snapshot_error is None and first.loop_error is None
    assert set(first.pinged) == set(ROLES)  # the pings still go ahead
    second = ticker.tick()  # the first reap is still closing its workers
    assert isinstance(second.reap_error, CallTimeoutError)
    assert second.reap_error.still_running
    assert "still running" in str(second.reap_error)
    assert pool.count("reap_idle") == 1
    assert ticker.stop(timeout=5)  # waits for the reap, which the pool's bound ends
    assert pool.reaps_in_flight == 0 and pool.max_concurrent_reaps == 1
    assert pool.cancelled == () and pool.leaked == ()
    assert ticker.stats().timeouts == 2 and ticker.stats().reap_failures == 2


def test_blocked_loop_is_reported_as_a_loop_error(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """A loop that cannot start the tick in time is the loop's error; nothing is called."""
    pool = make_pool(ROLES)
    release = threading.Event()
    entered = threading.Event()

    async def block_the_loop() -> None:
        entered.set()
        release.wait(10)  # deliberately blocks the whole loop thread

    blocker = lilbee_runtime.submit(block_the_loop())
    assert entered.wait(5)
    try:
        report = make_ticker(pool, call_timeout_s=0.1).tick()
    finally:
        release.set()
    blocker.result(5)
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert report.loop_error.stage == "start"
    assert report.snapshot_error is None and report.failed == {}
    assert report.live == () and not report.skipped and not report.ok
    assert pool.count("reap_idle") == 0 and pool.count("ping_role") == 0


def test_crashing_worker_is_reported_and_left_down(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A worker that dies during its ping is a failure, and the next tick does not revive it."""
    pool = make_pool(ROLES)
    pool.script_ping("rerank", Crash())
    ticker = make_ticker(pool)
    report = ticker.tick()
    assert isinstance(report.failed["rerank"], WorkerCrashedError)
    assert ticker.tick().live == ("embed", "chat")
    assert pool.spawns("rerank") == 0


def test_ticks_are_numbered_and_last_report_kept(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Reports are numbered from 1 and the latest is last_report."""
    ticker = make_ticker(make_pool(ROLES))
    assert ticker.last_report is None
    first, second = ticker.tick(), ticker.tick()
    assert (first.number, second.number) == (1, 2)
    assert ticker.last_report is second
    assert second.started_at >= first.started_at


# -- the background thread --------------------------------------------------------


def test_background_thread_ticks_on_its_cadence(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """A started ticker ticks by itself at a small interval, in a named daemon thread."""
    pool = make_pool(ROLES)
    ticker = make_ticker(pool, interval_s=0.02, call_timeout_s=10, name="cadence-test").start()
    assert ticker.is_running
    report = wait_for_ticks(ticker, 5)
    assert report.number >= 5
    threads = [t for t in threading.enumerate() if t.name == "cadence-test"]
    assert len(threads) == 1 and threads[0].daemon
    assert pool.count("reap_idle") >= 5


def test_first_tick_waits_one_interval(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """The thread does not tick at start: the first tick is one interval later."""
    ticker = make_ticker(make_pool(ROLES), interval_s=3600).start()
    assert ticker.wait_for_tick(1, timeout=0.2) is None
    assert ticker.stop()


def test_manual_and_background_ticks_never_overlap(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """tick() from several threads and the background thread take turns."""
    pool = make_pool(("only",))
    pool.set_ping("only", Delay(0.02))
    ticker = make_ticker(pool, interval_s=0.005, call_timeout_s=10).start()
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(5):
                ticker.tick()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    wait_for_ticks(ticker, 20)
    assert pool.max_concurrent_pings == 1
    assert pool.count("ping_role") >= 15


def test_stop_returns_promptly_during_a_hung_ping(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stop() cancels a hung ping instead of waiting out call_timeout_s."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=60).start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    started = time.monotonic()
    assert ticker.stop(timeout=5)
    assert time.monotonic() - started < 2.0  # far below call_timeout_s
    assert not ticker.is_running
    assert pool.wait_for_cancelled(1, timeout=5)
    report = ticker.last_report
    assert report is not None and report.interrupted
    assert isinstance(report.failed["chat"], concurrent.futures.CancelledError)


def test_setting_stop_event_directly_stops_it_during_a_hung_ping(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """An application-wide stop event set from elsewhere ends the thread without stop()."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    shutdown = threading.Event()
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=60, stop_event=shutdown).start()
    assert ticker.stop_event is shutdown
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    started = time.monotonic()
    shutdown.set()
    assert ticker.join(timeout=5)
    assert time.monotonic() - started < 2.0  # far below call_timeout_s
    assert not ticker.is_running


def test_stop_from_the_runtime_loop_thread(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """stop() called on the loop thread, while the ticker waits on that loop, does not deadlock."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=60).start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)

    async def stop_from_loop() -> bool:
        return ticker.stop(timeout=5)  # blocks the loop while it joins: that is the point

    started = time.monotonic()
    assert lilbee_runtime.run(stop_from_loop(), timeout=10)
    assert time.monotonic() - started < 2.0
    assert not ticker.is_running


def test_stop_is_idempotent_and_safe_before_start(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stop() before start() and stop() twice both return True."""
    ticker = make_ticker(make_pool(ROLES))
    assert ticker.stop()
    assert ticker.stop()
    running = make_ticker(make_pool(ROLES), interval_s=0.01, call_timeout_s=10).start()
    assert running.stop()
    assert running.stop()
    assert not running.is_running


def test_context_manager_stops_on_exception(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """Leaving the with block by an exception stops the ticker and lets the exception through."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.01, call_timeout_s=10)
    entered = []

    def body() -> None:
        with ticker as inside:
            entered.append((inside, inside.is_running))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        body()
    assert entered == [(ticker, True)]
    assert not ticker.is_running
    assert ticker.stop_event.is_set()


def test_runtime_shut_down_mid_run_ends_the_thread(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """When submit() starts raising, the thread logs one warning, ends, and tick() raises."""
    runtime = LoopRuntime(name="short-lived").start()
    pool = FakePool(ROLES, loop_thread=runtime.thread)
    ticker = make_ticker(pool, runtime, interval_s=0.01, call_timeout_s=10).start()
    with capture_logs() as logs:
        ticker.wait_for_tick(2, timeout=5)
        assert runtime.shutdown(timeout=5)
        assert ticker.join(timeout=5)  # the thread ends by itself
        assert not ticker.is_running
        with pytest.raises(RuntimeUnavailableError) as excinfo:
            ticker.tick()
    assert excinfo.value.__cause__ is not None
    assert "runtime.submit() raised" in str(excinfo.value)
    unavailable = [e for e in logs if e["event"] == "runtime.unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0]["log_level"] == "warning"
    stopped = [e for e in logs if e["event"] == "ticker.stopped"]
    assert stopped and stopped[0]["reason"] == "runtime_unavailable"
    assert ticker.exception is None
    gc.collect()  # a never-awaited coroutine would warn here, and warnings are errors


# -- misuse ---------------------------------------------------------------------------


def test_start_twice_raises(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A ticker runs once: a second start() is refused with a message that says what to do."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.01, call_timeout_s=10).start()
    with pytest.raises(TickerUsageError, match=r"already started.*create a new HealthTicker"):
        ticker.start()


def test_start_after_stop_raises(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """start() after stop() is refused."""
    ticker = make_ticker(make_pool(ROLES))
    ticker.stop()
    with pytest.raises(TickerUsageError, match="already stopped"):
        ticker.start()


def test_start_with_set_stop_event_raises(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """start() with a stop_event that is already set is refused."""
    event = threading.Event()
    event.set()
    ticker = make_ticker(make_pool(ROLES), stop_event=event)
    with pytest.raises(TickerUsageError, match="stop_event is already set"):
        ticker.start()
    assert not ticker.is_running


def test_tick_after_stop_raises(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """tick() on a stopped ticker is refused."""
    ticker = make_ticker(make_pool(ROLES))
    ticker.stop()
    with pytest.raises(TickerUsageError, match="stopped ticker"):
        ticker.tick()


def test_tick_from_an_event_loop_thread_raises(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """tick() from the runtime's loop thread would deadlock, so it raises instead."""
    ticker = make_ticker(make_pool(ROLES))

    async def tick_on_loop() -> None:
        ticker.tick()

    with pytest.raises(TickerUsageError, match=r"asyncio.to_thread\(ticker.tick\)"):
        lilbee_runtime.run(tick_on_loop(), timeout=5)


def test_wait_for_tick_validates_and_times_out(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """wait_for_tick() returns None on timeout and rejects a bad tick number."""
    ticker = make_ticker(make_pool(ROLES), interval_s=3600)
    ticker.tick()
    assert ticker.wait_for_tick(1, timeout=0) is ticker.last_report
    ticker.start()
    assert ticker.wait_for_tick(2, timeout=0.05) is None
    with pytest.raises(ValueError, match="number must be an int >= 1, got 0"):
        ticker.wait_for_tick(0)


def test_wait_for_tick_on_a_ticker_never_started_says_so(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Waiting on a ticker that was never started raises at once, naming start() and tick()."""
    ticker = make_ticker(make_pool(ROLES))
    started = time.monotonic()
    with pytest.raises(TickerUsageError, match=r"never started.*call start\(\) first.*tick\(\)"):
        ticker.wait_for_tick(1, timeout=30)
    assert time.monotonic() - started < 5


def test_every_waiter_is_woken_by_the_tick_it_waits_for(
    make_pool: MakePool, make_ticker: MakeTicker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads in wait_for_tick() are woken by the report itself, never left to their own check.

    The publishing thread skips the notify while nobody waits. With the
    waiters' own re-check stretched to a minute, a lost wake-up would leave
    a waiter stuck past the join's bound.
    """
    monkeypatch.setattr(_turns, "_WAITER_CHECK_S", 60.0)
    ticker = make_ticker(make_pool(ROLES))
    ticks = 30
    got: list[int] = []
    lock = threading.Lock()
    ready = threading.Barrier(5)

    def waiter() -> None:
        ready.wait(timeout=10)
        for number in range(1, ticks + 1):
            report = ticker.wait_for_tick(number, timeout=30)
            assert report is not None and report.number >= number
            with lock:
                got.append(number)

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for thread in threads:
        thread.start()
    ready.wait(timeout=10)
    for _ in range(ticks):
        ticker.tick()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(got) == 4 * ticks


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_child_sees_a_stopped_ticker(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """After os.fork() the child's copy is inert, and the parent's ticker keeps ticking."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.01, call_timeout_s=10).start()
    wait_for_ticks(ticker, 1)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 0
        try:
            if ticker.is_running:
                code = 1
            started = time.monotonic()
            if not ticker.stop(timeout=5) or time.monotonic() - started > 0.5:
                code = 2
            try:
                ticker.tick()
                code = 3
            except TickerUsageError:
                pass
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    before = ticker.last_report
    assert before is not None
    wait_for_ticks(ticker, before.number + 3)
    assert ticker.is_running


def test_repr_names_state(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """repr() shows the name, state and interval."""
    ticker = make_ticker(make_pool(ROLES), name="r", interval_s=0.5, call_timeout_s=10)
    assert repr(ticker) == "<HealthTicker 'r' new interval_s=0.5 ticks=0>"
    ticker.start()
    assert "running" in repr(ticker)
    ticker.stop()
    assert "stopped" in repr(ticker)


def test_join_waits_for_a_thread_stopped_through_its_event(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """join() waits for the thread after the stop event was set elsewhere; it sets nothing."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.01, call_timeout_s=10)
    assert ticker.join(timeout=0)  # never started: nothing to wait for
    ticker.start()
    wait_for_ticks(ticker, 1)
    assert not ticker.join(timeout=0.05)  # join() alone does not stop it
    assert ticker.is_running
    ticker.stop_event.set()
    assert ticker.join(timeout=5)
    assert not ticker.is_running


def test_a_bug_in_a_tick_is_logged_kept_and_survived(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """An unexpected exception in a tick is logged with its traceback, kept, and ticking goes on."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.005, call_timeout_s=10)
    real_tick = ticker._tick
    calls = 0

    def buggy_once() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the library")
        return real_tick()

    ticker._tick = buggy_once  # type: ignore[method-assign]
    with capture_logs() as logs:
        ticker.start()
        wait_for_ticks(ticker, 3)
    assert ticker.is_running
    assert isinstance(ticker.exception, RuntimeError)
    crashed = [e for e in logs if e["event"] == "tick.crashed"]
    assert len(crashed) == 1
    assert crashed[0]["log_level"] == "error"
    assert crashed[0]["exc_info"] is ticker.exception
    ticker.stop()
    ticker._exception = None  # acknowledged: make_ticker's teardown would flag it


class _CountingRuntime:
    """Wraps a runtime and counts submit() calls: each is a hop to the loop."""

    def __init__(self, runtime: LoopRuntime) -> None:
        self.runtime = runtime
        self.submits = 0

    def submit(self, coro):  # type: ignore[no-untyped-def]
        self.submits += 1
        return self.runtime.submit(coro)


@pytest.mark.parametrize("live", [0, 1, 64])
def test_a_tick_is_one_round_trip_to_the_loop(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime, live: int
) -> None:
    """Survey, reap and every ping of a tick go to the loop in one submit, whatever N is."""
    roles = tuple(f"r{i}" for i in range(64))
    pool = make_pool(roles, alive=roles[:live])
    runtime = _CountingRuntime(lilbee_runtime)
    report = make_ticker(pool, runtime).tick()
    assert len(report.pinged) == live
    assert runtime.submits == 1


def test_setting_the_default_stop_event_wakes_a_tick_without_polling(
    make_pool: MakePool, make_ticker: MakeTicker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting the ticker's own stop event cancels the calls in flight at once, as stop() does."""
    import lilbee_ticker._tickrun

    # Polling would now take 30 s to notice: only the event itself can be prompt.
    monkeypatch.setattr(lilbee_ticker._tickrun, "_STOP_CHECK_S", 30.0)
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=60).start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    started = time.monotonic()
    ticker.stop_event.set()
    assert ticker.join(timeout=5)
    assert time.monotonic() - started < 2.0
    assert pool.wait_for_cancelled(1, timeout=5)


def test_runtime_shut_down_during_a_tick_is_not_a_ping_failure(make_ticker: MakeTicker) -> None:
    """A tick whose calls the runtime cancels as it shuts down is interrupted, not failed."""
    runtime = LoopRuntime(name="shut-down-mid-tick").start()
    pool = FakePool(ROLES, loop_thread=runtime.thread)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(pool, runtime, call_timeout_s=60)
    shutdown = threading.Thread(
        target=lambda: (
            pool.wait_for_calls("ping_role", role="chat", timeout=5) and runtime.shutdown(timeout=5)
        )
    )
    shutdown.start()
    report = ticker.tick()
    shutdown.join(5)
    assert report.interrupted
    assert "chat" not in {r for r, h in ticker.health().items() if h.status.value == "failing"}
    assert ticker.stats().ping_failures == 0


# -- scale and stopping without polling (issue 14) -------------------------------------------


def test_a_tick_over_4096_roles_is_consistent(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """4096 roles: every live role pinged once, every role recorded, transitions once each."""
    roles = tuple(f"role-{i:04d}" for i in range(4096))
    pool = make_pool(roles, alive=roles[:4000])
    for role in roles[:10]:
        pool.set_ping(role, Fail())
    ticker = make_ticker(pool, failure_threshold=2)
    with capture_logs() as logs:
        first = ticker.tick()
        second = ticker.tick()
    assert len(first.pinged) == 3990 and set(first.failed) == set(roles[:10])
    assert pool.count("ping_role") == 8000
    health = ticker.health()
    assert len(health) == 4096
    assert sum(h.status is HealthStatus.DOWN for h in health.values()) == 96
    assert sum(h.status is HealthStatus.UNHEALTHY for h in health.values()) == 10
    assert second.ok is False and len(second.pinged) == 3990
    events = [e["event"] for e in logs]
    assert events.count("role.failing") == 10 and events.count("role.unhealthy") == 10


class _CountingEvent(threading.Event):
    """A plain event (its wait() is Event.wait) that counts who asks whether it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: collections.Counter[str] = collections.Counter()

    def is_set(self) -> bool:
        self.checks[threading.current_thread().name] += 1
        return super().is_set()


def test_an_application_event_stops_a_tick_without_polling(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Setting an application's own Event wakes a tick waiting on a hung ping; nothing polls it."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    event = _CountingEvent()
    ticker = make_ticker(pool, stop_event=event, interval_s=0.01, call_timeout_s=60.0, name="app")
    ticker.start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    checks_at_hang = event.checks["app"]
    # While the ping hangs the thread sleeps: a polling tick would look at the
    # event every 25 ms, forty times a second.
    assert ticker.wait_for_tick(10**9, timeout=0.5) is None
    checks_while_hung = event.checks["app"] - checks_at_hang
    event.set()
    assert ticker.join(timeout=5)
    assert checks_while_hung <= 2, f"the ticker looked at the event {checks_while_hung} times"
    assert pool.wait_for_cancelled(1, timeout=5)
    watchers = [t for t in threading.enumerate() if t.name == "lilbee-ticker-stop-watch"]
    for watcher in watchers:
        watcher.join(5)
    assert not any(w.is_alive() for w in watchers)


def test_one_watcher_serves_every_ticker_on_an_event(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Two tickers on one application event share one watcher; setting it stops both at once."""
    event = threading.Event()
    before = {t for t in threading.enumerate() if t.name == "lilbee-ticker-stop-watch"}
    pools = [make_pool(ROLES), make_pool(ROLES)]
    for pool in pools:
        pool.set_ping("chat", Hang())
    tickers = [
        make_ticker(pool, stop_event=event, interval_s=0.01, call_timeout_s=60.0).start()
        for pool in pools
    ]
    for pool in pools:
        assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    watchers = {t for t in threading.enumerate() if t.name == "lilbee-ticker-stop-watch"} - before
    assert len(watchers) == 1
    event.set()
    for ticker in tickers:
        assert ticker.join(timeout=5)
    for watcher in watchers:
        watcher.join(5)
        assert not watcher.is_alive()


def test_a_step_event_is_watched_like_any_event_and_stops_at_once(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A StepEvent (a wait() of its own) is relayed as any event is; setting it stops the tick."""
    from lilbee_ticker.testing import StepEvent

    pool = make_pool(ROLES)
    pool.set_ping("chat", Hang())
    event = StepEvent()
    ticker = make_ticker(pool, stop_event=event, interval_s=3600.0, call_timeout_s=60.0).start()
    event.release()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    assert any(t.name == "lilbee-ticker-stop-watch" for t in threading.enumerate())
    started = time.monotonic()
    event.set()
    assert ticker.join(timeout=5)
    assert time.monotonic() - started < 2.0


def test_loop_busy_counts_the_ticks_own_steps_not_its_waits(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """loop_busy_s includes the pool's synchronous work in the tick, not the time spent waiting."""

    class SlowSurvey(FakePool):
        @property
        def registered_roles(self) -> tuple[str, ...]:
            threading.Event().wait(0.05)  # synchronous work on the loop: it holds the loop
            return super().registered_roles

    pool = SlowSurvey(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Delay(0.3))  # waiting: does not hold the loop
    report = make_ticker(pool).tick()
    assert report.loop_busy_s is not None
    assert 0.05 <= report.loop_busy_s < 0.3 <= report.duration_s
    stats = make_ticker(pool).stats()
    assert stats.last_loop_busy_s is None
