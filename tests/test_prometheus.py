"""lilbee_ticker.prometheus: scraped over real HTTP by the client's own server and parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from lilbee_ticker import HealthStatus, HealthTicker
from lilbee_ticker.prometheus import TickerCollector
from lilbee_ticker.pytest_plugin import MakeTicker
from lilbee_ticker.testing import Delay, Fail

from .conftest import MakePool

WAIT_S = 10.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = Callable[[], Samples]


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry, so that nothing of the default one leaks in."""
    return CollectorRegistry(auto_describe=True)


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Iterator[Scrape]:
    """Serve ``registry`` with the client's own HTTP server on port 0; return a scraper."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def scrape() -> Samples:
        with urllib.request.urlopen(url, timeout=WAIT_S) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    yield scrape
    server.shutdown()
    server.server_close()
    thread.join(WAIT_S)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def test_every_figure_matches_health_and_stats(
    make_pool: MakePool, make_ticker: MakeTicker, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Scraped values equal what health(), stats() and probe() say."""
    pool = make_pool(("embed", "chat"))
    pool.set_ping("chat", Fail())
    pool.set_ping("embed", Delay(0.01))
    ticker = make_ticker(pool, name="main", failure_threshold=2)
    for _ in range(3):
        ticker.tick()
    registry.register(TickerCollector(ticker))
    samples = scrape()
    health, stats = ticker.health(), ticker.stats()

    for role, record in health.items():
        for status in HealthStatus:
            expected = float(record.status is status)
            assert (
                _value(
                    samples,
                    "lilbee_ticker_role_status",
                    ticker="main",
                    role=role,
                    status=status.value,
                )
                == expected
            )
        assert _value(
            samples, "lilbee_ticker_role_consecutive_failures", ticker="main", role=role
        ) == float(record.consecutive_failures)
    assert _value(
        samples, "lilbee_ticker_role_last_ping_latency_seconds", ticker="main", role="embed"
    ) == pytest.approx(health["embed"].last_latency_s)
    for name in ("ticks", "reaps", "pings", "ping_failures", "timeouts", "reap_failures"):
        assert _value(samples, f"lilbee_ticker_{name}_total", ticker="main") == float(
            getattr(stats, name)
        )
    assert _value(samples, "lilbee_ticker_ticks_total", ticker="main") == 3.0
    assert _value(samples, "lilbee_ticker_tick_duration_seconds", ticker="main") == pytest.approx(
        stats.last_tick_duration_s
    )
    assert _value(samples, "lilbee_ticker_healthy", ticker="main") == 0.0  # chat is unhealthy
    assert _value(samples, "lilbee_ticker_ready", ticker="main") == 1.0
    assert _value(samples, "lilbee_ticker_last_tick_age_seconds", ticker="main") >= 0.0
    assert _value(samples, "lilbee_ticker_loop_lag_seconds_count", ticker="main") == 3.0
    assert _value(samples, "lilbee_ticker_loop_lag_seconds_sum", ticker="main") == pytest.approx(
        stats.loop_lag_sum_s
    )
    assert _value(samples, "lilbee_ticker_loop_lag_last_seconds", ticker="main") == pytest.approx(
        stats.last_loop_lag_s
    )


def test_two_tickers_in_one_registry_do_not_collide(
    make_pool: MakePool, make_ticker: MakeTicker, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Two tickers, one collector: every series carries its ticker's name, none is lost."""
    first = make_ticker(make_pool(("embed",)), name="first")
    second = make_ticker(make_pool(("embed", "chat")), name="second")
    first.tick()
    second.tick()
    second.tick()
    collector = TickerCollector(first)
    collector.add(second)
    registry.register(collector)
    samples = scrape()
    assert _value(samples, "lilbee_ticker_ticks_total", ticker="first") == 1.0
    assert _value(samples, "lilbee_ticker_ticks_total", ticker="second") == 2.0
    roles = {
        (dict(labels)["ticker"], dict(labels)["role"])
        for name, labels in samples
        if name == "lilbee_ticker_role_consecutive_failures"
    }
    assert roles == {("first", "embed"), ("second", "embed"), ("second", "chat")}


def test_a_ticker_name_twice_is_refused(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """Two tickers of one name would write the same series: refused, naming the fix."""
    a = make_ticker(make_pool(("embed",)), name="same")
    b = make_ticker(make_pool(("embed",)), name="same")
    with pytest.raises(ValueError, match="give each ticker its own name"):
        TickerCollector(a, b)
    with pytest.raises(TypeError, match="HealthTicker"):
        TickerCollector(object())  # type: ignore[arg-type]


def test_a_second_collector_on_one_registry_is_refused_by_the_registry(
    make_pool: MakePool, make_ticker: MakeTicker, registry: CollectorRegistry
) -> None:
    """Two collectors would export the same names: the registry says so at registration."""
    registry.register(TickerCollector(make_ticker(make_pool(("embed",)), name="a")))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(TickerCollector(make_ticker(make_pool(("embed",)), name="b")))


def test_a_new_ticker_exports_no_role_or_age_yet(
    make_ticker: MakeTicker, make_pool: MakePool, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Before any tick: zero counters, healthy 1, ready 0, and no age or per-role series."""
    ticker: HealthTicker = make_ticker(make_pool(("embed",)), name="fresh")
    registry.register(TickerCollector(ticker))
    samples = scrape()
    assert _value(samples, "lilbee_ticker_ticks_total", ticker="fresh") == 0.0
    assert _value(samples, "lilbee_ticker_healthy", ticker="fresh") == 1.0
    assert _value(samples, "lilbee_ticker_ready", ticker="fresh") == 0.0
    assert not [name for name, _ in samples if name.startswith("lilbee_ticker_role_")]
    assert not [name for name, _ in samples if name == "lilbee_ticker_last_tick_age_seconds"]


def test_a_ticker_can_be_replaced_by_a_new_one_of_the_same_name(
    make_pool: MakePool, make_ticker: MakeTicker, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """remove() takes a ticker out, so a new one of its name can take its place."""
    old = make_ticker(make_pool(("embed",)), name="worker")
    old.tick()
    collector = TickerCollector(old)
    registry.register(collector)
    new = make_ticker(make_pool(("embed",)), name="worker")
    collector.remove("worker")
    collector.add(new)
    samples = scrape()
    assert _value(samples, "lilbee_ticker_ticks_total", ticker="worker") == 0.0
    assert _value(samples, "lilbee_ticker_skipped_ticks_total", ticker="worker") == 0.0
