"""`ProcessPool`: a reference pool of real worker processes, one per role.

Each role's worker is an OS process started with multiprocessing's ``spawn``
context (see :mod:`lilbee_ticker.demo._worker`), which answers pings and
does fake work over a pipe. The pool fits :class:`lilbee_ticker.Pool` and
lives on one asyncio event loop, like the pools the ticker is made for.

How it never blocks the loop: the loop watches each worker's pipe and its
process sentinel with ``add_reader``, so answers and deaths arrive as
callbacks and no coroutine ever waits in a read. A worker writes each answer
as one small message in a single ``write()``, so when the pipe is readable
the whole message is there and ``recv()`` returns at once. Writes to a
worker are small too, and never pile up: a role has at most one ping and
``_MAX_OUTSTANDING_CALLS`` calls outstanding, far below what the pipe's
buffer holds, so ``send()`` does not wait either. Every wait for an answer
is bounded by a deadline, after which the worker is killed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import itertools
import math
import multiprocessing
import multiprocessing.util  # imported for its exit hook; see _kill_leftovers
import numbers
import os
import signal
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

import structlog

from lilbee_ticker.demo import _figures as figures
from lilbee_ticker.demo import _worker
from lilbee_ticker.demo._errors import (
    PoolClosedError,
    WorkerDiedError,
    WorkerError,
    WorkerUnresponsiveError,
)

if TYPE_CHECKING:
    from lilbee_ticker import RestartablePool

__all__ = ["ProcessPool", "WorkerAccessor"]

_log = structlog.get_logger("lilbee_ticker.demo")

_SPAWN = multiprocessing.get_context("spawn")

# A worker's life: STARTING until it reports ready, RUNNING, then GONE once
# the pool stops using it (reaped, closed, died or killed). A GONE worker is
# no longer in the pool's table; its process may still be on its way out.
_STARTING, _RUNNING, _GONE = "starting", "running", "gone"

# Why the pool stopped using a worker, which decides what a caller waiting
# on it is told.
_DIED, _UNRESPONSIVE, _RETIRED, _CLOSED = "died", "unresponsive", "retired", "closed"

# Calls a role may have outstanding (sent, not answered) at once; more wait
# for one to be answered. This keeps a frozen worker's pipe from filling up,
# which would make send() block the loop.
_MAX_OUTSTANDING_CALLS = 32

# How long a worker that was sent SIGKILL may take to exit before the pool
# gives up waiting and leaves it to the exit hook. SIGKILL cannot be caught;
# only a process stuck in the kernel takes this long.
_KILL_WAIT_S = 5.0

# How long, after a worker's exit is seen, the pool tries to collect its exit
# status. The sentinel reports the exit as the process closes its file
# descriptors, a moment before the kernel lets waitpid() collect it.
_COLLECT_WAIT_S = 1.0


# -- the exit hook ---------------------------------------------------------------

# Every worker process started and not yet collected, by pid, for the exit
# hook. Touched from pools' loop threads and from the exit hook on the main
# thread, so _LIVE_LOCK must be held to read or change it.
_LIVE_LOCK = threading.Lock()
_LIVE: dict[int, BaseProcess] = {}


def _kill_leftovers() -> None:
    """At interpreter exit, SIGKILL and collect every worker that no pool closed."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE.values())
        _LIVE.clear()
    for process in leftovers:
        with contextlib.suppress(Exception):  # already collected, or closed
            process.kill()
    for process in leftovers:
        with contextlib.suppress(Exception):
            process.join(1.0)


# Registered after multiprocessing.util's own exit hook (imported above), so
# it runs first: atexit runs hooks last in, first out. That hook sends
# SIGTERM to daemonic children and then joins them with no timeout, which
# would hang on a worker stopped with SIGSTOP; SIGKILL ends stopped
# processes too.
atexit.register(_kill_leftovers)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread, so that a child spawned meanwhile starts with it blocked.

    The signal mask survives fork and exec, so Ctrl-C during the child's
    start-up (before it can ignore SIGINT) stays pending instead of killing
    it with a traceback.
    """
    # multiprocessing starts its resource tracker on the first spawn and, in
    # doing so, unblocks SIGINT in the calling thread. Start it first.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# -- bookkeeping -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Loss:
    """Why the pool stopped using a worker, which decides what its waiters are told."""

    reason: str  # _DIED, _UNRESPONSIVE, _RETIRED or _CLOSED
    problem: str  # what happened, for the error message
    waited_s: float = 0.0  # for _UNRESPONSIVE: how long the request was outstanding


@dataclasses.dataclass(eq=False)
class _Request:
    """A ping or a call sent to a worker and not answered yet."""

    id: int
    kind: str  # "ping" or "work"
    sent_at: float
    deadline: float  # when the worker is taken for hung if it has not answered
    reply: asyncio.Future[int]  # the answering worker's pid; cancelled if it is lost


class _Worker:
    """One worker process and the pool's bookkeeping for it.

    Touched only on the pool's loop thread.
    """

    def __init__(
        self,
        role: str,
        process: BaseProcess,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        assert process.pid is not None
        self.role = role
        self.process = process
        self.conn = conn
        self.pid: int = process.pid
        self.state = _STARTING
        self.spawned_at = time.monotonic()
        self.last_used = self.spawned_at
        self.ready: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        # Resolved when the pool stops using the worker; loss says why.
        self.lost: asyncio.Future[None] = loop.create_future()
        self.loss = _Loss("", "")
        self.requests: dict[int, _Request] = {}
        self.ping: _Request | None = None  # the outstanding ping, which new pings share
        # Calls and pings waiting for the worker to be ready. Each sends its
        # request as soon as it resumes; until then it keeps the worker from
        # looking idle, however long the start took.
        self.waiting = 0
        # The task that sees the process exit and collects it, once it is GONE.
        self.burial: asyncio.Task[None] | None = None

    def outstanding_work(self) -> list[_Request]:
        return [request for request in self.requests.values() if request.kind == "work"]


class WorkerAccessor:
    """A handle on one role of a :class:`ProcessPool`, as returned by ``pool.accessor(role)``.

    Thread safety: read it only on the pool's event loop thread, like the pool.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_pool", "_role")

    def __init__(self, pool: ProcessPool, role: str) -> None:
        self._pool = pool
        self._role = role

    @property
    def role(self) -> str:
        """The role's name."""
        return self._role

    @property
    def is_alive(self) -> bool:
        """True if the role's worker has started, reported ready, and is not known to be gone.

        A worker still starting is not alive yet: the ticker leaves it alone
        rather than wait for it, and a reap does not take it.
        """
        worker = self._pool._worker(self._role, "is_alive")
        return worker is not None and worker.state == _RUNNING

    @property
    def pid(self) -> int | None:
        """The process id of the role's current worker (even if starting), or ``None``."""
        worker = self._pool._worker(self._role, "pid")
        return None if worker is None else worker.pid

    @property
    def spawns(self) -> int:
        """How many worker processes the pool has started for this role, in all."""
        return self._pool._spawn_count(self._role)

    @property
    def crashes(self) -> int:
        """How many of the role's workers died while the pool used them, in all.

        A worker that exited or closed its pipe on its own counts, and so does
        one that :meth:`ProcessPool.restart_role` killed; one the pool reaped,
        closed or killed for being unresponsive does not.

        .. versionadded:: 0.2.0
        """
        return self._pool._crash_count(self._role)

    def __repr__(self) -> str:
        return f"<WorkerAccessor {self._role!r} of {self._pool!r}>"


class ProcessPool:
    """A pool of real worker processes, one per role: a :class:`lilbee_ticker.RestartablePool`.

    Each role's worker is a process started with multiprocessing's ``spawn``
    context that answers pings and does fake work over a pipe. Workers are
    spawned lazily, by the first :meth:`call` or :meth:`ping_role` on a role
    that has none, and end when they are reaped, the pool is closed, they
    die, or they stop answering:

    * :meth:`reap_idle` stops every worker that has nothing outstanding and
      whose last call ended more than ``max_idle_s`` ago. A ping is not a
      use: health checks alone never keep a worker alive.
    * :meth:`ping_role` raises :class:`WorkerDiedError` if the worker dies
      before it answers, and :class:`WorkerUnresponsiveError` if it has left
      a ping unanswered for ``unresponsive_after_s``; the worker is dropped
      (killed) and the next call or ping spawns a new one. A ping that the
      caller cancels (the ticker's own timeout) leaves the worker alone: a
      worker frozen for a while recovers when it answers.
    * Work in flight counts as liveness: while a call is outstanding on a
      role, :meth:`ping_role` does not queue a ping behind it (the worker
      does one thing at a time) and succeeds, until the call is overdue.
    * :meth:`restart_role` replaces a role's worker whatever its state
      (``SIGKILL``, which ends a frozen one too), for a ticker with a
      :class:`lilbee_ticker.RestartPolicy`.
    * A worker that dies on its own is dropped at once, and ``on_crash`` is
      called: pass ``ticker.tick_soon`` so that the ticker notices at once.

    No worker outlives the pool: :meth:`aclose` stops them all (``SIGKILL``
    after ``stop_timeout_s``) and waits until each has exited, an async
    ``with`` block does so on any exit, and when the parent process dies,
    or the loop thread that spawned them ends, each worker exits by itself
    (see :mod:`lilbee_ticker.demo._worker`). At interpreter exit a hook
    kills whatever is left.

    Args:
        roles: The registered roles: distinct, non-empty strings.
        max_idle_s: How long a worker may go without a call before
            :meth:`reap_idle` stops it; finite, >= 0.
        unresponsive_after_s: How long a ping may stay unanswered (and a call
            beyond its own work time) before the worker is taken for hung and
            killed; finite, > 0.
        spawn_timeout_s: How long a new worker may take to report ready
            before it is killed; finite, > 0.
        stop_timeout_s: How long a worker that was asked to stop (reaped or
            closed) may take to exit before it is sent ``SIGKILL``; finite, >= 0.
        name: The pool's name, bound as ``pool`` on its log events.
        on_crash: Called with no arguments, on the pool's loop thread, each
            time a worker dies while the pool uses it (see :attr:`on_crash`).

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``roles`` is empty or has duplicates or empty names, or a
            duration is out of range.

    Thread safety: none. The pool is bound to the event loop that first runs
    one of its coroutines; use it only there, as the ticker does through its
    runtime. :attr:`registered_roles` never changes and may be read anywhere.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       :meth:`restart_role` and ``on_crash``.
    """

    def __init__(
        self,
        roles: Iterable[str] = ("embed", "chat", "rerank"),
        *,
        max_idle_s: float = 300.0,
        unresponsive_after_s: float = 30.0,
        spawn_timeout_s: float = 30.0,
        stop_timeout_s: float = 2.0,
        name: str = "lilbee-demo-pool",
        on_crash: Callable[[], object] | None = None,
    ) -> None:
        self._roles = _check_roles(roles)
        self._max_idle_s = _check_seconds("max_idle_s", max_idle_s, allow_zero=True)
        self._unresponsive_after_s = _check_seconds("unresponsive_after_s", unresponsive_after_s)
        self._spawn_timeout_s = _check_seconds("spawn_timeout_s", spawn_timeout_s)
        self._stop_timeout_s = _check_seconds("stop_timeout_s", stop_timeout_s, allow_zero=True)
        self._name = _check_name(name)
        # Read on the loop thread at each crash, and may be set from any
        # thread: one reference, replaced whole, so it needs no lock.
        self._on_crash = _check_callback(on_crash)
        # Everything below is touched only on the bound loop's thread, so it
        # needs no lock. _loop and _loop_thread are set once, by _bind().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._workers: dict[str, _Worker | None] = dict.fromkeys(self._roles)
        self._spawns: dict[str, int] = dict.fromkeys(self._roles, 0)
        self._crashes: dict[str, int] = dict.fromkeys(self._roles, 0)
        self._burials: dict[asyncio.Task[None], _Worker] = {}
        self._request_ids = itertools.count(1)
        self._closed = False

    # -- configuration -------------------------------------------------------------

    @property
    def name(self) -> str:
        """The pool's name."""
        return self._name

    @property
    def max_idle_s(self) -> float:
        """How long a worker may go without a call before it is reaped."""
        return self._max_idle_s

    @property
    def unresponsive_after_s(self) -> float:
        """How long a ping may stay unanswered before the worker is killed."""
        return self._unresponsive_after_s

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun."""
        return self._closed

    @property
    def on_crash(self) -> Callable[[], object] | None:
        """Called with no arguments each time a worker dies while the pool uses it; or ``None``.

        It is called on the pool's loop thread, right after the pool has
        dropped the dead worker (so the role is no longer alive), when the
        worker exits or closes its pipe on its own. A worker that
        :meth:`restart_role` kills, or that the pool stops (reaped, closed,
        unresponsive), is not a crash to tell. It must not block: the usual one is a
        ticker's :meth:`~lilbee_ticker.HealthTicker.tick_soon`, so that a
        crash is reported at once rather than at the next tick. The pool is
        made before its ticker, so set it then::

            pool.on_crash = ticker.tick_soon

        What it raises is logged (``pool.on_crash_failed``) and goes no
        further.

        Thread safety: it may be set from any thread.

        .. versionadded:: 0.2.0
        """
        return self._on_crash

    @on_crash.setter
    def on_crash(self, callback: Callable[[], object] | None) -> None:
        self._on_crash = _check_callback(callback)

    # -- the Pool protocol -----------------------------------------------------------

    @property
    def registered_roles(self) -> tuple[str, ...]:
        """Every role of the pool, alive or not; fixed at construction."""
        return self._roles

    def accessor(self, role: str) -> WorkerAccessor:
        """Return a handle on ``role``.

        Raises:
            KeyError: ``role`` is not registered.
        """
        self._check_role(role)
        return WorkerAccessor(self, role)

    async def reap_idle(self) -> tuple[str, ...]:
        """Stop the workers idle longer than ``max_idle_s``; return their roles.

        A worker is idle when it has no ping or call outstanding (or waiting
        for it to start) and its last call ended more than ``max_idle_s`` ago,
        or, never called, it became ready that long ago. Each is asked to
        stop and removed from the pool at once, so it is no longer alive when
        this returns; its process exits in the background (``SIGKILL`` after
        ``stop_timeout_s``), and :meth:`aclose` waits for it.
        """
        self._bind("reap_idle()")
        if self._closed:
            return ()
        now = time.monotonic()
        idle = [
            worker
            for worker in self._workers.values()
            if worker is not None
            and worker.state == _RUNNING
            and not worker.requests
            and not worker.waiting
            and now - worker.last_used > self._max_idle_s
        ]
        for worker in idle:
            _log.info(
                "worker.reaped",
                pool=self._name,
                role=worker.role,
                pid=worker.pid,
                idle_s=figures.seconds(now - worker.last_used),
            )
            self._retire(worker, _RETIRED, "was reaped for idleness")
        return tuple(worker.role for worker in idle)

    async def ping_role(self, role: str) -> None:
        """Round-trip a ping to ``role``'s worker, spawning it first if it has none.

        Pings of one role share a single outstanding request, so a frozen
        worker is sent one ping however often it is pinged.

        Raises:
            KeyError: ``role`` is not registered.
            WorkerDiedError: The worker died before it answered (or before it
                was ready); it is dropped.
            WorkerUnresponsiveError: It left a ping unanswered, or a call
                overdue, for ``unresponsive_after_s``, or did not start in
                ``spawn_timeout_s``; it is killed and dropped.
            PoolClosedError: The pool is closed.
        """
        call = f"ping_role({role!r})"
        self._bind(call)
        worker = await self._ready_worker(role, call)
        now = time.monotonic()
        work = worker.outstanding_work()
        if work:
            # The worker answers one request at a time, so a ping now would
            # wait behind the work. The work is the evidence of life, up to
            # its own deadline.
            oldest = min(work, key=lambda request: request.deadline)
            if oldest.deadline > now:
                return
            raise self._unresponsive(worker, oldest, now)
        request = worker.ping
        if request is None:
            request = self._send(worker, "ping", now + self._unresponsive_after_s)
            worker.ping = request
        await self._answer(worker, request)

    async def restart_role(self, role: str) -> None:
        """Replace ``role``'s worker with a new one that is ready, ending the current process.

        The current worker is ended whatever its state, running, starting,
        hung or frozen with ``SIGSTOP``: it is sent ``SIGKILL``, which a
        stopped process cannot ignore as it does ``SIGTERM``, and a hung one
        cannot miss as it would a "stop" message. It is dropped through the
        pool's crash path, as a worker that died: callers waiting on it get
        :class:`WorkerDiedError` and :attr:`WorkerAccessor.crashes` counts
        it (:attr:`on_crash` is not called: the caller knows). Its exit status is collected before a
        new worker is spawned, so the old process is gone, not even a zombie,
        when this returns. It returns once the new worker has reported ready,
        so the next call or ping is answered by a new process. A role with no
        worker gets one.

        Every wait is bounded: the old process's exit by a few seconds (only
        a process stuck in the kernel outlives ``SIGKILL``), the new worker's
        start by ``spawn_timeout_s``. A :class:`lilbee_ticker.HealthTicker`
        with a :class:`lilbee_ticker.RestartPolicy` calls this for a role that
        is ``UNHEALTHY`` while alive.

        Raises:
            KeyError: ``role`` is not registered.
            PoolClosedError: The pool is closed, or was closed meanwhile.
            WorkerUnresponsiveError: The old process did not exit after
                ``SIGKILL`` (it is left to the exit hook), or the new worker
                did not report ready within ``spawn_timeout_s``.
            WorkerDiedError: The new worker died before it was ready.

        .. versionadded:: 0.2.0
        """
        call = f"restart_role({role!r})"
        self._bind(call)
        self._check_role(role)
        if self._closed:
            raise PoolClosedError(self._name, call)
        old = self._workers[role]
        if old is not None:
            await self._end(old)
        worker = await self._ready_worker(role, call)
        _log.info(
            "worker.restarted",
            pool=self._name,
            role=role,
            pid=worker.pid,
            old_pid=None if old is None else old.pid,
        )

    async def _end(self, worker: _Worker) -> None:
        """SIGKILL ``worker``, drop it as dead, and wait (bounded) until it is collected."""
        _log.warning("worker.restarting", pool=self._name, role=worker.role, pid=worker.pid)
        started = time.monotonic()
        _kill(worker.process)
        # Not told to on_crash: a tick it asked for now could only find the
        # role between two workers, and whoever restarts it knows already.
        self._died(worker, "was killed with SIGKILL to restart it", tell=False)
        burial = worker.burial
        if burial is not None:
            # The burial is the pool's own task, bounded by _collect; waiting
            # with wait() rather than await never cancels it.
            await asyncio.wait((burial,))
        if not worker.exited.done():
            waited = time.monotonic() - started
            problem = f"did not exit within {figures.seconds_text(waited)}s of SIGKILL"
            raise WorkerUnresponsiveError(worker.role, worker.pid, problem, waited)

    # -- work --------------------------------------------------------------------------

    async def call(self, role: str, work_s: float = 0.0) -> int:
        """Have ``role``'s worker do ``work_s`` seconds of fake work, spawning it if needed.

        This is a *use* of the role: it resets the role's idle time when it
        ends, and the role is not reaped while it is outstanding.

        Returns:
            The pid of the worker process that did the work, so a caller can
            see when a role was given a new worker.

        Raises:
            KeyError: ``role`` is not registered.
            WorkerDiedError: The worker died before it answered; it is dropped.
            WorkerUnresponsiveError: It did not answer within ``work_s`` plus
                ``unresponsive_after_s``; it is killed and dropped.
            PoolClosedError: The pool is closed.
        """
        work_s = _check_seconds("work_s", work_s, allow_zero=True)
        call = f"call({role!r})"
        self._bind(call)
        worker = await self._ready_worker(role, call)
        while len(work := worker.outstanding_work()) >= _MAX_OUTSTANDING_CALLS:
            oldest = min(work, key=lambda request: request.deadline)
            now = time.monotonic()
            if oldest.deadline <= now:
                raise self._unresponsive(worker, oldest, now)
            waiters: list[asyncio.Future[Any]] = [request.reply for request in work]
            await asyncio.wait(
                [*waiters, worker.lost],
                timeout=oldest.deadline - now,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if worker.lost.done():
                raise self._loss_error(worker, call)
        deadline = time.monotonic() + work_s + self._unresponsive_after_s
        request = self._send(worker, "work", deadline, work_s)
        return await self._answer(worker, request)

    # -- closing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop every worker and wait until each process has exited and been collected.

        Each worker is asked to stop and sent ``SIGKILL`` if it has not exited
        after ``stop_timeout_s``. Callers waiting on a worker get
        :class:`PoolClosedError`. Idempotent: a second call waits for what the
        first started. Reaped and dropped workers still exiting are waited
        for too.

        If this coroutine is cancelled, every worker still exiting is sent
        ``SIGKILL`` at once.
        """
        self._bind("aclose()")
        if not self._closed:
            self._closed = True
            for worker in list(self._workers.values()):
                if worker is not None:
                    self._retire(worker, _CLOSED, "was closed with its pool")
            _log.debug("pool.closing", pool=self._name, workers=len(self._burials))
        burials = dict(self._burials)
        if not burials:
            return
        try:
            await asyncio.wait(burials)
        except asyncio.CancelledError:
            for worker in burials.values():
                _kill(worker.process)
            raise

    async def __aenter__(self) -> ProcessPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ProcessPool {self._name!r} {state} roles={list(self._roles)}>"

    # -- internals: spawning and requests ------------------------------------------------

    def _bind(self, call: str) -> asyncio.AbstractEventLoop:
        """Bind the pool to the running loop on first use; refuse any other loop after."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        elif loop is not self._loop:
            raise RuntimeError(
                f"ProcessPool {self._name!r}: {call} ran on a different event loop from the "
                "one the pool is bound to (the first that used it); its workers' pipes belong "
                "to that loop, so submit the coroutine to that loop's runtime"
            )
        return loop

    def _worker(self, role: str, what: str) -> _Worker | None:
        """Return ``role``'s current worker; refuse a read from a thread that is not the loop's."""
        self._check_role(role)
        if self._loop_thread is not None and threading.get_ident() != self._loop_thread:
            raise RuntimeError(
                f"ProcessPool {self._name!r}: accessor({role!r}).{what} was read from thread "
                f"{threading.current_thread().name!r}, but the pool is not thread-safe and "
                "belongs to its event loop's thread: read it in a coroutine submitted to the "
                "runtime"
            )
        return self._workers[role]

    def _spawn_count(self, role: str) -> int:
        self._check_role(role)
        return self._spawns[role]

    def _crash_count(self, role: str) -> int:
        self._check_role(role)
        return self._crashes[role]

    def _check_role(self, role: str) -> None:
        if role not in self._workers:
            raise KeyError(f"role {role!r} is not registered; registered: {list(self._roles)}")

    async def _ready_worker(self, role: str, call: str) -> _Worker:
        """Return ``role``'s running worker, spawning it and waiting until it is ready."""
        self._check_role(role)
        if self._closed:
            raise PoolClosedError(self._name, call)
        worker = self._workers[role]
        if worker is None:
            worker = self._spawn(role)
        if worker.state == _STARTING:
            left = worker.spawned_at + self._spawn_timeout_s - time.monotonic()
            if left > 0:
                worker.waiting += 1
                try:
                    await asyncio.wait(
                        (worker.ready, worker.lost),
                        timeout=left,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    worker.waiting -= 1
            if worker.lost.done():
                raise self._loss_error(worker, call)
            if not worker.ready.done():
                waited = time.monotonic() - worker.spawned_at
                problem = f"did not report ready within {self._spawn_timeout_s:g}s"
                self._drop(worker, problem, waited)
                raise WorkerUnresponsiveError(role, worker.pid, problem, waited)
        return worker

    def _spawn(self, role: str) -> _Worker:
        """Start a worker process for ``role`` and watch its pipe and its exit."""
        loop = self._loop
        assert loop is not None
        parent_conn, child_conn = _SPAWN.Pipe(duplex=True)
        process = _SPAWN.Process(
            target=_worker.serve,
            args=(child_conn, role, os.getpid()),
            name=f"{self._name}-{role}",
            # multiprocessing's own exit hook then terminates it too, should
            # ours and the pool both fail to.
            daemon=True,
        )
        try:
            # A fork and exec: a few milliseconds on the loop. Not in an
            # executor thread: the worker's death signal is tied to the
            # thread that spawns it, and the loop thread lives as long as
            # the pool can be used.
            with _sigint_blocked():
                process.start()
        except BaseException:
            parent_conn.close()
            raise
        finally:
            # The child has its own copy now. Ours must go, or the worker's
            # death would never show as EOF on the parent's end.
            child_conn.close()
        worker = _Worker(role, process, parent_conn, loop)
        with _LIVE_LOCK:
            _LIVE[worker.pid] = process
        loop.add_reader(parent_conn.fileno(), self._on_readable, worker)
        loop.add_reader(process.sentinel, self._on_exit, worker)
        self._workers[role] = worker
        self._spawns[role] += 1
        _log.info("worker.spawned", pool=self._name, role=role, pid=worker.pid)
        return worker

    def _send(self, worker: _Worker, kind: str, deadline: float, *args: float) -> _Request:
        loop = self._loop
        assert loop is not None
        request = _Request(
            id=next(self._request_ids),
            kind=kind,
            sent_at=time.monotonic(),
            deadline=deadline,
            reply=loop.create_future(),
        )
        try:
            worker.conn.send((kind, request.id, *args))
        except OSError:
            self._died(worker, "closed its pipe")
            raise self._loss_error(worker, kind) from None
        worker.requests[request.id] = request
        return request

    async def _answer(self, worker: _Worker, request: _Request) -> int:
        """Wait for the answer to ``request`` until its deadline; drop the worker if none comes."""
        left = request.deadline - time.monotonic()
        if left > 0 and not request.reply.done():
            await asyncio.wait(
                (request.reply, worker.lost),
                timeout=left,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if request.reply.done() and not request.reply.cancelled():
            return request.reply.result()
        if worker.lost.done():
            raise self._loss_error(worker, request.kind)
        raise self._unresponsive(worker, request, time.monotonic())

    def _unresponsive(self, worker: _Worker, request: _Request, now: float) -> WorkerError:
        """Kill ``worker`` for leaving ``request`` unanswered; return the error to raise."""
        waited = now - request.sent_at
        what = "a ping" if request.kind == "ping" else "a call"
        problem = f"left {what} unanswered for {figures.seconds_text(waited)}s"
        self._drop(worker, problem, waited)
        return WorkerUnresponsiveError(worker.role, worker.pid, problem, waited)

    def _loss_error(self, worker: _Worker, call: str) -> Exception:
        """The error for a caller whose worker the pool stopped using."""
        loss = worker.loss
        if loss.reason == _CLOSED:
            return PoolClosedError(self._name, call)
        if loss.reason == _UNRESPONSIVE:
            return WorkerUnresponsiveError(worker.role, worker.pid, loss.problem, loss.waited_s)
        return WorkerDiedError(worker.role, worker.pid, loss.problem)

    # -- internals: loop callbacks ---------------------------------------------------------

    def _on_readable(self, worker: _Worker) -> None:
        """Read every answer waiting on ``worker``'s pipe (a loop reader callback)."""
        try:
            while worker.state != _GONE and worker.conn.poll():
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._died(worker, "closed its pipe")

    def _on_message(self, worker: _Worker, message: tuple[object, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.state = _RUNNING
            worker.last_used = time.monotonic()  # its idle time starts now
            if not worker.ready.done():
                worker.ready.set_result(None)
            return
        if kind != "done":
            return
        request_id = message[1]
        request = worker.requests.pop(request_id, None) if isinstance(request_id, int) else None
        if request is None:
            return
        if request is worker.ping:
            worker.ping = None
        if request.kind == "work":
            worker.last_used = time.monotonic()
        pid = message[2]
        if not request.reply.done() and isinstance(pid, int):
            request.reply.set_result(pid)

    def _on_exit(self, worker: _Worker) -> None:
        """The worker's process sentinel became readable: it has exited (a loop reader callback)."""
        assert self._loop is not None
        self._loop.remove_reader(worker.process.sentinel)
        if not worker.exited.done():
            worker.exited.set_result(None)
        self._died(worker, "exited")

    # -- internals: letting workers go -----------------------------------------------------

    def _forget(self, worker: _Worker, loss: _Loss) -> bool:
        """Stop using ``worker``: out of the table, waiters woken. False if already forgotten."""
        if worker.state == _GONE:
            return False
        assert self._loop is not None
        worker.state = _GONE
        worker.loss = loss
        if self._workers.get(worker.role) is worker:
            self._workers[worker.role] = None
        self._loop.remove_reader(worker.conn.fileno())
        for request in worker.requests.values():
            request.reply.cancel()
        worker.requests.clear()
        worker.ping = None
        worker.lost.set_result(None)
        return True

    def _died(self, worker: _Worker, problem: str, *, tell: bool = True) -> None:
        """The crash path: drop a worker that died (exited, closed its pipe, or was killed).

        ``tell=False`` counts the crash without calling on_crash: for a kill
        that restart_role() makes, whose caller knows already.
        """
        if self._forget(worker, _Loss(_DIED, problem)):
            self._crashes[worker.role] += 1
            worker.conn.close()
            # It is on its way out: a closed pipe comes a moment before the exit.
            self._bury(worker, grace_s=self._stop_timeout_s)
            if tell:
                self._tell_crash(worker)

    def _tell_crash(self, worker: _Worker) -> None:
        """Call on_crash, last: the role is already down, as whoever it wakes will see."""
        callback = self._on_crash
        if callback is None:
            return
        try:
            callback()
        except Exception:
            # On the loop, inside a reader callback: log it, and let the pool go on.
            _log.exception(
                "pool.on_crash_failed", pool=self._name, role=worker.role, pid=worker.pid
            )

    def _drop(self, worker: _Worker, problem: str, waited_s: float = 0.0) -> None:
        """Kill an unresponsive worker and stop using it."""
        if self._forget(worker, _Loss(_UNRESPONSIVE, problem, waited_s)):
            _log.warning(
                "worker.unresponsive",
                pool=self._name,
                role=worker.role,
                pid=worker.pid,
                problem=problem,
            )
            worker.conn.close()
            _kill(worker.process)
            self._bury(worker, grace_s=0.0)

    def _retire(self, worker: _Worker, reason: str, problem: str) -> None:
        """Ask a worker to stop (reaped, or the pool is closing) and stop using it."""
        if self._forget(worker, _Loss(reason, problem)):
            with contextlib.suppress(OSError):  # it is already gone: nothing to ask
                worker.conn.send(("stop",))
            worker.conn.close()
            self._bury(worker, grace_s=self._stop_timeout_s)

    def _bury(self, worker: _Worker, grace_s: float) -> None:
        """Start the task that sees ``worker``'s process exit and collects it."""
        assert self._loop is not None
        task = self._loop.create_task(
            self._collect(worker, grace_s), name=f"{self._name}-collect-{worker.role}-{worker.pid}"
        )
        self._burials[task] = worker
        worker.burial = task
        task.add_done_callback(self._buried)

    def _buried(self, task: asyncio.Task[None]) -> None:
        del self._burials[task]

    async def _collect(self, worker: _Worker, grace_s: float) -> None:
        """Wait ``grace_s`` for the process to exit, then SIGKILL it; collect its exit status."""
        process = worker.process
        try:
            if not await _exits_within(worker, grace_s):
                _kill(process)
                if not await _exits_within(worker, _KILL_WAIT_S):
                    _log.error(
                        "worker.unkillable", pool=self._name, role=worker.role, pid=worker.pid
                    )
                    return  # left in _LIVE for the exit hook
            exitcode = await _exit_status(process)
        except asyncio.CancelledError:
            # The loop is shutting down: do not wait, but make sure it dies.
            _kill(process)
            raise
        finally:
            if not worker.exited.done() and self._loop is not None:
                self._loop.remove_reader(process.sentinel)
        if exitcode is None:
            return  # left in _LIVE for the exit hook
        with _LIVE_LOCK:
            _LIVE.pop(worker.pid, None)
        process.close()
        fields = {"pool": self._name, "role": worker.role, "pid": worker.pid, "exitcode": exitcode}
        if worker.loss.reason == _DIED:
            _log.warning("worker.died", **fields, cause=_describe(exitcode))
        else:
            _log.debug("worker.exited", **fields, reason=worker.loss.reason)


async def _exits_within(worker: _Worker, timeout: float) -> bool:
    if not worker.exited.done() and timeout > 0:
        await asyncio.wait((worker.exited,), timeout=timeout)
    return worker.exited.done()


async def _exit_status(process: BaseProcess) -> int | None:
    """Collect the exit status of a process that has exited; ``None`` if it cannot be yet."""
    delay, waited = 0.001, 0.0
    while (exitcode := process.exitcode) is None and waited < _COLLECT_WAIT_S:
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)
    return exitcode


def _kill(process: BaseProcess) -> None:
    """Send SIGKILL, which also ends a stopped process; harmless on one that has exited."""
    with contextlib.suppress(ValueError, OSError):  # closed, or already collected
        process.kill()


def _describe(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float number of seconds, or raise naming ``name``."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number of seconds {bound}, "
            f"got {value!r} of type {type(value).__name__}"
        )
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    if seconds > threading.TIMEOUT_MAX:
        raise ValueError(
            f"{name} must be at most threading.TIMEOUT_MAX ({threading.TIMEOUT_MAX:g}s), "
            f"got {value!r}"
        )
    return seconds


def _check_callback(value: object) -> Callable[[], object] | None:
    if value is not None and not callable(value):
        raise TypeError(
            f"on_crash must be a callable taking no arguments (such as ticker.tick_soon) or "
            f"None, got {value!r} of type {type(value).__name__}"
        )
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, got {value!r} of type {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"name must be a non-empty string, got {value!r}")
    return value


def _check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise TypeError(f"roles must be an iterable of role names, not a str: got {roles!r}")
    names = tuple(roles)
    if not names:
        raise ValueError("roles must name at least one role, got none")
    for role in names:
        if not isinstance(role, str) or not role.strip():
            raise ValueError(f"roles must be non-empty strings, got {role!r}")
    duplicates = sorted({role for role in names if names.count(role) > 1})
    if duplicates:
        raise ValueError(f"roles must be distinct, got duplicates {duplicates} in {list(names)}")
    return names


if TYPE_CHECKING:

    def _fits_the_protocol(pool: ProcessPool) -> RestartablePool:
        return pool  # mypy checks that ProcessPool has the shape of lilbee_ticker.RestartablePool
