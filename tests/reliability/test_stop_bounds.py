"""Stop bounds: stop() returns within its timeout, from any thread, whatever the ticker is doing.

Each scenario wedges the ticker somewhere (a hung reap, a hung ping, a blocked
``submit``), then stops it from a different place (the test's thread, the loop's
thread, a hook on the ticker's own thread, a signal handler in the main thread)
and measures how long ``stop()`` took. The guard in ``conftest.py`` then checks
that no thread was left behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import random
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from lilbee_ticker import HealthTicker, LoopRuntime, RoleHealth, TickerUsageError
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import Delay, Fail, FakePool, Hang, SlowClose

from .conftest import Figures
from .support import real_now, run_script, scaled

_T = TypeVar("_T")

STOP_TIMEOUT_S = 5.0
# stop() cancels what is in flight and returns at once: a few milliseconds. The
# bound is generous for two loaded cores, and still far below the hung calls'
# call_timeout_s (60 s), which a stop() that waited for them would take.
STOP_BOUND_S = 1.0
HUNG_CALL_TIMEOUT_S = 60.0
WAIT_S = 10.0
# A reap that closes its workers over this long, by the pool's own bound.
SLOW_REAP_S = 0.5


def _stop_timed(ticker: HealthTicker, timeout: float = STOP_TIMEOUT_S) -> tuple[bool, float]:
    start = real_now()
    ended = ticker.stop(timeout)
    return ended, real_now() - start


def _assert_gone(ticker: HealthTicker) -> None:
    assert not ticker.is_running
    assert not [t for t in threading.enumerate() if t.name == ticker.name]


# -- stopping a ticker wedged in a pool call ----------------------------------------------


def test_stop_during_a_slow_reap_lets_it_finish(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """stop() during a slow reap ends the thread at once, never cancels the reap, and waits for it.

    The reap takes its workers out of the pool first and closes them after, as
    a real pool's does: cancelling it part-way would leak them. stop(0) returns
    False while it runs, with the thread already gone; a later stop() returns
    True once the pool's own bound has ended it.
    """
    fake_pool.script_reap(SlowClose(SLOW_REAP_S))
    fake_pool.use("embed")  # keep one role alive so the next ticks have something to do
    ticker = make_ticker(interval_s=0.01, call_timeout_s=HUNG_CALL_TIMEOUT_S, name="slow-reap")
    ticker.start()
    assert fake_pool.wait_for_calls("reap_idle", timeout=WAIT_S)

    ended_at_once, first_latency = _stop_timed(ticker, timeout=0.0)
    assert not ended_at_once, "the reap is still closing its workers"
    assert ticker.join(timeout=WAIT_S)  # the thread itself ends at once
    _assert_gone(ticker)
    assert fake_pool.reaps_in_flight == 1

    ended, latency = _stop_timed(ticker)

    assert ended and latency < SLOW_REAP_S + STOP_BOUND_S
    assert fake_pool.reaps_in_flight == 0
    assert fake_pool.cancelled == () and fake_pool.leaked == ()
    report = ticker.last_report
    assert report is not None and report.interrupted and report.pinged == ()
    figures.record(stop_latency_s=latency, stop_0_latency_s=first_latency)


def test_stop_during_a_hung_ping(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """stop() during a ping that never returns cancels it and returns at once."""
    fake_pool.set_ping("chat", Hang())
    ticker = make_ticker(interval_s=0.01, call_timeout_s=HUNG_CALL_TIMEOUT_S, name="hung-ping")
    ticker.start()
    assert fake_pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)

    ended, latency = _stop_timed(ticker)

    assert ended and latency < STOP_BOUND_S
    _assert_gone(ticker)
    assert fake_pool.wait_for_cancelled(1, timeout=WAIT_S)
    report = ticker.last_report
    assert report is not None and report.interrupted
    assert isinstance(report.failed["chat"], concurrent.futures.CancelledError)
    figures.record(stop_latency_s=latency)


class BlockingSubmit:
    """A runtime whose ``submit`` blocks, once armed, until the test releases it.

    It stands for a runtime busy with a lock of its own: the ticker's thread is
    stuck inside ``submit()``, where no cancellation can reach it.
    """

    def __init__(self, inner: LoopRuntime) -> None:
        self._inner = inner
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Block until released if armed, then submit to the real runtime."""
        if self.armed:
            self.entered.set()
            self.release.wait(WAIT_S)
        return self._inner.submit(coro)


@pytest.fixture
def blocking_submit(lilbee_runtime: LoopRuntime) -> Iterator[BlockingSubmit]:
    runtime = BlockingSubmit(lilbee_runtime)
    yield runtime
    runtime.release.set()  # never leave a ticker thread stuck in submit()


def test_stop_with_a_short_timeout_during_a_blocked_submit(
    fake_pool: FakePool, make_ticker: MakeTicker, blocking_submit: BlockingSubmit, figures: Figures
) -> None:
    """stop(0.1) while submit() blocks returns False in 0.1 s; the thread ends once it unblocks."""
    ticker = make_ticker(
        runtime=blocking_submit, interval_s=0.01, call_timeout_s=10, name="blocked-submit"
    )
    blocking_submit.armed = True
    ticker.start()
    assert blocking_submit.entered.wait(WAIT_S)
    surveys = fake_pool.count("registered_roles")

    ended, latency = _stop_timed(ticker, timeout=0.1)

    assert not ended, "the thread cannot have ended: it is inside submit()"
    assert latency < 0.1 + STOP_BOUND_S
    blocking_submit.release.set()
    assert ticker.join(timeout=STOP_TIMEOUT_S)
    _assert_gone(ticker)
    # The coroutine submitted after the stop touched nothing, and was not left pending
    # (the runtime fixture fails the test if it was).
    assert fake_pool.count("registered_roles") == surveys
    figures.record(stop_latency_s=latency, returned=ended)


def test_stop_waits_no_longer_than_a_blocked_submit(
    fake_pool: FakePool, make_ticker: MakeTicker, blocking_submit: BlockingSubmit, figures: Figures
) -> None:
    """stop() while submit() blocks for 0.2 s returns True as soon as submit() returns."""
    ticker = make_ticker(
        runtime=blocking_submit, interval_s=0.01, call_timeout_s=10, name="slow-submit"
    )
    blocking_submit.armed = True
    ticker.start()
    assert blocking_submit.entered.wait(WAIT_S)
    # The submit takes 0.2 s more; a timer stands for the runtime finishing its work.
    unblock = threading.Timer(0.2, blocking_submit.release.set)
    unblock.start()
    try:
        ended, latency = _stop_timed(ticker)
    finally:
        unblock.join(WAIT_S)

    assert ended
    assert 0.1 < latency < 0.2 + STOP_BOUND_S, latency
    _assert_gone(ticker)
    figures.record(stop_latency_s=latency)


# -- stopping from unusual threads -----------------------------------------------------------


def test_stop_from_the_loop_thread(
    fake_pool: FakePool, make_ticker: MakeTicker, lilbee_runtime: LoopRuntime, figures: Figures
) -> None:
    """stop() from the runtime's loop thread, while a ping hangs on that loop, returns at once."""
    fake_pool.set_ping("chat", Hang())
    ticker = make_ticker(interval_s=0.01, call_timeout_s=HUNG_CALL_TIMEOUT_S, name="loop-stop")
    ticker.start()
    assert fake_pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)

    async def stop_on_the_loop() -> tuple[bool, float]:
        return _stop_timed(ticker)  # blocks the loop while it joins: that is the point

    ended, latency = lilbee_runtime.run(stop_on_the_loop(), timeout=WAIT_S)

    assert ended and latency < STOP_BOUND_S
    _assert_gone(ticker)
    figures.record(stop_latency_s=latency)


def test_stop_from_an_on_change_hook(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """stop() from a hook on the ticker's own thread returns False at once; the thread then ends."""
    fake_pool.set_ping("chat", Fail())
    calls: list[tuple[str, bool, float]] = []
    ticker: HealthTicker | None = None

    def hook(_old: RoleHealth | None, _new: RoleHealth) -> None:
        if not calls:
            assert ticker is not None
            ended, latency = _stop_timed(ticker)
            calls.append((threading.current_thread().name, ended, latency))

    ticker = make_ticker(interval_s=0.01, call_timeout_s=10, on_change=hook, name="hook-stop")
    ticker.start()

    assert ticker.join(timeout=WAIT_S), "the thread did not end after the tick that stopped it"
    [(thread, ended, latency)] = calls
    assert thread == "hook-stop"
    assert not ended, "a thread cannot have waited for itself to end"
    assert latency < STOP_BOUND_S
    report = ticker.last_report
    assert report is not None and report.number == 1, "no tick may start after the stop"
    _assert_gone(ticker)
    figures.record(stop_latency_s=latency, returned=ended)


@pytest.fixture
def sigusr1() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")
    previous = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("sigusr1")
@pytest.mark.parametrize("main_waits_in", ["ticker.join", "application-event.wait"])
def test_stop_from_a_signal_handler(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures, main_waits_in: str
) -> None:
    """stop() in a signal handler, run by the main thread while it waits, returns at once."""
    fake_pool.set_ping("chat", Hang())
    ticker = make_ticker(interval_s=0.01, call_timeout_s=HUNG_CALL_TIMEOUT_S, name="signal-stop")
    shutdown = threading.Event()
    handled: list[tuple[str, bool, float]] = []

    def handler(_signum: int, _frame: object) -> None:
        ended, latency = _stop_timed(ticker, timeout=2.0)
        handled.append((threading.current_thread().name, ended, latency))
        shutdown.set()

    signal.signal(signal.SIGUSR1, handler)
    ticker.start()
    assert fake_pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    # Sent from another thread a moment later, so that it most likely finds the main
    # thread blocked below; if it comes earlier the handler runs earlier, just as well.
    main = threading.main_thread().ident
    assert main is not None
    sender = threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGUSR1))
    sender.start()
    try:
        if main_waits_in == "ticker.join":
            assert ticker.join(timeout=WAIT_S)
        else:
            assert shutdown.wait(WAIT_S)
    finally:
        sender.join(WAIT_S)

    [(thread, ended, latency)] = handled
    assert thread == threading.main_thread().name
    assert ended and latency < STOP_BOUND_S
    _assert_gone(ticker)
    assert fake_pool.wait_for_cancelled(1, timeout=WAIT_S)
    figures.record(stop_latency_s=latency)


# A signal can land at any bytecode of the main thread, including one of the few
# where a ticker method holds the ticker's lock. A stop event whose is_set() raises
# the signal pins it there: wait_for_tick(), tick() and start() all call is_set()
# under that lock. The script's watchdog reports a stop() that has not returned
# long after its timeout, then exits, since a deadlocked interpreter never would.
_SIGNAL_INSIDE_A_CALL = """
import faulthandler, os, signal, sys, threading, time
import structlog
structlog.configure(processors=[lambda *_: (_ for _ in ()).throw(structlog.DropEvent())])
from lilbee_ticker import HealthTicker, LoopRuntime, TickerUsageError
from lilbee_ticker.testing import FakePool

where = sys.argv[1]

class PinnedEvent(threading.Event):
    armed = False

    def is_set(self):
        if self.armed and threading.current_thread() is threading.main_thread():
            self.armed = False
            signal.raise_signal(signal.SIGUSR1)
        return super().is_set()

runtime = LoopRuntime().start()
pool = FakePool(["chat"], loop_thread=runtime.thread)
event = PinnedEvent()
ticker = HealthTicker(pool, runtime, interval_s=0.01, stop_event=event)
returned = threading.Event()
latencies = []

def handler(signum, frame):
    start = time.monotonic()
    ticker.stop(timeout=0.2)
    latencies.append(time.monotonic() - start)
    returned.set()

def watchdog():
    if not returned.wait(1.5):
        print("stop() in the signal handler never returned: deadlock", flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

signal.signal(signal.SIGUSR1, handler)
if where != "start":
    ticker.start()
    assert ticker.wait_for_tick(1, timeout=10) is not None
threading.Thread(target=watchdog, daemon=True).start()
event.armed = True
try:
    if where == "wait_for_tick":
        ticker.wait_for_tick(10**9, timeout=5)
    elif where == "tick":
        ticker.tick()
    else:
        ticker.start()
except TickerUsageError:
    pass  # the ticker was stopped under the call: a documented answer
assert returned.is_set()
assert ticker.join(timeout=5), "the thread outlived the stop"
assert not ticker.is_running
runtime.shutdown(timeout=5)
print(f"stop latency {latencies[0]:.4f}")
"""


def test_stop_from_a_signal_handler_that_interrupts_a_ticker_call(figures: Figures) -> None:
    """stop() in a handler that interrupts the main thread inside a ticker call returns in time."""
    places = ("wait_for_tick", "tick", "start")
    # One fresh interpreter per place, run side by side: a deadlock costs its watchdog's wait.
    with concurrent.futures.ThreadPoolExecutor(len(places)) as executor:
        runs = {
            where: executor.submit(run_script, _SIGNAL_INSIDE_A_CALL, timeout_s=30.0, args=(where,))
            for where in places
        }
    scripts = {where: run.result() for where, run in runs.items()}
    failed = {where: s.explain() for where, s in scripts.items() if s.returncode or s.stderr}
    assert not failed, "\n\n".join(f"inside {w}(): {text}" for w, text in failed.items())
    latency = max(float(s.stdout.split("stop latency ")[1]) for s in scripts.values())
    assert latency < 0.2 + STOP_BOUND_S
    figures.record(stop_latency_s=latency)


def test_concurrent_stops_all_return_at_once(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """Eight threads stopping a ticker wedged in a hung ping all get True within the bound."""
    fake_pool.set_ping("chat", Hang())
    ticker = make_ticker(interval_s=0.01, call_timeout_s=HUNG_CALL_TIMEOUT_S, name="many-stops")
    ticker.start()
    assert fake_pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    barrier = threading.Barrier(8)
    results: list[tuple[bool, float]] = []
    results_lock = threading.Lock()

    def stop() -> None:
        barrier.wait(WAIT_S)
        result = _stop_timed(ticker)
        with results_lock:
            results.append(result)

    stoppers = [threading.Thread(target=stop, name=f"stopper-{i}") for i in range(8)]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join(WAIT_S)

    assert len(results) == 8, "a stop() never returned"
    assert all(ended for ended, _ in results)
    latency = max(latency for _, latency in results)
    assert latency < STOP_BOUND_S
    _assert_gone(ticker)
    figures.record(stop_latency_s=latency)


def _stop_by_signal(ticker: HealthTicker, delay: float, main_call: Callable[[], object]) -> float:
    """Send SIGUSR1 to the main thread after ``delay``, while it loops in ``main_call``.

    The handler stops ``ticker``. Returns how long that stop() took; fails the
    test if it returned False.
    """
    main = threading.main_thread().ident
    assert main is not None
    handled: list[tuple[bool, float]] = []

    def handler(_signum: int, _frame: object) -> None:
        start = real_now()
        handled.append((ticker.stop(timeout=2.0), real_now() - start))

    signal.signal(signal.SIGUSR1, handler)
    sender = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGUSR1))
    sender.start()
    while not handled:
        with contextlib.suppress(TickerUsageError):  # stopped under the call: documented
            main_call()
    sender.join(WAIT_S)
    [(ended, latency)] = handled
    assert ended, f"{ticker.name}: stop() returned False after {latency:.3f}s"
    return latency


@pytest.mark.usefixtures("sigusr1")
@pytest.mark.parametrize("main_is_in", ["wait_for_tick-0", "wait_for_tick-5ms", "tick"])
def test_stop_from_a_signal_handler_returns_true_promptly_wherever_the_main_thread_is(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime, seed: int, figures: Figures, main_is_in: str
) -> None:
    """stop() in a handler that lands anywhere in a ticker call on the main thread returns True.

    The main thread loops in one ticker call; a signal lands at a random moment,
    often while that call holds the ticker's lock, and its handler stops the
    ticker. The ticker's thread must be able to end without that lock.
    """
    rng = random.Random(seed)
    trials = scaled(200, 1000)
    poll = 0.0 if main_is_in.endswith("-0") else 0.005
    latencies: list[float] = []
    for trial in range(trials):
        ticker = HealthTicker(
            fake_pool,
            lilbee_runtime,
            interval_s=0.001,
            call_timeout_s=10,
            name=f"signalled-{trial}",
        ).start()
        assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
        if main_is_in == "tick":
            call: Callable[[], object] = ticker.tick
        else:
            call = functools.partial(ticker.wait_for_tick, 10**9, timeout=poll)
        latencies.append(_stop_by_signal(ticker, rng.uniform(0.0, 0.003), call))
        assert not ticker.is_running
    latencies.sort()
    # Measured in milliseconds; a stop that waited for a lock the interrupted
    # call held would take its whole 2 s timeout.
    assert latencies[-1] < STOP_BOUND_S
    figures.record(
        trials=trials,
        stop_p50_s=latencies[len(latencies) // 2],
        stop_p99_s=latencies[int(len(latencies) * 0.99) - 1],
        stop_max_s=latencies[-1],
    )


@pytest.mark.usefixtures("sigusr1")
def test_a_signal_stop_while_another_thread_holds_the_slot_returns_true_promptly(
    fake_pool: FakePool, lilbee_runtime: LoopRuntime, seed: int, figures: Figures
) -> None:
    """The background thread waits for its turn while another thread ticks; a signal stop ends it.

    The main thread polls wait_for_tick(n, timeout=0) (often holding the
    ticker's lock when the signal lands), a worker thread ticks in a loop, so
    the background thread is often waiting for the slot: it must not wait in
    a way that needs the lock the interrupted main thread holds.
    """
    rng = random.Random(seed)
    fake_pool.set_ping("chat", Delay(0.005))
    trials = scaled(200, 1000)
    latencies: list[float] = []
    for trial in range(trials):
        ticker = HealthTicker(
            fake_pool,
            lilbee_runtime,
            interval_s=0.001,
            call_timeout_s=10,
            name=f"slot-held-{trial}",
        ).start()
        assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None

        def keep_ticking(ticker: HealthTicker = ticker) -> None:
            while True:
                try:
                    ticker.tick()
                except (TickerUsageError, TimeoutError):
                    return

        worker = threading.Thread(target=keep_ticking, name=f"ticking-{trial}")
        worker.start()
        poll = functools.partial(ticker.wait_for_tick, 10**9, timeout=0.0)
        latencies.append(_stop_by_signal(ticker, rng.uniform(0.0, 0.02), poll))
        worker.join(WAIT_S)
    latencies.sort()
    assert latencies[-1] < STOP_BOUND_S
    figures.record(trials=trials, stop_p99_s=latencies[int(trials * 0.99) - 1])


@pytest.mark.usefixtures("sigusr1")
def test_a_signal_stop_inside_the_main_threads_own_tick_cancels_its_hung_ping(
    fake_pool: FakePool, make_ticker: MakeTicker, figures: Figures
) -> None:
    """A handler's stop() during tick() on the same thread cancels the hung ping at once."""
    fake_pool.set_ping("chat", Hang())
    ticker = make_ticker(call_timeout_s=30.0, name="own-tick")
    main = threading.main_thread().ident
    assert main is not None
    handled: list[bool] = []
    signal.signal(signal.SIGUSR1, lambda *_: handled.append(ticker.stop(timeout=1.0)))

    def send_when_pinged() -> None:
        fake_pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
        signal.pthread_kill(main, signal.SIGUSR1)

    sender = threading.Thread(target=send_when_pinged)
    sender.start()
    start = real_now()
    report = ticker.tick()
    took = real_now() - start
    sender.join(WAIT_S)
    assert handled == [True]
    assert report.interrupted
    assert took < STOP_BOUND_S, f"tick() ran {took:.2f}s after the stop (call_timeout_s is 30)"
    assert fake_pool.wait_for_cancelled(1, timeout=WAIT_S)
    figures.record(tick_after_stop_s=took)
