"""The ticker's log events: what is logged, at which level, how often, and where it goes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from structlog.testing import capture_logs

from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import Fail

from .conftest import MakePool

ROLES = ("embed", "chat")


def test_lifecycle_events(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """ticker.started and ticker.stopped are logged once each at info, with the ticker's name."""
    with capture_logs() as logs:
        ticker = make_ticker(
            make_pool(ROLES), interval_s=0.01, call_timeout_s=10, name="logged"
        ).start()
        wait_for_ticks(ticker, 2)
        ticker.stop()
    started = [e for e in logs if e["event"] == "ticker.started"]
    stopped = [e for e in logs if e["event"] == "ticker.stopped"]
    assert len(started) == 1
    assert started[0]["log_level"] == "info"
    assert started[0]["ticker"] == "logged"
    assert started[0]["interval_s"] == 0.01
    assert len(stopped) == 1
    assert stopped[0]["reason"] == "stopped"
    assert stopped[0]["ticks"] >= 2


def test_tick_completed_is_debug_detail(make_pool: MakePool, make_ticker: MakeTicker) -> None:
    """Each tick logs tick.completed at debug with its duration and outcome."""
    with capture_logs() as logs:
        make_ticker(make_pool(ROLES)).tick()
    (event,) = [e for e in logs if e["event"] == "tick.completed"]
    assert event["log_level"] == "debug"
    assert event["number"] == 1
    assert event["duration_ms"] >= 0
    assert event["live"] == ROLES
    assert set(event["pinged"]) == set(ROLES)
    assert event["failed"] == ()


def test_reap_failure_is_a_warning_once_per_streak(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """A reap that fails every tick logs one warning, then one info when it recovers."""
    pool = make_pool(ROLES)
    pool.script_reap(*[Fail(RuntimeError("no reap"))] * 5)
    ticker = make_ticker(pool)
    with capture_logs() as logs:
        for _ in range(6):
            ticker.tick()
    failed = [e for e in logs if e["event"] == "reap.failed"]
    assert [e["log_level"] for e in failed] == ["warning"] + ["debug"] * 4
    assert "no reap" in failed[0]["error"]
    recovered = [e for e in logs if e["event"] == "reap.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["log_level"] == "info"


def test_library_never_configures_structlog() -> None:
    """Importing and running the ticker leaves structlog unconfigured."""
    script = textwrap.dedent(
        """
        import structlog
        from lilbee_ticker import HealthTicker, LoopRuntime
        from lilbee_ticker.testing import FakePool

        with LoopRuntime() as runtime:
            pool = FakePool()
            HealthTicker(pool, runtime).tick()
        print("configured" if structlog.is_configured() else "unconfigured")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "unconfigured"


class _BrokenLogger:
    """A structlog logger whose output is gone, like a closed stdout."""

    def msg(self, *args: object, **kwargs: object) -> None:
        raise BrokenPipeError("stdout is closed")

    debug = info = warning = error = critical = msg


def test_broken_logging_does_not_kill_the_ticker(
    make_pool: MakePool, make_ticker: MakeTicker, wait_for_ticks: WaitForTicks
) -> None:
    """If the application's logging raises, the ticker keeps ticking and keeps the error."""
    import structlog

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=lambda *args: _BrokenLogger(),
        cache_logger_on_first_use=False,
    )
    try:
        ticker = make_ticker(make_pool(ROLES), interval_s=0.005, call_timeout_s=10).start()
        report = wait_for_ticks(ticker, 5)
        assert report.ok
        assert ticker.is_running
        assert isinstance(ticker.exception, BrokenPipeError)
        assert ticker.stop(timeout=5)
    finally:
        structlog.configure(**saved)
    ticker._exception = None  # acknowledged: make_ticker's teardown would flag it


@pytest.mark.parametrize(
    ("level", "built"), [("WARNING", False), ("DEBUG", True)], ids=["debug-off", "debug-on"]
)
def test_debug_fields_are_built_only_when_structlogs_filter_keeps_debug(
    make_pool: MakePool,
    make_ticker: MakeTicker,
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    built: bool,
) -> None:
    """Under make_filtering_bound_logger(WARNING) a tick emits, and so builds, no debug event."""
    import logging

    import structlog

    from lilbee_ticker import _log

    debug_events: list[str] = []
    real_emit = _log.emit

    def emit(lvl: str, event: str, **fields: object) -> None:
        if lvl == "debug":
            debug_events.append(event)
        real_emit(lvl, event, **fields)

    monkeypatch.setattr(_log, "emit", emit)
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail())
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        processors=[],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        make_ticker(pool).tick()
    finally:
        structlog.configure(**saved)
    assert ("tick.completed" in debug_events) is built
    assert ("ping.failed" in debug_events) is built


@pytest.mark.parametrize(
    "wrapper",
    ["generic-BoundLogger", "stdlib-BoundLogger-over-ReturnLogger", "filtering-over-print"],
)
def test_a_tick_is_published_whatever_structlog_is_configured_with(
    make_pool: MakePool, make_ticker: MakeTicker, wrapper: str
) -> None:
    """Asking whether debug is on never breaks a tick, whatever wrapper class the app chose.

    structlog's generic BoundLogger turns any attribute into a logging call,
    and its stdlib one asks a wrapped logger that need not be the stdlib's.
    """
    import io
    import logging

    import structlog

    wrappers = {
        "generic-BoundLogger": (structlog.BoundLogger, structlog.ReturnLoggerFactory()),
        "stdlib-BoundLogger-over-ReturnLogger": (
            structlog.stdlib.BoundLogger,
            structlog.ReturnLoggerFactory(),
        ),
        "filtering-over-print": (
            structlog.make_filtering_bound_logger(logging.INFO),
            structlog.PrintLoggerFactory(io.StringIO()),
        ),
    }
    wrapper_class, factory = wrappers[wrapper]
    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail())
    changes: list[object] = []
    ticker = make_ticker(pool, on_change=lambda old, new: changes.append(new.status))
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        wrapper_class=wrapper_class,
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    try:
        report = ticker.tick()
    finally:
        structlog.configure(**saved)
    assert report.pinged == ("embed",)
    assert ticker.last_report is report
    assert len(changes) == 2


def test_capture_logs_sees_debug_events_under_structlogs_stdlib_wrapper(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """With structlog's stdlib wrapper, the stdlib level does not hide events from capture_logs().

    From structlog 26.1 that wrapper has an is_enabled_for that asks the
    standard-library logger (at WARNING here), but its processors, such as
    capture_logs()'s, see every event first: the ticker must not skip any.
    """
    import structlog

    pool = make_pool(ROLES)
    pool.set_ping("chat", Fail())
    ticker = make_ticker(pool)
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        with capture_logs() as logs:
            ticker.tick()
    finally:
        structlog.configure(**saved)
    events = {entry["event"] for entry in logs}
    assert {"tick.completed", "ping.failed"} <= events


_UNCONFIGURED_APP = """
import logging, sys
{setup}
from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.testing import Fail, FakePool

with LoopRuntime() as runtime:
    pool = FakePool(["embed", "chat"])
    pool.set_ping("chat", Fail())
    ticker = HealthTicker(pool, runtime, interval_s=0.2, initial_delay_s=0).start()
    assert ticker.wait_for_tick(3, timeout=10) is not None
    ticker.stop()
"""


def _run_app(setup: str) -> subprocess.CompletedProcess[str]:
    script = _UNCONFIGURED_APP.format(setup=setup)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_an_app_that_configures_no_logging_sees_nothing_below_warning() -> None:
    """Without any logging set up, a run of ticks prints nothing at debug or info.

    Only the warnings of a role going FAILING, then UNHEALTHY, reach stderr, through the
    standard library's last-resort handler, as for any library; each line reads on its
    own, with the role and the error.
    """
    out = _run_app("")
    assert out.stdout == ""
    failing, unhealthy = out.stderr.splitlines()
    assert failing.startswith("role.failing: ticker='lilbee-health-ticker' role='chat'"), failing
    assert "error='ConnectionError: scripted ping failure'" in failing
    assert unhealthy.startswith("role.unhealthy: "), unhealthy
    assert "role='chat'" in unhealthy and "consecutive_failures=3" in unhealthy
    assert "error='ConnectionError: scripted ping failure'" in unhealthy


def test_an_app_that_configures_stdlib_logging_gets_records_with_their_fields() -> None:
    """With stdlib logging set up, events are records of the lilbee_ticker logger, fields kept."""
    setup = (
        "handler = logging.StreamHandler(sys.stdout)\n"
        "handler.setFormatter(logging.Formatter('%(name)s %(levelname)s %(message)s %(fields)s'))\n"
        "logging.getLogger('lilbee_ticker').addHandler(handler)\n"
        "logging.getLogger('lilbee_ticker').setLevel(logging.DEBUG)\n"
        "logging.basicConfig(level=logging.DEBUG)  # other loggers' records have no fields"
    )
    lines = _run_app(setup).stdout.splitlines()
    ours = [line for line in lines if line.startswith("lilbee_ticker ")]
    assert any(line.startswith("lilbee_ticker DEBUG tick.completed: ") for line in ours), lines
    failing = next(line for line in ours if " role.failing: " in line)
    assert "'role': 'chat'" in failing and "WARNING" in failing
    assert any(line.startswith("lilbee_ticker INFO ticker.started") for line in ours)


def test_records_carry_fields_as_attributes(
    make_pool: MakePool, make_ticker: MakeTicker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unconfigured structlog: a record's message is the event and fields, kept as attributes."""
    import logging

    import structlog

    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("lilbee_ticker")
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    level = logger.level
    # setLevel(), not the attribute: it also clears the logging module's
    # cache of isEnabledFor() answers, which an earlier test may have filled.
    logger.setLevel(logging.DEBUG)
    try:
        pool = make_pool(ROLES)
        pool.set_ping("chat", Fail())
        make_ticker(pool, name="recorded").tick()
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)
    failing = next(r for r in records if r.getMessage().startswith("role.failing: "))
    assert "role='chat'" in failing.getMessage()
    assert failing.levelno == logging.WARNING
    assert failing.role == "chat"  # type: ignore[attr-defined]
    assert failing.fields["ticker"] == "recorded"  # type: ignore[attr-defined]
    completed = next(r for r in records if r.getMessage().startswith("tick.completed: "))
    assert completed.fields["number"] == 1  # type: ignore[attr-defined]
