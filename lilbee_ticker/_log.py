"""Where the library's log events go: structlog when the application set it up, else ``logging``.

A library must fit the application's logging, never configure it. So:

* If the application has configured structlog (``structlog.configure()``
  with anything but structlog's own defaults, as ``structlog.testing.capture_logs()``
  does while it is open), every event goes through its pipeline, as
  key-value events. A configuration left as structlog's built-in defaults,
  as ``capture_logs()`` leaves it when it ends, does not count: it would
  print events to stdout, which no application asked for.
* Otherwise every event becomes a standard-library :class:`logging.LogRecord`
  on the logger named ``lilbee_ticker``. Its message reads on its own, as
  one line: ``role.unhealthy: role='chat' consecutive_failures=3 error=...``.
  The fields are also kept on the record, as ``record.fields`` and, where
  the name is free, as attributes of their own. The standard levels apply,
  so an application that has configured nothing sees warnings and worse on
  stderr, and nothing at debug or info.

Either way, nothing is built for an event whose level is off.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Final

import structlog

from lilbee_ticker._outcome import safe_repr

__all__ = ["LOGGER_NAME", "emit", "uses_structlog"]

LOGGER_NAME: Final = "lilbee_ticker"

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# LogRecord attributes (and what Logger.makeRecord refuses in ``extra``): a
# field with one of these names is kept in ``record.fields`` only.
_RESERVED: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)

_stdlib = logging.getLogger(LOGGER_NAME)
_structlog = structlog.get_logger(LOGGER_NAME)


def enabled(level: str) -> bool:
    """True if an event at ``level`` may be kept, so its fields are worth building.

    Under structlog, a wrapper class made by ``make_filtering_bound_logger``
    (the usual production setup) answers with its ``is_enabled_for``; with
    any other, every event may be kept, as far as anyone can tell
    beforehand. Never raises: a configuration that cannot answer is taken
    as keeping the event.
    """
    number = _LEVELS[level]
    if uses_structlog():
        return _structlog_enabled(number)
    return _stdlib.isEnabledFor(number)


def _builtin_defaults() -> tuple[object, ...] | None:
    """Structlog's own default configuration, as (processors, wrapper, context, factory)."""
    config = getattr(structlog, "_config", None)
    try:
        return (
            list(config._BUILTIN_DEFAULT_PROCESSORS),  # type: ignore[union-attr]
            config._BUILTIN_DEFAULT_WRAPPER_CLASS,  # type: ignore[union-attr]
            config._BUILTIN_DEFAULT_CONTEXT_CLASS,  # type: ignore[union-attr]
            config._BUILTIN_DEFAULT_LOGGER_FACTORY,  # type: ignore[union-attr]
        )
    except AttributeError:  # pragma: no cover - a structlog without them: is_configured() alone
        return None


_DEFAULTS: Final = _builtin_defaults()


def uses_structlog() -> bool:
    """True if the application configured structlog, so events go through its pipeline.

    ``structlog.is_configured()`` alone is not enough: ``capture_logs()``
    leaves it True when it ends, with every setting back at the defaults.
    """
    if not structlog.is_configured():
        return False
    if _DEFAULTS is None:  # pragma: no cover
        return True
    config = structlog.get_config()
    now = (
        list(config["processors"]),
        config["wrapper_class"],
        config["context_class"],
        config["logger_factory"],
    )
    return now != _DEFAULTS


# (the wrapper class and logger factory it was made for, the level check of a
# logger bound from them, or None): made again when the application
# configures structlog otherwise. Replaced whole, so threads racing to make
# it both make a correct one.
_check: tuple[object, object, Callable[[int], object] | None] = (None, None, None)


# Where make_filtering_bound_logger() makes its classes.
_FILTERING_MODULE: Final = structlog.make_filtering_bound_logger(logging.INFO).__module__


def _structlog_enabled(number: int) -> bool:
    global _check
    config = structlog.get_config()
    wrapper_class, factory = config["wrapper_class"], config["logger_factory"]
    made_for_class, made_for_factory, check = _check
    if made_for_class is not wrapper_class or made_for_factory is not factory:
        check = _level_check(wrapper_class)
        _check = (wrapper_class, factory, check)
    if check is None:
        return True
    try:
        return bool(check(number))
    except Exception:
        return True


def _level_check(wrapper_class: object) -> Callable[[int], object] | None:
    """The bound ``is_enabled_for`` of a class ``make_filtering_bound_logger`` made, or None.

    Only those drop an event by its level alone, before any processor runs.
    Any other may keep it: structlog's generic ``BoundLogger`` turns any
    attribute into a logging call, and its stdlib one (which has an
    ``is_enabled_for`` from structlog 26.1) asks the standard-library
    logger, while processors such as ``capture_logs()``'s see every event
    first. A subclass may log otherwise than its base: it is not trusted.
    """
    if not isinstance(wrapper_class, type) or wrapper_class.__module__ != _FILTERING_MODULE:
        return None
    if inspect.getattr_static(wrapper_class, "is_enabled_for", None) is None:
        return None
    try:
        bound = _structlog.bind()
    except Exception:
        return None  # a broken configuration: emit() meets the error, and reports it
    if not isinstance(bound, wrapper_class):
        return None
    check = getattr(bound, "is_enabled_for", None)
    return check if callable(check) else None


def emit(level: str, event: str, **fields: Any) -> None:
    """Log ``event`` at ``level`` with ``fields``, through structlog or ``logging`` (see above).

    ``exc_info`` among the fields is passed on as the exception to log.
    """
    if uses_structlog():
        getattr(_structlog, level)(event, **fields)
        return
    number = _LEVELS[level]
    if not _stdlib.isEnabledFor(number):
        return
    exc_info = fields.pop("exc_info", None)
    extra: dict[str, Any] = {key: value for key, value in fields.items() if key not in _RESERVED}
    extra["fields"] = fields
    # No args: the line is the message as it is, whatever "%" it holds.
    _stdlib.log(number, _line(event, fields), exc_info=exc_info, extra=extra)


# How long one field's value may get in a stdlib message.
_MAX_VALUE_CHARS: Final = 500


def _line(event: str, fields: dict[str, Any]) -> str:
    """``event: key=value ...``: a message that reads on its own, whatever prints it."""
    if not fields:
        return event
    parts = " ".join(f"{key}={safe_repr(value, _MAX_VALUE_CHARS)}" for key, value in fields.items())
    return f"{event}: {parts}"
