"""Hostile pools, hooks and values: every documented promise holds at the edges.

Each test attacks through the public API only: a pool that raises exceptions
that are not ``Exception``s, a hook that does, a runtime whose ``submit()``
does, values at the edge of every documented range, many threads at once, a
clock that stands still. The signal and fork attacks live with their kind, in
``test_stop_bounds.py`` and ``test_fork.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lilbee_ticker import (
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    RoleHealth,
    RuntimeUnavailableError,
    TickReport,
)
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import Delay, Fail, FakePool

from ..conftest import MakePool
from .conftest import Figures, LogTally
from .support import real_now

ROLES = ("embed", "chat", "rerank")
WAIT_S = 10.0


class _Raising(FakePool):
    """A FakePool whose ``registered_roles`` or one role's accessor raises ``error`` when armed."""

    def __init__(self, *args: Any, member: str, error: BaseException, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.member = member
        self.error = error
        self.armed = True

    @property
    def registered_roles(self) -> tuple[str, ...]:
        roles = super().registered_roles
        if self.armed and self.member == "registered_roles":
            raise self.error
        return roles

    def accessor(self, role: str):  # type: ignore[no-untyped-def]
        if self.armed and self.member == "accessor" and role == "chat":
            raise self.error
        return super().accessor(role)


# -- 1. a CancelledError the pool raises is that call's failure ---------------------------


def test_a_ping_raising_its_own_cancelled_error_fails_its_role(
    make_pool: MakePool, make_ticker: MakeTicker, log_tally: LogTally
) -> None:
    """A ping raising CancelledError itself fails, counts and is logged once; not interrupted."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail(asyncio.CancelledError("an inner wait of the pool's")))
    ticker = make_ticker(pool, failure_threshold=2)
    reports = [ticker.tick() for _ in range(3)]
    for report in reports:
        assert not report.interrupted
        assert isinstance(report.failed["chat"], asyncio.CancelledError)
        assert set(report.pinged) == {"embed", "rerank"}
    assert ticker.health()["chat"].status is HealthStatus.UNHEALTHY
    assert not ticker.healthy
    assert ticker.stats().ping_failures == 3 and ticker.stats().interrupted_ticks == 0
    assert log_tally.count("role.failing") == 1 and log_tally.count("role.unhealthy") == 1


def test_a_reap_raising_its_own_cancelled_error_is_a_reap_error_and_pings_go_on(
    make_pool: MakePool, make_ticker: MakeTicker, log_tally: LogTally
) -> None:
    """A reap that raises CancelledError is reap_error, counted and logged once; pings still run."""
    pool = make_pool(ROLES)
    pool.set_reap(Fail(asyncio.CancelledError("an inner wait of the pool's")))
    ticker = make_ticker(pool)
    reports = [ticker.tick() for _ in range(3)]
    for report in reports:
        assert not report.interrupted
        assert isinstance(report.reap_error, asyncio.CancelledError)
        assert set(report.pinged) == set(ROLES)
    assert ticker.stats().reap_failures == 3
    assert log_tally.count("reap.failed") == 3
    assert log_tally.at("warning").get("reap.failed") == 1  # once at warning, then debug


@pytest.mark.parametrize("member", ["registered_roles", "accessor"])
def test_a_survey_raising_cancelled_error_is_a_counted_failure(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker, log_tally: LogTally, member: str
) -> None:
    """registered_roles or accessor() raising CancelledError is a counted failure, not a stop."""
    pool = _Raising(
        ROLES,
        loop_thread=lilbee_runtime.thread,
        member=member,
        error=asyncio.CancelledError("the pool's own"),
    )
    ticker = make_ticker(pool)
    reports = [ticker.tick() for _ in range(3)]
    assert not any(report.interrupted for report in reports)
    if member == "registered_roles":
        assert all(isinstance(r.snapshot_error, asyncio.CancelledError) for r in reports)
        assert ticker.stats().snapshot_failures == 3
        assert log_tally.at("warning").get("snapshot.failed") == 1
    else:
        assert all(isinstance(r.failed["chat"], asyncio.CancelledError) for r in reports)
        assert all(set(r.pinged) == {"embed", "rerank"} for r in reports)
        assert ticker.health()["chat"].status is HealthStatus.UNHEALTHY


# -- 2. a pool call raising KeyboardInterrupt or SystemExit never yields ok=True ---------


class _BaseRaising(FakePool):
    """A FakePool one of whose calls raises ``error`` once, on the loop."""

    def __init__(self, *args: Any, call: str, error: BaseException, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call = call
        self.error = error

    @property
    def registered_roles(self) -> tuple[str, ...]:
        if self.call == "registered_roles":
            raise self.error
        return super().registered_roles

    def accessor(self, role: str):  # type: ignore[no-untyped-def]
        if self.call == "accessor":
            raise self.error
        return super().accessor(role)

    async def reap_idle(self) -> tuple[str, ...]:
        if self.call == "reap_idle":
            raise self.error
        return await super().reap_idle()

    async def ping_role(self, role: str) -> None:
        if self.call == "ping_role" and role == "chat":
            raise self.error
        await super().ping_role(role)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("call", ["registered_roles", "accessor", "reap_idle", "ping_role"])
def test_a_pool_call_raising_a_base_exception_is_never_ok(
    make_ticker: MakeTicker, log_tally: LogTally, call: str, error: type[BaseException]
) -> None:
    """KeyboardInterrupt or SystemExit from a pool call ends the loop's run; never a clean tick."""
    runtime = LoopRuntime(name=f"killed-by-{call}").start()
    pool = _BaseRaising(ROLES, loop_thread=runtime.thread, call=call, error=error())
    ticker = make_ticker(pool, runtime, call_timeout_s=0.1)
    try:
        report = ticker.tick()
    finally:
        runtime.shutdown(timeout=5)
    assert not report.ok
    reported = [report.snapshot_error, report.reap_error, *report.failed.values()]
    assert (
        any(isinstance(e, error) for e in reported)
        or report.interrupted
        or report.loop_error is not None
    ), report
    assert log_tally.count("runtime.crashed") == 1  # LoopRuntime's own, expected here
    log_tally.counts.clear()


# -- 3. a hook raising any BaseException never loses the tick ------------------------------


@pytest.mark.parametrize(
    "error",
    [asyncio.CancelledError("from a hook"), GeneratorExit(), type("Odd", (BaseException,), {})()],
    ids=["CancelledError", "GeneratorExit", "a BaseException subclass"],
)
def test_a_hook_raising_a_base_exception_is_logged_and_ignored(
    fake_pool: FakePool, make_ticker: MakeTicker, log_tally: LogTally, error: BaseException
) -> None:
    """Any BaseException but KeyboardInterrupt and SystemExit from a hook is logged and ignored."""
    calls: list[str] = []

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        calls.append(new.role)
        raise error

    ticker = make_ticker(fake_pool, interval_s=0.005, call_timeout_s=10, on_change=hook).start()
    report = ticker.wait_for_tick(3, timeout=WAIT_S)
    assert report is not None and ticker.is_running
    assert sorted(calls) == sorted(ROLES)  # one transition each, on the first tick
    assert ticker.exception is None
    assert log_tally.count("hook.failed") == len(calls)
    log_tally.counts.clear()


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_a_hook_raising_keyboard_interrupt_publishes_the_tick_then_stops_the_thread(
    fake_pool: FakePool, make_ticker: MakeTicker, log_tally: LogTally, error: type[BaseException]
) -> None:
    """KeyboardInterrupt or SystemExit from a hook: the tick is published, then the thread ends."""

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        raise error

    ticker = make_ticker(fake_pool, interval_s=0.005, call_timeout_s=10, on_change=hook).start()
    assert ticker.join(timeout=WAIT_S)
    report = ticker.last_report
    assert report is not None and report.number == 1 and report.ok
    assert ticker.stats().ticks == 1
    assert {h.status for h in ticker.health().values()} == {HealthStatus.HEALTHY}
    assert isinstance(ticker.exception, error)
    assert log_tally.count("ticker.crashed") == 1
    log_tally.counts.clear()
    ticker._exception = None  # acknowledged: make_ticker's teardown would flag it


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_a_hook_raising_keyboard_interrupt_in_a_manual_tick_reaches_the_caller(
    fake_pool: FakePool, make_ticker: MakeTicker, log_tally: LogTally, error: type[BaseException]
) -> None:
    """From tick(), the hook's KeyboardInterrupt propagates, after the report is published."""

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        raise error

    ticker = make_ticker(fake_pool, on_change=hook)
    with pytest.raises(error):
        ticker.tick()
    report = ticker.last_report
    assert report is not None and report.ok and ticker.stats().ticks == 1
    assert ticker.health()  # updated before the hook ran
    log_tally.counts.clear()


# -- 4. KeyboardInterrupt or SystemExit inside runtime.submit() propagates as itself ------


class _SubmitRaises:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def submit(self, coro: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_from_submit_propagates_as_itself(
    fake_pool: FakePool, make_ticker: MakeTicker, log_tally: LogTally, error: type[BaseException]
) -> None:
    """tick() raises submit()'s KeyboardInterrupt as itself; the thread ends keeping it."""
    ticker = make_ticker(fake_pool, _SubmitRaises(error()))
    with pytest.raises(error) as raised:
        ticker.tick()
    assert not isinstance(raised.value, RuntimeUnavailableError)
    background = make_ticker(
        fake_pool, _SubmitRaises(error()), interval_s=0.005, call_timeout_s=10
    ).start()
    assert background.join(timeout=WAIT_S)
    assert isinstance(background.exception, error)
    assert log_tally.count("ticker.crashed") == 1
    log_tally.counts.clear()
    background._exception = None  # acknowledged


# -- 5. any value inside a documented range works ----------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"call_timeout_s": 5e9},
        {"call_timeout_s": threading.TIMEOUT_MAX},
        {"interval_s": threading.TIMEOUT_MAX, "call_timeout_s": threading.TIMEOUT_MAX},
        {"failure_threshold": 10**30, "success_threshold": 10**30},
    ],
    ids=["call_timeout_5e9", "call_timeout_max", "both_max", "huge_thresholds"],
)
def test_values_at_the_top_of_their_range_work(
    fake_pool: FakePool, make_ticker: MakeTicker, kwargs: dict[str, Any]
) -> None:
    """A duration up to threading.TIMEOUT_MAX and any int threshold tick and stop normally."""
    ticker = make_ticker(fake_pool, **kwargs)
    assert ticker.tick().ok
    ticker.start()
    assert ticker.wait_for_tick(1, timeout=threading.TIMEOUT_MAX) is not None
    assert ticker.stop(timeout=threading.TIMEOUT_MAX)


def test_a_tiny_interval_ticks_without_harm(fake_pool: FakePool, make_ticker: MakeTicker) -> None:
    """An interval of a microsecond ticks back to back and still stops at once."""
    ticker = make_ticker(fake_pool, interval_s=1e-6, call_timeout_s=1e-3).start()
    assert ticker.wait_for_tick(20, timeout=WAIT_S) is not None
    assert ticker.stop(timeout=WAIT_S)


# -- 6. reap_idle() returning something that is not role names -----------------------------


class _ReapReturns(FakePool):
    def __init__(self, *args: Any, result: Callable[[], object], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.result = result

    async def reap_idle(self) -> Any:
        await super().reap_idle()
        return self.result()


def _broken_generator() -> Iterator[str]:
    yield "embed"
    raise TypeError("the pool's own generator broke")


@pytest.mark.parametrize(
    "result",
    [
        lambda: [["embed"]],
        lambda: {object(): "embed"},
        lambda: 42,
        lambda: "embed",
        lambda: None,
        _broken_generator,
    ],
    ids=["unhashable-items", "dict-of-objects", "int", "str", "None", "broken-generator"],
)
def test_a_reap_returning_garbage_is_a_reported_type_error(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker, result: Callable[[], object]
) -> None:
    """A reap result that is not an iterable of names is a TypeError in reap_error; ticks go on."""
    pool = _ReapReturns(ROLES, loop_thread=lilbee_runtime.thread, result=result)
    ticker = make_ticker(pool)
    reports = [ticker.tick() for _ in range(2)]
    for report in reports:
        assert isinstance(report.reap_error, TypeError)
        assert set(report.pinged) == set(ROLES)
    assert ticker.stats().ticks == 2 and ticker.healthy
    assert ticker.last_report is reports[-1]


# -- 7. a stop_event that cannot be the clock is refused -----------------------------------


class _NoTimeout(threading.Event):
    def wait(self) -> bool:  # type: ignore[override]
        return super().wait()


@pytest.mark.parametrize("event", [asyncio.Event(), _NoTimeout()], ids=["asyncio", "no-timeout"])
def test_a_stop_event_that_cannot_be_the_clock_is_refused(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime, event: object
) -> None:
    """An event whose wait is a coroutine, or takes no timeout, is a TypeError naming stop_event."""
    with pytest.raises(TypeError, match=r"^stop_event") as raised:
        HealthTicker(fake_pool, lilbee_runtime, stop_event=event)  # type: ignore[arg-type]
    assert type(event).__qualname__ in str(raised.value)
    assert "threading.Event" in str(raised.value)


# -- 8. many threads calling tick() at once all get their turn -------------------------------


def test_eighty_threads_ticking_at_once_all_take_their_turn(
    make_pool: MakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """80 concurrent tick() calls of about 55 ms each all succeed: the queue is not the bound."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Delay(0.055))
    ticker = make_ticker(pool, call_timeout_s=0.1)
    barrier = threading.Barrier(80)
    results: list[TickReport | BaseException] = []
    results_lock = threading.Lock()

    def tick() -> None:
        barrier.wait(WAIT_S)
        try:
            outcome: TickReport | BaseException = ticker.tick()
        except BaseException as exc:
            outcome = exc
        with results_lock:
            results.append(outcome)

    started = real_now()
    threads = [threading.Thread(target=tick, name=f"ticker-caller-{i}") for i in range(80)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60.0)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(results) == 80 and errors == []
    numbers = sorted(r.number for r in results if isinstance(r, TickReport))
    assert numbers == list(range(1, 81))  # one at a time, none lost
    figures.record(ticks=80, run_s=real_now() - started)


# -- 11. a monotonic clock that stands still -----------------------------------------------


def test_waits_stay_bounded_when_the_monotonic_clock_stands_still(
    make_pool: MakePool, make_ticker: MakeTicker, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    """With CLOCK_MONOTONIC frozen and ticks waking it often, wait_for_tick(timeout=1) returns."""
    import lilbee_ticker._clock

    ticker = make_ticker(make_pool(ROLES), interval_s=0.001, call_timeout_s=10).start()
    assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
    frozen = lilbee_ticker._clock.monotonic()
    monkeypatch.setattr(lilbee_ticker._clock, "monotonic", lambda: frozen)
    started = real_now()
    assert ticker.wait_for_tick(10**9, timeout=1.0) is None
    took = real_now() - started
    assert ticker.is_running  # the cadence survives it too
    monkeypatch.undo()
    assert took < 10.0, f"a 1 s wait took {took:.1f}s"
    figures.record(wait_s=took)
