"""`LoopRuntime`: an asyncio event loop in a daemon thread, for pools that need one."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import types
from collections.abc import Coroutine
from typing import Any, TypeVar

from lilbee_ticker import _clock, _log
from lilbee_ticker._exceptions import TickerError
from lilbee_ticker._validate import check_name, check_seconds

__all__ = ["LoopRuntime", "RuntimeNotRunningError"]

_T = TypeVar("_T")

_NEW, _RUNNING, _CLOSING, _CLOSED = "new", "running", "closing", "closed"

# Loop iterations shutdown() lets pass before it looks for pending tasks.
_SETTLE_ITERATIONS = 3


class RuntimeNotRunningError(TickerError, RuntimeError):
    """A :class:`LoopRuntime` was asked to run a coroutine while it was not running.

    Attributes:
        runtime: The runtime's name.
        state: ``"new"`` (not started yet), ``"closing"`` or ``"closed"``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, runtime: str, state: str) -> None:
        self.runtime = runtime
        self.state = state
        fix = (
            "call start() first"
            if state == _NEW
            else "it was shut down; create a new LoopRuntime to run more coroutines"
        )
        super().__init__(f"runtime {runtime!r} is {state}, not running: {fix}")


class _RealTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose timers follow real time even under freezegun.

    ``BaseEventLoop.time()`` reads ``time.monotonic()``, which freezegun
    replaces and answers with frozen or real time depending on the caller's
    stack depth; a loop that sees both never wakes its timers on time.
    """

    def time(self) -> float:
        return _clock.monotonic()


class LoopRuntime:
    """Run an asyncio event loop in a daemon thread and accept coroutines from any thread.

    This is the *runtime* a :class:`HealthTicker` needs, for applications
    that have none of their own: the pool lives on this loop, and
    :meth:`submit` is :func:`asyncio.run_coroutine_threadsafe`. It runs once,
    like a thread. :meth:`shutdown` cancels whatever is still pending, closes
    the loop and joins the thread, and records what it had to cancel in
    :attr:`pending_at_shutdown`.

    Its loop keeps real time under freezegun, so ``asyncio.sleep()`` and
    timeouts in the pool behave in tests that freeze the clock.

    Args:
        name: The loop thread's name.

    Thread safety: every method may be called from any thread.
    :meth:`shutdown` from the loop's own thread stops the loop without
    waiting for it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, name: str = "lilbee-runtime") -> None:
        self._name = check_name(name)
        # _lock guards _state, _loop and _thread. submit() schedules under it
        # so that no coroutine is handed to a loop that shutdown() has begun
        # to close; scheduling never blocks.
        self._lock = threading.RLock()  # reentrant: a signal handler may call shutdown()
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._pending_at_shutdown: tuple[str, ...] = ()
        self._stuck_at_shutdown: tuple[str, ...] = ()
        self._abandon_pending = False  # shutdown(cancel_pending=False) was called

    @property
    def name(self) -> str:
        """The loop thread's name."""
        return self._name

    @property
    def is_running(self) -> bool:
        """True from a successful :meth:`start` until :meth:`shutdown` begins."""
        return self._state == _RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop.

        Raises:
            RuntimeNotRunningError: The runtime was never started.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeNotRunningError(self._name, self._state)
        return loop

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, or ``None`` before :meth:`start`."""
        return self._thread

    @property
    def pending_at_shutdown(self) -> tuple[str, ...]:
        """Tasks that were still pending when :meth:`shutdown` began, and were cancelled.

        Empty after a tidy shutdown. In a test, anything here is work that was
        left running: for example a pool call that nobody waited for.
        """
        return self._pending_at_shutdown

    @property
    def stuck_at_shutdown(self) -> tuple[str, ...]:
        """Tasks that ignored cancellation and were still pending when the loop closed."""
        return self._stuck_at_shutdown

    def start(self, timeout: float = 10.0) -> LoopRuntime:
        """Start the loop thread and wait until the loop runs; return the runtime.

        Raises:
            RuntimeError: The runtime was already started, or its loop did not
                start within ``timeout`` seconds.
        """
        timeout = check_seconds("timeout", timeout)
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(
                    f"runtime {self._name!r} was already started; a LoopRuntime runs once, "
                    "create a new one"
                )
            loop = _RealTimeEventLoop()
            thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
            self._loop = loop
            self._thread = thread
            self._state = _RUNNING
            try:
                thread.start()
            except BaseException:
                # A Ctrl-C, or no thread to be had: leave no loop unclosed and
                # no thread that shutdown() would try to join before its start.
                self._state = _CLOSED
                if thread.ident is None:
                    self._thread = None
                    loop.close()
                else:  # it did start: let it stop and close its loop itself
                    loop.call_soon_threadsafe(loop.stop)
                raise
        if not self._ready.wait(timeout):
            self.shutdown(timeout=0)
            raise RuntimeError(f"runtime {self._name!r}: the loop did not start in {timeout:g}s")
        return self

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the loop and return a future for its result.

        Raises:
            RuntimeNotRunningError: The runtime is not running. ``coro`` is
                closed first, so it raises no "never awaited" warning.
        """
        with self._lock:
            if self._state != _RUNNING or self._loop is None:
                coro.close()
                raise RuntimeNotRunningError(self._name, self._state)
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, _T], *, timeout: float = 10.0) -> _T:
        """Run ``coro`` on the loop and wait up to ``timeout`` seconds for its result.

        Raises:
            TimeoutError: It did not finish in time; it is cancelled.
            RuntimeNotRunningError: The runtime is not running.
            TickerError: Called from the loop's own thread, where it would wait
                for itself (``await`` the coroutine instead).
        """
        timeout = check_seconds("timeout", timeout)
        if self._in_loop_thread():
            coro.close()
            raise TickerError(
                f"runtime {self._name!r}: run() was called from the loop's own thread, "
                "where it would wait for itself; await the coroutine instead"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            # On Python >= 3.11 this is also the TimeoutError a coroutine may
            # raise itself: only a future that is still running timed out here.
            if future.done():
                return future.result()
            future.cancel()
            raise TimeoutError(
                f"runtime {self._name!r}: coroutine did not finish within {timeout:g}s"
            ) from None

    def shutdown(self, timeout: float = 5.0, *, cancel_pending: bool = True) -> bool:
        """Cancel pending tasks, stop and close the loop, and join its thread.

        Idempotent. Calls made while a shutdown is under way wait for the same
        thread. From the loop's own thread it only asks the loop to stop.

        Args:
            timeout: Longest time in seconds to wait, in all, for cancelled
                tasks to finish and for the thread to end.
            cancel_pending: If False, stop and close the loop as it is, with
                whatever runs on it left pending and never finished, as some
                runtimes do (lilbee's ``PoolRuntime``); for testing how code
                copes with such a runtime. The tasks left behind are listed in
                :attr:`pending_at_shutdown`.

        .. versionchanged:: 0.2.0
           Added ``cancel_pending``.

        Returns:
            True if the loop thread has ended, False if it was still running
            when ``timeout`` passed (or if called from the loop thread).
        """
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        with self._lock:
            if self._state == _NEW:
                self._state = _CLOSED
                return True
            loop, thread = self._loop, self._thread
            if self._state == _RUNNING:
                self._state = _CLOSING
                assert loop is not None
                if cancel_pending:
                    loop.call_soon_threadsafe(self._drain_and_stop, loop, timeout)
                else:
                    self._abandon_pending = True
                    loop.call_soon_threadsafe(self._stop_as_is, loop)
        assert thread is not None
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> LoopRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<LoopRuntime {self._name!r} {self._state}>"

    # -- the loop thread ---------------------------------------------------------

    def _in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        except BaseException as exc:  # a thread never dies silently
            # Something on the loop raised KeyboardInterrupt or SystemExit.
            # Take no more work, and do not run the loop again to close it:
            # what is pending there is abandoned, as the exception meant.
            with self._lock:
                self._state = _CLOSING
                self._abandon_pending = True
            _log.emit("critical", "runtime.crashed", runtime=self._name, exc_info=exc)
        finally:
            try:
                self._close(loop)
            finally:
                with self._lock:
                    self._state = _CLOSED

    def _drain_and_stop(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """On the loop: start the task that cancels the rest and then stops the loop."""
        task = loop.create_task(
            self._cancel_all_and_stop(loop, timeout), name=f"{self._name}-shutdown"
        )
        # If the loop dies under it (see _run), it is abandoned with the rest.
        task._log_destroy_pending = False  # type: ignore[attr-defined]

    async def _cancel_all_and_stop(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        # Let cancellations requested just before shutdown (a caller that
        # cancelled its future, then shut down) run their course first, so
        # that only work nobody cancelled is reported as pending.
        for _ in range(_SETTLE_ITERATIONS):
            await asyncio.sleep(0)
        me = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks(loop) if task is not me and not task.done()]
        self._pending_at_shutdown = tuple(sorted(_describe(task) for task in tasks))
        if tasks:
            _log.emit(
                "debug", "runtime.cancelling", runtime=self._name, tasks=self._pending_at_shutdown
            )
            for task in tasks:
                task.cancel()
            # Leave a little of the caller's budget for closing the loop.
            _, stuck = await asyncio.wait(tasks, timeout=timeout * 0.8)
            if stuck:
                self._stuck_at_shutdown = tuple(sorted(_describe(task) for task in stuck))
                _log.emit(
                    "warning",
                    "runtime.tasks_stuck",
                    runtime=self._name,
                    tasks=self._stuck_at_shutdown,
                )
        loop.stop()

    def _stop_as_is(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: note what is pending and stop, cancelling nothing."""
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        self._pending_at_shutdown = tuple(sorted(_describe(task) for task in pending))
        loop.stop()

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            if not self._abandon_pending:  # running the loop again would let them go on
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    label = getattr(coro, "label", None)  # a ticker's own call names itself: reap_idle()
    if isinstance(label, str):
        return f"{label} (lilbee_ticker)"
    name = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()}: {name}"
