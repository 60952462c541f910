"""The duck-typed contract between a ticker, its pool and its runtime.

These are :class:`typing.Protocol` classes: a pool or runtime never inherits
from them, it only has the same shape. Annotate your own classes with them
to have a type checker confirm they fit.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["Pool", "RestartablePool", "RoleAccessor", "Runtime"]

_T = TypeVar("_T")


class RoleAccessor(Protocol):
    """A handle on one role of a pool, as returned by ``pool.accessor(role)``.

    Thread safety: like the pool, only used on the runtime's loop thread.

    .. versionadded:: 0.1.0
    """

    @property
    def is_alive(self) -> bool:
        """True if and only if the role's worker is spawned and alive."""
        ...


class Pool(Protocol):
    """A pool of long-lived workers, one per role.

    A pool may also have ``async restart_role(role)``, for a ticker that
    restarts unhealthy roles: see :class:`RestartablePool`.

    Thread safety: none is needed. Every attribute and method here is used
    only on the runtime's event loop thread, never from the ticker's thread.

    .. versionadded:: 0.1.0
    """

    @property
    def registered_roles(self) -> Sequence[str]:
        """Every role the pool knows, alive or not."""
        ...

    def accessor(self, role: str) -> RoleAccessor:
        """Return a handle on ``role``."""
        ...

    async def reap_idle(self) -> Sequence[str]:
        """Close the workers idle longer than the pool's own limit; return their roles.

        The ticker never cancels a reap: closing a worker is cleanup that is
        not safe to cut short. So it must end by the pool's own bounds. The
        ticker stops waiting for it after ``call_timeout_s``, and starts no
        other reap until it ends.
        """
        ...

    async def ping_role(self, role: str) -> None:
        """Round-trip a ping to ``role``'s worker; raise if it crashed or timed out.

        On a role that is not alive this spawns the worker, like any real call.

        Optionally, it may also take a ``timeout`` keyword, as
        ``ping_role(role, *, timeout=None)`` (lilbee's does). The ticker reads
        the signature once, at construction, and then passes its own bound,
        ``call_timeout_s`` less a tenth (at most 1 s), so that the pool ends a
        slow ping itself, cleanly, before the ticker would cancel it.
        """
        ...


class RestartablePool(Pool, Protocol):
    """A :class:`Pool` that can also replace a role's worker: what ``restart=`` needs.

    Thread safety: as :class:`Pool`, used only on the runtime's loop thread.

    .. versionadded:: 0.2.0
    """

    async def restart_role(self, role: str) -> None:
        """Replace ``role``'s worker with a new one, ending the current process whatever its state.

        The ticker calls it, with a :class:`RestartPolicy`, for a role that
        is ``UNHEALTHY`` while alive: its worker answers no pings, perhaps
        frozen (``SIGSTOP``ped: it ignores ``SIGTERM``, so end it with
        ``SIGKILL``), deadlocked, or stuck in native code. Like a reap it is
        cleanup: the ticker never cancels it, waits for it up to
        ``call_timeout_s``, then reports a ``CallTimeoutError`` and lets it
        run on, so it must end by the pool's own bounds. Drop the worker
        through the pool's own crash path, so that the pool's own crash
        budget counts the restart too. Raise if the restart failed.
        """
        ...


class Runtime(Protocol):
    """Something that runs coroutines on the pool's event loop from other threads.

    Thread safety: :meth:`submit` must be safe to call from any thread, as
    :func:`asyncio.run_coroutine_threadsafe` is.

    .. versionadded:: 0.1.0
    """

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the loop and return a future for its result.

        Raises:
            Exception: Any exception, once the runtime is shut down.
        """
        ...
