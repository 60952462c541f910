"""Shared fixtures and guards. The plugin shipped in lilbee_ticker.pytest_plugin provides the rest.

Every test runs under one guard, torn down after the test's own fixtures: the
test must leave the process as it found it. It fails a test that leaves a
thread of the library's running (a ticker's, a runtime's or a stop-event
watcher's), or logging
configured: structlog configured when it was not, or the root or
``lilbee_ticker`` logger's handlers, level or propagation changed. Both leak
into later tests: a ticker that outlives its test logs among the next tests'
output, and a structlog left configured sends every later event down a path no
user who configured nothing would see.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from lilbee_ticker import LoopRuntime
from lilbee_ticker.testing import FakePool

from .probing import ProbingPool
from .reliability.support import real_now

pytest_plugins = ("pytester",)

MakePool = Callable[..., ProbingPool]


@pytest.fixture
def fake_pool(lilbee_runtime: LoopRuntime) -> Iterator[FakePool]:
    """The plugin's fake_pool, as a ProbingPool: this suite asks it what ran at once."""
    pool = ProbingPool(loop_thread=lilbee_runtime.thread)
    yield pool
    assert pool.violations == ()


# For a pytester run in this interpreter: no cache folder, and no Hypothesis
# plugin, whose end-of-session summary imports all of Hypothesis afresh in
# each run (pytester forgets the modules a run imported), about a second.
INNER_PYTEST_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

# How long teardown waits for a library thread still ending (a ticker finishing
# the tick its stop interrupted) before calling it leaked. Only a leak pays it.
THREAD_GRACE_S = 5.0

# The thread that wakes the tickers of an application's stop event (see
# lilbee_ticker/_watch.py). It may end when its last ticker is collected, so
# the guard collects garbage before waiting for one.
_WATCHER_THREAD = "lilbee-ticker-stop-watch"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep what collection made out of the garbage collector's sight for the rest of the run.

    The modules, test items and plugins live until the end anyway. Frozen, they
    are not scanned by every full collection a test makes (the reliability
    suite's guard makes one after each test, and each took about 50 ms);
    whatever the tests create is still collected as before.
    """
    gc.collect()
    gc.freeze()


def _library_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The threads alive now, and not in ``before``, that the library started.

    A thread is the library's if its target is a function of ``lilbee_ticker``:
    a ticker's, a runtime's, or a stop-event watcher's (tickers have names of
    their own choosing, so the name cannot tell). ``_target`` is threading.Thread's own attribute,
    kept until ``run()`` returns, so it is there for every thread still alive.
    """
    found = []
    for thread in threading.enumerate():
        if thread in before:
            continue
        module = getattr(getattr(thread, "_target", None), "__module__", None) or ""
        if module.split(".")[0] == "lilbee_ticker":
            found.append(thread)
    return found


def _logger_state(logger: logging.Logger) -> tuple[Any, ...]:
    return (tuple(logger.handlers), logger.level, logger.propagate, logger.disabled)


def _structlog_state() -> dict[str, Any]:
    config = structlog.get_config()
    # capture_logs() refills the processors list in place: compare its contents.
    config["processors"] = list(config["processors"])
    return config


@pytest.fixture(autouse=True)
def _test_leaves_the_process_as_it_found_it() -> Iterator[None]:
    """Fail the test if it left a library thread running or logging configured."""
    threads = set(threading.enumerate())
    loggers = {name: _logger_state(logging.getLogger(name)) for name in ("", "lilbee_ticker")}
    was_configured = structlog.is_configured()
    structlog_before = _structlog_state()
    yield
    problems = []

    left = _library_threads(threads)
    if any(thread.name == _WATCHER_THREAD for thread in left):
        gc.collect()
    deadline = real_now() + THREAD_GRACE_S
    for thread in left:
        thread.join(max(0.0, deadline - real_now()))
    leaked = sorted(thread.name for thread in left if thread.is_alive())
    if leaked:
        problems.append(f"library threads outlived the test by {THREAD_GRACE_S:g}s: {leaked}")

    for name, state in loggers.items():
        logger = logging.getLogger(name)
        if _logger_state(logger) != state:
            problems.append(
                f"the {name or 'root'} logger was left changed: (handlers, level, propagate, "
                f"disabled) {state} became {_logger_state(logger)}"
            )
            logger.handlers[:] = state[0]
            logger.setLevel(state[1])  # also clears the logging module's level cache
            logger.propagate, logger.disabled = state[2], state[3]

    if structlog.is_configured() != was_configured or _structlog_state() != structlog_before:
        if not was_configured and _structlog_state() == structlog_before:
            # What structlog.testing.capture_logs() leaves: it restores the
            # processors with configure(), which marks structlog configured
            # with its defaults. Not the test's doing; undone so that the next
            # test sees an unconfigured structlog, as a user would.
            structlog.reset_defaults()
        else:
            problems.append(
                f"structlog was left configured: {_structlog_state()} "
                f"(before the test: {'configured' if was_configured else 'not configured'})"
            )
            if was_configured:
                structlog.configure(**structlog_before)
            else:
                structlog.reset_defaults()
    if problems:
        pytest.fail("; ".join(problems))


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
