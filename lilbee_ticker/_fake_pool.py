"""`FakePool`: a scriptable pool for tests, with ping and reap behaviours and a manual clock.

Public through :mod:`lilbee_ticker.testing`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from lilbee_ticker import _clock
from lilbee_ticker._exceptions import TickerError
from lilbee_ticker._validate import check_seconds

__all__ = [
    "Crash",
    "Delay",
    "Fail",
    "FakePool",
    "Hang",
    "IgnoreCancel",
    "ManualClock",
    "PingBehaviour",
    "PoolCall",
    "ReapBehaviour",
    "SlowClose",
    "Succeed",
    "WorkerCrashedError",
    "WrongThreadError",
]


class WrongThreadError(TickerError, AssertionError):
    """Pool state was touched from a thread other than the pool's event loop thread.

    Attributes:
        operation: What was touched, e.g. ``"registered_roles"``.
        thread: The name of the offending thread.
        owner: The name of the pool's loop thread, or ``None`` if the call
            came from a thread with no running event loop before any loop
            thread had touched the pool.

    .. versionadded:: 0.1.0
    """

    def __init__(self, operation: str, thread: str, owner: str | None) -> None:
        self.operation = operation
        self.thread = thread
        self.owner = owner
        where = f"its loop thread {owner!r}" if owner else "a thread running its event loop"
        super().__init__(
            f"FakePool.{operation} was used from thread {thread!r}, but pool state may only be "
            f"touched from {where}: submit a coroutine to the runtime instead"
        )


class WorkerCrashedError(TickerError, ConnectionError):
    """A :class:`FakePool` worker crashed during a ping (see :class:`Crash`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, role: str) -> None:
        self.role = role
        super().__init__(f"worker for role {role!r} crashed")


# -- ping behaviours ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Succeed:
    """A ping that answers at once.

    Also usable as a reap behaviour (see :meth:`FakePool.set_reap`).

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """


@dataclasses.dataclass(frozen=True)
class Fail:
    """A ping that raises ``error``.

    Also usable as a reap behaviour (see :meth:`FakePool.set_reap`).

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """

    error: BaseException = dataclasses.field(
        default_factory=lambda: ConnectionError("scripted ping failure")
    )


@dataclasses.dataclass(frozen=True)
class Hang:
    """A ping that never answers: it waits until it is cancelled.

    Also usable as a reap behaviour (see :meth:`FakePool.set_reap`).

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """


@dataclasses.dataclass(frozen=True)
class Delay:
    """A ping that answers after ``seconds`` of real time on the loop.

    Also usable as a reap behaviour (see :meth:`FakePool.set_reap`).

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """

    seconds: float

    def __post_init__(self) -> None:
        check_seconds("seconds", self.seconds, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class Crash:
    """A ping during which the worker dies: the role is no longer alive and the ping raises.

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """


@dataclasses.dataclass(frozen=True)
class IgnoreCancel:
    """A ping that hangs, and when cancelled swallows the cancellation and runs on.

    It models a pool that lets go slowly: asked to stop, it keeps going for
    ``seconds`` more, then returns quietly (or raises ``error``, if given),
    as if nothing had happened. A ticker must not take that late return for
    a success, nor ping the role again while it runs.

    Thread safety: immutable.

    .. versionadded:: 0.2.0
    """

    seconds: float = 1.0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        check_seconds("seconds", self.seconds, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class SlowClose:
    """A reap that takes idle workers out of the pool at once, then closes them over ``seconds``.

    This is how a real pool reaps (lilbee's takes a worker's channel out,
    then waits for its ack, joins it, terminates it): closing a worker is
    cleanup that must not be cut short. If the reap is cancelled part-way,
    the workers it was closing are left running, unknown to the pool, and
    are recorded in :attr:`FakePool.leaked`, so a test that checks
    ``pool.leaked == ()`` fails if a ticker cancels a reap.

    Thread safety: immutable.

    .. versionadded:: 0.2.0
    """

    seconds: float

    def __post_init__(self) -> None:
        check_seconds("seconds", self.seconds, allow_zero=True)


PingBehaviour = Succeed | Fail | Hang | Delay | Crash | IgnoreCancel
"""What one ping does: Succeed, Fail, Hang, Delay, Crash or IgnoreCancel."""

ReapBehaviour = Succeed | Fail | Hang | Delay | SlowClose
"""What one ``reap_idle()`` does: :class:`Succeed` (reap at once), :class:`Fail` (raise,
reaping nothing), :class:`Hang` or :class:`Delay` (then reap), or :class:`SlowClose`
(reap at once, then take a while to close the workers)."""


@dataclasses.dataclass(frozen=True)
class PoolCall:
    """One call of the pool protocol that a :class:`FakePool` saw.

    Attributes:
        method: ``"registered_roles"``, ``"is_alive"``, ``"reap_idle"``,
            ``"ping_role"``, ``"restart_role"`` or ``"call"``.
        role: The role concerned, or ``None``.
        thread: The name of the thread the call ran on.
        thread_id: That thread's :func:`threading.get_ident`.

    Thread safety: immutable.

    .. versionadded:: 0.1.0
    """

    method: str
    role: str | None
    thread: str
    thread_id: int


class ManualClock:
    """A clock that stands still until the test advances it.

    Pass it as ``FakePool(clock=...)`` to control idle time without
    freezegun. Calling it returns the current reading in seconds.

    Thread safety: safe to read and advance from any thread.

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._lock = threading.Lock()  # guards _now
        self._now = float(start)

    def __call__(self) -> float:
        """Return the current reading in seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new reading."""
        seconds = check_seconds("seconds", seconds, allow_zero=True)
        with self._lock:
            self._now += seconds
            return self._now


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

    Thread safety: the control methods (:meth:`set_alive`,
    :meth:`script_ping`, :meth:`use` and the rest) and the read-outs
    (:attr:`calls`, :meth:`count`, ...) may be called from any thread; the
    protocol surface (``registered_roles``, ``accessor(role).is_alive``,
    ``reap_idle``, ``ping_role``, ``call``) only from the loop thread, which
    is the point of the fake.

    Args:
        roles: The registered roles.
        alive: Which roles start alive: ``True`` for all, ``False`` for none,
            or an iterable of role names.
        max_idle_s: How long a role may go unused before ``reap_idle()``
            reaps it.
        clock: Returns the time in seconds for idle accounting. The default
            reads ``datetime.now()``, which freezegun freezes in every thread,
            so ``freezer.tick(...)`` moves it; or pass a :class:`ManualClock`.
        loop_thread: The thread allowed to touch pool state. By default, the
            first thread running an event loop that touches the pool.
        keep_calls: How many of the most recent calls :attr:`calls` keeps;
            :meth:`count` counts them all.
        pings_count_as_use: If True, a successful ping stamps the role's last
            use, as lilbee's pool does: then a ticker that pings more often
            than ``max_idle_s`` keeps every worker alive.
        ping_timeout_s: If set, ``ping_role`` takes a ``timeout`` keyword, as
            ``ping_role(role, *, timeout=None)``, and bounds itself as a
            real pool does: a ping still running after ``timeout`` (or after
            ``ping_timeout_s`` when none is passed) raises the pool's own
            :class:`TimeoutError`. The timeouts passed are in
            :attr:`ping_timeouts`.
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
        self._role_pings_in_flight: collections.Counter[str] = collections.Counter()
        self._max_role_pings_in_flight = 0
        self._reaps_in_flight = 0
        self._max_reaps_in_flight = 0
        self._leaked: list[str] = []
        self._ping_timeouts: list[float | None] = []
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
            self._reaps_in_flight += 1
            self._max_reaps_in_flight = max(self._max_reaps_in_flight, self._reaps_in_flight)
        try:
            if isinstance(behaviour, SlowClose):
                reaped = self._take_idle()
                try:
                    await self._cancellable(call, asyncio.sleep(behaviour.seconds))
                except asyncio.CancelledError:
                    with self._lock:
                        self._leaked.extend(reaped)  # cut short: left running, unknown
                    raise
                return reaped
            await self._cancellable(call, self._play(None, behaviour))
            return self._take_idle()
        finally:
            with self._lock:
                self._reaps_in_flight -= 1

    async def ping_role(self, role: str) -> None:
        """Spawn ``role`` if it is not alive, then play its next scripted behaviour."""
        await self._ping(role, None)

    async def _ping_role_bounded(self, role: str, *, timeout: float | None = None) -> None:
        """``ping_role`` of a pool that bounds its own pings (see ``ping_timeout_s``)."""
        bound = self._own_ping_timeout if timeout is None else timeout
        with self._lock:
            self._ping_timeouts.append(timeout)
        await self._ping(role, bound)

    async def _ping(self, role: str, bound: float | None) -> None:
        call = self._enter("ping_role", role)
        with self._lock:
            state = self._role(role)
            self._spawn_if_dead(state)
            behaviour = state.script.popleft() if state.script else state.default
            self._pings_in_flight += 1
            self._max_pings_in_flight = max(self._max_pings_in_flight, self._pings_in_flight)
            self._role_pings_in_flight[role] += 1
            self._max_role_pings_in_flight = max(
                self._max_role_pings_in_flight, self._role_pings_in_flight[role]
            )
        try:
            work = self._play(role, behaviour)
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
                self._role_pings_in_flight[role] -= 1

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
        """Play the restart behaviour, then replace ``role``'s worker with a new, answering one.

        Cancelled part-way (a ticker must never do that), the old worker is
        left as it was and the call is recorded in :attr:`cancelled`.
        """
        call = self._enter("restart_role", role)
        with self._lock:
            self._role(role)
            behaviour = self._restart_default
        await self._cancellable(call, self._play(None, behaviour))
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
    def max_concurrent_pings_per_role(self) -> int:
        """The most pings of one role that were ever running at the same time.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return self._max_role_pings_in_flight

    @property
    def max_concurrent_reaps(self) -> int:
        """The most ``reap_idle()`` calls that were ever running at the same time.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return self._max_reaps_in_flight

    @property
    def reaps_in_flight(self) -> int:
        """How many ``reap_idle()`` calls are running now.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return self._reaps_in_flight

    @property
    def leaked(self) -> tuple[str, ...]:
        """Roles whose worker a cancelled :class:`SlowClose` reap left running, unknown to the pool.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return tuple(self._leaked)

    @property
    def ping_timeouts(self) -> tuple[float | None, ...]:
        """The ``timeout`` each bounded ping was passed (see ``ping_timeout_s``).

        .. versionadded:: 0.2.0
        """
        with self._lock:
            return tuple(self._ping_timeouts)

    def is_alive(self, role: str) -> bool:
        """Whether ``role`` is alive, read from the test's side under the pool's lock."""
        with self._lock:
            return self._role(role).alive

    def set_restart(self, behaviour: Succeed | Fail | Hang | Delay) -> None:
        """Make every later ``restart_role()`` play ``behaviour`` before it replaces the worker.

        :class:`Fail` raises and replaces nothing; :class:`Hang` never ends.

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

    async def _cancellable(self, call: PoolCall, work: Coroutine[Any, Any, None]) -> None:
        """Await ``work``, recording ``call`` in :attr:`cancelled` if it is cancelled."""
        try:
            await work
        except asyncio.CancelledError:
            with self._changed:
                self._cancelled.append(call)
                self._changed.notify_all()
            raise

    async def _play(self, role: str | None, behaviour: PingBehaviour | SlowClose) -> None:
        if isinstance(behaviour, Succeed):
            return
        if isinstance(behaviour, Fail):
            # Drop the traceback of earlier raises, which would otherwise pile
            # up on the one exception object over a long test.
            raise behaviour.error.with_traceback(None)
        if isinstance(behaviour, Hang):
            await asyncio.Event().wait()
        elif isinstance(behaviour, (Delay, SlowClose)):
            await asyncio.sleep(behaviour.seconds)
        elif isinstance(behaviour, Crash) and role is not None:
            with self._lock:
                self._role(role).alive = False
            raise WorkerCrashedError(role)
        elif isinstance(behaviour, IgnoreCancel):
            with contextlib.suppress(asyncio.CancelledError):  # on purpose: see IgnoreCancel
                await asyncio.Event().wait()
            await asyncio.sleep(behaviour.seconds)
            if behaviour.error is not None:
                raise behaviour.error.with_traceback(None)


def _running_loop_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
