"""A ticker's settings: every argument checked once, with its default, as one frozen value.

:func:`settle` turns ``HealthTicker``'s arguments into :class:`Settings` or
raises an error that names the argument, the value and the fix; nothing
here runs the pool's code (attributes are read statically).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, Generic, TypeVar, overload

from lilbee_ticker._events import OnChange
from lilbee_ticker._supervise import RestartPolicy
from lilbee_ticker._validate import check_attributes, check_count, check_name, check_seconds

__all__ = ["Setting", "Settings", "settle"]

_T = TypeVar("_T")

# The default call_timeout_s: half the interval, so that a tick (a reap and
# the pings, each bounded by it) fits into its interval; at most the first, and
# at least the second, so that a test's millisecond interval does not make
# every ping on a busy machine a timeout.
DEFAULT_CALL_TIMEOUT_S = 10.0
MIN_DEFAULT_CALL_TIMEOUT_S = 0.1

# A pool whose ping_role() takes a timeout keyword gets the ticker's bound
# less this share of it (at most _POOL_MARGIN_MAX_S), so that its own timeout
# ends the call, cleanly, just before the ticker's deadline would cancel it.
_POOL_MARGIN = 0.1
_POOL_MARGIN_MAX_S = 1.0

# How much later than the loop's own deadline for a step the ticker waits for
# the loop to come back from it before taking the loop to be unresponsive:
# room for the loop's wake-ups on a busy machine.
BACKSTOP_GRACE_S = 1.0

# How much longer than its own worst case a tick() call waits for the tick
# that another thread is running before giving up.
_SLOT_GRACE_S = 1.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything a ticker was configured with, checked (see ``HealthTicker`` for each)."""

    interval_s: float
    call_timeout_s: float
    call_timeout_given: bool
    name: str
    failure_threshold: int
    success_threshold: int
    on_change: OnChange | None
    initial_delay_s: float | None
    stale_after_s: float
    # The bound passed to ping_role(role, timeout=...), or None for a pool
    # whose ping_role takes no timeout keyword.
    ping_timeout: float | None
    restart: RestartPolicy | None = None

    @property
    def first_delay_s(self) -> float:
        """Seconds from ``start()`` to the first tick."""
        return self.interval_s if self.initial_delay_s is None else self.initial_delay_s

    @property
    def slot_bound_s(self) -> float:
        """The longest a tick can take (a reap, the pings, a late loop), with a margin."""
        return 3 * self.call_timeout_s + 2 * BACKSTOP_GRACE_S + _SLOT_GRACE_S

    def warnings(self) -> list[tuple[str, dict[str, Any]]]:
        """The warning events these settings deserve, as ``(event, fields)``.

        A ``call_timeout_s`` longer than ``interval_s`` lets one hung call
        make a tick outlast two intervals: the reap and the pings each get it.
        """
        if not self.call_timeout_given or self.call_timeout_s <= self.interval_s:
            return []
        return [
            (
                "ticker.slow_ticks",
                {
                    "call_timeout_s": self.call_timeout_s,
                    "interval_s": self.interval_s,
                    "hint": "a tick waits up to call_timeout_s for the reap and as long again "
                    "for the pings, so one hung call makes ticks outlast their interval; leave "
                    "call_timeout_s unset (interval_s / 2) or lengthen interval_s",
                },
            )
        ]


class Setting(Generic[_T]):
    """A read-only attribute of a ticker that reads the field of the same name of its settings."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._field = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._field = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Setting[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object, owner: type | None = None) -> Setting[_T] | _T:
        if obj is None:
            return self
        value: _T = getattr(obj._settings, self._field)  # type: ignore[attr-defined]
        return value

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError(f"{self._field} is read-only: it is fixed when the ticker is made")


def settle(
    pool: object,
    runtime: object,
    stop_event: object,
    interval_s: object,
    call_timeout_s: object,
    name: object,
    failure_threshold: object,
    success_threshold: object,
    on_change: object,
    initial_delay_s: object,
    stale_after_s: object,
    restart: object = None,
) -> Settings:
    """Check every argument of ``HealthTicker``; return them as :class:`Settings`.

    Raises:
        TypeError: An argument has the wrong type, ``pool`` or ``runtime``
            lacks part of its protocol, or ``stop_event`` cannot serve as a
            clock.
        ValueError: A number is out of its range, or ``name`` is empty.
    """
    check_attributes(
        "pool",
        pool,
        "lilbee_ticker.Pool",
        ("registered_roles", "accessor", "reap_idle", "ping_role"),
        callables=("accessor", "reap_idle", "ping_role"),
    )
    _check_roles_member(pool)
    check_attributes(
        "runtime", runtime, "lilbee_ticker.Runtime", ("submit",), callables=("submit",)
    )
    if stop_event is not None:
        check_attributes(
            "stop_event",
            stop_event,
            "threading.Event",
            ("wait", "set", "is_set"),
            callables=("wait", "set", "is_set"),
        )
        _check_clock_event(stop_event)
    interval = check_seconds("interval_s", interval_s)
    if call_timeout_s is None:
        call_timeout = min(DEFAULT_CALL_TIMEOUT_S, max(interval / 2, MIN_DEFAULT_CALL_TIMEOUT_S))
    else:
        call_timeout = check_seconds("call_timeout_s", call_timeout_s)
    if on_change is not None and not callable(on_change):
        raise TypeError(
            "on_change must be a callable taking (old, new) or None, "
            f"got {on_change!r} of type {type(on_change).__name__}"
        )
    delay = (
        None
        if initial_delay_s is None
        else check_seconds("initial_delay_s", initial_delay_s, allow_zero=True)
    )
    if stale_after_s is None:
        stale = 2 * interval + 2 * call_timeout + 1.0
    else:
        stale = check_seconds("stale_after_s", stale_after_s)
        if stale <= interval:
            raise ValueError(
                f"stale_after_s must be longer than interval_s ({interval:g}s), "
                f"got {stale_after_s!r}: between two ticks the last one is up to an "
                "interval old, so a healthy ticker would turn stale; leave it None for "
                "2 * interval_s + 2 * call_timeout_s + 1"
            )
    if restart is not None:
        _check_restart(pool, restart)
    return Settings(
        restart=restart,  # type: ignore[arg-type]  # checked above
        interval_s=interval,
        call_timeout_s=call_timeout,
        call_timeout_given=call_timeout_s is not None,
        name=check_name(name),
        failure_threshold=check_count("failure_threshold", failure_threshold),
        success_threshold=check_count("success_threshold", success_threshold),
        on_change=on_change,  # checked callable above
        initial_delay_s=delay,
        stale_after_s=stale,
        ping_timeout=_pool_ping_timeout(pool, call_timeout),
    )


def _check_restart(pool: object, restart: object) -> None:
    """Refuse a restart policy that is not one, or a pool that cannot restart a role."""
    if not isinstance(restart, RestartPolicy):
        raise TypeError(
            f"restart must be a lilbee_ticker.RestartPolicy or None, got {restart!r} of type "
            f"{type(restart).__name__}: pass restart=RestartPolicy()"
        )
    try:
        member: Any = inspect.getattr_static(pool, "restart_role")
    except AttributeError:
        member = None
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if (
        member is None
        or not callable(member)
        or (inspect.isfunction(member) and not inspect.iscoroutinefunction(member))
    ):
        raise TypeError(
            f"restart=RestartPolicy(...) needs a pool with a restart_role(role) coroutine, but "
            f"{type(pool).__qualname__}.restart_role is "
            f"{'missing' if member is None else 'not an async def'}: add "
            "`async def restart_role(self, role)` that replaces the role's worker, ending the "
            "current process whatever state it is in, or leave restart=None to only observe"
        )


def _check_roles_member(pool: object) -> None:
    """Refuse a pool whose ``registered_roles`` is a plain method.

    The ticker reads ``pool.registered_roles`` as a value (a property or a
    sequence), so a method would only fail at every tick. Read statically:
    no property of the pool runs here.
    """
    member = inspect.getattr_static(pool, "registered_roles")
    if isinstance(member, (types.FunctionType, staticmethod, classmethod)):
        raise TypeError(
            f"pool.registered_roles must be a property or a sequence of role names, but "
            f"{type(pool).__qualname__}.registered_roles is a method: decorate it with "
            "@property (or make it a tuple attribute)"
        )


def _check_clock_event(event: object) -> None:
    """Refuse a stop event whose ``wait(timeout)`` cannot be waited on with a timeout.

    An ``asyncio.Event`` has the three methods, but its ``wait`` is a
    coroutine function that takes no timeout.
    """
    wait = getattr(event, "wait", None)
    kind = f"{type(event).__module__}.{type(event).__qualname__}"
    if inspect.iscoroutinefunction(wait):
        raise TypeError(
            f"stop_event must block in wait(timeout), as threading.Event does, but {kind}'s "
            f"wait is a coroutine function (got {event!r}): pass a threading.Event, and set it "
            "from the event loop with loop.call_soon_threadsafe or directly"
        )
    try:
        signature = inspect.signature(wait)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # a builtin without a signature: trusted
    try:
        signature.bind(1.0)
    except TypeError:
        raise TypeError(
            f"stop_event.wait must take a timeout in seconds, as threading.Event.wait does, "
            f"but {kind}.wait{signature} does not (got {event!r}): pass a threading.Event"
        ) from None


def _pool_ping_timeout(pool: object, call_timeout_s: float) -> float | None:
    """The ``timeout=`` to pass to ``pool.ping_role``, or None if it takes no such keyword.

    Read from the signature without calling or running anything on the pool.
    """
    try:
        member: Any = inspect.getattr_static(pool, "ping_role")
    except AttributeError:
        return None
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    try:
        parameter = inspect.signature(member).parameters.get("timeout")
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.kind not in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    ):
        return None
    return call_timeout_s - min(call_timeout_s * _POOL_MARGIN, _POOL_MARGIN_MAX_S)
