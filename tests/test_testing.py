"""lilbee_ticker.testing: FakePool's behaviours, its thread check, and stepping a ticker."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import (
    Crash,
    Delay,
    Fail,
    FakePool,
    Hang,
    IgnoreCancel,
    ManualClock,
    SlowClose,
    StepEvent,
    Succeed,
    WorkerCrashedError,
    WrongThreadError,
    step,
)

from .conftest import MakePool


def _alive(runtime: LoopRuntime, pool: FakePool, role: str) -> bool:
    async def read() -> bool:
        return pool.accessor(role).is_alive

    return runtime.run(read())


# -- FakePool: the protocol surface ---------------------------------------------------


def test_registered_roles_and_alive_flags(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Roles are registered in order; alive= picks which start alive."""
    pool = make_pool(("embed", "chat", "rerank"), alive=["chat"])

    async def survey() -> tuple[tuple[str, ...], list[bool]]:
        roles = pool.registered_roles
        return roles, [pool.accessor(r).is_alive for r in roles]

    assert lilbee_runtime.run(survey()) == (("embed", "chat", "rerank"), [False, True, False])


def test_alive_must_name_registered_roles() -> None:
    """alive= naming an unknown role is refused."""
    with pytest.raises(ValueError, match=r"not registered: \['nope'\]"):
        FakePool(("a",), alive=["nope"])


def test_succeed_behaviour(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """The default ping succeeds at once and is recorded."""
    pool = make_pool(("chat",))
    lilbee_runtime.run(pool.ping_role("chat"))
    assert pool.count("ping_role", "chat") == 1


def test_fail_behaviour_raises_the_given_error(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """Fail(error) makes the ping raise that error."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Fail(TimeoutError("worker slow")))
    with pytest.raises(TimeoutError, match="worker slow"):
        lilbee_runtime.run(pool.ping_role("chat"))


def test_fail_does_not_pile_up_tracebacks(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Raising the same scripted error many times does not grow its traceback."""
    pool = make_pool(("chat",))
    error = ConnectionError("x")
    pool.set_ping("chat", Fail(error))
    depths = []
    for _ in range(3):
        with pytest.raises(ConnectionError):
            lilbee_runtime.run(pool.ping_role("chat"))
        tb, depth = error.__traceback__, 0
        while tb is not None:
            tb, depth = tb.tb_next, depth + 1
        depths.append(depth)
    assert depths[0] == depths[1] == depths[2]


def test_hang_behaviour_waits_until_cancelled(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """Hang() never answers; cancelling it is recorded in cancelled."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Hang())
    future = lilbee_runtime.submit(pool.ping_role("chat"))
    assert pool.wait_for_calls("ping_role", role="chat", timeout=5)
    assert not future.done()
    future.cancel()
    assert pool.wait_for_cancelled(1, timeout=5)
    assert pool.cancelled[0].role == "chat"


def test_delay_behaviour_takes_its_time(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Delay(s) answers after s seconds on the loop."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Delay(0.05))
    loop_time = lilbee_runtime.loop.time
    start = loop_time()
    lilbee_runtime.run(pool.ping_role("chat"))
    assert loop_time() - start >= 0.05


def test_delay_rejects_bad_seconds() -> None:
    """Delay needs a finite number of seconds >= 0."""
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        Delay(float("nan"))


def test_crash_behaviour_kills_the_role(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Crash() marks the role dead and raises WorkerCrashedError."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Crash())
    with pytest.raises(WorkerCrashedError, match="'chat' crashed"):
        lilbee_runtime.run(pool.ping_role("chat"))
    assert not pool.is_alive("chat")


def test_script_runs_in_order_then_the_default(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """Scripted behaviours are used one per ping, in order; then the default applies."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", Fail(), Succeed(), Fail())
    pool.set_ping("chat", Succeed())
    outcomes = []
    for _ in range(5):
        try:
            lilbee_runtime.run(pool.ping_role("chat"))
            outcomes.append("ok")
        except ConnectionError:
            outcomes.append("fail")
    assert outcomes == ["fail", "ok", "fail", "ok", "ok"]


def test_ping_respawns_a_dead_role(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Like a real pool, ping_role on a dead role spawns it."""
    pool = make_pool(("chat",), alive=False)
    lilbee_runtime.run(pool.ping_role("chat"))
    assert pool.is_alive("chat")
    assert pool.spawns("chat") == 1


def test_reap_idle_uses_the_controlled_clock(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """reap_idle reaps exactly the roles unused for more than max_idle_s on the pool's clock."""
    clock = ManualClock(1000.0)
    pool = make_pool(("embed", "chat"), max_idle_s=60, clock=clock)
    clock.advance(60)
    assert lilbee_runtime.run(pool.reap_idle()) == ()  # exactly max_idle_s is not idle enough
    pool.use("chat")
    clock.advance(0.5)
    assert lilbee_runtime.run(pool.reap_idle()) == ("embed",)
    assert not pool.is_alive("embed")
    assert pool.is_alive("chat")


def test_a_ping_is_not_a_use(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Pings do not reset the idle time, or health checks would keep every worker alive."""
    clock = ManualClock()
    pool = make_pool(("chat",), max_idle_s=10, clock=clock)
    clock.advance(11)
    lilbee_runtime.run(pool.ping_role("chat"))
    assert lilbee_runtime.run(pool.reap_idle()) == ("chat",)


def test_work_in_flight_counts_as_liveness(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """A role with a call in progress is not reaped, however long the call has run."""
    clock = ManualClock()
    pool = make_pool(("chat",), max_idle_s=10, clock=clock)
    call = lilbee_runtime.submit(pool.call("chat", seconds=0.2))
    assert pool.wait_for_calls("call", role="chat", timeout=5)
    clock.advance(100)
    assert lilbee_runtime.run(pool.reap_idle()) == ()
    call.result(timeout=5)  # the work ends, and counts as the latest use
    assert lilbee_runtime.run(pool.reap_idle()) == ()
    clock.advance(11)
    assert lilbee_runtime.run(pool.reap_idle()) == ("chat",)


def test_reap_behaviours(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """script_reap makes reap_idle fail or hang before it reaps."""
    pool = make_pool(("chat",))
    pool.script_reap(Fail(RuntimeError("reap broke")), Hang())
    with pytest.raises(RuntimeError, match="reap broke"):
        lilbee_runtime.run(pool.reap_idle())
    with pytest.raises(TimeoutError):
        lilbee_runtime.run(pool.reap_idle(), timeout=0.05)
    assert pool.wait_for_cancelled(1, timeout=5)
    assert lilbee_runtime.run(pool.reap_idle()) == ()


def test_slow_close_takes_roles_out_first_and_leaks_them_if_cancelled(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """SlowClose reaps like a real pool: roles leave at once; a cancel mid-close leaks them."""
    clock = ManualClock()
    pool = make_pool(("embed", "chat"), max_idle_s=1.0, clock=clock)
    clock.advance(2.0)
    pool.script_reap(SlowClose(0.05), SlowClose(60.0))
    assert lilbee_runtime.run(pool.reap_idle()) == ("embed", "chat")
    assert pool.leaked == () and pool.max_concurrent_reaps == 1
    pool.set_alive("embed")
    clock.advance(2.0)
    with pytest.raises(TimeoutError):
        lilbee_runtime.run(pool.reap_idle(), timeout=0.05)  # cancelled part-way
    assert pool.wait_for_cancelled(1, timeout=5)
    assert pool.leaked == ("embed",)
    assert not pool.is_alive("embed")  # gone from the pool, yet still running: leaked


def test_ignore_cancel_swallows_the_cancel_and_runs_on(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """IgnoreCancel keeps running after its cancel, then returns (or raises) as scripted."""
    pool = make_pool(("chat",))
    pool.script_ping("chat", IgnoreCancel(0.05), IgnoreCancel(0.0, error=RuntimeError("late")))

    async def ping_cancelled_early() -> BaseException | None:
        task = asyncio.ensure_future(pool.ping_role("chat"))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except BaseException as exc:
            return exc
        return None

    assert lilbee_runtime.run(ping_cancelled_early()) is None  # returned as if fine
    assert isinstance(lilbee_runtime.run(ping_cancelled_early()), RuntimeError)


def test_pings_count_as_use_only_when_asked(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """With pings_count_as_use a successful ping stamps last use, as lilbee's pool does."""
    clock = ManualClock()
    plain = make_pool(("chat",), max_idle_s=1.0, clock=clock)
    counting = make_pool(("chat",), max_idle_s=1.0, clock=clock, pings_count_as_use=True)
    clock.advance(2.0)
    for pool in (plain, counting):
        lilbee_runtime.run(pool.ping_role("chat"))
    assert lilbee_runtime.run(plain.reap_idle()) == ("chat",)
    assert lilbee_runtime.run(counting.reap_idle()) == ()


def test_a_pool_that_bounds_its_pings_declares_and_uses_the_timeout(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """With ping_timeout_s, ping_role takes timeout= and ends a hung ping with its own error."""
    import inspect

    pool = make_pool(("chat",), ping_timeout_s=0.05)
    pool.set_ping("chat", Hang())
    assert "timeout" in inspect.signature(pool.ping_role).parameters
    assert "timeout" not in inspect.signature(make_pool(("chat",)).ping_role).parameters
    with pytest.raises(TimeoutError, match="the pool's own bound"):
        lilbee_runtime.run(pool.ping_role("chat"))  # its own default
    with pytest.raises(TimeoutError, match=r"0\.01s"):
        lilbee_runtime.run(pool.ping_role("chat", timeout=0.01))  # type: ignore[call-arg]
    assert pool.ping_timeouts == (None, 0.01)


def test_call_log_records_threads(make_pool: MakePool, lilbee_runtime: LoopRuntime) -> None:
    """Every protocol call is logged with the name and ident of the thread it ran on."""
    pool = make_pool(("chat",))
    lilbee_runtime.run(pool.ping_role("chat"))
    (call,) = pool.calls_to("ping_role")
    assert call.thread == lilbee_runtime.name
    assert lilbee_runtime.thread is not None
    assert call.thread_id == lilbee_runtime.thread.ident


def test_call_log_is_bounded_but_counts_are_not(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """keep_calls bounds the kept log; count() still counts every call."""
    pool = make_pool(("chat",), keep_calls=3)

    async def ping_many() -> None:
        for _ in range(10):
            await pool.ping_role("chat")

    lilbee_runtime.run(ping_many())
    assert len(pool.calls) == 3
    assert pool.count("ping_role") == 10


def test_wait_for_calls_times_out(make_pool: MakePool) -> None:
    """wait_for_calls returns False when the calls do not come in time."""
    assert make_pool(("chat",)).wait_for_calls("ping_role", timeout=0.01) is False


# -- FakePool: the thread check ---------------------------------------------------------


def test_state_touched_from_the_test_thread_is_caught(lilbee_runtime: LoopRuntime) -> None:
    """Reading pool state off the loop thread raises WrongThreadError and is recorded."""
    pool = FakePool(("chat",), loop_thread=lilbee_runtime.thread)
    with pytest.raises(WrongThreadError, match=r"from thread 'MainThread'.*submit a coroutine"):
        _ = pool.registered_roles
    with pytest.raises(WrongThreadError):
        _ = pool.accessor("chat").is_alive
    assert len(pool.violations) == 2
    assert pool.violations[0].operation == "registered_roles"
    assert pool.calls == ()


def test_unbound_pool_binds_to_the_first_loop_thread(lilbee_runtime: LoopRuntime) -> None:
    """Without loop_thread, the first thread running an event loop becomes the owner."""
    pool = FakePool(("chat",))
    with pytest.raises(WrongThreadError, match="a thread running its event loop"):
        _ = pool.registered_roles
    assert _alive(lilbee_runtime, pool, "chat")

    async def elsewhere() -> None:
        _ = pool.registered_roles

    with pytest.raises(WrongThreadError, match="loop thread 'lilbee-test-runtime'"):
        asyncio.run(elsewhere())
    pool_violations = pool.violations
    assert len(pool_violations) == 2


def test_a_ticker_that_reads_the_pool_from_its_own_thread_is_caught(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """A broken ticker that surveys the pool from its own thread is caught by FakePool."""
    pool = FakePool(("chat",), loop_thread=lilbee_runtime.thread)

    class BrokenTicker(HealthTicker):
        def tick(self):  # type: ignore[no-untyped-def]
            return [r for r in pool.registered_roles if pool.accessor(r).is_alive]

    with pytest.raises(WrongThreadError):
        BrokenTicker(pool, lilbee_runtime).tick()
    assert pool.violations


# -- stepping the background thread ---------------------------------------------------


def test_step_runs_exactly_one_background_tick(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """step() makes the background thread tick once, at once, and returns that tick's report."""
    pool = make_pool(("chat",))
    threads: list[str] = []
    ticker = make_ticker(
        pool,
        interval_s=3600,
        stop_event=StepEvent(),
        name="stepped",
        on_change=lambda old, new: threads.append(threading.current_thread().name),
    ).start()
    first = step(ticker)
    assert first.number == 1
    assert threads == ["stepped"]  # the tick ran on the background thread
    second = step(ticker)
    assert second.number == 2
    assert pool.count("ping_role") == 2
    assert ticker.wait_for_tick(3, timeout=0.05) is None  # no tick without a step


def test_setting_a_step_event_stops_the_ticker(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A StepEvent is still a stop event: setting it ends the thread."""
    event = StepEvent()
    ticker = make_ticker(make_pool(("chat",)), interval_s=3600, stop_event=event).start()
    step(ticker)
    event.set()
    assert ticker.wait_for_tick(2, timeout=5) is None
    assert ticker.stop(timeout=5)
    assert event.is_set()


def test_step_event_behaves_like_an_event() -> None:
    """wait() returns True once set, False on timeout, and False once per release."""
    event = StepEvent()
    assert isinstance(event, threading.Event)
    assert event.wait(0.01) is False
    event.release(2)
    assert event.wait(60) is False
    assert event.wait(60) is False
    event.set()
    assert event.is_set()
    assert event.wait(60) is True
    event.clear()
    assert not event.is_set()


def test_step_needs_a_step_event(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """step() on a ticker without a StepEvent says how to create one."""
    ticker = make_ticker(make_pool(("chat",)), interval_s=3600).start()
    with pytest.raises(TypeError, match=r"stop_event=StepEvent\(\), interval_s=3600"):
        step(ticker)


def test_step_needs_a_running_ticker(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """step() on a ticker that was never started fails with a clear message."""
    ticker = make_ticker(make_pool(("chat",)), stop_event=StepEvent())
    with pytest.raises(AssertionError, match="is not running"):
        step(ticker)
