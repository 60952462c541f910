"""The migration helpers keep the asyncio ticker's names and defaults."""

from __future__ import annotations

from lilbee_ticker import HealthTicker, LoopRuntime, start_health_ticker, stop_health_ticker
from lilbee_ticker.testing import FakePool, SlowClose


def test_start_and_stop_health_ticker(fake_pool: FakePool, lilbee_runtime: LoopRuntime) -> None:
    """start_health_ticker returns a running ticker at 30 s; stop_health_ticker stops it twice."""
    ticker = start_health_ticker(fake_pool, lilbee_runtime)
    try:
        assert isinstance(ticker, HealthTicker)
        assert ticker.is_running
        assert ticker.interval_s == 30.0
    finally:
        stop_health_ticker(ticker)
    assert not ticker.is_running
    stop_health_ticker(ticker, timeout=0.1)


def test_stop_health_ticker_accepts_none() -> None:
    """stop_health_ticker(None) does nothing, for shutdown code that never started one."""
    stop_health_ticker(None)


def test_start_health_ticker_interval(fake_pool: FakePool, lilbee_runtime: LoopRuntime) -> None:
    """interval_s is passed through."""
    ticker = start_health_ticker(fake_pool, lilbee_runtime, interval_s=0.5)
    try:
        assert ticker.interval_s == 0.5
    finally:
        stop_health_ticker(ticker, timeout=5)


def test_start_health_ticker_takes_lilbees_three_arguments(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime
) -> None:
    """Lilbee calls start_health_ticker(pool, runtime, loop): the loop is accepted and ignored."""
    ticker = start_health_ticker(fake_pool, lilbee_runtime, lilbee_runtime.loop)
    try:
        assert ticker.is_running and ticker.interval_s == 30.0
    finally:
        stop_health_ticker(ticker)
    assert not ticker.is_running


def test_stop_health_ticker_waits_for_a_reap_in_flight(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime
) -> None:
    """stop_health_ticker returns once a reap the ticker started has ended, never cutting it."""
    fake_pool.script_reap(SlowClose(0.3))
    ticker = start_health_ticker(fake_pool, lilbee_runtime, None, interval_s=0.01)
    assert fake_pool.wait_for_calls("reap_idle", timeout=10)
    stop_health_ticker(ticker)
    assert fake_pool.reaps_in_flight == 0
    assert fake_pool.cancelled == () and fake_pool.leaked == ()
