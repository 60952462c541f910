"""Export tickers' health and counters to Prometheus: :class:`TickerCollector`.

Needs the optional ``prometheus-client`` package: ``pip install
'lilbee-ticker[prometheus]'``. Register one collector, with every ticker to
export, on a registry::

    from prometheus_client import REGISTRY
    from lilbee_ticker.prometheus import TickerCollector

    REGISTRY.register(TickerCollector(ticker))

Every metric is named ``lilbee_ticker_...`` and labelled with ``ticker``
(the ticker's name) and, for per-role metrics, ``role``. A scrape reads the
tickers' snapshots: one reading of each ticker, the one :meth:`HealthTicker.probe`
reads, so that its health, counters and probe agree. It never waits for a tick
and never touches a pool.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "lilbee_ticker.prometheus needs the prometheus-client package: "
        "pip install 'lilbee-ticker[prometheus]'"
    ) from exc

from lilbee_ticker._health import HealthStatus
from lilbee_ticker._ticker import HealthTicker

__all__ = ["TickerCollector"]

_PREFIX = "lilbee_ticker"

# (counter name, TickerStats attribute, help), all totals since the ticker was made.
_COUNTERS = (
    ("ticks", "ticks", "Ticks run, background and manual."),
    ("skipped_ticks", "skipped_ticks", "Ticks that found no role alive."),
    ("interrupted_ticks", "interrupted_ticks", "Ticks a stop or a runtime shutdown cut short."),
    ("reaps", "reaps", "Reap steps run: ticks that found a role alive."),
    ("reap_failures", "reap_failures", "Reaps that raised, timed out or were still running."),
    ("roles_reaped", "roles_reaped", "Roles reaped, summed over all reaps."),
    ("pings", "pings", "Pings with a known outcome."),
    ("ping_failures", "ping_failures", "Pings that failed."),
    ("timeouts", "timeouts", "Calls reported as a CallTimeoutError."),
    ("snapshot_failures", "snapshot_failures", "Ticks that could not read the pool's roles."),
    ("loop_stalls", "loop_stalls", "Ticks whose event loop missed a deadline."),
    ("restarts", "restarts", "Restarts the ticker began, all roles."),
    ("restart_failures", "restart_failures", "Restarts that raised or timed out."),
)


class TickerCollector(Collector):
    """A Prometheus collector for one or more :class:`HealthTicker` objects.

    Exports, for each ticker (label ``ticker``):

    * ``lilbee_ticker_role_status{role, status}``: 1 for the role's current
      :class:`HealthStatus`, 0 for the others;
    * ``lilbee_ticker_role_consecutive_failures{role}``;
    * ``lilbee_ticker_role_restarts_total{role}``, the restarts the ticker
      began, and ``lilbee_ticker_role_given_up{role}`` (1 once it gave up
      restarting the role; see :class:`~lilbee_ticker.RestartPolicy`);
    * ``lilbee_ticker_role_last_ping_latency_seconds{role}`` (roles pinged
      at least once);
    * the counters of :meth:`HealthTicker.stats` as ``..._total``;
    * ``lilbee_ticker_tick_duration_seconds`` (the latest tick) and
      ``lilbee_ticker_tick_duration_max_seconds``;
    * ``lilbee_ticker_healthy`` and ``lilbee_ticker_ready`` (1 or 0);
    * ``lilbee_ticker_last_tick_age_seconds``, since the last tick that read
      the pool (absent until one has);
    * ``lilbee_ticker_loop_lag_seconds``, a summary (count and sum) of the
      time each tick waited for the pool's event loop, and
      ``lilbee_ticker_loop_lag_last_seconds`` and
      ``lilbee_ticker_loop_lag_max_seconds``, the latest and the longest.

    Register one collector per registry, with every ticker: two collectors
    on one registry would export the same metric names twice, which the
    registry refuses. Add a ticker later with :meth:`add`, and take one
    out (to replace it with a new ticker of the same name) with :meth:`remove`.

    Args:
        *tickers: The tickers to export; their names must differ.

    Raises:
        ValueError: Two tickers have the same name: their series would collide.

    Thread safety: :meth:`collect` and :meth:`add` may be called from any thread.

    .. versionadded:: 0.2.0
    """

    def __init__(self, *tickers: HealthTicker) -> None:
        self._lock = threading.Lock()  # guards _tickers
        self._tickers: dict[str, HealthTicker] = {}
        for ticker in tickers:
            self.add(ticker)

    def add(self, ticker: HealthTicker) -> None:
        """Export ``ticker`` too.

        Raises:
            TypeError: ``ticker`` is not a :class:`HealthTicker`.
            ValueError: A ticker of the same name is already exported.
        """
        if not isinstance(ticker, HealthTicker):
            raise TypeError(
                f"ticker must be a lilbee_ticker.HealthTicker, got {ticker!r} of type "
                f"{type(ticker).__name__}"
            )
        with self._lock:
            if ticker.name in self._tickers and self._tickers[ticker.name] is not ticker:
                raise ValueError(
                    f"a ticker named {ticker.name!r} is already exported by this collector: "
                    "give each ticker its own name= so their series do not collide"
                )
            self._tickers[ticker.name] = ticker

    def remove(self, ticker: HealthTicker | str) -> None:
        """Stop exporting ``ticker`` (or the ticker of that name); unknown ones are ignored.

        For replacing a ticker, which runs once, with a new one of the same name.
        """
        name = ticker if isinstance(ticker, str) else ticker.name
        with self._lock:
            self._tickers.pop(name, None)

    def describe(self) -> Iterable[Metric]:
        """The metric families this collector exports, without their samples."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """Read every ticker's snapshots and return one sample set per metric family."""
        with self._lock:
            tickers = tuple(self._tickers.values())
        return self._families(tickers)

    def _families(self, tickers: tuple[HealthTicker, ...] = ()) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            f"{_PREFIX}_role_status",
            "1 for the role's current health status, 0 for the others.",
            labels=["ticker", "role", "status"],
        )
        failures = GaugeMetricFamily(
            f"{_PREFIX}_role_consecutive_failures",
            "Failed pings in a row.",
            labels=["ticker", "role"],
        )
        restarts = CounterMetricFamily(
            f"{_PREFIX}_role_restarts",
            "Restarts the ticker began for the role.",
            labels=["ticker", "role"],
        )
        given_up = GaugeMetricFamily(
            f"{_PREFIX}_role_given_up",
            "1 if the ticker gave up restarting the role, else 0.",
            labels=["ticker", "role"],
        )
        latency = GaugeMetricFamily(
            f"{_PREFIX}_role_last_ping_latency_seconds",
            "Round trip of the role's last successful ping.",
            labels=["ticker", "role"],
        )
        counters = {
            name: CounterMetricFamily(f"{_PREFIX}_{name}", text, labels=["ticker"])
            for name, _, text in _COUNTERS
        }
        duration = GaugeMetricFamily(
            f"{_PREFIX}_tick_duration_seconds", "Duration of the latest tick.", labels=["ticker"]
        )
        duration_max = GaugeMetricFamily(
            f"{_PREFIX}_tick_duration_max_seconds",
            "Duration of the longest tick.",
            labels=["ticker"],
        )
        healthy = GaugeMetricFamily(
            f"{_PREFIX}_healthy", "1 if the ticker is healthy, else 0.", labels=["ticker"]
        )
        ready = GaugeMetricFamily(
            f"{_PREFIX}_ready", "1 if the ticker is ready, else 0.", labels=["ticker"]
        )
        age = GaugeMetricFamily(
            f"{_PREFIX}_last_tick_age_seconds",
            "Seconds since the last tick that read the pool.",
            labels=["ticker"],
        )
        lag = SummaryMetricFamily(
            f"{_PREFIX}_loop_lag_seconds",
            "Time each tick waited for the pool's event loop to start it.",
            labels=["ticker"],
        )
        lag_last = GaugeMetricFamily(
            f"{_PREFIX}_loop_lag_last_seconds",
            "Time the latest tick waited for the pool's event loop.",
            labels=["ticker"],
        )
        lag_max = GaugeMetricFamily(
            f"{_PREFIX}_loop_lag_max_seconds",
            "The longest any tick waited for the pool's event loop.",
            labels=["ticker"],
        )
        for ticker in tickers:
            name = ticker.name
            # One reading of each ticker: its probe, records and counters agree.
            probe, records, stats = ticker._board.scrape()
            for role, record in records.items():
                for value in HealthStatus:
                    status.add_metric([name, role, value.value], float(record.status is value))
                failures.add_metric([name, role], float(record.consecutive_failures))
                restarts.add_metric([name, role], float(record.restarts))
                given_up.add_metric([name, role], float(record.given_up))
                if record.last_latency_s is not None:
                    latency.add_metric([name, role], record.last_latency_s)
            for counter, attribute, _ in _COUNTERS:
                counters[counter].add_metric([name], float(getattr(stats, attribute)))
            if stats.last_tick_duration_s is not None:
                duration.add_metric([name], stats.last_tick_duration_s)
            if stats.max_tick_duration_s is not None:
                duration_max.add_metric([name], stats.max_tick_duration_s)
            healthy.add_metric([name], float(probe.healthy))
            ready.add_metric([name], float(probe.ready))
            if probe.last_tick_age_s is not None:
                age.add_metric([name], probe.last_tick_age_s)
            lag.add_metric([name], count_value=stats.loop_lag_count, sum_value=stats.loop_lag_sum_s)
            if stats.last_loop_lag_s is not None:
                lag_last.add_metric([name], stats.last_loop_lag_s)
            if stats.max_loop_lag_s is not None:
                lag_max.add_metric([name], stats.max_loop_lag_s)
        yield status
        yield failures
        yield restarts
        yield given_up
        yield latency
        yield from counters.values()
        yield duration
        yield duration_max
        yield healthy
        yield ready
        yield age
        yield lag
        yield lag_last
        yield lag_max
