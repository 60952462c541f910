"""The cadence follows real time, whatever the clock the ticker reads does."""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections.abc import Callable

import freezegun
import pytest

from lilbee_ticker import _clock
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks

from .conftest import MakePool

STEP = 10.0  # an interval for the pure-function tests


@pytest.mark.parametrize(
    ("previous", "now", "expected", "why"),
    [
        (100.0, 100.0, 110.0, "on time: the next grid point"),
        (100.0, 104.0, 110.0, "a tick that took 4 s does not push the next one back"),
        (100.0, 109.999, 110.0, "just before the next deadline"),
        (100.0, 110.0, 110.0, "ended a whole interval after its deadline: at once, on the grid"),
        (100.0, 110.5, 120.5, "a stall of more than an interval: re-anchor, no catch-up tick"),
        (100.0, 119.0, 129.0, "a stall of 1.9 intervals: re-anchor, no catch-up tick"),
        (100.0, 120.0, 130.0, "two intervals late: re-anchor, no catch-up burst"),
        (100.0, 3700.0, 3710.0, "suspended or jumped forward an hour: one interval from now"),
        (100.0, 90.0, 100.0, "frozen clock: never wait more than one interval"),
        (100.0, -3500.0, -3490.0, "moved back an hour: one interval from now, not an hour"),
        (100.0, math.nan, math.nan, "no reading: next_wait turns NaN into a full interval"),
    ],
)
def test_next_deadline(previous: float, now: float, expected: float, why: str) -> None:
    """Deadlines stay on the grid, and re-anchor when the clock leaves it."""
    assert _clock.next_deadline(previous, now, STEP) == pytest.approx(expected, nan_ok=True), why


@pytest.mark.parametrize(
    ("deadline", "now", "expected"),
    [
        (110.0, 100.0, 10.0),
        (110.0, 105.0, 5.0),
        (110.0, 120.0, 0.0),
        (110.0, 0.0, STEP),
        (math.nan, 0.0, STEP),
        (110.0, math.nan, STEP),
    ],
)
def test_next_wait_is_clamped(deadline: float, now: float, expected: float) -> None:
    """Every computed wait lies in [0, interval], even for NaN."""
    assert _clock.next_wait(deadline, now, STEP) == expected


def test_monotonic_is_real_under_freezegun() -> None:
    """Freezegun freezes time.monotonic() but not the clock the ticker reads."""
    with freezegun.freeze_time("2026-01-01"):
        before = _clock.monotonic()
        time.sleep(0.01)  # the point is to let real time pass
        assert _clock.monotonic() > before


def test_wall_clock_is_frozen_by_freezegun_in_every_thread() -> None:
    """Under freezegun timestamps come from datetime.now(), frozen on every thread.

    freezegun leaves time.time() real in a thread started by threading (the
    ticker's), and rewrites module attributes that point at the real
    datetime class: wall_clock() must see through both.
    """
    frozen = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    seen: list[float] = []
    with freezegun.freeze_time(frozen):
        seen.append(_clock.wall_clock())
        thread = threading.Thread(target=lambda: seen.append(_clock.wall_clock()))
        thread.start()
        thread.join(timeout=10)
    assert seen == [frozen.timestamp(), frozen.timestamp()]
    assert abs(_clock.wall_clock() - time.time()) < 60  # real again once freezegun is off


def test_a_background_ticks_timestamps_are_frozen_by_freezegun(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """A tick on the ticker's own thread stamps its report and records with frozen time."""
    frozen = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    with freezegun.freeze_time(frozen):
        ticker = make_ticker(make_pool(("a",)), interval_s=0.01, call_timeout_s=10).start()
        report = wait_for_ticks(ticker, 1)
        ticker.stop()
    assert report.started_at == frozen.timestamp()
    assert ticker.health()["a"].since == frozen.timestamp()


INTERVAL = 0.02


def _assert_real_cadence(
    make_pool: MakePool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
    during: Callable[[], None] = lambda: None,
) -> None:
    ticker = make_ticker(make_pool(("a", "b")), interval_s=INTERVAL).start()
    wait_for_ticks(ticker, 2)
    during()
    real_clock = _BadClock.real  # freezegun freezes time.perf_counter() in this module
    started = real_clock()
    wait_for_ticks(ticker, 12, timeout=10)  # no stall
    elapsed = real_clock() - started
    assert elapsed >= 10 * INTERVAL / 2, f"10 ticks in {elapsed:.3f}s: a burst or a spin"


def test_cadence_under_frozen_time(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """With freezegun holding time still, the ticker keeps its real cadence."""
    with freezegun.freeze_time("2026-01-01"):
        _assert_real_cadence(make_pool, make_ticker, wait_for_ticks)


def test_cadence_under_ticking_frozen_time(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """With freeze_time(tick=True) the ticker keeps its real cadence."""
    with freezegun.freeze_time("2026-01-01", tick=True):
        _assert_real_cadence(make_pool, make_ticker, wait_for_ticks)


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
def test_cadence_when_freezegun_jumps(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks, jump: float
) -> None:
    """Moving frozen time an hour forward or back neither stalls nor bursts the ticker."""
    with freezegun.freeze_time("2026-01-01") as freezer:
        _assert_real_cadence(
            make_pool,
            make_ticker,
            wait_for_ticks,
            during=lambda: (
                freezer.tick(datetime.timedelta(seconds=jump))
                if jump > 0
                else freezer.move_to("2025-12-31 23:00")
            ),
        )


class _BadClock:
    """A stand-in for the ticker's monotonic clock that a test can freeze, jump or reverse."""

    real = _clock.monotonic

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0
        self._real = _BadClock.real

    def __call__(self) -> float:
        self.calls += 1
        real = self._real()
        if self.mode == "frozen":
            return 1000.0
        if self.mode == "forward":
            return real + 3600.0 * self.calls  # an hour further on every reading
        return -real - 3600.0 * self.calls  # runs backwards, an hour a reading


@pytest.fixture(params=["frozen", "forward", "backward"])
def bad_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> _BadClock:
    clock = _BadClock(request.param)
    monkeypatch.setattr(_clock, "monotonic", clock)
    return clock


def test_cadence_with_a_misbehaving_clock(
    make_pool: MakePool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
    bad_clock: _BadClock,
) -> None:
    """Even if the monotonic clock itself freezes, leaps or runs backwards, waits stay bounded."""
    _assert_real_cadence(make_pool, make_ticker, wait_for_ticks)
    assert bad_clock.calls > 0
