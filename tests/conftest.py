"""Shared fixtures. The plugin shipped in lilbee_ticker.pytest_plugin provides the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lilbee_ticker import LoopRuntime
from lilbee_ticker.testing import FakePool

pytest_plugins = ("pytester",)

MakePool = Callable[..., FakePool]


@pytest.fixture
def make_pool(lilbee_runtime: LoopRuntime) -> Iterator[MakePool]:
    """Build FakePools bound to the test runtime's loop; fail on wrong-thread use."""
    pools: list[FakePool] = []

    def make(*args: Any, **kwargs: Any) -> FakePool:
        kwargs.setdefault("loop_thread", lilbee_runtime.thread)
        pool = FakePool(*args, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        assert pool.violations == ()
