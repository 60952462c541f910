"""Drop-in replacements for the functions of the asyncio ticker this library replaces."""

from __future__ import annotations

from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._ticker import HealthTicker

__all__ = ["start_health_ticker", "stop_health_ticker"]


def start_health_ticker(pool: Pool, runtime: Runtime, *, interval_s: float = 30.0) -> HealthTicker:
    """Create a :class:`HealthTicker` for ``pool`` and start it.

    Same name and defaults as the function of the asyncio ticker it
    replaces, so a call site needs no change. New code should use
    ``with HealthTicker(pool, runtime) as ticker:``.

    Returns:
        The running ticker; pass it to :func:`stop_health_ticker`.

    .. versionadded:: 0.1.0
    """
    return HealthTicker(pool, runtime, interval_s=interval_s).start()


def stop_health_ticker(ticker: HealthTicker | None, *, timeout: float = 5.0) -> None:
    """Stop ``ticker`` and wait up to ``timeout`` seconds for its thread to end.

    Idempotent, and does nothing for ``None``, so shutdown code can call it
    whether or not the ticker was ever started.

    .. versionadded:: 0.1.0
    """
    if ticker is not None:
        ticker.stop(timeout)
