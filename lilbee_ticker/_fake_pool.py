"""`FakePool`: a scriptable pool for tests, with ping and reap behaviours and a manual clock.

Public through :mod:`lilbee_ticker.testing`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._behaviours import (
    Delay,
    Fail,
    Hang,
    PingBehaviour,
    PoolCall,
    ReapBehaviour,
    SlowClose,
    Succeed,
    WorkerCrashedError,
    WrongThreadError,
    play,
)
from lilbee_ticker._validate import check_seconds

__all__ = ["FakePool"]


@dataclasses.dataclass
class _Role:
    alive: bool
    last_used: float
    spawns: int = 0
    restarts: int = 0
    in_flight: int = 0
    default: PingBehaviour = dataclasses.field(default_factory=Succeed)
    script: collections.deque[PingBehaviour] = dataclasses.field(default_factory=collections.deque)


class _Accessor:
    __slots__ = ("_pool", "_role")

    def __init__(self, pool: FakePool, role: str) -> None:
        self._pool = pool
        self._role = role

    @property
    def is_alive(self) -> bool:
        pool = self._pool
        pool._enter("is_alive", self._role)
        with pool._lock:
            return pool._role(self._role).alive


class FakePool:
    """A scriptable pool that satisfies :class:`lilbee_ticker.Pool`.

    It behaves like a real pool on its event loop:

    * ``ping_role(role)`` on a role that is not alive spawns it first, as a
      real call would, then plays the role's scripted ping behaviour.
    * ``reap_idle()`` reaps every alive role that has no work in flight and
      whose last use is more than ``max_idle_s`` ago on ``clock``.
      :meth:`use` and :meth:`call` are uses; a successful ping is one only
      with ``pings_count_as_use=True``, as in lilbee's pool.
    * Every protocol call is recorded in :attr:`calls` with its thread, and a
      call from any thread but the pool's loop thread raises
      :class:`WrongThreadError` and is recorded in :attr:`violations`.

    Thread safety: the control methods and read-outs may be called from any
    thread; the protocol surface (``registered_roles``, ``accessor(role)``,
    ``reap_idle``, ``ping_role``, ``restart_role``, ``call``) only from the
    loop thread, which is the point of the fake.

    Args:
        roles: The registered roles.
        alive: Which roles start alive: ``True`` for all, ``False`` for none,
            or an iterable of role names.
        max_idle_s: How long a role may go unused before ``reap_idle()`` reaps it.
        clock: Returns the time in seconds for idle accounting. The default
            reads ``datetime.now()``, which freezegun freezes in every thread,
            so ``freezer.tick(...)`` moves it; or pass a :class:`ManualClock`.
        loop_thread: The thread allowed to touch pool state. By default, the
            first thread running an event loop that touches the pool.
        keep_calls: How many recent calls :attr:`calls` keeps (:meth:`count` counts all).
        pings_count_as_use: If True, a successful ping stamps the role's last
            use, as lilbee's pool does: then a ticker that pings more often
            than ``max_idle_s`` keeps every worker alive.
        ping_timeout_s: If set, ``ping_role`` takes a ``timeout`` keyword, as
            ``ping_role(role, *, timeout=None)``, and bounds itself as a
            real pool does: a ping still running after ``timeout`` (or after
            ``ping_timeout_s`` when none is passed) raises the pool's own
            :class:`TimeoutError`.
        restartable: If True, the pool has ``restart_role(role)``, for a
            ticker with a :class:`~lilbee_ticker.RestartPolicy`: it plays the
            next restart behaviour (:meth:`set_restart`), then replaces the
            worker with a new one, alive and answering (its ping script is
            dropped and its pings succeed again). :meth:`restarts` counts them.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added ``pings_count_as_use``, ``ping_timeout_s`` and ``restartable``.
    """

    def __init__(
        self,
        roles: Iterable[str] = ("embed", "chat", "rerank"),
        *,
        alive: bool | Iterable[str] = True,
        max_idle_s: float = 300.0,
        clock: Callable[[], float] = _clock.wall_clock,
        loop_thread: threading.Thread | None = None,
        keep_calls: int = 10_000,
        pings_count_as_use: bool = False,
        ping_timeout_s: float | None = None,
        restartable: bool = False,
    ) -> None:
        if isinstance(roles, (str, bytes)):
            raise TypeError(
                f"roles must be an iterable of role names, got the string {roles!r}, which "
                f"would register one role per character: pass FakePool([{roles!r}])"
            )
        names = tuple(roles)
        if isinstance(alive, bool):
            alive_set = set(names) if alive else set()
        else:
            alive_set = set(alive)
            unknown = alive_set - set(names)
            if unknown:
                raise ValueError(f"alive names roles that are not registered: {sorted(unknown)}")
        self.max_idle_s = check_seconds("max_idle_s", max_idle_s, allow_zero=True)
        self._clock = clock
        now = clock()
        # _lock guards every attribute below. It is taken by the loop thread
        # (protocol calls) and by the test's thread (control methods), and is
        # never held across an await.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._roles = {name: _Role(alive=name in alive_set, last_used=now) for name in names}
        self._owner: threading.Thread | None = loop_thread
        self._calls: collections.deque[PoolCall] = collections.deque(maxlen=keep_calls)
        self._counts: collections.Counter[tuple[str, str | None]] = collections.Counter()
        self._cancelled: list[PoolCall] = []
        self._violations: list[WrongThreadError] = []
        self._reap_default: ReapBehaviour = Succeed()
        self._reap_script: collections.deque[ReapBehaviour] = collections.deque()
        self._pings_in_flight = 0
        self._max_pings_in_flight = 0
        self._leaked: list[str] = []
        self.pings_count_as_use = bool(pings_count_as_use)
        self._own_ping_timeout = (
            None if ping_timeout_s is None else check_seconds("ping_timeout_s", ping_timeout_s)
        )
        if self._own_ping_timeout is not None:
            # An instance attribute, so that the signature a ticker reads
            # (with inspect.getattr_static) takes the timeout keyword.
            self.ping_role = self._ping_role_bounded  # type: ignore[method-assign]
        self._restart_default: ReapBehaviour = Succeed()
        if restartable:
            # An instance attribute too: only a restartable pool has it.
            self.restart_role = self._restart_role

    # -- the pool protocol (loop thread only) ------------------------------------

    @property
    def registered_roles(self) -> tuple[str, ...]:
        """Every registered role."""
        self._enter("registered_roles", None)
        with self._lock:
            return tuple(self._roles)

    def accessor(self, role: str) -> _Accessor:
        """Return a handle whose ``is_alive`` reads ``role``'s state on the loop."""
        with self._lock:
            self._role(role)
        return _Accessor(self, role)

    async def reap_idle(self) -> tuple[str, ...]:
        """Play the next scripted reap behaviour, then reap idle roles.

        A role is reaped when it is alive, has no work in flight, and was last
        used more than :attr:`max_idle_s` ago. With :class:`SlowClose` the
        roles are taken out first and closed after.
        """
        call = self._enter("reap_idle", None)
        with self._lock:
            behaviour = self._reap_script.popleft() if self._reap_script else self._reap_default
        if isinstance(behaviour, SlowClose):
            reaped = self._take_idle()
            try:
                await self._cancellable(call, asyncio.sleep(behaviour.seconds))
            except asyncio.CancelledError:
                with self._lock:
                    self._leaked.extend(reaped)  # cut short: left running, unknown
                raise
            return reaped
        await self._cancellable(call, play(behaviour, _no_crash))
        return self._take_idle()

    async def ping_role(self, role: str) -> None:
        """Spawn ``role`` if it is not alive, then play its next scripted behaviour."""
        await self._ping(role, None)

    async def _ping_role_bounded(self, role: str, *, timeout: float | None = None) -> None:
        """``ping_role`` of a pool that bounds its own pings (see ``ping_timeout_s``)."""
        bound = self._own_ping_timeout if timeout is None else timeout
        await self._ping(role, bound)

    async def _ping(self, role: str, bound: float | None) -> None:
        call = self._enter("ping_role", role)
        with self._lock:
            state = self._role(role)
            self._spawn_if_dead(state)
            behaviour = state.script.popleft() if state.script else state.default
            self._pings_in_flight += 1
            self._max_pings_in_flight = max(self._max_pings_in_flight, self._pings_in_flight)
        try:
            work = play(behaviour, functools.partial(self._crash, role))
            if bound is not None:
                try:
                    await self._cancellable(call, asyncio.wait_for(work, bound))
                except asyncio.TimeoutError:
                    raise TimeoutError(
                        f"ping of role {role!r} timed out after {bound:g}s (the pool's own bound)"
                    ) from None
            else:
                await self._cancellable(call, work)
            if self.pings_count_as_use:
                with self._lock:
                    state.last_used = self._clock()
        finally:
            with self._lock:
                self._pings_in_flight -= 1

    def _take_idle(self) -> tuple[str, ...]:
        """Mark every idle role not alive and return them: the pool lets go of them."""
        now = self._clock()
        with self._lock:
            reaped = tuple(
                name
                for name, role in self._roles.items()
                if role.alive and role.in_flight == 0 and now - role.last_used > self.max_idle_s
            )
            for name in reaped:
                self._roles[name].alive = False
        return reaped

    async def _restart_role(self, role: str) -> None:
        """Play the restart behaviour, then give ``role`` a new, answering worker (or raise)."""
        call = self._enter("restart_role", role)
        with self._lock:
            self._role(role)
            behaviour = self._restart_default
        await self._cancellable(call, play(behaviour, _no_crash))
        with self._lock:
            state = self._role(role)
            state.alive = True
            state.restarts += 1
            state.script.clear()
            state.default = Succeed()
            state.last_used = self._clock()
            self._changed.notify_all()

    async def call(self, role: str, seconds: float = 0.0) -> None:
        """Do a unit of work on ``role``: spawn it if needed; it counts as in use throughout."""
        self._enter("call", role)
        with self._lock:
            state = self._role(role)
            self._spawn_if_dead(state)
            state.in_flight += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            with self._lock:
                state.in_flight -= 1
                state.last_used = self._clock()

    # -- control (any thread) --------------------------------------------------------

    def set_alive(self, role: str, alive: bool = True) -> None:
        """Mark ``role`` alive or dead (a crash the pool noticed, or a spawn)."""
        with self._lock:
            state = self._role(role)
            if alive and not state.alive:
                state.last_used = self._clock()
            state.alive = alive

    def use(self, role: str) -> None:
        """Record a use of ``role`` now (spawning it if needed), resetting its idle time."""
        with self._lock:
            state = self._role(role)
            self._spawn_if_dead(state)
            state.last_used = self._clock()

    def set_ping(self, role: str, behaviour: PingBehaviour) -> None:
        """Make every later ping of ``role`` behave as ``behaviour``, once its script runs out."""
        with self._lock:
            self._role(role).default = behaviour

    def script_ping(self, role: str, *behaviours: PingBehaviour) -> None:
        """Queue ``behaviours`` for the next pings of ``role``, one each, in order."""
        with self._lock:
            self._role(role).script.extend(behaviours)

    def set_reap(self, behaviour: ReapBehaviour) -> None:
        """Make every later ``reap_idle()`` behave as ``behaviour``, once its script runs out."""
        with self._lock:
            self._reap_default = behaviour

    def script_reap(self, *behaviours: ReapBehaviour) -> None:
        """Queue ``behaviours`` for the next calls of ``reap_idle()``, one each, in order."""
        with self._lock:
            self._reap_script.extend(behaviours)

    @property
    def max_concurrent_pings(self) -> int:
        """The most pings that were ever running at the same time."""
        with self._lock:
            return self._max_pings_in_flight

    @property
    def leaked(self) -> tuple[str, ...]:
        """Roles whose worker a cancelled :class:`SlowClose` reap left running, unknown to the pool.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return tuple(self._leaked)

    def is_alive(self, role: str) -> bool:
        """Whether ``role`` is alive, read from the test's side under the pool's lock."""
        with self._lock:
            return self._role(role).alive

    def set_restart(self, behaviour: Succeed | Fail | Hang | Delay) -> None:
        """Make every later ``restart_role()`` play ``behaviour`` first (``Fail``: no new worker).

        .. versionadded:: 0.2.0
        """
        with self._lock:
            self._restart_default = behaviour

    def restarts(self, role: str) -> int:
        """How many times ``restart_role`` replaced ``role``'s worker.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return self._role(role).restarts

    def spawns(self, role: str) -> int:
        """How many times ``ping_role`` or a use spawned ``role`` after it was dead."""
        with self._lock:
            return self._role(role).spawns

    @property
    def calls(self) -> tuple[PoolCall, ...]:
        """The most recent protocol calls (up to ``keep_calls``), in order."""
        with self._lock:
            return tuple(self._calls)

    @property
    def cancelled(self) -> tuple[PoolCall, ...]:
        """The ``ping_role`` and ``reap_idle`` calls that were cancelled while they ran."""
        with self._lock:
            return tuple(self._cancelled)

    @property
    def violations(self) -> tuple[WrongThreadError, ...]:
        """Every wrong-thread access so far; a correct ticker leaves this empty."""
        with self._lock:
            return tuple(self._violations)

    def calls_to(self, method: str, role: str | None = None) -> tuple[PoolCall, ...]:
        """The kept calls of ``method`` (on ``role``, if given)."""
        return tuple(
            c for c in self.calls if c.method == method and (role is None or c.role == role)
        )

    def count(self, method: str, role: str | None = None) -> int:
        """How many calls of ``method`` (on ``role``, if given) the pool has seen in all."""
        with self._lock:
            return self._count(method, role)

    def wait_for_calls(
        self, method: str, count: int = 1, *, role: str | None = None, timeout: float = 10.0
    ) -> bool:
        """Block until ``count`` calls of ``method`` (on ``role``) were seen; False on timeout."""
        return self._wait(lambda: self._count(method, role) >= count, timeout)

    def wait_for_cancelled(self, count: int = 1, *, timeout: float = 10.0) -> bool:
        """Block until ``count`` running calls were cancelled; False on timeout."""
        return self._wait(lambda: len(self._cancelled) >= count, timeout)

    # -- internals -------------------------------------------------------------------

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _count(self, method: str, role: str | None) -> int:
        if role is not None:
            return self._counts[method, role]
        return sum(n for (m, _), n in self._counts.items() if m == method)

    def _role(self, role: str) -> _Role:
        try:
            return self._roles[role]
        except KeyError:
            raise KeyError(
                f"role {role!r} is not registered; registered: {sorted(self._roles)}"
            ) from None

    def _spawn_if_dead(self, state: _Role) -> None:
        if not state.alive:
            state.alive = True
            state.spawns += 1
            state.last_used = self._clock()

    def _enter(self, operation: str, role: str | None) -> PoolCall:
        """Record a protocol call, and refuse it unless it runs on the pool's loop thread."""
        thread = threading.current_thread()
        call = PoolCall(operation, role, thread.name, threading.get_ident())
        with self._changed:
            if self._owner is None and _running_loop_here():
                self._owner = thread
            owner = self._owner
            if owner is thread:
                self._calls.append(call)
                self._counts[operation, role] += 1
                self._changed.notify_all()
                return call
            error = WrongThreadError(operation, thread.name, owner.name if owner else None)
            self._violations.append(error)
        raise error

    def _crash(self, role: str) -> None:
        with self._lock:
            self._role(role).alive = False
        raise WorkerCrashedError(role)

    async def _cancellable(self, call: PoolCall, work: Coroutine[Any, Any, None]) -> None:
        """Await ``work``, recording ``call`` in :attr:`cancelled` if it is cancelled."""
        try:
            await work
        except asyncio.CancelledError:
            with self._changed:
                self._cancelled.append(call)
                self._changed.notify_all()
            raise


def _no_crash() -> None:
    """A reap or restart plays no Crash."""


def _running_loop_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
