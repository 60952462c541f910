"""Supervision: a ticker with a RestartPolicy restarts unhealthy roles, within a budget."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import (
    CallTimeoutError,
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    RestartPolicy,
    RoleHealth,
)
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import Delay, Fail, FakePool, Hang, StepEvent, step

from .conftest import MakePool

ROLES = ("embed", "chat")
U, H = HealthStatus.UNHEALTHY, HealthStatus.HEALTHY
WAIT_S = 10.0


def _supervised(make_ticker: MakeTicker, pool: FakePool, **policy: Any) -> HealthTicker:
    return make_ticker(
        pool,
        interval_s=3600,
        call_timeout_s=0.2,
        failure_threshold=2,
        restart=RestartPolicy(**policy),
    )


# -- the policy ------------------------------------------------------------------------------


def test_the_policy_defaults_are_the_documented_ones() -> None:
    """RestartPolicy() is 3 restarts in 300 s, backoff 1 s doubling to 60 s, reset after 600 s."""
    policy = RestartPolicy()
    assert (policy.max_restarts, policy.period_s) == (3, 300.0)
    assert (policy.backoff_s, policy.max_backoff_s, policy.reset_after_s) == (1.0, 60.0, 600.0)
    assert [policy.backoff(k) for k in (0, 1, 2, 3, 7, 8, 1000)] == [0, 1, 2, 4, 60, 60, 60]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_restarts", 0, ValueError),
        ("max_restarts", 1.5, ValueError),
        ("max_restarts", True, ValueError),
        ("period_s", 0, ValueError),
        ("period_s", math.nan, ValueError),
        ("period_s", math.inf, ValueError),
        ("period_s", "300", TypeError),
        ("backoff_s", -1, ValueError),
        ("max_backoff_s", 0.5, ValueError),  # less than backoff_s (1)
        ("reset_after_s", 0, ValueError),
        ("reset_after_s", None, TypeError),
    ],
)
def test_a_bad_policy_field_is_refused_naming_it(field: str, value: Any, error: type) -> None:
    """Each field is a finite number in its range, or the error names the field and the value."""
    with pytest.raises(error, match=rf"^RestartPolicy {field} must be .*got {value!r}"):
        RestartPolicy(**{field: value})


def test_a_policy_is_frozen() -> None:
    """A RestartPolicy cannot be changed once made."""
    policy = RestartPolicy()
    with pytest.raises(AttributeError):
        policy.max_restarts = 9  # type: ignore[misc]


def test_a_policy_with_a_pool_that_cannot_restart_is_refused(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """restart= with a pool without a restart_role coroutine raises a TypeError naming the fix."""
    with pytest.raises(TypeError, match=r"restart_role\(role\) coroutine.*missing.*async def"):
        HealthTicker(make_pool(ROLES), lilbee_runtime, restart=RestartPolicy())

    class SyncRestart(FakePool):
        def restart_role(self, role: str) -> None: ...

    pool = SyncRestart(ROLES, loop_thread=lilbee_runtime.thread)
    with pytest.raises(TypeError, match="not an async def"):
        HealthTicker(pool, lilbee_runtime, restart=RestartPolicy())
    with pytest.raises(TypeError, match=r"restart must be a lilbee_ticker.RestartPolicy"):
        HealthTicker(make_pool(ROLES), lilbee_runtime, restart={"max_restarts": 3})  # type: ignore[arg-type]


# -- when it restarts ---------------------------------------------------------------------------


def test_a_frozen_worker_is_restarted_and_healthy_again(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """UNHEALTHY after two failed pings, restarted on the next tick, then HEALTHY; all recorded."""
    changes: list[tuple[RoleHealth | None, RoleHealth]] = []
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(
        pool,
        interval_s=3600,
        call_timeout_s=0.2,
        failure_threshold=2,
        restart=RestartPolicy(),
        on_change=lambda old, new: changes.append((old, new)),
    )
    with capture_logs() as logs:
        first, second = ticker.tick(), ticker.tick()
        assert first.restarted == second.restarted == ()
        assert ticker.health()["chat"].status is U
        restarting = ticker.tick()
        healed = ticker.tick()
    assert restarting.restarted == ("chat",) and "chat" not in restarting.pinged
    assert restarting.restart_errors == {}
    assert pool.restarts("chat") == 1 and pool.count("restart_role", "embed") == 0
    assert "chat" in healed.pinged
    chat = ticker.health()["chat"]
    assert chat.status is H and chat.restarts == 1 and not chat.given_up
    assert chat.last_restart_at is not None and chat.last_restart_ended_at is not None
    assert chat.last_restart_error is None
    assert ticker.stats().restarts == 1 and ticker.stats().restart_failures == 0
    assert [(old.status, new.status) for old, new in changes if old and new.role == "chat"][-1] == (
        U,
        H,
    )
    started = [e for e in logs if e["event"] == "role.restarting"]
    assert len(started) == 1 and started[0]["role"] == "chat"
    assert "did not finish" in started[0]["reason"]
    assert ticker.probe().body["roles"]["chat"]["restarts"] == 1


def test_a_role_that_is_down_is_never_restarted(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A role that is not alive is DOWN, not UNHEALTHY: the ticker never restarts (spawns) it."""
    pool = make_pool(ROLES, restartable=True, alive=["embed"])
    ticker = _supervised(make_ticker, pool)
    for _ in range(5):
        ticker.tick()
    assert ticker.health()["chat"].status is HealthStatus.DOWN
    assert pool.count("restart_role") == 0 and pool.spawns("chat") == 0


def test_a_role_that_died_after_turning_unhealthy_is_not_restarted(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """A role that died after turning UNHEALTHY is left to the pool: DOWN, not restarted."""
    pool = FakePool(ROLES, restartable=True, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = _supervised(make_ticker, pool)
    ticker.tick()
    ticker.tick()
    pool.set_alive("chat", False)
    report = ticker.tick()
    assert report.restarted == () and "chat" not in report.live
    assert pool.count("restart_role") == 0
    assert ticker.health()["chat"].status is HealthStatus.DOWN


def test_a_role_healthy_again_before_its_restart_is_due_is_not_restarted(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """In its backoff a role recovers on its own: no second restart follows."""
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Fail())
    ticker = _supervised(make_ticker, pool, backoff_s=3600, max_backoff_s=3600)
    ticker.tick()
    ticker.tick()
    assert ticker.tick().restarted == ("chat",)
    pool.script_ping("chat", Fail(), Fail())  # the new worker fails twice, then answers
    reports = [ticker.tick() for _ in range(4)]
    assert all(report.restarted == () for report in reports)
    assert ticker.health()["chat"].status is H
    assert pool.restarts("chat") == 1


def test_the_first_restart_comes_at_once_on_a_running_ticker(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """The tick that finds a role UNHEALTHY asks for the next at once: no interval passes."""
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Fail())
    event = StepEvent()
    ticker = make_ticker(
        pool,
        stop_event=event,
        interval_s=3600,
        call_timeout_s=0.2,
        failure_threshold=2,
        restart=RestartPolicy(),
    ).start()
    step(ticker)  # tick 1: chat fails
    event.release()  # tick 2: chat turns UNHEALTHY, and the ticker asks for tick 3 itself
    report = ticker.wait_for_tick(3, timeout=WAIT_S)  # no third release
    assert report is not None and report.number == 3 and report.restarted == ("chat",)
    assert pool.count("restart_role") == 1


# -- a restart is cleanup ---------------------------------------------------------------------


def test_a_restart_past_its_deadline_is_not_cancelled_nor_overlapped_nor_pinged(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A 1 s restart under a 0.2 s bound is a CallTimeoutError, runs on, and is never doubled."""
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Fail())
    pool.set_restart(Delay(1.0))
    ticker = _supervised(make_ticker, pool, backoff_s=0)
    ticker.tick()
    ticker.tick()
    late = ticker.tick()
    assert late.restarted == ("chat",)
    error = late.restart_errors["chat"]
    assert isinstance(error, CallTimeoutError) and error.call == "restart_role('chat')"
    pings_before = pool.count("ping_role", "chat")
    during = [ticker.tick() for _ in range(2)]
    assert all(report.restarted == () for report in during)
    assert pool.count("restart_role", "chat") == 1
    assert pool.count("ping_role", "chat") == pings_before  # not pinged while it restarts
    assert pool.wait_for_calls("restart_role", role="chat", timeout=WAIT_S)
    assert ticker.stop(timeout=WAIT_S)  # waits for the restart, which ends on its own
    assert pool.restarts("chat") == 1
    assert pool.cancelled == ()
    assert ticker.stats().restart_failures == 1


def test_stop_waits_for_a_restart_and_never_cancels_it(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stop() returns False while a restart runs, and True once it has ended by itself."""
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Fail())
    pool.set_restart(Delay(0.6))
    ticker = make_ticker(
        pool, interval_s=0.02, call_timeout_s=5, failure_threshold=1, restart=RestartPolicy()
    ).start()
    assert pool.wait_for_calls("restart_role", role="chat", timeout=WAIT_S)
    assert ticker.stop(timeout=0.05) is False
    assert ticker.stop(timeout=WAIT_S) is True
    assert pool.restarts("chat") == 1
    assert pool.cancelled == ()


def test_a_failing_restart_is_reported_and_counted(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A restart that raises is in restart_errors, counted, logged, and on the health record."""
    pool = make_pool(ROLES, restartable=True)
    pool.set_ping("chat", Fail())
    pool.set_restart(Fail(RuntimeError("no new worker")))
    ticker = _supervised(make_ticker, pool)
    ticker.tick()
    ticker.tick()
    with capture_logs() as logs:
        report = ticker.tick()
    assert isinstance(report.restart_errors["chat"], RuntimeError) and not report.ok
    chat = ticker.health()["chat"]
    assert chat.status is U and chat.last_restart_error == "RuntimeError: no new worker"
    assert ticker.stats().restart_failures == 1
    assert [e["error"] for e in logs if e["event"] == "role.restart_failed"] == [
        "RuntimeError: no new worker"
    ]


# -- backoff and budget ---------------------------------------------------------------------------


class _TimedPool(FakePool):
    """A restartable pool whose worker keeps failing after a restart, and that times restarts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, restartable=True, **kwargs)
        self.spans: list[tuple[float, float]] = []

    async def _restart_role(self, role: str) -> None:
        start = time.monotonic()
        await super()._restart_role(role)
        self.set_ping(role, Fail())  # the new worker is as broken as the old
        self.spans.append((start, time.monotonic()))


def test_restarts_back_off_by_doubling(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """Restart k+1 starts at least backoff_s * 2**(k-1) after restart k ended."""
    pool = _TimedPool(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = make_ticker(
        pool,
        interval_s=0.02,
        call_timeout_s=1,
        failure_threshold=1,
        restart=RestartPolicy(max_restarts=10, backoff_s=0.1, max_backoff_s=0.2),
    ).start()
    assert pool.wait_for_calls("restart_role", 4, role="chat", timeout=WAIT_S)
    assert ticker.stop(timeout=WAIT_S)
    gaps = [
        later[0] - earlier[1] for earlier, later in zip(pool.spans, pool.spans[1:], strict=False)
    ]
    assert len(gaps) >= 3
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.2  # capped at max_backoff_s


def test_the_budget_gives_up_loudly_once(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """After max_restarts in period_s, no more restarts: UNHEALTHY, given_up, one error event."""
    pool = _TimedPool(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = _supervised(make_ticker, pool, max_restarts=2, backoff_s=0, max_backoff_s=0)
    with capture_logs() as logs:
        reports = [ticker.tick() for _ in range(10)]
    assert sum(len(report.restarted) for report in reports) == 2
    assert pool.count("restart_role") == 2
    chat = ticker.health()["chat"]
    assert chat.status is U and chat.given_up and chat.restarts == 2
    given_up = [e for e in logs if e["event"] == "role.given_up"]
    assert len(given_up) == 1 and given_up[0]["log_level"] == "error"
    assert given_up[0]["role"] == "chat" and given_up[0]["max_restarts"] == 2
    probe = ticker.probe()
    assert probe.status_code == 503 and probe.body["roles"]["chat"]["given_up"] is True
    assert any("gave up restarting" in problem for problem in probe.problems)


def test_a_role_healthy_for_reset_after_s_starts_over(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """A given-up role healthy for reset_after_s is supervised again, with a fresh budget."""
    pool = _TimedPool(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = _supervised(
        make_ticker, pool, max_restarts=1, backoff_s=0, max_backoff_s=0, reset_after_s=0.2
    )
    for _ in range(5):  # fail, unhealthy, restart, the new worker fails, give up
        ticker.tick()
    assert ticker.health()["chat"].given_up
    pool.set_ping("chat", Delay(0))  # it heals on its own
    deadline = time.monotonic() + WAIT_S
    while ticker.health()["chat"].given_up and time.monotonic() < deadline:
        ticker.tick()
    assert not ticker.health()["chat"].given_up
    pool.set_ping("chat", Fail())
    reports = [ticker.tick() for _ in range(3)]
    assert sum(len(report.restarted) for report in reports) == 1  # a fresh budget of one


# -- tick_soon ---------------------------------------------------------------------------------


def test_tick_soon_from_the_loop_thread_wakes_the_thread(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """A pool that sees a worker die calls tick_soon() on its loop: a tick comes at once."""
    ticker = make_ticker(make_pool(ROLES), interval_s=3600).start()

    async def noticed_a_crash() -> None:
        ticker.tick_soon()

    lilbee_runtime.run(noticed_a_crash(), timeout=WAIT_S)
    report = ticker.wait_for_tick(1, timeout=WAIT_S)
    assert report is not None and report.number == 1


def test_tick_soon_calls_while_one_is_pending_make_one_tick(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Ten calls during a tick make exactly one more tick, and the cadence then waits again."""
    pool = make_pool(ROLES)
    pool.script_ping("chat", Delay(0.3))
    ticker = make_ticker(pool, interval_s=3600, call_timeout_s=5).start()
    ticker.tick_soon()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    for _ in range(10):
        ticker.tick_soon()
    assert ticker.wait_for_tick(2, timeout=WAIT_S) is not None
    assert ticker.wait_for_tick(3, timeout=0.5) is None


def test_tick_soon_on_a_ticker_not_running_does_nothing(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Before start() and after stop(), tick_soon() returns at once and no tick happens."""
    pool = make_pool(ROLES)
    ticker = make_ticker(pool, interval_s=3600)
    ticker.tick_soon()
    ticker.start()
    assert ticker.wait_for_tick(1, timeout=0.3) is None  # the early call was not kept
    assert ticker.stop(timeout=WAIT_S)
    ticker.tick_soon()
    assert ticker.last_report is None and pool.count("registered_roles") == 0


def test_tick_soon_never_blocks_even_while_a_tick_holds_everything(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """tick_soon() from many threads during a hung tick returns at once every time."""
    pool = make_pool(ROLES)
    pool.script_ping("chat", Hang())
    ticker = make_ticker(pool, interval_s=3600, call_timeout_s=5).start()
    ticker.tick_soon()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    took: list[float] = []

    def call() -> None:
        start = time.monotonic()
        for _ in range(100):
            ticker.tick_soon()
        took.append(time.monotonic() - start)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert len(took) == 8 and max(took) < 2.0


def test_prometheus_exports_restarts_and_given_up_roles(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """The collector exports restarts per role as a counter, and a gauge for given-up roles."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from lilbee_ticker.prometheus import TickerCollector

    pool = _TimedPool(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = _supervised(make_ticker, pool, max_restarts=1, backoff_s=0, max_backoff_s=0)
    for _ in range(5):
        ticker.tick()
    registry = prometheus_client.CollectorRegistry()
    registry.register(TickerCollector(ticker))
    value = registry.get_sample_value
    labels = {"ticker": ticker.name, "role": "chat"}
    assert value("lilbee_ticker_role_restarts_total", labels) == 1.0
    assert value("lilbee_ticker_role_given_up", labels) == 1.0
    assert value("lilbee_ticker_role_given_up", {**labels, "role": "embed"}) == 0.0
    assert value("lilbee_ticker_restarts_total", {"ticker": ticker.name}) == 1.0


def test_a_restarted_worker_is_pinged_before_any_second_restart(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """With no backoff, a restarted role is pinged next, not restarted again unpinged."""
    pool = make_pool(("chat",), restartable=True)
    pool.set_ping("chat", Hang())
    ticker = make_ticker(
        pool,
        interval_s=3600,
        call_timeout_s=0.1,
        failure_threshold=1,
        restart=RestartPolicy(backoff_s=0, max_backoff_s=0),
    )
    reports = [ticker.tick() for _ in range(4)]
    assert [report.restarted for report in reports] == [(), ("chat",), (), ()]
    assert "chat" in reports[2].pinged
    chat = ticker.health()["chat"]
    assert chat.status is H and chat.restarts == 1 and not chat.given_up
    assert chat.last_restart_ended_at is not None and chat.last_restart_at is not None
    assert chat.last_restart_ended_at >= chat.last_restart_at
