"""Honest health: healthy, ready, state, staleness, the initial delay, and probe()."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lilbee_ticker import HealthStatus, HealthTicker, LoopRuntime, Probe, RoleHealth
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import Fail, FakePool

from .conftest import MakePool

ROLES = ("embed", "chat")
WAIT_S = 10.0


class _BlindPool(FakePool):
    """A FakePool whose registered_roles raises while ``blind`` is set: no tick reads it."""

    blind = True

    @property
    def registered_roles(self) -> tuple[str, ...]:
        roles = super().registered_roles
        if self.blind:
            raise ConnectionError("the pool cannot be read")
        return roles


# -- before start, running, after an orderly stop -------------------------------------------


def test_a_new_ticker_is_healthy_but_not_ready(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Before start(): healthy (nothing has failed), not ready (nothing checked), state "new"."""
    ticker = make_ticker(make_pool(ROLES))
    assert ticker.state == "new"
    assert ticker.healthy and not ticker.ready
    probe = ticker.probe()
    assert probe.status_code == 200
    assert probe.body["ready"] is False and probe.body["last_tick_age_s"] is None


def test_ready_once_a_tick_has_read_the_pool(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """Running: not ready until the first tick has read the pool, then ready and healthy."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.02, call_timeout_s=10).start()
    assert ticker.state == "running"
    wait_for_ticks(ticker, 1)
    assert ticker.ready and ticker.healthy
    probe = ticker.probe()
    assert probe.status_code == 200 and probe.body["state"] == "running"
    assert 0.0 <= probe.body["last_tick_age_s"] < WAIT_S


def test_an_orderly_stop_keeps_the_verdict_but_is_not_ready(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """After stop(): "stopped", healthy as of the last tick, not ready (nothing is checked)."""
    ticker = make_ticker(make_pool(ROLES), interval_s=0.02, call_timeout_s=10).start()
    wait_for_ticks(ticker, 1)
    assert ticker.stop()
    assert ticker.state == "stopped"
    assert ticker.healthy and not ticker.ready
    assert ticker.probe().body["reason"] == "stopped"


def test_manual_ticks_make_a_new_ticker_ready(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """A ticker driven by tick() alone is ready after a tick that read the pool."""
    ticker = make_ticker(make_pool(ROLES))
    ticker.tick()
    assert ticker.state == "new" and ticker.ready and ticker.healthy


# -- dead and blind tickers are never healthy -------------------------------------------------


def test_a_ticker_whose_runtime_never_started_is_unhealthy(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A runtime that refuses work ends the thread: state "crashed", healthy False, 503."""
    never_started = LoopRuntime(name="never-started")
    ticker = make_ticker(make_pool(ROLES), never_started, initial_delay_s=0).start()
    assert ticker.join(timeout=WAIT_S)
    assert ticker.state == "crashed"
    assert not ticker.healthy and not ticker.ready
    probe = ticker.probe()
    assert probe.status_code == 503
    assert probe.body["reason"] == "runtime_unavailable"
    assert any("thread has ended" in problem for problem in probe.body["problems"])


def test_a_crashed_thread_is_unhealthy(fake_pool: FakePool, make_ticker: MakeTicker) -> None:
    """A thread ended by an exception is "crashed" and unhealthy, whatever the roles say."""

    def hook(old: RoleHealth | None, new: RoleHealth) -> None:
        raise SystemExit("a hook ends the thread")

    ticker = make_ticker(fake_pool, interval_s=0.01, call_timeout_s=10, on_change=hook).start()
    assert ticker.join(timeout=WAIT_S)
    assert all(h.status is HealthStatus.HEALTHY for h in ticker.health().values())
    assert ticker.state == "crashed" and not ticker.healthy
    assert ticker.probe().status_code == 503
    ticker._exception = None  # acknowledged: make_ticker's teardown would flag it


def test_a_ticker_that_cannot_read_the_pool_turns_stale(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """When no tick reads the pool for stale_after_s, a running ticker is unhealthy; it recovers."""
    pool = _BlindPool(ROLES, loop_thread=lilbee_runtime.thread)
    ticker = make_ticker(pool, interval_s=0.05, call_timeout_s=10, stale_after_s=0.2).start()
    wait_for_ticks(ticker, 6)  # the 6th tick comes at least 0.3 s after start
    assert not ticker.healthy and not ticker.ready
    assert any(p.startswith("stale") for p in ticker.probe().problems)
    pool.blind = False
    last = ticker.last_report
    assert last is not None
    wait_for_ticks(ticker, last.number + 1)
    assert ticker.healthy and ticker.ready


def test_the_default_staleness_bound(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """By default stale_after_s is 2 * interval_s + 2 * call_timeout_s + 1."""
    ticker = make_ticker(make_pool(ROLES), interval_s=30.0, call_timeout_s=10.0)
    assert ticker.stale_after_s == 81.0


# -- the initial delay ---------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 0.05])
def test_the_initial_delay_sets_the_first_tick(
    make_pool: MakePool, make_ticker: MakeTicker, delay: float
) -> None:
    """initial_delay_s=0 ticks at once, another value after that long, not one interval."""
    ticker = make_ticker(make_pool(ROLES), interval_s=3600.0, initial_delay_s=delay).start()
    assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
    assert ticker.initial_delay_s == delay


def test_no_initial_delay_waits_one_interval(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """initial_delay_s=None (the default) waits a whole interval: no tick within a short wait."""
    ticker = make_ticker(make_pool(ROLES), interval_s=3600.0).start()
    assert ticker.wait_for_tick(1, timeout=0.2) is None
    assert ticker.initial_delay_s is None


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("0", TypeError)],
)
def test_initial_delay_and_staleness_are_validated(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime, value: object, error: type[Exception]
) -> None:
    """Bad initial_delay_s and stale_after_s values are refused, naming the argument."""
    for argument in ("initial_delay_s", "stale_after_s"):
        with pytest.raises(error, match=rf"^{argument}"):
            HealthTicker(fake_pool, lilbee_runtime, **{argument: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^stale_after_s"):
        HealthTicker(fake_pool, lilbee_runtime, stale_after_s=0)


# -- probe() -----------------------------------------------------------------------------------


def test_a_probe_is_immutable_and_its_body_is_json(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A Probe cannot be changed, and its body is a fresh JSON-serialisable dict each time."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail())
    ticker = make_ticker(pool, failure_threshold=1)
    ticker.tick()
    probe = ticker.probe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.healthy = True  # type: ignore[misc]
    body = probe.body
    assert json.loads(json.dumps(body)) == body
    body["healthy"] = True
    assert probe.body["healthy"] is False and probe.status_code == 503
    assert body["roles"]["chat"] == {"status": "unhealthy", "consecutive_failures": 1}
    assert probe.body["roles"]["embed"] == {"status": "healthy", "consecutive_failures": 0}
    assert isinstance(probe, Probe)


def test_a_probe_never_waits_for_a_tick_or_touches_the_pool(
    make_pool: MakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime
) -> None:
    """probe() answers at once while the pool's loop is blocked, touching nothing of the pool."""
    pool = make_pool(ROLES)
    ticker = make_ticker(pool)
    ticker.tick()
    calls = len(pool.calls)
    release = threading.Event()
    entered = threading.Event()

    async def block() -> None:
        entered.set()
        release.wait(WAIT_S)  # deliberately blocks the loop

    lilbee_runtime.submit(block())
    assert entered.wait(WAIT_S)
    try:
        probe = ticker.probe()
    finally:
        release.set()
    assert probe.healthy and len(pool.calls) == calls


@pytest.fixture
def healthz(make_ticker: MakeTicker, make_pool: MakePool) -> Iterator[tuple[HealthTicker, str]]:
    """A ticker and a standard-library /healthz server for it on 127.0.0.1."""
    pool = make_pool(ROLES)
    ticker = make_ticker(pool, failure_threshold=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            probe = ticker.probe()
            payload = json.dumps(probe.body).encode()
            self.send_response(probe.status_code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet in tests

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="healthz")
    thread.start()
    try:
        yield ticker, f"http://127.0.0.1:{server.server_port}/healthz"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_healthz_over_real_http(healthz: tuple[HealthTicker, str]) -> None:
    """Over HTTP on 127.0.0.1: 200 with the body while healthy, 503 once a role is unhealthy."""
    ticker, url = healthz
    ticker.tick()
    code, body = _get(url)
    assert code == 200 and body["healthy"] is True and body["ready"] is True
    ticker._pool.set_ping("chat", Fail())  # type: ignore[attr-defined]
    ticker.tick()
    code, body = _get(url)
    assert code == 503 and body["roles"]["chat"]["status"] == "unhealthy"


def test_a_long_initial_delay_is_not_staleness(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Before its first tick is due, a ticker is not stale, however long the initial delay."""
    ticker = make_ticker(
        make_pool(ROLES),
        interval_s=0.05,
        call_timeout_s=10,
        initial_delay_s=3600.0,
        stale_after_s=0.1,
    ).start()
    assert ticker.wait_for_tick(1, timeout=0.3) is None  # well past stale_after_s since start()
    assert ticker.healthy and not ticker.ready


def test_stale_after_must_exceed_the_interval(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime
) -> None:
    """A staleness bound no longer than an interval would flap between ticks: refused."""
    with pytest.raises(ValueError, match=r"^stale_after_s must be longer than interval_s"):
        HealthTicker(fake_pool, lilbee_runtime, interval_s=30.0, stale_after_s=30.0)


def test_readiness_over_real_http(healthz: tuple[HealthTicker, str]) -> None:
    """ready_status_code is 503 before the first tick that reads the pool, then 200."""
    ticker, _ = healthz
    assert ticker.probe().ready_status_code == 503
    ticker.tick()
    assert ticker.probe().ready_status_code == 200
