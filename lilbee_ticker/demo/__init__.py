"""A runnable demo of lilbee_ticker against real worker processes.

:class:`ProcessPool` is a reference pool whose workers are real OS
processes, one per role, that answer pings and do fake work over a pipe. It
fits :class:`lilbee_ticker.Pool`, so a :class:`lilbee_ticker.HealthTicker`
can watch it, and it never leaves an orphan process. ``python -m
lilbee_ticker demo`` plays a scripted scenario with it: a worker reaped for
idleness, one killed with ``SIGKILL``, one frozen with ``SIGSTOP``.

.. versionadded:: 0.1.0
"""

from lilbee_ticker.demo._errors import (
    PoolClosedError,
    WorkerDiedError,
    WorkerError,
    WorkerUnresponsiveError,
)
from lilbee_ticker.demo._pool import ProcessPool, WorkerAccessor

__all__ = [
    "PoolClosedError",
    "ProcessPool",
    "WorkerAccessor",
    "WorkerDiedError",
    "WorkerError",
    "WorkerUnresponsiveError",
]
