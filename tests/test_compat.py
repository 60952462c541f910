"""The migration helpers keep the asyncio ticker's names and defaults."""

from __future__ import annotations

from lilbee_ticker import HealthTicker, LoopRuntime, start_health_ticker, stop_health_ticker
from lilbee_ticker.testing import FakePool


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
