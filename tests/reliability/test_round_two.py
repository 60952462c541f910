"""Hostile round two: odd objects, cleanup cut short, threads that outlive tickers.

Each test here names a promise of the docs and attacks it with what a careful
user or an odd pool produces: an exception that cannot be printed, a ping that
cleans up after its cancellation, an ``is_alive`` written as a method, tickers
made and dropped by the hundred, a scrape racing the ticks, a role that leaves
the pool, a loop blocked inside one of the ticker's own calls.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lilbee_ticker import (
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    LoopUnresponsiveError,
    RoleHealth,
)
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import Fail, FakePool, IgnoreCancel, SlowClose, StepEvent, step

from ..conftest import MakePool
from .conftest import LogTally

ROLES = ("embed", "chat", "rerank")
WAIT_S = 10.0


# -- 1. an exception that cannot be printed blinds nothing ------------------------------


class _Unprintable:
    """An object whose str() and repr() both raise."""

    def __repr__(self) -> str:
        raise ValueError("repr refused")

    __str__ = __repr__


class _StrRaises(Exception):
    """An exception whose own __str__ raises."""

    def __str__(self) -> str:
        raise AttributeError("no str for you")


class _BothRaise(Exception):
    """An exception whose __str__ and __repr__ both raise."""

    def __str__(self) -> str:
        raise AttributeError("no str for you")

    def __repr__(self) -> str:
        raise AttributeError("no repr either")


_HUGE = "x" * 1_000_000

_ODD_ERRORS: dict[str, Callable[[], BaseException]] = {
    "str raises": lambda: _StrRaises(),
    "str and repr raise": lambda: _BothRaise(),
    "carries an unprintable": lambda: ValueError(_Unprintable()),
    "a megabyte long": lambda: RuntimeError(_HUGE),
}


class _OddPool(FakePool):
    """A FakePool whose ``where`` raises ``error`` while armed."""

    def __init__(self, *args: Any, where: str, error: BaseException, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = where
        self.error = error
        self.armed = True

    @property
    def registered_roles(self) -> tuple[str, ...]:
        roles = super().registered_roles
        if self.armed and self.where == "snapshot":
            raise self.error
        return roles

    def accessor(self, role: str):  # type: ignore[no-untyped-def]
        if self.armed and self.where == "accessor" and role == "chat":
            raise self.error
        return super().accessor(role)

    async def reap_idle(self) -> tuple[str, ...]:
        reaped = await super().reap_idle()
        if self.armed and self.where == "reap":
            raise self.error
        return reaped


def _check_texts_are_bounded(ticker: HealthTicker) -> None:
    """Every text the ticker shows about its pool is short and JSON-serialisable."""
    body = ticker.probe().body
    text = json.dumps(body)
    assert len(text) < 10_000
    for record in ticker.health().values():
        assert record.last_error is None or len(record.last_error) <= 200


@pytest.mark.parametrize("kind", list(_ODD_ERRORS))
def test_a_ping_error_that_cannot_be_printed_fails_its_role_alone(
    make_pool: MakePool, make_ticker: MakeTicker, log_tally: LogTally, kind: str
) -> None:
    """An unprintable or huge ping error fails only its role; the tick is published."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail(_ODD_ERRORS[kind]()))
    ticker = make_ticker(pool, failure_threshold=2)
    reports = [ticker.tick() for _ in range(2)]
    assert ticker.last_report is reports[-1]
    assert set(reports[-1].pinged) == {"embed", "rerank"}
    assert "chat" in reports[-1].failed
    chat = ticker.health()["chat"]
    assert chat.status is HealthStatus.UNHEALTHY
    assert chat.last_error is not None
    if kind != "a megabyte long":
        assert "while formatting" in chat.last_error
    assert not ticker.healthy
    _check_texts_are_bounded(ticker)
    assert any("chat" in problem for problem in ticker.probe().problems)
    assert log_tally.count("role.unhealthy") == 1


@pytest.mark.parametrize("where", ["accessor", "reap", "snapshot"])
@pytest.mark.parametrize("kind", list(_ODD_ERRORS))
def test_a_pool_error_that_cannot_be_printed_is_reported_where_it_happened(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker, log_tally: LogTally, where: str, kind: str
) -> None:
    """An unprintable accessor, reap or snapshot error is reported as such; nothing else breaks."""
    pool = _OddPool(
        ROLES, loop_thread=lilbee_runtime.thread, where=where, error=_ODD_ERRORS[kind]()
    )
    ticker = make_ticker(pool)
    report = ticker.tick()
    assert ticker.last_report is report
    if where == "accessor":
        assert "chat" in report.failed
        assert set(report.pinged) == {"embed", "rerank"}
    elif where == "reap":
        assert report.reap_error is pool.error
        assert set(report.pinged) == set(ROLES)  # a failed reap is reported, the pings go ahead
    else:
        assert report.snapshot_error is pool.error
        assert log_tally.count("snapshot.failed") == 1
    _check_texts_are_bounded(ticker)


def test_a_background_thread_keeps_ticking_through_unprintable_errors(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """With an unprintable ping error the thread publishes every tick and stays well."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail(_BothRaise()))
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=10, failure_threshold=2).start()
    report = wait_for_ticks(ticker, 4)
    assert report.number >= 4
    assert ticker.is_running
    assert ticker.exception is None
    assert ticker.health()["chat"].status is HealthStatus.UNHEALTHY


def test_a_prometheus_scrape_survives_an_unprintable_error(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A scrape of a ticker whose role failed with an unprintable exception works."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from lilbee_ticker.prometheus import TickerCollector

    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail(_BothRaise()))
    ticker = make_ticker(pool, failure_threshold=1)
    ticker.tick()
    registry = prometheus_client.CollectorRegistry()
    registry.register(TickerCollector(ticker))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'role="chat",status="unhealthy"' in text


# -- 2. stop() cancels a ping once, and waits for its cleanup -----------------------------


class _CleaningPool(FakePool):
    """A pool whose ``chat`` ping hangs, and when cancelled cleans up for ``cleanup_s``."""

    def __init__(self, *args: Any, cleanup_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleanup_s = cleanup_s
        self.started = threading.Event()
        self.cancels = 0
        self.cleaned = threading.Event()
        self.cut_short = threading.Event()

    async def ping_role(self, role: str) -> None:
        await super().ping_role(role)
        if role != "chat":
            return
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancels += 1
            try:
                await asyncio.sleep(self.cleanup_s)  # the pool's cleanup after a cancel
            except asyncio.CancelledError:
                self.cancels += 1
                self.cut_short.set()
                raise
            self.cleaned.set()
            raise


def test_stop_cancels_a_ping_once_and_lets_its_cleanup_finish(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """stop() cancels a hung ping once, waits for its 0.3 s cleanup, and returns True after it."""
    pool = _CleaningPool(ROLES, loop_thread=lilbee_runtime.thread, cleanup_s=0.3)
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=30).start()
    assert pool.started.wait(WAIT_S)
    assert ticker.stop(timeout=5)
    assert pool.cleaned.is_set(), "stop() returned before the ping's cleanup ended"
    assert not pool.cut_short.is_set()
    assert pool.cancels == 1


def test_a_ping_at_its_deadline_is_cancelled_once_too(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """At its own deadline a ping is cancelled once and its cleanup completes."""
    pool = _CleaningPool(ROLES, loop_thread=lilbee_runtime.thread, cleanup_s=0.05)
    ticker = make_ticker(pool, call_timeout_s=0.1)
    report = ticker.tick()
    assert isinstance(report.failed["chat"], TimeoutError)
    assert pool.cleaned.wait(WAIT_S)
    assert pool.cancels == 1


def test_stop_returns_false_while_a_ping_swallows_its_cancellation(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stop(0.2) with a ping that runs on for 1 s after its cancel returns False, not True."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", IgnoreCancel(1.0))
    ticker = make_ticker(pool, interval_s=0.01, call_timeout_s=30).start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    assert ticker.stop(timeout=0.2) is False
    assert ticker.stop(timeout=5) is True  # and it does end, within its own bound


# -- 3. an is_alive written as a method ------------------------------------------------------


class _MethodAccessor:
    def __init__(self, alive: bool) -> None:
        self._alive = alive

    def is_alive(self) -> bool:  # the shape of multiprocessing.Process.is_alive
        return self._alive


class _MethodIsAlivePool(FakePool):
    """A pool whose accessors have ``is_alive`` as a plain method; ``chat``'s worker is dead."""

    def accessor(self, role: str):  # type: ignore[no-untyped-def]
        super().accessor(role)
        return _MethodAccessor(role != "chat")


def test_an_is_alive_method_is_refused_on_the_first_tick(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """A role whose is_alive is a method fails with a TypeError naming the fix; it is not pinged."""
    pool = _MethodIsAlivePool(ROLES, alive=False, loop_thread=lilbee_runtime.thread)
    ticker = make_ticker(pool)
    report = ticker.tick()
    assert report.pinged == ()
    assert set(report.failed) == set(ROLES)
    error = report.failed["chat"]
    assert isinstance(error, TypeError)
    assert "is_alive" in str(error) and "property" in str(error)
    assert pool.count("ping_role") == 0
    assert ticker.health()["chat"].status is not HealthStatus.HEALTHY


# -- 4. watcher threads end with their tickers ---------------------------------------------


def _helper_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("lilbee-ticker"))


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        done.wait(0.02)
    return True


def test_made_and_dropped_tickers_leave_no_thread_behind(
    make_pool: MakePool, lilbee_runtime: LoopRuntime
) -> None:
    """100 tickers with events of their own, started or ticked, leave the thread count as it was."""
    pool = make_pool(ROLES)
    baseline = _helper_threads()
    for i in range(100):
        ticker = HealthTicker(
            pool, lilbee_runtime, stop_event=threading.Event(), interval_s=3600, name=f"drop-{i}"
        )
        if i % 2:
            ticker.start()
            assert ticker.stop(timeout=5)
        else:
            ticker.tick()
        del ticker
    gc.collect()
    assert _wait_for(lambda: _helper_threads() <= baseline, 5), (
        f"{_helper_threads() - baseline} helper threads outlived their tickers"
    )


def test_a_watcher_ends_when_its_tickers_thread_ends_with_its_runtime(make_pool: MakePool) -> None:
    """A ticker whose runtime went away ends its thread, and its watcher ends too."""
    baseline = _helper_threads()
    runtime = LoopRuntime(name="short-lived").start()
    pool = FakePool(ROLES, loop_thread=runtime.thread)
    ticker = HealthTicker(
        pool, runtime, stop_event=threading.Event(), interval_s=0.01, call_timeout_s=10
    )
    ticker.start()
    assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
    assert runtime.shutdown(timeout=5)
    assert ticker.join(timeout=WAIT_S)
    assert ticker.state == "crashed"
    assert _wait_for(lambda: _helper_threads() <= baseline, 5)
    assert ticker.stop(timeout=1)


# -- 5. one scrape, one view -------------------------------------------------------------------


class _FlippingPool(FakePool):
    """A pool whose ``chat`` ping fails and succeeds on alternate calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n = 0

    async def ping_role(self, role: str) -> None:
        await super().ping_role(role)
        if role == "chat":
            self.n += 1
            if self.n % 2:
                raise ConnectionError("flip")


def test_one_scrape_never_contradicts_itself(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """While ticks flip a role, no scrape says healthy next to an unhealthy role."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from lilbee_ticker.prometheus import TickerCollector

    pool = _FlippingPool(("chat",), loop_thread=lilbee_runtime.thread)
    ticker = make_ticker(pool, interval_s=0.001, call_timeout_s=10, failure_threshold=1).start()
    collector = TickerCollector(ticker)
    contradictions = 0
    scrapes = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        samples = {}
        for family in collector.collect():
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        healthy = samples.get(("lilbee_ticker_healthy", (("ticker", ticker.name),)))
        unhealthy = samples.get(
            (
                "lilbee_ticker_role_status",
                (("role", "chat"), ("status", "unhealthy"), ("ticker", ticker.name)),
            )
        )
        scrapes += 1
        if healthy == 1.0 and unhealthy == 1.0:
            contradictions += 1
    assert ticker.stop(timeout=5)
    assert prometheus_client is not None
    assert scrapes > 100
    assert contradictions == 0, f"{contradictions} of {scrapes} scrapes contradicted themselves"


def test_a_scrape_reads_the_same_view_as_the_probe(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """The scrape's healthy gauge and role statuses come from one reading of the ticker."""
    pytest.importorskip("prometheus_client")
    from lilbee_ticker.prometheus import TickerCollector

    pool = make_pool(ROLES)
    ticker = make_ticker(pool, failure_threshold=1)
    pool.set_ping("chat", Fail())
    ticker.tick()
    reads: list[str] = []
    real_probe, real_health = ticker.probe, ticker.health

    def probe() -> Any:
        reads.append("probe")
        return real_probe()

    def health() -> Any:
        reads.append("health")
        return real_health()

    ticker.probe = probe  # type: ignore[method-assign]
    ticker.health = health  # type: ignore[method-assign]
    list(TickerCollector(ticker).collect())
    assert len(reads) <= 1, f"one scrape read the ticker {len(reads)} times: {reads}"


# -- 6. a role that leaves the pool is told ----------------------------------------------------


class _ShrinkingPool(FakePool):
    """A pool whose registered roles the test can change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown: tuple[str, ...] | None = None

    @property
    def registered_roles(self) -> tuple[str, ...]:
        roles = super().registered_roles
        return roles if self.shown is None else self.shown


def test_a_role_that_leaves_the_pool_is_announced_once(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker, log_tally: LogTally
) -> None:
    """An unhealthy role dropping out of registered_roles gets one REMOVED hook call and event."""
    changes: list[tuple[RoleHealth | None, RoleHealth]] = []
    pool = _ShrinkingPool(ROLES, loop_thread=lilbee_runtime.thread)
    pool.set_ping("chat", Fail())
    ticker = make_ticker(pool, failure_threshold=1, on_change=lambda o, n: changes.append((o, n)))
    ticker.tick()
    assert not ticker.healthy
    changes.clear()
    pool.shown = ("embed", "rerank")
    ticker.tick()
    ticker.tick()
    assert [(o.status if o else None, n.status) for o, n in changes] == [
        (HealthStatus.UNHEALTHY, HealthStatus.REMOVED)
    ]
    assert changes[0][1].role == "chat"
    assert log_tally.count("role.removed") == 1
    assert "chat" not in ticker.health()
    assert "chat" not in ticker.probe().body["roles"]
    assert ticker.healthy
    changes.clear()
    pool.shown = None
    ticker.tick()
    assert [(o, n.role) for o, n in changes] == [(None, "chat")]


# -- 7. capture_logs() leaves the logging path as it found it ------------------------------------


def test_capture_logs_does_not_switch_the_logging_path(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """After capture_logs() ends, with structlog otherwise unconfigured, events go to logging."""
    import logging

    import structlog
    from structlog.testing import capture_logs

    structlog.reset_defaults()  # this suite's guard configures structlog; a user's would not
    try:
        with capture_logs() as logs:
            make_ticker(make_pool(("chat",))).tick()
        assert any(e["event"] == "tick.completed" for e in logs)
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        logger = logging.getLogger("lilbee_ticker")
        handler, level = Keep(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            make_ticker(make_pool(("chat",))).tick()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert any(r.msg.startswith("tick.completed") for r in records)
    finally:
        structlog.reset_defaults()


# -- 8. the testing kit refuses a string for a list ------------------------------------------------


def test_fake_pool_refuses_a_bare_string_for_its_roles() -> None:
    """FakePool("chat") raises a TypeError that names the fix, instead of roles c, h, a, t."""
    with pytest.raises(TypeError, match=r"FakePool\(\[\'chat\'\]\)"):
        FakePool("chat")


# -- 9. the plugin names what is still running --------------------------------------------------


def test_make_tickers_teardown_names_the_reap_still_running(pytester: pytest.Pytester) -> None:
    """A 2 s reap and a 0.5 s stop timeout: teardown names reap_idle(), not the thread."""
    pytester.makeini("[pytest]\nlilbee_ticker_stop_timeout = 0.5\nfilterwarnings = error\n")
    pytester.makepyfile(
        """
        from lilbee_ticker.testing import SlowClose

        def test_slow(fake_pool, make_ticker):
            fake_pool.set_reap(SlowClose(2.0))
            ticker = make_ticker(interval_s=0.01, call_timeout_s=0.1).start()
            assert fake_pool.wait_for_calls("reap_idle", timeout=10)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    text = result.stdout.str()
    assert "reap_idle()" in text
    assert "thread still alive" not in text
    assert "LazyCoroutine object" not in text
    assert SlowClose is not None


# -- beyond: name the call the loop is blocked in ----------------------------------------------


class _BlockingPingPool(FakePool):
    """A pool whose ``chat`` ping blocks the loop with a synchronous sleep."""

    def __init__(self, *args: Any, block_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.block_s = block_s

    async def ping_role(self, role: str) -> None:
        if role == "chat":
            threading.Event().wait(self.block_s)  # time.sleep in the pool's code
        await super().ping_role(role)


def test_a_loop_blocked_inside_a_ping_names_that_ping(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """The loop error names ping_role('chat') when blocked inside it; no role is blamed."""
    pool = _BlockingPingPool(("chat",), loop_thread=lilbee_runtime.thread, block_s=2.5)
    ticker = make_ticker(pool, call_timeout_s=0.2)
    report = ticker.tick()
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert "inside ping_role('chat')" in str(report.loop_error)
    assert "chat" not in report.failed


def test_a_loop_blocked_by_the_application_names_no_call(
    make_pool: MakePool, lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """A loop blocked by the application's own code is reported without naming a call of ours."""
    pool = make_pool(("chat",))
    ticker = make_ticker(pool, call_timeout_s=0.2)
    blocked = threading.Event()

    def block() -> None:
        blocked.set()
        threading.Event().wait(2.0)

    lilbee_runtime.loop.call_soon_threadsafe(block)
    assert blocked.wait(WAIT_S)
    report = ticker.tick()
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert "inside" not in str(report.loop_error)


# -- issue 19: the ticker only reads an event it was lent ------------------------------------------


def test_stop_leaves_an_applications_event_unset(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """stop(), and the end of a with block, stop the ticker without setting the app's event."""
    app_shutdown = threading.Event()
    ticker = make_ticker(
        make_pool(ROLES), stop_event=app_shutdown, interval_s=0.01, call_timeout_s=10
    ).start()
    assert ticker.stop(timeout=5)
    assert not app_shutdown.is_set()
    with make_ticker(
        make_pool(ROLES), stop_event=app_shutdown, interval_s=0.01, call_timeout_s=10
    ) as second:
        assert second.wait_for_tick(1, timeout=WAIT_S) is not None
    assert not second.is_running
    assert not app_shutdown.is_set()


def test_setting_an_applications_event_still_stops_the_ticker_at_once(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """An app event set during a hung ping ends the tick and thread well before its bound."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", IgnoreCancel(0.0))
    app_shutdown = threading.Event()
    ticker = make_ticker(pool, stop_event=app_shutdown, interval_s=0.01, call_timeout_s=60).start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=WAIT_S)
    app_shutdown.set()
    assert ticker.join(timeout=5)
    assert ticker.last_report is None or ticker.last_report.interrupted


class _CountingStepEvent(StepEvent):
    """A StepEvent that counts how often anyone looks at it."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        return super().is_set()


def test_a_stepped_ticker_waits_without_polling_its_event(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A stepped tick waiting 0.5 s on a ping looks at its StepEvent a few times, not 20."""
    pool = make_pool(ROLES)
    pool.script_ping("chat", IgnoreCancel(0.0))
    event = _CountingStepEvent()
    ticker = make_ticker(pool, stop_event=event, interval_s=3600, call_timeout_s=0.5).start()
    event.looks = 0
    report = step(ticker)
    assert isinstance(report.failed["chat"], TimeoutError)
    assert event.looks < 10, f"the tick looked at its event {event.looks} times: it polled"


class _BlockingSurveyPool(FakePool):
    """A pool whose ``registered_roles`` blocks the loop with a synchronous sleep."""

    @property
    def registered_roles(self) -> tuple[str, ...]:
        threading.Event().wait(2.5)
        return super().registered_roles


def test_a_loop_blocked_in_the_survey_names_the_survey_not_the_reap(
    lilbee_runtime: LoopRuntime, make_ticker: MakeTicker
) -> None:
    """A registered_roles that blocks the loop is named as the survey, not as reap_idle()."""
    pool = _BlockingSurveyPool(("chat",), loop_thread=lilbee_runtime.thread)
    report = make_ticker(pool, call_timeout_s=0.2).tick()
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert report.loop_error.stage == "survey"
    assert "inside the survey (registered_roles" in str(report.loop_error)
    assert "reap_idle()" not in str(report.loop_error)
    assert pool.count("reap_idle") == 0


# -- found in review: the ticker's own clock, relays, waiting, formatting -------------------------


def test_stop_from_a_signal_handler_interrupting_tick_soon_ends_at_once(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A handler's stop() that interrupts tick_soon() on the main thread returns True, at once."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    results: list[tuple[bool, float]] = []
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        for _ in range(20):
            ticker = make_ticker(make_pool(ROLES), interval_s=3600, call_timeout_s=5).start()

            def handler(signum: int, frame: Any, ticker: HealthTicker = ticker) -> None:
                started = time.monotonic()
                results.append((ticker.stop(timeout=2.0), time.monotonic() - started))

            signal.signal(signal.SIGUSR1, handler)
            count = len(results)
            sender = threading.Timer(
                0.01, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1)
            )
            sender.start()
            deadline = time.monotonic() + WAIT_S
            while len(results) == count and time.monotonic() < deadline:
                ticker.tick_soon()  # the handler interrupts this loop, anywhere inside it
            sender.join(WAIT_S)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert len(results) == 20
    assert all(stopped for stopped, _ in results), results
    assert max(took for _, took in results) < 1.0, results


class _OwnStateEvent(threading.Event):
    """An Event subclass that keeps its own state, with set(), is_set() and wait() of its own."""

    def __init__(self) -> None:
        super().__init__()
        self._mine = threading.Event()

    def set(self) -> None:
        self._mine.set()

    def is_set(self) -> bool:
        return self._mine.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._mine.wait(timeout)


class _BrokenWaitEvent:
    """A duck-typed event whose wait() raises."""

    def __init__(self) -> None:
        self.flag = False

    def set(self) -> None:
        self.flag = True

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float | None = None) -> bool:
        raise RuntimeError("this event cannot be waited on")


def test_an_event_subclass_with_its_own_state_still_stops_the_ticker(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """An Event subclass keeping its own state is waited on through its own wait()."""
    event = _OwnStateEvent()
    ticker = make_ticker(make_pool(ROLES), stop_event=event, interval_s=0.01, call_timeout_s=5)
    ticker.start()
    assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
    event.set()
    assert ticker.join(timeout=5)
    assert ticker.state == "stopped"


def test_an_event_that_cannot_be_waited_on_stops_the_ticker_loudly(
    make_pool: MakePool, make_ticker: MakeTicker, log_tally: LogTally
) -> None:
    """A stop event whose wait() raises ends its relay with a critical event, and the ticker."""
    ticker = make_ticker(
        make_pool(ROLES), stop_event=_BrokenWaitEvent(), interval_s=0.01, call_timeout_s=5
    )
    ticker.start()
    assert ticker.join(timeout=5)
    assert log_tally.count("relay.crashed") == 1
    log_tally.counts.clear()  # acknowledged: the guard would fail the test on a critical event


def test_a_ticker_driven_by_tick_calls_can_be_waited_on(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """wait_for_tick() on a never-started ticker that another thread ticks waits for that tick."""
    ticker = make_ticker(make_pool(ROLES))
    ticker.tick()
    ticking = threading.Timer(0.05, ticker.tick)
    ticking.start()
    report = ticker.wait_for_tick(2, timeout=WAIT_S)
    ticking.join(WAIT_S)
    assert report is not None and report.number == 2


class _BaseRaisingStr(Exception):
    def __str__(self) -> str:
        raise asyncio.CancelledError("from __str__")


def test_an_exception_whose_str_raises_a_base_exception_still_fails_its_role_alone(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A ping error whose __str__ raises CancelledError is described, not fatal to the tick."""
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail(_BaseRaisingStr()))
    ticker = make_ticker(pool, failure_threshold=1)
    report = ticker.tick()
    assert "chat" in report.failed and set(report.pinged) == {"embed", "rerank"}
    assert ticker.health()["chat"].last_error == "<CancelledError while formatting _BaseRaisingStr>"


def test_a_step_released_before_the_ticker_was_made_ticks_it(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A StepEvent release made before the ticker exists ticks it once it starts."""
    event = StepEvent()
    event.release()
    ticker = make_ticker(make_pool(ROLES), stop_event=event, interval_s=3600).start()
    assert ticker.wait_for_tick(1, timeout=WAIT_S) is not None
