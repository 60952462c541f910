"""LoopRuntime: an event loop in a daemon thread that takes coroutines from any thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import freezegun
import pytest

from lilbee_ticker import LoopRuntime, RuntimeNotRunningError, TickerError


async def _answer() -> int:
    return 42


def test_submit_runs_on_the_loop_thread() -> None:
    """submit() returns a concurrent future whose coroutine ran on the loop's thread."""

    async def where() -> str:
        return threading.current_thread().name

    with LoopRuntime(name="rt-where") as runtime:
        assert runtime.is_running
        assert runtime.submit(where()).result(5) == "rt-where"
        assert runtime.thread is not None and runtime.thread.daemon
        assert runtime.run(_answer()) == 42
    assert not runtime.is_running
    assert runtime.loop.is_closed()


def test_submit_before_start_and_after_shutdown_raises_and_closes_the_coroutine() -> None:
    """submit() on a runtime that is not running raises and leaves no never-awaited coroutine."""
    runtime = LoopRuntime()
    with pytest.raises(RuntimeNotRunningError, match="is new, not running: call start"):
        runtime.submit(_answer())
    runtime.start()
    assert runtime.shutdown()
    with pytest.raises(
        RuntimeNotRunningError, match=r"is closed.*create a new LoopRuntime"
    ) as info:
        runtime.submit(_answer())
    assert info.value.state == "closed"
    gc.collect()  # "coroutine was never awaited" would be an error here


def test_shutdown_is_idempotent_and_safe_before_start() -> None:
    """shutdown() before start(), and twice, returns True."""
    assert LoopRuntime().shutdown()
    runtime = LoopRuntime().start()
    assert runtime.shutdown()
    assert runtime.shutdown()
    with pytest.raises(RuntimeError, match="already started"):
        runtime.start()


def test_shutdown_cancels_and_reports_pending_tasks() -> None:
    """Work still running at shutdown is cancelled and named in pending_at_shutdown."""
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runtime = LoopRuntime().start()
    future = runtime.submit(forever())
    assert runtime.shutdown(timeout=5)
    assert cancelled.is_set()
    assert future.cancelled()
    assert len(runtime.pending_at_shutdown) == 1
    assert "forever" in runtime.pending_at_shutdown[0]
    assert runtime.stuck_at_shutdown == ()


def test_task_that_ignores_cancellation_is_reported_and_shutdown_stays_bounded() -> None:
    """A task that swallows cancellation cannot hold shutdown beyond its timeout."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue  # deliberately ignores cancellation

    runtime = LoopRuntime().start()
    runtime.submit(stubborn())
    started = time.monotonic()
    runtime.shutdown(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert any("stubborn" in task for task in runtime.stuck_at_shutdown)


def test_run_times_out_and_cancels() -> None:
    """run() waits a bounded time, then cancels the coroutine and raises TimeoutError."""

    async def slow() -> None:
        await asyncio.sleep(60)

    with LoopRuntime() as runtime, pytest.raises(TimeoutError, match=r"within 0\.05s"):
        runtime.run(slow(), timeout=0.05)
    assert runtime.pending_at_shutdown == ()


def test_run_from_the_loop_thread_raises() -> None:
    """run() on the loop's own thread would wait for itself, so it raises."""

    async def nested() -> None:
        runtime.run(_answer())

    with LoopRuntime() as runtime, pytest.raises(TickerError, match="await the coroutine instead"):
        runtime.run(nested())
    gc.collect()


def test_shutdown_from_the_loop_thread_does_not_deadlock() -> None:
    """shutdown() called on the loop thread stops the loop without joining itself."""
    runtime = LoopRuntime().start()

    async def shut_down_from_inside() -> bool:
        return runtime.shutdown()

    assert runtime.submit(shut_down_from_inside()).result(5) is False
    assert runtime.thread is not None
    runtime.thread.join(5)
    assert not runtime.thread.is_alive()


def test_timers_keep_real_time_under_freezegun() -> None:
    """asyncio.sleep() on the runtime's loop works while freezegun freezes time."""

    async def nap() -> str:
        await asyncio.sleep(0.05)
        return "woke"

    with freezegun.freeze_time("2026-01-01"), LoopRuntime() as runtime:
        assert runtime.run(nap(), timeout=5) == "woke"


def test_run_passes_through_a_timeout_error_the_coroutine_raised() -> None:
    """A TimeoutError raised by the coroutine itself is not mistaken for run()'s own timeout."""

    async def times_out_inside() -> None:
        raise TimeoutError("the worker's own timeout")

    with LoopRuntime() as runtime, pytest.raises(TimeoutError, match="the worker's own timeout"):
        runtime.run(times_out_inside(), timeout=5)


def test_shutdown_without_cancelling_leaves_work_pending_as_some_runtimes_do() -> None:
    """shutdown(cancel_pending=False) stops the loop as is; the pending work never ends."""
    runtime = LoopRuntime(name="stops-as-is").start()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    future = runtime.submit(forever())
    assert started.wait(5)
    assert runtime.shutdown(timeout=5, cancel_pending=False)
    assert not future.done()  # nobody cancelled it, and its loop is gone
    assert len(runtime.pending_at_shutdown) == 1
    with pytest.raises(RuntimeNotRunningError):
        runtime.submit(_answer())
    del future
    gc.collect()
