"""The exceptions lilbee_ticker raises.

The tree::

    TickerError                     base of everything raised on purpose here
    ├── TickerUsageError            (also RuntimeError) a call that cannot work
    │                               in the ticker's current state or thread
    ├── RuntimeUnavailableError     (also RuntimeError) runtime.submit() raised,
    │                               so the runtime is gone
    └── CallTimeoutError            (also TimeoutError) a pool call outlived
                                    call_timeout_s and was cancelled

Bad constructor arguments raise plain ``TypeError`` and ``ValueError``:
they are programming mistakes, not conditions to handle.
"""

from __future__ import annotations

__all__ = [
    "CallTimeoutError",
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
    """A pool call did not finish within ``call_timeout_s`` and was cancelled.

    It stands in a :class:`TickReport` where the call's own outcome would be.

    Attributes:
        call: The pool call that timed out, e.g. ``"ping_role('chat')"``.
        timeout_s: The bound it outlived, in seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(self, call: str, timeout_s: float) -> None:
        self.call = call
        self.timeout_s = timeout_s
        super().__init__(f"{call} did not finish within {timeout_s:g}s and was cancelled")
