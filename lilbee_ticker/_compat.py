"""Drop-in replacements for the functions of the asyncio ticker this library replaces."""

from __future__ import annotations

from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._ticker import HealthTicker

__all__ = ["start_health_ticker", "stop_health_ticker"]

# lilbee's reap of a hung worker takes about 12 s (5 s for the ack, 5 s for
# the join, 2 s after terminate()); stop_health_ticker waits a little longer
# than that for a reap in flight, and returns at once when there is none.
_COMPAT_STOP_TIMEOUT_S = 15.0


def start_health_ticker(
    pool: Pool,
    runtime: Runtime,
    bg_loop: object | None = None,
    *,
    interval_s: float = 30.0,
) -> HealthTicker:
    """Create a :class:`HealthTicker` for ``pool`` and start it.

    Same name, arguments and defaults as the function of the asyncio ticker
    it replaces, so a call site such as lilbee's
    ``start_health_ticker(worker_pool, pool_runtime, get_loop())`` needs no
    change. New code should use ``with HealthTicker(pool, runtime) as ticker:``.

    Args:
        pool: The worker pool.
        runtime: Runs the pool's coroutines on its loop.
        bg_loop: Ignored. The asyncio ticker ran as a task on this loop; this
            ticker runs in a thread of its own and reaches the pool only
            through ``runtime``, so it needs no loop. Accepted so that old
            call sites keep working.
        interval_s: Seconds between ticks.

    Returns:
        The running ticker; pass it to :func:`stop_health_ticker`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Accepts, and ignores, the asyncio ticker's third argument ``bg_loop``.
    """
    del bg_loop  # see the docstring: the thread needs no loop of its own
    return HealthTicker(pool, runtime, interval_s=interval_s).start()


def stop_health_ticker(
    ticker: HealthTicker | None, *, timeout: float = _COMPAT_STOP_TIMEOUT_S
) -> None:
    """Stop ``ticker`` and wait up to ``timeout`` seconds for it to end.

    Idempotent, and does nothing for ``None``, so shutdown code can call it
    whether or not the ticker was ever started. It waits, as
    :meth:`HealthTicker.stop` does, for a reap in flight to finish, so that
    the pool can be drained right after; the default of 15 s covers lilbee's
    slowest reap (about 12 s for a hung worker) and costs nothing when no
    reap is running.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       The default ``timeout`` is 15 s (was 5 s), to cover a reap in flight.
    """
    if ticker is not None:
        ticker.stop(timeout)
