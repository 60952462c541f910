"""What a call can end with, and how a pool's exception becomes text, safely.

Pure values and functions, shared by the loop side (``_calls``), the verdict,
health, counters and logging:

* :data:`PingOutcome` and :class:`NotAlive`: what a ping ended with.
* :func:`is_cancellation`: the one check for "is this a cancellation", of
  either kind (asyncio's and ``concurrent.futures``' are different classes).
* :func:`describe` and :func:`safe_repr`: a pool's exception or value as
  bounded text that never raises. A pool may raise an exception whose
  ``__str__`` raises, or that carries an object whose ``__repr__`` does, or
  whose message is a megabyte long; none of that may blind a tick.
"""

from __future__ import annotations

import concurrent.futures
import enum
from asyncio import CancelledError as _AsyncioCancelledError

__all__ = ["NotAlive", "PingOutcome", "as_alive", "describe", "is_cancellation", "safe_repr"]

_CANCELLATIONS = (_AsyncioCancelledError, concurrent.futures.CancelledError)

# How long a text about a pool's object may get: enough for a message, not a dump.
MAX_TEXT = 200


class NotAlive(enum.Enum):
    """The outcome of a ping that was skipped because its role was no longer alive."""

    NOT_ALIVE = "not alive"


PingOutcome = float | BaseException | NotAlive | None
"""A round trip in seconds, the exception the ping raised, NOT_ALIVE, or None (no outcome yet)."""


def is_cancellation(error: object) -> bool:
    """True if ``error`` is a cancellation, asyncio's or ``concurrent.futures``'."""
    return isinstance(error, _CANCELLATIONS)


def describe(error: BaseException, limit: int = MAX_TEXT) -> str:
    """Return ``"ExceptionType: message"`` in at most ``limit`` characters; never raise."""
    name = _type_name(error)
    try:
        message = str(error)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # even a CancelledError or SystemExit from __str__
        return f"<{_type_name(exc)} while formatting {name}>"
    return _bounded(f"{name}: {message}" if message else name, limit)


def safe_repr(value: object, limit: int = MAX_TEXT) -> str:
    """Return ``repr(value)`` in at most ``limit`` characters; never raise."""
    try:
        text = repr(value)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # even a CancelledError or SystemExit from __repr__
        return f"<{_type_name(exc)} while formatting {_type_name(value)}>"
    return _bounded(text, limit)


def as_alive(value: object, role: str) -> bool:
    """``accessor(role).is_alive`` as a bool, refusing a method, which is always truthy.

    ``def is_alive(self)`` is the shape of ``multiprocessing.Process.is_alive``;
    read as a value it would make a dead worker look alive.
    """
    if callable(value):
        raise TypeError(
            f"accessor({role!r}).is_alive must be a bool, but it is a method "
            f"({safe_repr(value)}): make it a property (decorate it with @property), "
            "as lilbee_ticker.RoleAccessor says"
        )
    return bool(value)


def _type_name(value: object) -> str:
    name = getattr(type(value), "__name__", None)
    return name if isinstance(name, str) else "object"


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
