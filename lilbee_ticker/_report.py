"""What one tick did, as an immutable record."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

__all__ = ["TickReport"]

NO_FAILURES: Mapping[str, BaseException] = types.MappingProxyType({})
NO_LATENCIES: Mapping[str, float] = types.MappingProxyType({})


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TickReport:
    """What one tick of a :class:`HealthTicker` did.

    Attributes:
        number: The tick's 1-based sequence number on its ticker, counting
            background ticks and :meth:`HealthTicker.tick` calls alike.
        started_at: Wall-clock start of the tick, in seconds since the epoch.
        duration_s: How long the tick took, in seconds of real time.
        live: The roles that were alive when the tick started.
        reaped: The roles ``reap_idle()`` reaped.
        pinged: The roles whose ping succeeded.
        gone: The roles that were alive at the survey and not reaped, but no
            longer alive when their ping came (they crashed in between), so
            they were not pinged: pinging would have spawned them again.
        failed: Role to exception, for every role whose check failed: its
            ping raised (a ``CancelledError`` the pool raised itself
            included), or its accessor or ``is_alive`` raised during the
            survey. A ping that outlived ``call_timeout_s`` maps to a
            :class:`CallTimeoutError` (a :class:`TimeoutError`), as does one
            not made because the role's previous ping is still running; one
            cancelled because the ticker was stopped or the runtime shut down
            maps to :class:`concurrent.futures.CancelledError`.
        latencies: Role to round-trip time in seconds, for every ping that
            succeeded, measured on the runtime's loop.
        reap_error: What ``reap_idle()`` raised, or a :class:`CallTimeoutError`
            if it outlived ``call_timeout_s`` (it is not cancelled: it runs on
            under the pool's own bounds) or an earlier reap is still running,
            or ``None``.
        snapshot_error: What reading the pool's roles raised (from
            ``registered_roles``), or ``None``. Nothing is reaped or pinged then.
        loop_error: A :class:`LoopUnresponsiveError` when the runtime's loop
            stopped running the tick's callbacks (blocked by a synchronous
            call, or stopped) while the runtime still accepted work, or
            ``None``. It is charged to no role: calls the loop never
            finished are not in :attr:`failed`.
        loop_lag_s: Seconds from submitting the tick to its first step on the
            loop: how long the loop kept the ticker waiting. ``None`` if the
            loop never started the tick.
        loop_busy_s: Seconds the tick held the loop: the time its own steps
            ran there (its coroutine's, its reap's and its pings', with the
            pool's synchronous work inside them), taken from everything else
            the loop serves. Waiting for a ping does not count. ``None`` if the
            loop never started the tick.
        restarted: The roles whose worker the ticker began to restart through
            the pool's ``restart_role(role)``, instead of pinging them (see
            :class:`RestartPolicy`).
        restart_errors: Role to what its restart raised, or a
            :class:`CallTimeoutError` if it outlived ``call_timeout_s`` (it is
            never cancelled: it runs on under the pool's own bounds).
        interrupted: The ticker was stopped, or the runtime shut down, during
            the tick, so the steps not yet started were skipped and the pings
            in flight were cancelled (a reap in flight is left to finish).
            Such a tick says nothing about the pool's health.

    Thread safety: immutable, so safe to share between threads.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added :attr:`loop_error`, :attr:`loop_lag_s`, :attr:`loop_busy_s`,
       :attr:`restarted` and :attr:`restart_errors`.
    """

    number: int
    started_at: float
    duration_s: float
    live: tuple[str, ...] = ()
    reaped: tuple[str, ...] = ()
    pinged: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    # A default_factory because dataclasses refuses unhashable defaults; the
    # shared read-only empty mappings cost nothing per report.
    failed: Mapping[str, BaseException] = dataclasses.field(default_factory=lambda: NO_FAILURES)
    latencies: Mapping[str, float] = dataclasses.field(default_factory=lambda: NO_LATENCIES)
    reap_error: BaseException | None = None
    snapshot_error: BaseException | None = None
    loop_error: BaseException | None = None
    loop_lag_s: float | None = None
    loop_busy_s: float | None = None
    interrupted: bool = False
    restarted: tuple[str, ...] = ()
    restart_errors: Mapping[str, BaseException] = dataclasses.field(
        default_factory=lambda: NO_FAILURES
    )

    @property
    def skipped(self) -> bool:
        """True when the tick found no role alive, so it neither reaped nor pinged."""
        return (
            not self.live
            and not self.failed
            and self.snapshot_error is None
            and self.loop_error is None
            and not self.interrupted
        )

    @property
    def ok(self) -> bool:
        """True when every step the tick took succeeded and nothing was cut short."""
        return (
            not self.failed
            and not self.restart_errors
            and self.reap_error is None
            and self.snapshot_error is None
            and self.loop_error is None
            and not self.interrupted
        )
