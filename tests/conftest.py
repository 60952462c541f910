"""Shared fixtures. The plugin shipped in lilbee_ticker.pytest_plugin provides the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lilbee_ticker import LoopRuntime
from lilbee_ticker.testing import FakePool

from .probing import ProbingPool

pytest_plugins = ("pytester",)

MakePool = Callable[..., ProbingPool]


@pytest.fixture
def fake_pool(lilbee_runtime: LoopRuntime) -> Iterator[FakePool]:
    """The plugin's fake_pool, as a ProbingPool: this suite asks it what ran at once."""
    pool = ProbingPool(loop_thread=lilbee_runtime.thread)
    yield pool
    assert pool.violations == ()


@pytest.fixture
def make_pool(lilbee_runtime: LoopRuntime) -> Iterator[MakePool]:
    """Build FakePools bound to the test runtime's loop; fail on wrong-thread use."""
    pools: list[ProbingPool] = []

    def make(*args: Any, **kwargs: Any) -> ProbingPool:
        kwargs.setdefault("loop_thread", lilbee_runtime.thread)
        pool = ProbingPool(*args, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        assert pool.violations == ()
