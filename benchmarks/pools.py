"""The pool and the runtime that every contender drives, so that only the ticker differs.

:class:`BenchPool` fits :class:`lilbee_ticker.Pool`. Its pings take a fixed
time on the loop (``asyncio.sleep``), or no time at all (the no-op pool), or
never answer (a hung worker). It records, on the loop, what a benchmark
needs: when each tick reached the pool, how many pings ran at once, when a
hung ping was cancelled, and any access from a thread other than the loop's.

:class:`CountingRuntime` wraps the shared :class:`lilbee_ticker.LoopRuntime`
and counts ``submit()`` calls: each one is a hop to the loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from lilbee_ticker import Runtime

__all__ = ["BenchPool", "CountingRuntime"]

_T = TypeVar("_T")


class _Accessor:
    """``pool.accessor(role)``: reads the role's liveness from the pool's set."""

    __slots__ = ("_alive", "_role")

    def __init__(self, alive: set[str], role: str) -> None:
        self._alive = alive
        self._role = role

    @property
    def is_alive(self) -> bool:
        """True while the role's (imaginary) worker is alive."""
        return self._role in self._alive


class BenchPool:
    """A pool of ``roles`` workers whose pings cost ``ping_s`` of loop time and nothing else.

    Every design reads ``registered_roles`` exactly once per tick, at the
    start of its survey, so :attr:`survey_times` holds the moment each tick
    reached the pool, as :func:`time.perf_counter` read on the loop.

    Args:
        roles: How many roles are registered (``role-0000``, ...).
        loop_thread: The runtime's loop thread; any pool access from another
            thread is counted in :attr:`violations`.
        alive: Whether the roles start alive. With none alive a tick only
            surveys (the idle case).
        ping_s: Seconds each ping awaits on the loop; 0 is the no-op pool,
            whose ping returns without awaiting anything.
        hang: Pings never answer until they are cancelled.

    Thread safety: the protocol surface runs on the loop thread only and
    takes no lock (like a real pool). The harness configures the pool and
    calls :meth:`reset` only while no contender is running; it reads the
    counters then too, or waits on the :class:`threading.Event` objects,
    which are thread-safe.
    """

    def __init__(
        self,
        roles: int,
        *,
        loop_thread: threading.Thread,
        alive: bool = True,
        ping_s: float = 0.0,
        hang: bool = False,
    ) -> None:
        if roles < 1:
            raise ValueError(f"roles must be an int >= 1, got {roles!r}")
        if loop_thread.ident is None:
            raise ValueError("loop_thread must be started: pass runtime.thread after start()")
        self._names = tuple(f"role-{i:04d}" for i in range(roles))
        self._alive: set[str] = set(self._names) if alive else set()
        self._accessors = {name: _Accessor(self._alive, name) for name in self._names}
        self._loop_ident = loop_thread.ident
        self.ping_s = ping_s
        self.hang = hang
        self.reset()

    def reset(self) -> None:
        """Forget every count and timestamp; call only while no contender runs."""
        self.survey_times: list[float] = []
        self.pings = 0
        self.reaps = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.violations = 0
        self.hang_started = threading.Event()
        self.hang_cancelled = threading.Event()
        self.hang_cancelled_at: float | None = None
        # Survey count -> event to set when the pool sees that many surveys.
        # The harness adds entries from its thread and the loop pops them;
        # single dict operations are atomic in CPython.
        self._milestones: dict[int, threading.Event] = {}

    def at_survey(self, count: int) -> threading.Event:
        """Return an event that is set when the pool has seen ``count`` surveys (ticks)."""
        event = threading.Event()
        if len(self.survey_times) >= count:
            event.set()
        else:
            self._milestones[count] = event
        return event

    @property
    def surveys(self) -> int:
        """How many ticks have reached the pool since the last :meth:`reset`."""
        return len(self.survey_times)

    # -- the lilbee_ticker.Pool protocol (loop thread only) --------------------------

    @property
    def registered_roles(self) -> tuple[str, ...]:
        """Every registered role; reading it marks the start of a tick."""
        self._check_thread()
        self.survey_times.append(time.perf_counter())
        if self._milestones:
            event = self._milestones.pop(len(self.survey_times), None)
            if event is not None:
                event.set()
        return self._names

    def accessor(self, role: str) -> _Accessor:
        """Return the handle whose ``is_alive`` says whether ``role`` is alive."""
        self._check_thread()
        return self._accessors[role]

    async def reap_idle(self) -> tuple[str, ...]:
        """Reap nothing: every worker is in use."""
        self._check_thread()
        self.reaps += 1
        return ()

    async def ping_role(self, role: str) -> None:
        """Ping ``role``: spawn it if needed, then take ``ping_s`` (or hang)."""
        self._check_thread()
        self.pings += 1
        self._alive.add(role)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hang:
                self.hang_started.set()
                try:
                    await asyncio.get_running_loop().create_future()  # never resolved
                except asyncio.CancelledError:
                    self.hang_cancelled_at = time.perf_counter()
                    self.hang_cancelled.set()
                    raise
            elif self.ping_s > 0.0:
                await asyncio.sleep(self.ping_s)
        finally:
            self.in_flight -= 1

    def _check_thread(self) -> None:
        if threading.get_ident() != self._loop_ident:
            self.violations += 1


class CountingRuntime:
    """A :class:`lilbee_ticker.Runtime` that counts the coroutines submitted to another one.

    Args:
        runtime: The runtime that runs the coroutines.

    Thread safety: :meth:`submit` may be called from any thread.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()  # guards _submits
        self._submits = 0

    def count(self) -> None:
        """Count a coroutine submitted to the loop without :meth:`submit` (the floor's)."""
        with self._lock:
            self._submits += 1

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The wrapped runtime's loop, for the floor, which submits to it directly."""
        loop = getattr(self._runtime, "loop", None)
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"{self._runtime!r} has no event loop to share")
        return loop

    @property
    def submits(self) -> int:
        """How many coroutines were submitted so far."""
        with self._lock:
            return self._submits

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Count the call, then submit ``coro`` to the wrapped runtime."""
        with self._lock:
            self._submits += 1
        return self._runtime.submit(coro)
