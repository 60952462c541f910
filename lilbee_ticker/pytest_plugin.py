"""pytest fixtures for testing code that uses lilbee_ticker.

Installing lilbee_ticker registers this module through the ``pytest11``
entry point, so these fixtures are available in every test:

* ``lilbee_runtime``: a started :class:`lilbee_ticker.LoopRuntime`, shut
  down after the test, which fails if a task on its loop ignored
  cancellation.
* ``fake_pool``: a :class:`lilbee_ticker.testing.FakePool` bound to that
  runtime's loop thread, which fails the test if anything touched it from
  another thread.
* ``make_ticker``: a factory for :class:`lilbee_ticker.HealthTicker` (pool
  and runtime default to the two above) that stops every ticker it made
  after the test, and fails the test if one's thread is still alive or died
  with an exception.
* ``wait_for_ticks``: ``wait_for_ticks(ticker, n)`` blocks, without polling,
  until the ticker has completed tick ``n``, and fails the test after a
  bounded wait.

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
from lilbee_ticker.testing import FakePool

__all__ = [
    "MakeTicker",
    "WaitForTicks",
    "fake_pool",
    "lilbee_runtime",
    "make_ticker",
    "wait_for_ticks",
]

# How long teardown waits for a ticker's thread, and wait_for_ticks for ticks.
_STOP_TIMEOUT_S = 5.0
_WAIT_TIMEOUT_S = 10.0


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
        self, ticker: HealthTicker, count: int = 1, *, timeout: float = _WAIT_TIMEOUT_S
    ) -> TickReport:
        """Wait until ``ticker`` has completed tick ``count``; return the latest report."""
        ...


@pytest.fixture
def lilbee_runtime() -> Iterator[LoopRuntime]:
    """A started :class:`LoopRuntime`; fails the test if a task ignores cancellation."""
    runtime = LoopRuntime(name="lilbee-test-runtime").start()
    yield runtime
    ended = runtime.shutdown(timeout=_STOP_TIMEOUT_S)
    if runtime.stuck_at_shutdown:
        pytest.fail(
            f"tasks ignored cancellation at runtime shutdown: {list(runtime.stuck_at_shutdown)}"
        )
    if not ended:
        pytest.fail(f"the runtime's loop thread did not end within {_STOP_TIMEOUT_S:g}s")


@pytest.fixture
def fake_pool(lilbee_runtime: LoopRuntime) -> Iterator[FakePool]:
    """A :class:`FakePool` on ``lilbee_runtime``'s loop; fails the test on wrong-thread use."""
    pool = FakePool(loop_thread=lilbee_runtime.thread)
    yield pool
    if pool.violations:
        pytest.fail(f"pool state was touched from the wrong thread: {pool.violations[0]}")


@pytest.fixture
def make_ticker(lilbee_runtime: LoopRuntime, fake_pool: FakePool) -> Iterator[MakeTicker]:
    """A factory for tickers that are all stopped and checked after the test."""
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
        if not ticker.stop(timeout=_STOP_TIMEOUT_S):
            problems.append(
                f"ticker {ticker.name!r}: thread still alive {_STOP_TIMEOUT_S:g}s after stop()"
            )
        if ticker.exception is not None:
            problems.append(f"ticker {ticker.name!r} died with an exception: {ticker.exception!r}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def wait_for_ticks() -> WaitForTicks:
    """Return ``wait(ticker, n)``: block until tick ``n`` completed, failing after a bound."""

    def wait(
        ticker: HealthTicker, count: int = 1, *, timeout: float = _WAIT_TIMEOUT_S
    ) -> TickReport:
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
