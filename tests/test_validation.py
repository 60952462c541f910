"""Bad arguments give errors that name the argument, the value and the fix."""

from __future__ import annotations

import math
import re
import threading
from fractions import Fraction
from typing import Any

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.testing import FakePool

BAD_SECONDS = [
    (0, ValueError, "> 0, got 0"),
    (-1.5, ValueError, "> 0, got -1.5"),
    (math.nan, ValueError, "finite number of seconds > 0, got nan"),
    (math.inf, ValueError, "finite number of seconds > 0, got inf"),
    (-math.inf, ValueError, "finite number of seconds > 0, got -inf"),
    (1e300, ValueError, "at most threading.TIMEOUT_MAX"),
    ("30", TypeError, "real number of seconds > 0, got '30' of type str"),
    (True, TypeError, "got True of type bool"),
    (None, TypeError, "got None of type NoneType"),
    (1j, TypeError, "of type complex"),
]


@pytest.fixture
def pool(lilbee_runtime: LoopRuntime) -> FakePool:
    return FakePool(loop_thread=lilbee_runtime.thread)


@pytest.mark.parametrize(
    ("argument", "value", "error", "message"),
    [("interval_s", *case) for case in BAD_SECONDS]
    # None is call_timeout_s's default: it follows the interval.
    + [("call_timeout_s", *case) for case in BAD_SECONDS if case[0] is not None],
)
def test_bad_seconds_are_refused(
    pool: FakePool,
    lilbee_runtime: LoopRuntime,
    argument: str,
    value: Any,
    error: type[Exception],
    message: str,
) -> None:
    """Non-numbers, bools, NaN, infinities and values <= 0 are refused, naming the argument."""
    with pytest.raises(error, match=f"^{argument} must be .*{re.escape(message)}"):
        HealthTicker(pool, lilbee_runtime, **{argument: value})


@pytest.mark.parametrize("value", [1, 0.001, Fraction(1, 4), 30.0])
def test_good_seconds_are_accepted_as_floats(
    pool: FakePool, lilbee_runtime: LoopRuntime, value: Any
) -> None:
    """Any finite real number > 0 is accepted and kept as a float."""
    ticker = HealthTicker(pool, lilbee_runtime, interval_s=value, call_timeout_s=value)
    assert ticker.interval_s == float(value) and isinstance(ticker.interval_s, float)
    assert ticker.call_timeout_s == float(value)


@pytest.mark.parametrize(("interval_s", "expected"), [(30.0, 10.0), (20.0, 10.0), (0.2, 0.1)])
def test_the_default_call_timeout_follows_the_interval(
    pool: FakePool, lilbee_runtime: LoopRuntime, interval_s: float, expected: float
) -> None:
    """By default call_timeout_s is min(10, interval_s / 2), so that a tick fits its interval."""
    ticker = HealthTicker(pool, lilbee_runtime, interval_s=interval_s)
    assert ticker.call_timeout_s == expected
    assert ticker.stale_after_s == 2 * interval_s + 2 * expected + 1


def test_defaults(pool: FakePool, lilbee_runtime: LoopRuntime) -> None:
    """The defaults are a 30 s interval, a 10 s call timeout and a named thread."""
    ticker = HealthTicker(pool, lilbee_runtime)
    assert (ticker.interval_s, ticker.call_timeout_s) == (30.0, 10.0)
    assert ticker.name == "lilbee-health-ticker"
    assert isinstance(ticker.stop_event, threading.Event)
    assert not ticker.stop_event.is_set()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("", ValueError, "non-empty string, got ''"),
        ("  ", ValueError, "non-empty"),
        (7, TypeError, "name must be a str, got 7 of type int"),
    ],
)
def test_bad_name(
    pool: FakePool, lilbee_runtime: LoopRuntime, value: Any, error: type[Exception], message: str
) -> None:
    """The thread name must be a non-empty string."""
    with pytest.raises(error, match=message):
        HealthTicker(pool, lilbee_runtime, name=value)


def test_bad_stop_event(pool: FakePool, lilbee_runtime: LoopRuntime) -> None:
    """A stop_event without wait/set/is_set is refused, naming what is missing."""
    with pytest.raises(TypeError, match=r"stop_event does not fit .*missing 'wait'.*got True"):
        HealthTicker(pool, lilbee_runtime, stop_event=True)  # type: ignore[arg-type]


class _NoPing:
    registered_roles = ("a",)

    def accessor(self, role: str) -> Any: ...

    async def reap_idle(self) -> tuple[str, ...]:
        return ()


class _NotCallable:
    registered_roles = ("a",)
    accessor = None
    reap_idle = 3

    async def ping_role(self, role: str) -> None: ...


class _PropertyPool:
    """Its registered_roles property must not be run from the constructing thread."""

    touched = False

    @property
    def registered_roles(self) -> tuple[str, ...]:
        _PropertyPool.touched = True
        return ()

    def accessor(self, role: str) -> Any: ...

    async def reap_idle(self) -> tuple[str, ...]:
        return ()

    async def ping_role(self, role: str) -> None: ...


@pytest.mark.parametrize(
    ("bad_pool", "message"),
    [
        (
            object(),
            "missing 'registered_roles', missing 'accessor', missing 'reap_idle', "
            "missing 'ping_role'",
        ),
        (_NoPing(), r"missing 'ping_role'\)"),
        (_NotCallable(), r"'accessor' is not callable, 'reap_idle' is not callable\)"),
        (None, "missing 'registered_roles'.*got None"),
    ],
)
def test_pool_missing_pieces(lilbee_runtime: LoopRuntime, bad_pool: Any, message: str) -> None:
    """A pool that does not fit the protocol is a TypeError naming each missing piece."""
    with pytest.raises(
        TypeError, match=f"^pool does not fit the lilbee_ticker.Pool protocol .*{message}"
    ):
        HealthTicker(bad_pool, lilbee_runtime)


def test_pool_properties_are_not_run_at_construction(lilbee_runtime: LoopRuntime) -> None:
    """Checking the pool does not read its state from the constructing thread."""
    HealthTicker(_PropertyPool(), lilbee_runtime)
    assert not _PropertyPool.touched


@pytest.mark.parametrize("bad_runtime", [object(), None, type("R", (), {"submit": 5})()])
def test_runtime_missing_submit(pool: FakePool, bad_runtime: Any) -> None:
    """A runtime without a callable submit is a TypeError naming it."""
    with pytest.raises(
        TypeError, match=r"^runtime does not fit the lilbee_ticker\.Runtime protocol .*'submit'"
    ):
        HealthTicker(pool, bad_runtime)


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (math.nan, ValueError), (None, TypeError), ("5", TypeError)],
)
def test_bad_stop_timeout(
    pool: FakePool, lilbee_runtime: LoopRuntime, value: Any, error: type[Exception]
) -> None:
    """stop(timeout) must be a finite number >= 0; an unbounded wait is not offered."""
    ticker = HealthTicker(pool, lilbee_runtime)
    with pytest.raises(error, match=r"^timeout must be"):
        ticker.stop(value)
    assert ticker.stop(0)


# -- pool mistakes, caught as early as they can be told -------------------------------------


class _MethodRoles(FakePool):
    def registered_roles(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("embed",)


def test_registered_roles_as_a_method_is_refused_at_construction(
    lilbee_runtime: LoopRuntime,
) -> None:
    """A registered_roles method (not a property) is a TypeError naming it and the fix."""
    pool = _MethodRoles(("embed",), loop_thread=lilbee_runtime.thread)
    with pytest.raises(TypeError, match=r"^pool\.registered_roles .*is a method.*@property"):
        HealthTicker(pool, lilbee_runtime)


class _SyncCalls(FakePool):
    """A pool whose reap_idle and ping_role are plain functions that return plain values."""

    def reap_idle(self) -> tuple[str, ...]:  # type: ignore[override]
        return ()

    def ping_role(self, role: str) -> None:  # type: ignore[override]
        return None


def test_plain_function_calls_are_named_with_the_fix_on_the_first_tick(
    lilbee_runtime: LoopRuntime, make_ticker: Any
) -> None:
    """reap_idle and ping_role returning non-awaitables: the first report names them and the fix."""
    pool = _SyncCalls(("embed",), loop_thread=lilbee_runtime.thread)
    ticker = make_ticker(pool)  # accepted: a plain function may return an awaitable
    with capture_logs() as logs:
        report = ticker.tick()
    assert isinstance(report.reap_error, TypeError)
    assert "reap_idle() returned ()" in str(report.reap_error)
    assert "make reap_idle an async def" in str(report.reap_error)
    error = report.failed["embed"]
    assert isinstance(error, TypeError) and "make ping_role an async def" in str(error)
    warned = {e["event"]: e for e in logs if e["log_level"] == "warning"}
    assert "async def" in warned["reap.failed"]["error"]
    assert "async def" in warned["role.failing"]["error"]


class _AwaitableFromPlainFunction(FakePool):
    """Plain functions that return awaitables: legitimate, and they work."""

    def reap_idle(self):  # type: ignore[no-untyped-def,override]
        return super().reap_idle()

    def ping_role(self, role: str):  # type: ignore[no-untyped-def,override]
        return super().ping_role(role)


def test_plain_functions_returning_awaitables_are_fine(
    lilbee_runtime: LoopRuntime, make_ticker: Any
) -> None:
    """A plain function that returns a coroutine is a valid pool method."""
    pool = _AwaitableFromPlainFunction(("embed",), loop_thread=lilbee_runtime.thread)
    assert make_ticker(pool).tick().ok


def test_a_call_timeout_longer_than_the_interval_is_warned_about_once(
    pool: FakePool, lilbee_runtime: LoopRuntime
) -> None:
    """call_timeout_s=10 with interval_s=0.2 logs one ticker.slow_ticks warning, with the fix."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        HealthTicker(pool, lilbee_runtime, interval_s=0.2, call_timeout_s=10)
        HealthTicker(pool, lilbee_runtime, interval_s=0.2)  # the default fits
        HealthTicker(pool, lilbee_runtime, interval_s=0.2, call_timeout_s=0.2)
    (warning,) = [e for e in logs if e["event"] == "ticker.slow_ticks"]
    assert warning["log_level"] == "warning"
    assert (warning["call_timeout_s"], warning["interval_s"]) == (10.0, 0.2)
    assert "leave call_timeout_s unset" in warning["hint"]
