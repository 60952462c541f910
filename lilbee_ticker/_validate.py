"""Argument checks that turn bad input into an error naming the argument and the fix."""

from __future__ import annotations

import inspect
import math
import numbers
import threading
from collections.abc import Iterable
from typing import cast

__all__ = ["check_attributes", "check_count", "check_name", "check_seconds"]


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float number of seconds, or raise naming ``name``.

    Raises:
        TypeError: ``value`` is not a real number (``bool`` counts as not one).
        ValueError: ``value`` is NaN, infinite, out of range, or larger than
            :data:`threading.TIMEOUT_MAX`.
    """
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number of seconds {bound}, "
            f"got {value!r} of type {type(value).__name__}"
        )
    try:
        seconds = float(value)
    except OverflowError:  # an int (or Fraction) too large for a float
        # Real numbers compare with 0 at runtime; typeshed's numbers.Real does not say so.
        if cast(float, value) > 0:
            raise ValueError(
                f"{name} must be at most threading.TIMEOUT_MAX "
                f"({threading.TIMEOUT_MAX:g}s), got {value!r}"
            ) from None
        raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    if seconds < 0.0 or (seconds == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}")
    if seconds > threading.TIMEOUT_MAX:
        raise ValueError(
            f"{name} must be at most threading.TIMEOUT_MAX ({threading.TIMEOUT_MAX:g}s), "
            f"got {value!r}"
        )
    return seconds


def check_count(name: str, value: object) -> int:
    """Return ``value`` if it is an integer >= 1, or raise naming ``name``.

    Raises:
        TypeError: ``value`` is not an ``int`` (``bool`` counts as not one).
        ValueError: ``value`` is less than 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_name(value: object) -> str:
    """Return ``value`` if it is a non-empty string, or raise naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, got {value!r} of type {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"name must be a non-empty string, got {value!r}")
    return value


def check_attributes(
    argument: str,
    value: object,
    protocol: str,
    required: Iterable[str],
    *,
    callables: Iterable[str] = (),
) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance with all of ``required``.

    The message names ``argument``, the ``protocol`` it must fit, and every
    attribute that is missing or not callable.

    Attributes are looked up with :func:`inspect.getattr_static`, so a property
    is not run. That matters for a pool, whose state may only be read on its
    own event loop thread.
    """
    if isinstance(value, type):
        raise TypeError(
            f"{argument} must be an instance, got the class {value.__qualname__}: "
            f"pass {value.__qualname__}(...) instead"
        )
    missing = [attr for attr in required if not _has_static(value, attr)]
    not_callable = [
        attr
        for attr in callables
        if attr not in missing and not _is_callable(inspect.getattr_static(value, attr))
    ]
    problems = [f"missing {attr!r}" for attr in missing]
    problems += [f"{attr!r} is not callable" for attr in not_callable]
    if problems:
        raise TypeError(
            f"{argument} does not fit the {protocol} protocol "
            f"({', '.join(problems)}): got {value!r} of type {type(value).__name__}"
        )


def _has_static(value: object, attr: str) -> bool:
    try:
        inspect.getattr_static(value, attr)
    except AttributeError:
        return False
    return True


def _is_callable(attr: object) -> bool:
    # getattr_static returns a classmethod or staticmethod object as it is
    # stored in the class, not the bound callable it would produce.
    return callable(attr) or isinstance(attr, (classmethod, staticmethod))
