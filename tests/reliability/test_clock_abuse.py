"""Clock abuse: freezegun freezes, jumps and reverses time; the ticker keeps real time.

Everything (runtime, pool, ticker) is created inside ``freeze_time``, so it is
frozen for the whole run, and the clock is abused while the ticks are counted.
The rate is measured on ``CLOCK_MONOTONIC``, which freezegun does not touch:
``TICKS`` ticks must take between half and twice ``TICKS * INTERVAL_S`` of real
time (no burst, no stall), and the process may not burn a core meanwhile (no spin).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import freezegun
import pytest

from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.testing import FakePool

from .conftest import Figures
from .support import real_now

INTERVAL_S = 0.02
TICKS = 30
WAIT_S = 30.0
# A ticker that spins on a clock it misreads burns a whole core (1.0); ticking
# every 20 ms costs a few percent. Half a core leaves room for a loaded machine.
MAX_CPU_FRACTION = 0.5
START = datetime.datetime(2026, 1, 1, 12, 0)
HOUR = datetime.timedelta(hours=1)

# freezegun's frozen-time factories share no base class; those used here have tick()
# and move_to(), and tick=True gets no abuse at all.
Freezer = Any
Abuse = Callable[[Freezer, int], None]


def _nothing(_freezer: Freezer, _tick: int) -> None:
    """Leave the frozen clock alone."""


def _jump_forward(freezer: Freezer, tick: int) -> None:
    if tick == 0:
        freezer.tick(HOUR)


def _move_back(freezer: Freezer, tick: int) -> None:
    if tick == 0:
        freezer.move_to(START - HOUR)


def _storm(freezer: Freezer, tick: int) -> None:
    """An hour forward, then two back, then two forward... after every tick."""
    freezer.tick(HOUR if tick == 0 else (2 * HOUR if tick % 2 == 0 else -2 * HOUR))


CASES = [
    pytest.param(False, _nothing, id="frozen-throughout"),
    pytest.param(False, _jump_forward, id="jumped-forward-an-hour"),
    pytest.param(False, _move_back, id="moved-back-an-hour"),
    pytest.param(True, _nothing, id="tick-true"),
    pytest.param(False, _storm, id="jumping-back-and-forth-every-tick"),
]


@pytest.mark.parametrize(("ticking", "abuse"), CASES)
def test_real_tick_rate_survives_clock_abuse(ticking: bool, abuse: Abuse, figures: Figures) -> None:
    """Whatever freezegun does to the clock, the ticker ticks at its interval in real time."""
    with (
        freezegun.freeze_time(START, tick=ticking) as freezer,
        LoopRuntime(name="clock-runtime") as runtime,
    ):
        # max_idle_s above the jumps: reaping every worker would not stop the ticks,
        # but pinging live ones makes each tick do its full work.
        pool = FakePool(max_idle_s=3 * 3600, loop_thread=runtime.thread)
        ticker = HealthTicker(pool, runtime, interval_s=INTERVAL_S, name="clock-ticker")
        with ticker:
            warm = ticker.wait_for_tick(2, timeout=WAIT_S)
            assert warm is not None
            cpu_before, real_before = time.process_time(), real_now()
            for tick in range(TICKS):
                abuse(freezer, tick)
                report = ticker.wait_for_tick(warm.number + tick + 1, timeout=WAIT_S)
                assert report is not None, f"stalled after {tick} ticks"
            elapsed = real_now() - real_before
            cpu = time.process_time() - cpu_before
            done = ticker.last_report
        assert not ticker.is_running
    assert done is not None
    ticks = done.number - warm.number  # at least TICKS; more if some came in between
    expected = ticks * INTERVAL_S
    assert elapsed >= expected / 2, f"{ticks} ticks in {elapsed:.3f}s: a burst"
    assert elapsed <= expected * 2, f"{ticks} ticks in {elapsed:.3f}s: a stall"
    assert cpu / elapsed < MAX_CPU_FRACTION, f"{cpu:.3f}s CPU in {elapsed:.3f}s: a spin"
    assert done.ok and pool.violations == ()
    figures.record(
        ticks=ticks,
        real_s=elapsed,
        rate_vs_interval=expected / elapsed,
        cpu_fraction=cpu / elapsed,
    )
