"""lilbee_ticker: a thread-based health ticker that keeps a pool of worker processes honest.

A :class:`HealthTicker` runs in a daemon thread. On a fixed cadence it
submits the pool's ``reap_idle()`` and ``ping_role(role)`` coroutines to the
pool's event loop (the *runtime*), waits a bounded time for them, and records
what happened in a :class:`TickReport`::

    from lilbee_ticker import HealthTicker

    with HealthTicker(pool, runtime, interval_s=30.0) as ticker:
        serve_forever()
"""

from lilbee_ticker._compat import start_health_ticker, stop_health_ticker
from lilbee_ticker._exceptions import (
    CallTimeoutError,
    LoopUnresponsiveError,
    RuntimeUnavailableError,
    TickerError,
    TickerUsageError,
)
from lilbee_ticker._health import HealthStatus, RoleHealth
from lilbee_ticker._probe import Probe
from lilbee_ticker._protocols import Pool, RoleAccessor, Runtime
from lilbee_ticker._report import TickReport
from lilbee_ticker._runtime import LoopRuntime, RuntimeNotRunningError
from lilbee_ticker._stats import TickerStats
from lilbee_ticker._ticker import HealthTicker, OnChange
from lilbee_ticker._version import __version__

__all__ = [
    "CallTimeoutError",
    "HealthStatus",
    "HealthTicker",
    "LoopRuntime",
    "LoopUnresponsiveError",
    "OnChange",
    "Pool",
    "Probe",
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
