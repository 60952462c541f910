"""A runnable demo of lilbee_ticker against real worker processes.

:class:`ProcessPool` is a reference pool whose workers are real OS
processes, one per role, that answer pings and do fake work over a pipe. It
fits :class:`lilbee_ticker.RestartablePool`, so a
:class:`lilbee_ticker.HealthTicker` can watch it and restart its workers,
and it never leaves an orphan process. ``python -m lilbee_ticker demo``
plays a scripted scenario with it: a worker reaped for idleness, one killed
with ``SIGKILL``, one frozen with ``SIGSTOP`` and restarted by the ticker.

.. versionadded:: 0.1.0
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lilbee_ticker.demo._errors import (
        PoolClosedError,
        WorkerDiedError,
        WorkerError,
        WorkerUnresponsiveError,
    )
    from lilbee_ticker.demo._pool import ProcessPool, WorkerAccessor

# Where each public name lives. They are imported on first use (PEP 562),
# because every worker process imports this package: a worker runs
# lilbee_ticker.demo._worker, and importing a submodule runs its package's
# __init__ first. Eager imports here would make each worker import the pool,
# asyncio and structlog, which it never uses, and would more than double the
# time a worker takes to start, and so the time a restart takes.
_HOMES = {
    "PoolClosedError": "_errors",
    "ProcessPool": "_pool",
    "WorkerAccessor": "_pool",
    "WorkerDiedError": "_errors",
    "WorkerError": "_errors",
    "WorkerUnresponsiveError": "_errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lilbee_ticker.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lilbee_ticker.demo.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "PoolClosedError",
    "ProcessPool",
    "WorkerAccessor",
    "WorkerDiedError",
    "WorkerError",
    "WorkerUnresponsiveError",
]
