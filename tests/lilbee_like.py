"""A pool and runtime that behave as lilbee's do, with real worker processes.

Written from the published facts about lilbee's ``WorkerPool`` and
``PoolRuntime`` (``src/lilbee/providers/worker/pool.py``), not from its code:

* ``ping_role(role, *, timeout=None)`` bounds itself (5 s by default), spawns
  a worker that is not alive, and stamps the role's last use when it succeeds:
  to this pool a ping is a use.
* ``reap_idle()`` takes an idle role's channel out of the pool first, then
  closes its process: it waits for the close ack, then for the process to
  exit, then terminates it and waits again. Cancelled part-way, the process
  is left running, and the pool no longer knows it; :attr:`LilbeeLikePool.spawned`
  still does, so a test can tell.
* ``accessor(role)`` raises ``KeyError`` for a role that is not registered.
* ``PoolRuntime.shutdown()`` stops its loop without cancelling anything; after
  it, ``submit()`` closes the coroutine and raises :class:`PoolShutdownError`.

The close bounds are parameters, so that tests can scale lilbee's 5 s + 5 s +
2 s down. Everything ``async`` and every pool attribute run on the runtime's
loop thread only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Coroutine
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

_T = TypeVar("_T")

_SPAWN = multiprocessing.get_context("spawn")


class PoolShutdownError(RuntimeError):
    """The runtime (or pool) was shut down."""


def worker_main(conn: multiprocessing.connection.Connection) -> None:
    """A worker: answers pings until told to hang or to close; exits when its parent goes."""
    hung = False
    while True:
        try:
            if not conn.poll(None):
                continue
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if hung:
            continue  # a hung worker reads, but never answers, not even "close"
        if message == "ping":
            conn.send("pong")
        elif message == "hang":
            hung = True
        elif message == "close":
            conn.send("ack")
            return


async def _readable(fd: int, timeout: float) -> None:
    """Wait until ``fd`` is readable; raise ``TimeoutError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(ready, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"fd {fd} not readable within {timeout:g}s") from None
    finally:
        loop.remove_reader(fd)


class Channel:
    """The parent's end of one worker process."""

    def __init__(self, process: BaseProcess, conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn

    @property
    def is_alive(self) -> bool:
        return self.process.is_alive()

    async def ping(self, timeout: float) -> None:
        self.conn.send("ping")
        await _readable(self.conn.fileno(), timeout)
        if self.conn.recv() != "pong":
            raise RuntimeError("worker answered a ping with something else")

    async def close(self, ack_s: float, join_s: float, terminate_s: float) -> None:
        """Ask the worker to exit, wait for it, then terminate it: each step bounded."""
        try:
            self.conn.send("close")
            await _readable(self.conn.fileno(), ack_s)
            self.conn.recv()
        except (TimeoutError, OSError, EOFError):
            pass  # no ack: a hung or dead worker; the join and terminate deal with it
        try:
            await _readable(self.process.sentinel, join_s)
        except TimeoutError:
            self.process.terminate()
            await _readable(self.process.sentinel, terminate_s)
        # The sentinel is readable once the worker has closed its files, a
        # moment before the kernel lets its status be collected: join, briefly.
        self.process.join(terminate_s)
        self.conn.close()


class _Accessor:
    def __init__(self, pool: LilbeeLikePool, role: str) -> None:
        self._pool = pool
        self._role = role

    @property
    def is_alive(self) -> bool:
        channel = self._pool._channels.get(self._role)
        return channel is not None and channel.is_alive


class LilbeeLikePool:
    """A pool of real worker processes, one per role, that behaves as lilbee's does."""

    def __init__(
        self,
        roles: tuple[str, ...],
        *,
        max_idle_s: float,
        ack_s: float = 5.0,
        join_s: float = 5.0,
        terminate_s: float = 2.0,
        health_timeout_s: float = 5.0,
    ) -> None:
        self._roles = roles
        self._max_idle_s = max_idle_s
        self._bounds = (ack_s, join_s, terminate_s)
        self._health_timeout_s = health_timeout_s
        self._channels: dict[str, Channel] = {}
        self._last_used: dict[str, float] = {}
        self._shutdown = False
        self.spawned: list[BaseProcess] = []  # every worker ever started, known or not
        self.reaps_in_flight = 0
        self.reaps_cancelled = 0
        self.pings_seen: list[tuple[str, float | None]] = []
        self.ping_started = threading.Event()  # set by every ping, for tests to wait on
        self.reap_started = threading.Event()  # set when a reap begins closing a worker

    @property
    def registered_roles(self) -> tuple[str, ...]:
        return self._roles

    def accessor(self, role: str) -> _Accessor:
        if role not in self._roles:
            raise KeyError(f"Role {role!r} is not registered on this pool.")
        return _Accessor(self, role)

    async def start_eager(self) -> None:
        """Spawn every role's worker and wait until each answers a ping."""
        for role in self._roles:
            self._ensure(role)
        for role in self._roles:
            await self._channels[role].ping(timeout=30.0)

    async def ping_role(self, role: str, *, timeout: float | None = None) -> None:
        self.pings_seen.append((role, timeout))
        self.ping_started.set()
        channel = self._ensure(role)
        await channel.ping(self._health_timeout_s if timeout is None else timeout)
        self._last_used[role] = asyncio.get_running_loop().time()

    async def reap_idle(self) -> tuple[str, ...]:
        now = asyncio.get_running_loop().time()
        reaped: list[str] = []
        self.reaps_in_flight += 1
        try:
            for role in self._roles:
                channel = self._channels.get(role)
                if channel is None or not channel.is_alive:
                    continue
                if now - self._last_used.get(role, now) < self._max_idle_s:
                    continue
                del self._channels[role]  # out of the pool first, then closed
                self.reap_started.set()
                try:
                    await channel.close(*self._bounds)
                except asyncio.CancelledError:
                    self.reaps_cancelled += 1
                    raise
                reaped.append(role)
        finally:
            self.reaps_in_flight -= 1
        return tuple(reaped)

    async def shutdown(self) -> None:
        self._shutdown = True
        channels = list(self._channels.values())
        self._channels.clear()
        await asyncio.gather(
            *(channel.close(*self._bounds) for channel in channels), return_exceptions=True
        )

    async def hang(self, role: str) -> None:
        """Make ``role``'s worker stop answering anything (a hung model, say)."""
        self._ensure(role).conn.send("hang")

    async def make_idle(self, role: str) -> None:
        """Make ``role`` look idle for longer than ``max_idle_s``."""
        self._last_used[role] = asyncio.get_running_loop().time() - self._max_idle_s - 1.0

    def _ensure(self, role: str) -> Channel:
        if self._shutdown:
            raise PoolShutdownError("the pool is shut down")
        if role not in self._roles:
            raise KeyError(f"Role {role!r} is not registered on this pool.")
        channel = self._channels.get(role)
        if channel is not None and channel.is_alive:
            return channel
        parent, child = _SPAWN.Pipe()
        process = _SPAWN.Process(target=worker_main, args=(child,), daemon=True)
        process.start()
        child.close()
        self.spawned.append(process)
        channel = self._channels[role] = Channel(process, parent)
        self._last_used[role] = asyncio.get_running_loop().time()
        return channel


class LilbeeLikeRuntime:
    """An asyncio loop in a thread whose shutdown stops the loop without cancelling anything."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopped = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lilbee-like-loop", daemon=True)

    def start(self) -> LilbeeLikeRuntime:
        self.thread.start()
        assert self._ready.wait(10)
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, _T]) -> Any:
        with self._lock:
            if self._stopped:
                coro.close()
                raise PoolShutdownError("the runtime is shut down")
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run_sync(self, coro: Coroutine[Any, Any, _T], *, timeout: float) -> _T:
        future = self.submit(coro)
        try:
            result: _T = future.result(timeout)
        except BaseException:
            future.cancel()
            raise
        return result

    def shutdown(self, *, timeout: float = 5.0) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()
