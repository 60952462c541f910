"""`ProbingPool`: a FakePool that also counts what this suite's own tests ask about.

How many reaps, or pings of one role, ran at once; how many reaps run now;
which ``timeout`` each bounded ping was passed. A user testing an
application needs none of this, so it lives here, not in
``lilbee_ticker.testing``.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from lilbee_ticker.testing import FakePool


class ProbingPool(FakePool):
    """A FakePool that counts calls in flight and keeps the timeouts its pings were passed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # _probe_lock guards every counter below; never held across an await.
        self._probe_lock = threading.Lock()
        self._reaps = 0
        self._max_reaps = 0
        self._role_pings: collections.Counter[str] = collections.Counter()
        self._max_role_pings = 0
        self._timeouts: list[float | None] = []
        super().__init__(*args, **kwargs)

    async def reap_idle(self) -> tuple[str, ...]:
        with self._probe_lock:
            self._reaps += 1
            self._max_reaps = max(self._max_reaps, self._reaps)
        try:
            return await super().reap_idle()
        finally:
            with self._probe_lock:
                self._reaps -= 1

    async def _ping(self, role: str, bound: float | None) -> None:
        with self._probe_lock:
            self._role_pings[role] += 1
            self._max_role_pings = max(self._max_role_pings, self._role_pings[role])
        try:
            await super()._ping(role, bound)
        finally:
            with self._probe_lock:
                self._role_pings[role] -= 1

    async def _ping_role_bounded(self, role: str, *, timeout: float | None = None) -> None:
        with self._probe_lock:
            self._timeouts.append(timeout)
        await super()._ping_role_bounded(role, timeout=timeout)

    @property
    def max_concurrent_pings_per_role(self) -> int:
        """The most pings of one role that were ever running at the same time."""
        with self._probe_lock:
            return self._max_role_pings

    @property
    def max_concurrent_reaps(self) -> int:
        """The most ``reap_idle()`` calls that were ever running at the same time."""
        with self._probe_lock:
            return self._max_reaps

    @property
    def reaps_in_flight(self) -> int:
        """How many ``reap_idle()`` calls are running now."""
        with self._probe_lock:
            return self._reaps

    @property
    def ping_timeouts(self) -> tuple[float | None, ...]:
        """The ``timeout`` each bounded ping was passed (see ``ping_timeout_s``)."""
        with self._probe_lock:
            return tuple(self._timeouts)
