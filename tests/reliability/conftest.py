"""Fixtures for the reliability suite: seeds, figures, and guards every test runs under.

Every test here runs under three guards, torn down after the test's own fixtures:
no thread it started may outlive it, nothing may be logged at error level through
structlog or by asyncio (a task destroyed while pending, an exception never
retrieved), and structlog's output is counted instead of printed, so that a
5,000-tick run neither floods the captured output nor grows with it.

``LILBEE_TICKER_LONG=1`` selects the long runs; ``LILBEE_TICKER_SEED=<n>`` replays
the random choices of a run that printed ``replay with LILBEE_TICKER_SEED=<n>``;
``LILBEE_TICKER_FIGURES=<path>`` appends each test's figures to ``<path>`` as JSON
lines (they are always printed, and shown by ``pytest -rP``).
"""

from __future__ import annotations

import collections
import gc
import json
import logging
import os
import random
import threading
import zlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog

from .support import LONG, SEED_ENV, real_now

FIGURES_ENV = "LILBEE_TICKER_FIGURES"

# How long teardown waits for threads a test started to end before calling them leaked.
THREAD_GRACE_S = 5.0

_BASE_SEED = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A seed for this test's random choices, printed so that a failure can be replayed.

    It is derived from the run's base seed and the test's id, so a test draws the same
    choices whichever other tests run with it.
    """
    derived = zlib.crc32(f"{_BASE_SEED}:{request.node.nodeid}".encode())
    print(f"seed {derived} (replay with {SEED_ENV}={_BASE_SEED})")
    request.node.user_properties += [("seed", derived), (SEED_ENV, _BASE_SEED)]
    return derived


class Figures:
    """The figures one test measured, for docs/reliability.md."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.values: dict[str, Any] = {}

    def record(self, **values: Any) -> None:
        """Record measured values (numbers are rounded for reading)."""
        for key, value in values.items():
            self.values[key] = round(value, 4) if isinstance(value, float) else value

    def line(self) -> str:
        """One line with every figure, ``key=value`` separated by spaces."""
        return " ".join(f"{key}={value}" for key, value in self.values.items())


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Collect what the test measured; printed, kept as user properties, optionally saved."""
    collected = Figures(request.node.nodeid)
    yield collected
    if not collected.values:
        return
    properties = dict(request.node.user_properties)
    if "seed" in properties:
        collected.record(seed=properties["seed"], replay_with=properties[SEED_ENV])
    print(f"figures {collected.test}: {collected.line()}")
    request.node.user_properties.extend(collected.values.items())
    path = os.environ.get(FIGURES_ENV)
    if path:
        record = {"test": collected.test, "long": LONG, **collected.values}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")


# -- guards every test runs under -------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Iterator[None]:
    """Fail the test if a thread it started is still alive a few seconds after it ended."""
    before = set(threading.enumerate())
    yield
    deadline = real_now() + THREAD_GRACE_S
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(max(0.0, deadline - real_now()))
    leaked = sorted(thread.name for thread in started if thread.is_alive())
    if leaked:
        pytest.fail(f"threads outlived the test by {THREAD_GRACE_S:g}s: {leaked}")


class LogTally:
    """A structlog processor that counts events by ``(event, level)`` and drops them.

    It keeps one counter per kind of event, so its memory does not grow with the
    number of ticks. It takes no lock: a fork while another thread held one would
    leave the child unable to log at all. Two threads counting the same kind of
    event at the same instant may lose one increment; a count never drops to zero
    that way, and the checks below only ask whether an event happened.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def __call__(self, _logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        self.counts[str(event_dict.get("event")), method] += 1
        raise structlog.DropEvent

    def count(self, event: str) -> int:
        """How many times ``event`` was logged, at any level."""
        return sum(n for (name, _), n in self.counts.items() if name == event)

    def at(self, *levels: str) -> dict[str, int]:
        """The events logged at any of ``levels``, with their counts."""
        return {name: n for (name, level), n in self.counts.items() if level in levels}


@pytest.fixture(autouse=True)
def log_tally() -> Iterator[LogTally]:
    """Count the library's log events instead of printing them; fail on error or critical ones."""
    tally = LogTally()
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    structlog.configure(processors=[tally])
    try:
        yield tally
    finally:
        # configure(**saved) would leave structlog marked configured even if it
        # was not, and every later test would log down a path no user who
        # configured nothing would see.
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
    errors = tally.at("error", "critical", "exception")
    if errors:
        pytest.fail(f"the ticker logged errors: {errors}")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_asyncio_errors() -> Iterator[None]:
    """Fail the test if asyncio reported a task destroyed while pending or a lost exception."""
    records = _Records()
    logger = logging.getLogger("asyncio")
    logger.addHandler(records)
    try:
        yield
        gc.collect()  # a pending task destroyed by garbage collection is reported now
    finally:
        logger.removeHandler(records)
    if records.messages:
        pytest.fail(f"asyncio reported errors: {records.messages[:5]}")
