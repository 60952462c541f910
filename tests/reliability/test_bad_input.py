"""Bad input: every argument, given every kind of wrong value, gets the documented error naming it.

The documented errors (``HealthTicker``'s docstring, docs/configuration.md): a
value of the wrong type, or a pool, runtime or stop event lacking part of its
protocol, is a ``TypeError``; a value of the right type outside its range
(NaN, infinities, <= 0 durations, > ``threading.TIMEOUT_MAX``, thresholds < 1,
an empty name) is a ``ValueError``. Either message starts with the argument's
name and shows the value.
"""

from __future__ import annotations

import math
import re
import threading
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import FakePool

_HUGE = 10**400  # a finite int too large for a float


def _param(argument: str, value: Any, error: type[Exception], *marks: Any, names: str = "") -> Any:
    label = names or (type(value).__name__ if isinstance(value, type | Decimal) else repr(value))
    return pytest.param(argument, value, error, marks=marks, id=f"{argument}={label[:24]}")


def _seconds(argument: str, *, allow_zero: bool, optional: bool = False) -> list[Any]:
    cases = [
        _param(argument, "30", TypeError),
        _param(argument, True, TypeError),
        _param(argument, [1.0], TypeError),
        _param(argument, 1j, TypeError),
        _param(argument, Decimal("1"), TypeError),
        _param(argument, math.nan, ValueError),
        _param(argument, math.inf, ValueError),
        _param(argument, -math.inf, ValueError),
        _param(argument, -1, ValueError),
        _param(argument, -1e-9, ValueError),
        _param(argument, threading.TIMEOUT_MAX * 2, ValueError),
        _param(argument, _HUGE, ValueError, names="10**400"),
    ]
    if not optional:  # an optional one takes None for its default
        cases.append(_param(argument, None, TypeError))
    if not allow_zero:
        cases += [_param(argument, 0, ValueError), _param(argument, 0.0, ValueError)]
    return cases


def _count(argument: str) -> list[Any]:
    return [
        _param(argument, 1.0, TypeError),
        _param(argument, "3", TypeError),
        _param(argument, None, TypeError),
        _param(argument, True, TypeError),
        _param(argument, Fraction(3), TypeError),
        _param(argument, math.nan, TypeError),
        _param(argument, 0, ValueError),
        _param(argument, -1, ValueError),
    ]


class _Shape:
    """An object with exactly the attributes it is given."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)

    def __repr__(self) -> str:
        return f"<shape with {sorted(self.__dict__)}>"


async def _coroutine_function(*_args: Any) -> None:
    """Stands for reap_idle and ping_role."""


def _pool(**overrides: Any) -> _Shape:
    pieces: dict[str, Any] = {
        "registered_roles": ("chat",),
        "accessor": lambda role: role,
        "reap_idle": _coroutine_function,
        "ping_role": _coroutine_function,
    }
    pieces.update(overrides)
    return _Shape(**{name: value for name, value in pieces.items() if value is not None})


def _event(**overrides: Any) -> _Shape:
    pieces: dict[str, Any] = {"wait": lambda timeout=None: False, "set": print, "is_set": bool}
    pieces.update(overrides)
    return _Shape(**{name: value for name, value in pieces.items() if value is not None})


CONSTRUCTOR_CASES = [
    *_seconds("interval_s", allow_zero=False),
    *_seconds("call_timeout_s", allow_zero=False, optional=True),
    *_count("failure_threshold"),
    *_count("success_threshold"),
    _param("name", None, TypeError),
    _param("name", 7, TypeError),
    _param("name", b"ticker", TypeError),
    _param("name", "", ValueError),
    _param("name", "   ", ValueError),
    _param("name", "\t\n", ValueError),
    _param("on_change", 3, TypeError),
    _param("on_change", "hook", TypeError),
    _param("on_change", object(), TypeError, names="object()"),
    _param("stop_event", True, TypeError),
    _param("stop_event", "event", TypeError),
    _param("stop_event", object(), TypeError, names="object()"),
    _param("stop_event", _event(set=None), TypeError, names="missing set"),
    _param("stop_event", _event(is_set=None), TypeError, names="missing is_set"),
    _param("stop_event", _event(wait=1.0), TypeError, names="wait not callable"),
    _param("stop_event", threading.Event, TypeError, names="the Event class"),
    _param("pool", None, TypeError),
    _param("pool", object(), TypeError, names="object()"),
    _param("pool", _pool(registered_roles=None), TypeError, names="missing registered_roles"),
    _param("pool", _pool(accessor=None), TypeError, names="missing accessor"),
    _param("pool", _pool(reap_idle=None), TypeError, names="missing reap_idle"),
    _param("pool", _pool(ping_role=None), TypeError, names="missing ping_role"),
    _param("pool", _pool(accessor="chat"), TypeError, names="accessor not callable"),
    _param("pool", _pool(reap_idle=()), TypeError, names="reap_idle not callable"),
    _param("pool", _pool(ping_role=0), TypeError, names="ping_role not callable"),
    _param("pool", FakePool, TypeError, names="the FakePool class"),
    _param("runtime", None, TypeError),
    _param("runtime", object(), TypeError, names="object()"),
    _param("runtime", _Shape(submit=5), TypeError, names="submit not callable"),
    _param("runtime", _Shape(), TypeError, names="missing submit"),
    _param("runtime", LoopRuntime, TypeError, names="the LoopRuntime class"),
]


def _shows(value: Any, message: str) -> bool:
    """Whether ``message`` shows ``value`` (the repr of a float may be spelled as an int's)."""
    return repr(value) in message or (isinstance(value, type) and value.__name__ in message)


@pytest.mark.parametrize(("argument", "value", "error"), CONSTRUCTOR_CASES)
def test_bad_constructor_argument_is_refused_naming_it(
    argument: str,
    value: Any,
    error: type[Exception],
    fake_pool: FakePool,
    lilbee_runtime: LoopRuntime,
) -> None:
    """HealthTicker(...) refuses a bad argument with the documented error, naming the argument."""
    arguments: dict[str, Any] = {"pool": fake_pool, "runtime": lilbee_runtime, argument: value}
    pool, runtime = arguments.pop("pool"), arguments.pop("runtime")
    with pytest.raises(error, match=rf"^{re.escape(argument)} ") as refused:
        HealthTicker(pool, runtime, **arguments)
    assert _shows(value, str(refused.value)), (
        f"the message does not show the value: {refused.value}"
    )


METHOD_CASES = [
    *[
        pytest.param(method, *case.values, id=f"{method}({case.id})", marks=case.marks)
        for method in ("stop", "join", "wait_for_tick")
        for case in _seconds("timeout", allow_zero=True)
    ],
    pytest.param("wait_for_tick", "number", 0, ValueError, id="wait_for_tick(number=0)"),
    pytest.param("wait_for_tick", "number", -1, ValueError, id="wait_for_tick(number=-1)"),
    *[
        pytest.param(
            "wait_for_tick",
            "number",
            value,
            TypeError,
            id=f"wait_for_tick(number={value!r})",
        )
        for value in ("1", 1.0, None, True)
    ],
]


@pytest.mark.parametrize(("method", "argument", "value", "error"), METHOD_CASES)
def test_bad_method_argument_is_refused_naming_it(
    method: str, argument: str, value: Any, error: type[Exception], make_ticker: MakeTicker
) -> None:
    """stop(), join() and wait_for_tick() refuse a bad argument, naming it, and stay usable."""
    ticker = make_ticker(
        interval_s=0.005, call_timeout_s=10
    ).start()  # make_ticker stops it whatever happens
    call = getattr(ticker, method)
    with pytest.raises(error, match=rf"^{re.escape(argument)} ") as refused:
        call(**{argument: value})
    assert _shows(value, str(refused.value)), (
        f"the message does not show the value: {refused.value}"
    )
    assert ticker.is_running, "a refused call must not have stopped the ticker"
    assert ticker.wait_for_tick(1, timeout=10) is not None
    assert ticker.stop(timeout=5)
