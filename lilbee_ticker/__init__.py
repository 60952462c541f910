"""lilbee_ticker: a thread-based health ticker that keeps a pool of worker processes honest.

A :class:`HealthTicker` runs in a daemon thread. On a fixed cadence it
submits the pool's ``reap_idle()`` and ``ping_role(role)`` coroutines to the
pool's event loop (the *runtime*), waits a bounded time for them, and records
what happened in a :class:`TickReport`::

    from lilbee_ticker import HealthTicker

    with HealthTicker(pool, runtime, interval_s=30.0) as ticker:
        serve_forever()
"""

import importlib
from typing import TYPE_CHECKING, Any

from lilbee_ticker._version import __version__

if TYPE_CHECKING:
    from lilbee_ticker._compat import start_health_ticker, stop_health_ticker
    from lilbee_ticker._events import OnChange
    from lilbee_ticker._exceptions import (
        CallTimeoutError,
        LoopUnresponsiveError,
        RuntimeUnavailableError,
        TickerError,
        TickerUsageError,
    )
    from lilbee_ticker._health import HealthStatus, RoleHealth
    from lilbee_ticker._probe import Probe
    from lilbee_ticker._protocols import Pool, RestartablePool, RoleAccessor, Runtime
    from lilbee_ticker._report import TickReport
    from lilbee_ticker._runtime import LoopRuntime, RuntimeNotRunningError
    from lilbee_ticker._stats import TickerStats
    from lilbee_ticker._supervise import RestartPolicy
    from lilbee_ticker._ticker import HealthTicker

# Where each public name lives. They are imported on first use (PEP 562), so
# that importing the package costs next to nothing: `python -m lilbee_ticker`
# can then catch a Ctrl-C before the heavy imports (asyncio, structlog) run.
# The names, their homes and __all__ are the same as explicit imports would
# give; tests/test_docstrings.py resolves every one of them.
_HOMES = {
    "CallTimeoutError": "_exceptions",
    "HealthStatus": "_health",
    "HealthTicker": "_ticker",
    "LoopRuntime": "_runtime",
    "LoopUnresponsiveError": "_exceptions",
    "OnChange": "_events",
    "Pool": "_protocols",
    "Probe": "_probe",
    "RestartPolicy": "_supervise",
    "RestartablePool": "_protocols",
    "RoleAccessor": "_protocols",
    "RoleHealth": "_health",
    "Runtime": "_protocols",
    "RuntimeNotRunningError": "_runtime",
    "RuntimeUnavailableError": "_exceptions",
    "TickReport": "_report",
    "TickerError": "_exceptions",
    "TickerStats": "_stats",
    "TickerUsageError": "_exceptions",
    "start_health_ticker": "_compat",
    "stop_health_ticker": "_compat",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lilbee_ticker' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lilbee_ticker.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CallTimeoutError",
    "HealthStatus",
    "HealthTicker",
    "LoopRuntime",
    "LoopUnresponsiveError",
    "OnChange",
    "Pool",
    "Probe",
    "RestartPolicy",
    "RestartablePool",
    "RoleAccessor",
    "RoleHealth",
    "Runtime",
    "RuntimeNotRunningError",
    "RuntimeUnavailableError",
    "TickReport",
    "TickerError",
    "TickerStats",
    "TickerUsageError",
    "__version__",
    "start_health_ticker",
    "stop_health_ticker",
]
