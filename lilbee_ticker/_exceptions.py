"""The exceptions lilbee_ticker raises.

The tree::

    TickerError                     base of everything raised on purpose here
    ├── TickerUsageError            (also RuntimeError) a call that cannot work
    │                               in the ticker's current state or thread
    ├── RuntimeUnavailableError     (also RuntimeError) runtime.submit() raised,
    │                               so the runtime is gone
    ├── CallTimeoutError            (also TimeoutError) a pool call outlived
    │                               call_timeout_s, or an earlier call of the
    │                               same kind is still running
    └── LoopUnresponsiveError       (also TimeoutError) the runtime's loop did
                                    not run the tick's callbacks in time

Bad constructor arguments raise plain ``TypeError`` and ``ValueError``:
they are programming mistakes, not conditions to handle.
"""

from __future__ import annotations

__all__ = [
    "CallTimeoutError",
    "LoopUnresponsiveError",
    "RuntimeUnavailableError",
    "TickerError",
    "TickerUsageError",
]


class TickerError(Exception):
    """Base class of every exception lilbee_ticker raises on purpose.

    .. versionadded:: 0.1.0
    """


class TickerUsageError(TickerError, RuntimeError):
    """A ticker was asked to do something that cannot work in its state or thread.

    Examples are starting a ticker twice or after it was stopped, and calling
    :meth:`HealthTicker.tick` from the ticker's own thread or from a thread
    that runs an asyncio event loop, where it would wait for itself.

    Attributes:
        ticker: The name of the ticker that refused the call.

    .. versionadded:: 0.1.0
    """

    def __init__(self, ticker: str, problem: str, fix: str) -> None:
        self.ticker = ticker
        self.problem = problem
        self.fix = fix
        super().__init__(f"ticker {ticker!r}: {problem}; {fix}")


class RuntimeUnavailableError(TickerError, RuntimeError):
    """The runtime refused a coroutine: ``runtime.submit()`` raised.

    The runtime is taken to be shut down, so the ticker's thread ends and
    :meth:`HealthTicker.tick` raises this error. The exception ``submit()``
    raised is chained as ``__cause__``.

    Attributes:
        ticker: The name of the ticker whose submission failed.
        call: The pool call that could not be submitted, e.g. ``"reap_idle()"``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, ticker: str, call: str) -> None:
        self.ticker = ticker
        self.call = call
        super().__init__(
            f"ticker {ticker!r}: runtime.submit() raised while submitting {call}, so the "
            "runtime is taken to be shut down; start the runtime before the ticker and "
            "stop the ticker before shutting the runtime down"
        )


class CallTimeoutError(TickerError, TimeoutError):
    """A pool call did not finish within ``call_timeout_s``, or could not start for that reason.

    It stands in a :class:`TickReport` where the call's own outcome would be.
    The outcome at the deadline is final: whatever the call does afterwards
    (return late, swallow its cancellation, raise) does not change the report.

    A ping that outlives its deadline is cancelled; a ``reap_idle()`` is
    not (it may be closing a worker process), and the ticker only stops
    waiting for it. While such a call is still running, the ticker does not
    make the same call again: the next tick reports a ``CallTimeoutError``
    with :attr:`still_running` set instead.

    Attributes:
        call: The pool call that timed out, e.g. ``"ping_role('chat')"``.
        timeout_s: The bound it outlived, in seconds.
        still_running: True when this tick did not make the call at all,
            because the same call from an earlier tick was still running.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Added :attr:`still_running`; a reap is no longer cancelled.
    """

    def __init__(self, call: str, timeout_s: float, *, still_running: bool = False) -> None:
        self.call = call
        self.timeout_s = timeout_s
        self.still_running = still_running
        if still_running:
            message = (
                f"{call} from an earlier tick is still running, past its {timeout_s:g}s "
                "deadline, so it was not called again"
            )
        else:
            message = f"{call} did not finish within {timeout_s:g}s"
        super().__init__(message)


class LoopUnresponsiveError(TickerError, TimeoutError):
    """The runtime's event loop did not run the tick's callbacks in time.

    The loop is blocked by a synchronous call, or stopped, while
    ``runtime.submit()`` still accepts work. It stands in
    :attr:`TickReport.loop_error` and is charged to no role: calls that the
    loop never got to finish are not failures of their roles.

    Attributes:
        stage: What the tick was waiting for: ``"start"`` (the loop did not
            start the tick), ``"survey"``, ``"reap"`` or ``"pings"`` (the
            loop did not come back from that step by its deadline).
        waited_s: How long the ticker waited, in seconds.
        blocked_in: The ticker's own call whose step the loop was running
            and had not finished, such as ``"ping_role('chat')"``, or
            ``None`` when the loop was not inside one (blocked by the
            application's code, or stopped). Even when named, the call's
            role is not blamed: its worker may be fine.
        blocked_s: For how long the loop had been inside :attr:`blocked_in`.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        stage: str,
        waited_s: float,
        *,
        blocked_inside: tuple[str, float] | None = None,
    ) -> None:
        self.stage = stage
        self.waited_s = waited_s
        self.blocked_in: str | None = None if blocked_inside is None else blocked_inside[0]
        self.blocked_s: float | None = None if blocked_inside is None else blocked_inside[1]
        what = {
            "start": "did not start the tick",
            "survey": "did not come back from the survey of registered_roles and "
            "accessor(role).is_alive by its deadline",
            "reap": "did not come back from reap_idle() by its deadline",
            "pings": "did not come back from the pings by their deadline",
        }.get(stage, f"stalled at {stage}")
        if blocked_inside is None:
            why = "it is blocked by a synchronous call or stopped"
        else:
            why = (
                f"the loop has been blocked for {blocked_inside[1]:.3g}s inside "
                f"{blocked_inside[0]}, a synchronous call in the pool's code"
            )
        super().__init__(f"the runtime's event loop {what} ({waited_s:.3g}s waited): {why}")
