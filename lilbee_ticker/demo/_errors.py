"""The exceptions a :class:`ProcessPool` raises.

The tree, under the library's base exception::

    TickerError
    ├── PoolClosedError             (also RuntimeError) the pool was used after aclose()
    └── WorkerError                 a role's worker failed; the pool dropped it
        ├── WorkerDiedError         (also ConnectionError) it exited, or its
        │                           pipe closed, before it answered
        └── WorkerUnresponsiveError (also TimeoutError) it left a request
                                    unanswered too long, or did not start in
                                    time; the pool killed it

After a :class:`WorkerError` the role is not alive, and the next call or ping
spawns a new worker.
"""

from __future__ import annotations

from lilbee_ticker import TickerError

__all__ = ["PoolClosedError", "WorkerDiedError", "WorkerError", "WorkerUnresponsiveError"]


class WorkerError(TickerError):
    """A role's worker process failed, and the pool dropped it.

    Attributes:
        role: The worker's role.
        pid: The worker's process id, or ``None`` if it never started.

    .. versionadded:: 0.1.0
    """

    def __init__(self, role: str, pid: int | None, problem: str) -> None:
        self.role = role
        self.pid = pid
        self.problem = problem
        super().__init__(
            f"worker for role {role!r} (pid {pid}) {problem}; "
            "the pool dropped it, and the next call or ping spawns a new one"
        )


class WorkerDiedError(WorkerError, ConnectionError):
    """A worker exited, or its pipe closed, while a request to it was outstanding.

    .. versionadded:: 0.1.0
    """


class WorkerUnresponsiveError(WorkerError, TimeoutError):
    """A worker did not answer in time, so the pool killed it with ``SIGKILL``.

    Raised when a ping or a call stays unanswered longer than the pool's
    ``unresponsive_after_s`` (plus the call's own work time), or a new worker
    does not report ready within ``spawn_timeout_s``.

    Attributes:
        waited_s: How long the request had been outstanding, in seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(self, role: str, pid: int | None, problem: str, waited_s: float) -> None:
        self.waited_s = waited_s
        super().__init__(role, pid, problem)


class PoolClosedError(TickerError, RuntimeError):
    """A :class:`ProcessPool` was asked to call or ping a worker after ``aclose()``.

    Attributes:
        pool: The pool's name.

    .. versionadded:: 0.1.0
    """

    def __init__(self, pool: str, call: str) -> None:
        self.pool = pool
        self.call = call
        super().__init__(
            f"ProcessPool {pool!r} is closed: {call} cannot run; create a new pool to use "
            "workers again"
        )
