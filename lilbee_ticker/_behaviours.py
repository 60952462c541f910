"""The scripted behaviours of a :class:`~lilbee_ticker.testing.FakePool`, its errors and its clock.

Public through :mod:`lilbee_ticker.testing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable

from lilbee_ticker._exceptions import TickerError
from lilbee_ticker._validate import check_seconds

__all__ = [
    "Crash",
    "Delay",
    "Fail",
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
    "play",
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


async def play(behaviour: PingBehaviour | SlowClose, crash: Callable[[], None]) -> None:
    """Do what ``behaviour`` says; ``crash()`` marks the role's worker dead for :class:`Crash`."""
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
    elif isinstance(behaviour, Crash):
        crash()
    elif isinstance(behaviour, IgnoreCancel):
        with contextlib.suppress(asyncio.CancelledError):  # on purpose: see IgnoreCancel
            await asyncio.Event().wait()
        await asyncio.sleep(behaviour.seconds)
        if behaviour.error is not None:
            raise behaviour.error.with_traceback(None)
