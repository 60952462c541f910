"""Benchmarks: `HealthTicker` against the designs people would otherwise use.

Run ``python -m benchmarks`` (a few minutes) or ``python -m benchmarks --quick``
(seconds). Every contender drives the same :class:`~benchmarks.pools.BenchPool`
through the same :class:`lilbee_ticker.LoopRuntime`, and every figure is
reported next to HealthTicker's, as a ratio, from the same run.

Modules:

* :mod:`benchmarks.pools`: the pool and the submit-counting runtime every
  contender drives.
* :mod:`benchmarks.contenders`: `HealthTicker` and the three baselines (an
  asyncio task on its own loop, a re-arming `threading.Timer`, APScheduler 3.x).
* :mod:`benchmarks.system`: the machine's description and per-thread counters
  read from ``/proc``.
* :mod:`benchmarks.measure`: one function per section of the report.
* :mod:`benchmarks.report`: summaries, ratios, the issue's targets, JSON and
  Markdown.
* :mod:`benchmarks.plot`: the cadence plot (needs matplotlib, which is optional).
"""
