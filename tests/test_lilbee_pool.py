"""The ticker against a pool and runtime that behave as lilbee's do, with real worker processes.

See :mod:`tests.lilbee_like` for the facts the doubles model. Every test ends
with no worker process left running: the ticker never cancels a reap, so a
hung worker being reaped is closed by the pool's own bounds, not leaked.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import (
    CallTimeoutError,
    HealthStatus,
    HealthTicker,
    start_health_ticker,
    stop_health_ticker,
)

from ._proctable import linux_only
from .lilbee_like import LilbeeLikePool, LilbeeLikeRuntime, PoolShutdownError

# lilbee closes a worker with 5 s for the ack, 5 s for the join, then 2 s
# after terminate(); scaled down here, so a hung worker's reap takes 0.6 s
# and a little more, three times the ticker's call_timeout_s.
ACK_S, JOIN_S, TERMINATE_S = 0.3, 0.3, 1.0
CALL_TIMEOUT_S = 0.2
WAIT_S = 30.0

MakeLilbee = Callable[..., tuple[LilbeeLikeRuntime, LilbeeLikePool]]

pytestmark = [linux_only, pytest.mark.timeout(120)]


@pytest.fixture
def lilbee() -> Iterator[MakeLilbee]:
    """Build lilbee-like runtimes and pools; afterwards, fail if any worker outlived its test."""
    made: list[tuple[LilbeeLikeRuntime, LilbeeLikePool]] = []

    def make(
        roles: tuple[str, ...] = ("embed", "chat"), max_idle_s: float = 300.0
    ) -> tuple[LilbeeLikeRuntime, LilbeeLikePool]:
        runtime = LilbeeLikeRuntime().start()
        pool = LilbeeLikePool(
            roles, max_idle_s=max_idle_s, ack_s=ACK_S, join_s=JOIN_S, terminate_s=TERMINATE_S
        )
        made.append((runtime, pool))
        return runtime, pool

    yield make
    leaked = []
    for runtime, pool in made:
        # What lilbee's shutdown does after stopping the ticker. A worker the
        # pool no longer knows (a reap cut short) is not closed by it.
        with contextlib.suppress(PoolShutdownError):
            runtime.run_sync(pool.shutdown(), timeout=WAIT_S)
        runtime.shutdown(timeout=5)
        for process in pool.spawned:
            if process.is_alive():
                leaked.append(process.pid)
                process.kill()
                process.join(5)
    assert leaked == [], f"worker processes outlived the test: {leaked}"


def _shutdown_pool_runtime(
    pool: LilbeeLikePool, runtime: LilbeeLikeRuntime, handle: HealthTicker
) -> None:
    """Shut down as lilbee does: stop the ticker, drain the pool through the runtime, stop it."""
    stop_health_ticker(handle)
    runtime.run_sync(pool.shutdown(), timeout=10)
    runtime.shutdown(timeout=5)


def test_a_hung_worker_reaped_past_the_deadline_is_closed_not_leaked(
    lilbee: MakeLilbee,
) -> None:
    """A reap of a hung idle worker outlives call_timeout_s; the ticker lets it close it."""
    runtime, pool = lilbee()
    runtime.run_sync(pool.start_eager(), timeout=WAIT_S)
    embed = pool.spawned[0]
    runtime.run_sync(pool.hang("embed"), timeout=WAIT_S)
    runtime.run_sync(pool.make_idle("embed"), timeout=WAIT_S)
    ticker = HealthTicker(pool, runtime, interval_s=3600.0, call_timeout_s=CALL_TIMEOUT_S)

    first = ticker.tick()
    second = ticker.tick()  # the first reap is still closing the hung worker

    assert isinstance(first.reap_error, CallTimeoutError)
    assert not first.reap_error.still_running
    # embed left the pool when the reap took its channel: not pinged, so not respawned.
    assert first.pinged == ("chat",) and first.gone == ("embed",)
    assert isinstance(second.reap_error, CallTimeoutError)
    assert second.reap_error.still_running
    assert ticker.stop(timeout=WAIT_S)  # waits for the reap, which the pool's bounds end
    assert pool.reaps_cancelled == 0 and pool.reaps_in_flight == 0
    assert not embed.is_alive() and embed.exitcode is not None
    assert len(pool.spawned) == 2, "a reaped worker was spawned again"


def test_pings_get_the_tickers_bound_and_count_as_use(lilbee: MakeLilbee) -> None:
    """The ping_role(role, *, timeout=None) of lilbee gets the ticker's bound less a tenth."""
    runtime, pool = lilbee()
    runtime.run_sync(pool.start_eager(), timeout=WAIT_S)
    ticker = HealthTicker(pool, runtime, interval_s=3600.0, call_timeout_s=2.0)
    report = ticker.tick()
    assert set(report.pinged) == {"embed", "chat"}
    assert sorted(pool.pings_seen) == [("chat", 1.8), ("embed", 1.8)]
    ticker.stop()


def test_a_hung_worker_fails_its_own_ping_and_becomes_unhealthy(lilbee: MakeLilbee) -> None:
    """A hung worker's ping ends by the pool's own bound: a failure every tick, never a success."""
    runtime, pool = lilbee()
    runtime.run_sync(pool.start_eager(), timeout=WAIT_S)
    runtime.run_sync(pool.hang("chat"), timeout=WAIT_S)
    ticker = HealthTicker(
        pool, runtime, interval_s=3600.0, call_timeout_s=CALL_TIMEOUT_S, failure_threshold=2
    )
    reports = [ticker.tick() for _ in range(3)]
    for report in reports:
        assert "chat" in report.failed and report.pinged == ("embed",)
    assert ticker.health()["chat"].status is HealthStatus.UNHEALTHY
    assert not ticker.healthy
    ticker.stop()


def test_lilbee_start_and_shutdown_order_runs_clean_with_a_reap_in_flight(
    lilbee: MakeLilbee, capfd: pytest.CaptureFixture[str]
) -> None:
    """start_health_ticker(pool, runtime, loop), then lilbee's shutdown order: nothing leaks."""
    runtime, pool = lilbee()
    runtime.run_sync(pool.start_eager(), timeout=WAIT_S)
    runtime.run_sync(pool.hang("embed"), timeout=WAIT_S)
    runtime.run_sync(pool.make_idle("embed"), timeout=WAIT_S)
    with capture_logs() as logs:
        handle = start_health_ticker(pool, runtime, runtime.loop, interval_s=0.05)
        assert pool.reap_started.wait(WAIT_S)  # closing the hung worker takes a while
        _shutdown_pool_runtime(pool, runtime, handle)
    assert not handle.is_running
    assert pool.reaps_cancelled == 0
    assert [p.pid for p in pool.spawned if p.is_alive()] == []
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    assert capfd.readouterr().err == ""


def test_a_runtime_stopped_mid_tick_interrupts_it_and_blames_no_role(
    lilbee: MakeLilbee, capfd: pytest.CaptureFixture[str]
) -> None:
    """A runtime that stops its loop under a hung ping: interrupted, no blame, no noise."""
    runtime, pool = lilbee()
    runtime.run_sync(pool.start_eager(), timeout=WAIT_S)
    # Long enough that the pool's own 2.7 s bound on the ping cannot end it first.
    ticker = HealthTicker(pool, runtime, interval_s=3600.0, call_timeout_s=3.0)
    assert ticker.tick().ok
    runtime.run_sync(pool.hang("chat"), timeout=WAIT_S)
    pool.ping_started.clear()
    reports = []
    ticking = threading.Thread(target=lambda: reports.append(ticker.tick()))
    with capture_logs() as logs:
        ticking.start()
        assert pool.ping_started.wait(WAIT_S)
        runtime.shutdown(timeout=5)
        ticking.join(WAIT_S)
    assert not ticking.is_alive()
    [report] = reports
    assert report.interrupted and not report.ok
    assert report.loop_error is None
    assert ticker.health()["chat"].status is HealthStatus.HEALTHY  # no blame
    assert ticker.stats().ping_failures == 0 and ticker.stats().timeouts == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["runtime.unavailable"]
    assert capfd.readouterr().err == ""
    ticker.stop()
    # The runtime went away before the pool was drained: its workers are its
    # own leak, not the ticker's. Put them down before the fixture counts.
    for process in pool.spawned:
        process.kill()
        process.join(WAIT_S)
