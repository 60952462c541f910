"""pytest fixtures for testing code that uses lilbee_ticker.

Installing lilbee_ticker registers this module through the ``pytest11``
entry point, so these fixtures are available in every test:

* ``lilbee_runtime``: a started :class:`lilbee_ticker.LoopRuntime`, shut
  down after the test, which fails the test if work was still pending on its
  loop (a coroutine nobody waited for) or ignored cancellation.
* ``fake_pool``: a :class:`lilbee_ticker.testing.FakePool` bound to that
  runtime's loop thread, which fails the test if anything touched it from
  another thread.
* ``make_ticker``: a factory for :class:`lilbee_ticker.HealthTicker` (pool
  and runtime default to the two above) that stops every ticker it made
  after the test, and fails the test if one's thread is still alive or hit
  an unexpected exception (:attr:`HealthTicker.exception`).
* ``wait_for_ticks``: ``wait_for_ticks(ticker, n)`` blocks, without polling,
  until the ticker has completed tick ``n``, and fails the test after a
  bounded wait.

Two ini options tune the bounds: ``lilbee_ticker_stop_timeout`` (seconds
teardown waits for each ticker's thread and for the runtime, default 5) and
``lilbee_ticker_wait_timeout`` (default bound of ``wait_for_ticks``, default
10).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._report import TickReport
from lilbee_ticker._runtime import LoopRuntime
from lilbee_ticker._ticker import HealthTicker
from lilbee_ticker._validate import check_seconds
from lilbee_ticker.testing import FakePool

__all__ = [
    "MakeTicker",
    "WaitForTicks",
    "fake_pool",
    "lilbee_runtime",
    "make_ticker",
    "wait_for_ticks",
]

_STOP_TIMEOUT_INI = "lilbee_ticker_stop_timeout"
_WAIT_TIMEOUT_INI = "lilbee_ticker_wait_timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's ini options."""
    parser.addini(
        _STOP_TIMEOUT_INI,
        "seconds teardown waits for each ticker's thread and for the runtime (default 5)",
        default="5",
    )
    parser.addini(
        _WAIT_TIMEOUT_INI,
        "default seconds wait_for_ticks waits before failing the test (default 10)",
        default="10",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse bad ini values before any test runs."""
    _ini_seconds(config, _STOP_TIMEOUT_INI)
    _ini_seconds(config, _WAIT_TIMEOUT_INI)


def _ini_seconds(config: pytest.Config, name: str) -> float:
    raw = config.getini(name)
    try:
        return check_seconds(name, float(raw))
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"ini option {name} = {raw!r}: {exc}") from None


class MakeTicker(Protocol):
    """The type of the ``make_ticker`` fixture."""

    def __call__(
        self, pool: Pool | None = None, runtime: Runtime | None = None, **kwargs: Any
    ) -> HealthTicker:
        """Create a ticker (not started); ``kwargs`` go to :class:`HealthTicker`."""
        ...


class WaitForTicks(Protocol):
    """The type of the ``wait_for_ticks`` fixture."""

    def __call__(
        self, ticker: HealthTicker, count: int = 1, *, timeout: float | None = None
    ) -> TickReport:
        """Wait until ``ticker`` has completed tick ``count``; return the latest report.

        ``timeout`` defaults to the ``lilbee_ticker_wait_timeout`` ini option.
        """
        ...


@pytest.fixture
def lilbee_runtime(pytestconfig: pytest.Config) -> Iterator[LoopRuntime]:
    """A started :class:`LoopRuntime`; fails the test if work was left pending on its loop."""
    stop_timeout = _ini_seconds(pytestconfig, _STOP_TIMEOUT_INI)
    runtime = LoopRuntime(name="lilbee-test-runtime").start()
    yield runtime
    ended = runtime.shutdown(timeout=stop_timeout)
    problems = []
    if runtime.pending_at_shutdown:
        problems.append(
            "tasks were still pending on the runtime's loop at the end of the test and were "
            f"cancelled: {list(runtime.pending_at_shutdown)}"
        )
    if runtime.stuck_at_shutdown:
        problems.append(f"tasks ignored cancellation: {list(runtime.stuck_at_shutdown)}")
    if not ended:
        problems.append(f"the runtime's loop thread did not end within {stop_timeout:g}s")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def fake_pool(lilbee_runtime: LoopRuntime) -> Iterator[FakePool]:
    """A :class:`FakePool` on ``lilbee_runtime``'s loop; fails the test on wrong-thread use."""
    pool = FakePool(loop_thread=lilbee_runtime.thread)
    yield pool
    if pool.violations:
        pytest.fail(f"pool state was touched from the wrong thread: {pool.violations[0]}")


@pytest.fixture
def make_ticker(
    lilbee_runtime: LoopRuntime, fake_pool: FakePool, pytestconfig: pytest.Config
) -> Iterator[MakeTicker]:
    """A factory for tickers that are all stopped and checked after the test."""
    stop_timeout = _ini_seconds(pytestconfig, _STOP_TIMEOUT_INI)
    made: list[HealthTicker] = []

    def make(
        pool: Pool | None = None, runtime: Runtime | None = None, **kwargs: Any
    ) -> HealthTicker:
        kwargs.setdefault("name", f"test-ticker-{len(made) + 1}")
        ticker = HealthTicker(
            fake_pool if pool is None else pool,
            lilbee_runtime if runtime is None else runtime,
            **kwargs,
        )
        made.append(ticker)
        return ticker

    yield make

    problems: list[str] = []
    for ticker in made:
        if not ticker.stop(timeout=stop_timeout):
            if ticker.is_running:
                still = "thread still alive"
            else:
                running = ", ".join(ticker._book.running()) or "a call of the ticker's"
                still = f"{running} still running on the runtime's loop"
            problems.append(f"ticker {ticker.name!r}: {still} {stop_timeout:g}s after stop()")
        if ticker.exception is not None:
            problems.append(
                f"ticker {ticker.name!r} raised an unexpected exception in its own code "
                f"(see its tick.crashed or ticker.crashed log event): {ticker.exception!r}"
            )
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def wait_for_ticks(pytestconfig: pytest.Config) -> WaitForTicks:
    """Return ``wait(ticker, n)``: block until tick ``n`` completed, failing after a bound."""
    default_timeout = _ini_seconds(pytestconfig, _WAIT_TIMEOUT_INI)

    def wait(ticker: HealthTicker, count: int = 1, *, timeout: float | None = None) -> TickReport:
        if timeout is None:
            timeout = default_timeout
        report = ticker.wait_for_tick(count, timeout=timeout)
        if report is None:
            last = ticker.last_report
            done = 0 if last is None else last.number
            pytest.fail(
                f"ticker {ticker.name!r} completed {done} of {count} ticks within {timeout:g}s "
                f"(running: {ticker.is_running})"
            )
        return report

    return wait
