"""Test doubles and helpers for applications that use lilbee_ticker.

* :class:`FakePool` is a scriptable pool that behaves like a real one on a
  real event loop (run it on a :class:`lilbee_ticker.LoopRuntime`), records
  every call with the thread it ran on, and catches code that touches pool
  state from the wrong thread. Ping and reap behaviours are scripted with
  :class:`Succeed`, :class:`Fail`, :class:`Hang`, :class:`Delay` and
  :class:`Crash`; idle time is measured on a clock the test controls
  (freezegun's, or a :class:`ManualClock`).
* :class:`StepEvent` and :func:`step` make a ticker's background thread run
  exactly one tick when the test says so, without real time passing.

The pytest fixtures built on these live in :mod:`lilbee_ticker.pytest_plugin`.

.. versionadded:: 0.1.0
"""

from lilbee_ticker._behaviours import (
    Crash,
    Delay,
    Fail,
    Hang,
    IgnoreCancel,
    ManualClock,
    PingBehaviour,
    PoolCall,
    ReapBehaviour,
    SlowClose,
    Succeed,
    WorkerCrashedError,
    WrongThreadError,
)
from lilbee_ticker._fake_pool import FakePool
from lilbee_ticker._stepping import StepEvent, step

__all__ = [
    "Crash",
    "Delay",
    "Fail",
    "FakePool",
    "Hang",
    "IgnoreCancel",
    "ManualClock",
    "PingBehaviour",
    "PoolCall",
    "ReapBehaviour",
    "SlowClose",
    "StepEvent",
    "Succeed",
    "WorkerCrashedError",
    "WrongThreadError",
    "step",
]
