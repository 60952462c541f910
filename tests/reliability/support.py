"""Plain helpers for the reliability suite: the long-run switch, real time, bounded calls, scripts.

Fixtures live in ``conftest.py``; the fault-injecting pool and runtime in ``chaos.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = [
    "LONG",
    "LONG_ENV",
    "SEED_ENV",
    "Outcome",
    "Script",
    "call_within",
    "real_now",
    "run_script",
    "scaled",
]

_T = TypeVar("_T")

LONG_ENV = "LILBEE_TICKER_LONG"
SEED_ENV = "LILBEE_TICKER_SEED"

LONG = os.environ.get(LONG_ENV, "") == "1"
"""True when ``LILBEE_TICKER_LONG=1`` asks for the long runs."""


def scaled(short: int, long: int) -> int:
    """Return ``long`` in a long run (``LILBEE_TICKER_LONG=1``) and ``short`` otherwise."""
    return long if LONG else short


real_now: Callable[[], float] = functools.partial(time.clock_gettime, time.CLOCK_MONOTONIC)
"""Real monotonic seconds. freezegun replaces ``time.monotonic`` but not ``clock_gettime``."""


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[_T]):
    """What a call made through :func:`call_within` returned or raised, and how long it took."""

    value: _T | None
    error: BaseException | None
    elapsed_s: float

    def unwrap(self) -> _T | None:
        """Return the value, or raise the error the call raised."""
        if self.error is not None:
            raise self.error
        return self.value


def call_within(bound_s: float, fn: Callable[[], _T], *, what: str = "") -> Outcome[_T]:
    """Call ``fn`` in a fresh thread; return its outcome, or fail if it outlives ``bound_s``.

    A deadlock never returns, so calling through here turns one into a clear test
    failure instead of a run that hangs until the per-test timeout kills everything.
    The fresh thread is neither the ticker's nor the loop's, exactly like the thread
    of an application calling the ticker.
    """
    results: list[Outcome[_T]] = []

    def run() -> None:
        start = real_now()
        try:
            value = fn()
        except BaseException as exc:  # handed back to the caller, never lost
            results.append(Outcome(None, exc, real_now() - start))
        else:
            results.append(Outcome(value, None, real_now() - start))

    thread = threading.Thread(target=run, name="reliability-caller", daemon=True)
    thread.start()
    thread.join(bound_s)
    if thread.is_alive():
        raise AssertionError(f"{what or fn!r} did not return within {bound_s:g}s: a deadlock")
    return results[0]


@dataclasses.dataclass(frozen=True)
class Script:
    """The result of a Python script run in a fresh interpreter by :func:`run_script`."""

    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    def explain(self) -> str:
        """Describe the run for an assertion message."""
        return (
            f"exit code {self.returncode} after {self.elapsed_s:.2f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run_script(code: str, *, timeout_s: float, args: tuple[str, ...] = ()) -> Script:
    """Run ``code`` with ``python -W error -c`` and return what happened.

    A script still running after ``timeout_s`` is killed with SIGKILL (a deadlocked
    interpreter may never run a SIGTERM handler) and reported as a failure, with
    whatever it printed.
    """
    command = [sys.executable, "-W", "error", "-c", textwrap.dedent(code), *args]
    start = real_now()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(
            f"the script was still running after {timeout_s:g}s and was killed\n"
            f"--- stdout ---\n{_text(expired.stdout)}\n--- stderr ---\n{_text(expired.stderr)}"
        ) from None
    return Script(done.returncode, done.stdout, done.stderr, real_now() - start)


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output
