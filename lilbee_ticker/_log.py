"""Where the library's log events go: structlog when the application set it up, else ``logging``.

A library must fit the application's logging, never configure it. So:

* If the application has configured structlog (``structlog.configure()``,
  which ``structlog.testing.capture_logs()`` also does), every event goes
  through its pipeline, as key-value events.
* Otherwise every event becomes a standard-library :class:`logging.LogRecord`
  on the logger named ``lilbee_ticker``: its message is the event name, and
  its key-value fields are kept on the record, as ``record.fields`` and, where
  the name is free, as attributes of their own. The standard levels apply,
  so an application that has configured nothing sees warnings and worse on
  stderr, and nothing at debug or info.

Either way, nothing is built for an event whose level is off.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import structlog

__all__ = ["LOGGER_NAME", "emit"]

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
    """True if an event at ``level`` would be kept, so its fields are worth building.

    Under structlog the application's own filtering decides, later; only the
    standard-library route can be asked cheaply.
    """
    return structlog.is_configured() or _stdlib.isEnabledFor(_LEVELS[level])


def emit(level: str, event: str, **fields: Any) -> None:
    """Log ``event`` at ``level`` with ``fields``, through structlog or ``logging`` (see above).

    ``exc_info`` among the fields is passed on as the exception to log.
    """
    if structlog.is_configured():
        getattr(_structlog, level)(event, **fields)
        return
    number = _LEVELS[level]
    if not _stdlib.isEnabledFor(number):
        return
    exc_info = fields.pop("exc_info", None)
    extra: dict[str, Any] = {key: value for key, value in fields.items() if key not in _RESERVED}
    extra["fields"] = fields
    _stdlib.log(number, event, exc_info=exc_info, extra=extra)
