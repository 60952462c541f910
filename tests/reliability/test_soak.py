"""Chaos soak: a ticker at a 1 ms interval against a pool where any call may misbehave.

The run is cut into stretches, after a warm-up. At the end of each, the ticker's
thread is held between two ticks (see :class:`TickLedger`), the loop is let
settle, and the reports booked so far are reconciled, exactly, with the calls the
pool saw; the traced memory is sampled at the same quiet points. After the last
stretch the chaos goes on for a few more ticks and the ticker is stopped at an
arbitrary moment, possibly in the middle of a tick.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import random
import threading
import tracemalloc
import warnings

import pytest

from lilbee_ticker import HealthTicker, TickerStats

from .chaos import ChaosPool, FaultRates, ReportTally, SlowSubmitRuntime, TickLedger
from .conftest import Figures, LogTally
from .support import LONG, LONG_ENV, real_now

ROLES = ("embed", "chat", "rerank", "vision")
INTERVAL_S = 0.001
# The bound on each step of a tick. Every hung call costs this much real time, so
# it is short; but slow calls answer within FaultRates.slow_max_s (5 ms), fifty
# times less, so that even on two noisy shared cores a slow call is never cut off
# as a hung one (the exact accounting below would then be off by one).
CALL_TIMEOUT_S = 0.25
# How late the loop may wake for a deadline before the ticker blames the loop and
# not the calls still running (docs/deadlines.md: half the bound, at least 0.1 s).
LATE_GRACE_S = 0.125
STOPS = 5  # stretches, with a hold, an accounting and a memory sample after each
WAIT_S = 120.0  # for a stretch of ticks: a stall fails the test, it does not hang it
STOP_TIMEOUT_S = 5.0
# stop() cancels the pings in flight and returns once they and a reap in flight
# have ended: a hung reap ends by the pool's own bound (FaultRates.reap_hang_s,
# 0.4 s), and a submit blocked when stop() was called within 5 ms. One second
# covers both on a loaded machine and is still far below a hung ping, which
# never ends unless cancelled.
STOP_BOUND_S = 1.0
# Traced memory may not grow by more than this per tick between the first and last
# quiet points. Keeping even one small object per tick (a float in a list is 32
# bytes; a future, a report or a frame hundreds) would exceed it. What it allows
# is one-off growth: counters meeting a new kind of fault, a dict resizing.
MAX_GROWTH_PER_TICK_B = 24.0
# Ticks before the first memory sample. The interpreter's own one-off allocations
# are not the ticker's: CPython 3.10 gives a code object its inline caches (its
# "opcache", a few hundred bytes) on its 1024th run, so every function that runs
# once per tick allocates once around tick 1024, and a window that straddles that
# tick sees 20-45 bytes of growth per tick that stops there (the same run carried
# on to 5000 ticks stays flat after it). 3.11 and later specialise code within a
# few runs and grow less, but one rule for every version is simpler to trust.
WARMUP_TICKS = 1100


def _settled_counts(pool: ChaosPool, runtime: SlowSubmitRuntime) -> collections.Counter[str]:
    # Straight to the loop: the runtime's own submit() draws from the ticker's generator.
    future = asyncio.run_coroutine_threadsafe(pool.settled(), runtime.loop)
    return future.result(WAIT_S)


def _check_accounting(
    tally: ReportTally, counts: collections.Counter[str], stats: TickerStats
) -> None:
    """Check that the booked reports account for every call the pool saw, and nothing else."""
    assert tally.problems == [], f"{tally.problem_count} bad reports, first: {tally.problems}"
    assert tally.gaps == 0, "tick numbers skipped: a tick produced no report"
    assert tally.reports == tally.last_number == stats.ticks
    assert tally.interrupted == 0 and tally.cancelled == 0
    assert counts["in_flight"] == 0, "a pool call nobody cancelled is still running"
    assert counts["violations"] == 0, "the pool was touched off its loop thread"
    for call in ("reap_idle", "ping_role"):
        ended = counts[f"{call}.ok"] + counts[f"{call}.raised"] + counts[f"{call}.cancelled"]
        assert counts[call] == ended, f"{call}: {counts[call]} calls, {ended} ended"
    # reap_idle() runs exactly when the survey found a live role and the last reap
    # had ended; a reap is never cancelled, and every hung one ended late.
    assert counts["reap_idle"] == tally.reaps - tally.reaps_still_running
    assert tally.reaps == stats.reaps
    assert counts["roles_reaped"] == tally.roles_reaped == stats.roles_reaped
    assert counts["reap_idle.raised"] == tally.injected["reap", "reap_idle"]
    assert counts["reap_idle.cancelled"] == 0
    # A call left to the loop's account was left there because the loop woke later
    # than the grace for its deadline, never for less: not a timeout in disguise.
    assert tally.loop_late_least_s > LATE_GRACE_S
    assert counts["reap_idle.late"] == tally.reap_timeouts + tally.loop_late_reaps
    # Each ping the pool saw is one pinged or failed role in exactly one report.
    assert counts["ping_role.ok"] == tally.pinged
    assert counts["ping_role.raised"] == tally.injected["ping", "ping_role"]
    assert counts["ping_role.cancelled"] == tally.ping_timeouts + tally.loop_late_pings
    assert counts["registered_roles.raised"] == tally.injected_from("registered_roles")
    assert counts["is_alive.raised"] == tally.injected_from("is_alive")
    # The very faults raised are the ones reported: same number, same serials.
    assert counts["raised"] == sum(tally.injected.values())
    assert counts["serial_sum"] == tally.injected_serial_sum
    # Every hang was cut off at call_timeout_s and reported as a timeout, or, in a
    # tick whose loop woke late for that deadline, left to the loop's account.
    assert counts["fault.hang"] == (
        tally.ping_timeouts + tally.reap_timeouts + tally.loop_late_reaps + tally.loop_late_pings
    )
    # The ticker's own counters agree with its reports.
    assert stats.ping_failures == tally.injected_at("ping") + tally.ping_timeouts
    assert stats.pings == tally.pinged + stats.ping_failures
    assert stats.reap_failures == (
        tally.injected_at("reap") + tally.reap_timeouts + tally.reaps_still_running
    )
    assert stats.snapshot_failures == tally.injected_at("snapshot") + tally.snapshot_timeouts
    assert stats.timeouts == tally.timeouts
    assert stats.skipped_ticks == tally.skipped
    assert stats.interrupted_ticks == 0


@pytest.mark.parametrize(
    "ticks",
    [
        pytest.param(500, id="short"),
        pytest.param(
            5000,
            id="long",
            marks=[
                pytest.mark.skipif(not LONG, reason=f"set {LONG_ENV}=1 for the long soak"),
                pytest.mark.timeout(900),
            ],
        ),
    ],
)
def test_chaos_soak(ticks: int, seed: int, figures: Figures, log_tally: LogTally) -> None:
    """Under faults in every pool call, the ticker ticks on, reports every call, leaks nothing."""
    rng = random.Random(seed)
    rates = FaultRates()
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    started = real_now()
    memory: list[tuple[int, int]] = []  # (ticks booked, traced bytes) at each quiet point
    runtime = SlowSubmitRuntime(random.Random(rng.random()), rates, name="soak-runtime")
    ticker: HealthTicker | None = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runtime.start()
            assert runtime.thread is not None
            pool = ChaosPool(ROLES, random.Random(rng.random()), rates, runtime.thread)
            ledger = TickLedger()
            ticker = HealthTicker(
                pool,
                runtime,
                interval_s=INTERVAL_S,
                call_timeout_s=CALL_TIMEOUT_S,
                stop_event=ledger,
                name="soak-ticker",
            )
            ledger.watch(ticker)
            ticker.start()

            # Stretch 0 is the warm-up: its quiet point takes the first memory sample.
            for stretch in range(STOPS + 1):
                target = WARMUP_TICKS + ticks * stretch // STOPS
                report = ticker.wait_for_tick(target, timeout=WAIT_S)
                assert report is not None, f"stalled at {ticker.last_report}"
                # Alive at every checkpoint, and a thread never comes back to life:
                # alive at the last one means alive throughout.
                running = ticker.is_running
                assert running and ticker.exception is None
                assert ledger.hold(timeout=WAIT_S), "the thread never came back to wait"
                try:
                    _check_accounting(ledger.tally, _settled_counts(pool, runtime), ticker.stats())
                    gc.collect()
                    memory.append((ledger.tally.reports, tracemalloc.get_traced_memory()[0]))
                finally:
                    ledger.release()

            # Chaos on for a few more ticks, then stop at whatever moment that is.
            last = ticker.last_report
            assert last is not None
            assert ticker.wait_for_tick(last.number + rng.randint(1, 20), timeout=WAIT_S)
            running = ticker.is_running
            assert running and ticker.exception is None
            before_stop = real_now()
            stopped = ticker.stop(timeout=STOP_TIMEOUT_S)
            stop_latency = real_now() - before_stop
            assert stopped, f"the thread outlived stop({STOP_TIMEOUT_S:g})"
            assert stop_latency < STOP_BOUND_S
            assert not ticker.is_running
            assert runtime.shutdown(timeout=10)
            gc.collect()  # a coroutine never awaited would warn now
    finally:
        if ticker is not None:
            ticker.stop(timeout=STOP_TIMEOUT_S)
        runtime.shutdown(timeout=10)
        if not already_tracing:
            tracemalloc.stop()
    elapsed = real_now() - started

    # The loop thread has ended, so the pool's ledger is final and safe to read here.
    counts = pool.counts
    tally = ledger.tally
    stats = ticker.stats()
    assert [str(w.message) for w in caught] == []
    assert runtime.pending_at_shutdown == (), "tasks were left pending on the loop"
    assert runtime.stuck_at_shutdown == ()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("soak-")]
    assert tally.problems == [] and tally.gaps == 0, "a tick produced no report"
    assert tally.reports == tally.last_number == stats.ticks >= WARMUP_TICKS + ticks
    last = ticker.last_report
    assert last is not None
    assert tally.interrupted == int(last.interrupted), "only the tick stop() cut short may be"
    assert counts["in_flight"] == 0 and counts["violations"] == 0
    for call in ("reap_idle", "ping_role"):
        ended = counts[f"{call}.ok"] + counts[f"{call}.raised"] + counts[f"{call}.cancelled"]
        assert counts[call] == ended

    (first_ticks, first_bytes), (last_ticks, last_bytes) = memory[0], memory[-1]
    growth_per_tick = (last_bytes - first_bytes) / (last_ticks - first_ticks)
    assert growth_per_tick < MAX_GROWTH_PER_TICK_B, f"memory grows with ticks: {memory}"

    faults = {
        kind: counts[f"fault.{kind}"]
        for kind in ("raise", "sync_raise", "hang", "slow", "crash", "flip")
    }
    faults["random_reaps"] = counts["roles_reaped"]
    faults["slow_submit"] = runtime.slow_submits
    figures.record(
        ticks=tally.reports,
        pool_calls=sum(
            counts[c] for c in ("registered_roles", "is_alive", "reap_idle", "ping_role")
        ),
        faults_injected=sum(faults.values()),
        **{f"faults_{kind}": n for kind, n in faults.items()},
        timeouts_reported=tally.timeouts,
        loop_late_ticks=tally.loop_late_ticks,
        injected_errors_reported=sum(tally.injected.values()),
        reports_lost=tally.gaps + (stats.ticks - tally.reports),
        interrupted_ticks=tally.interrupted,
        max_tick_s=tally.max_duration_s,
        stop_latency_s=stop_latency,
        memory_first_kib=first_bytes / 1024,
        memory_last_kib=last_bytes / 1024,
        memory_growth_per_tick_b=growth_per_tick,
        memory_samples=memory,
        warnings_logged=sum(log_tally.at("warning").values()),
        run_s=elapsed,
    )
