"""``lilbee-ticker demo``: the command line around the scenario, its log output and its summary.

This is an application, not the library: it configures structlog for the
length of the command (and puts the previous configuration back after), so
that the ticker's and the pool's events are printed with the narration.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO, cast

import structlog

from lilbee_ticker.demo._scenario import (
    ROLES,
    DemoSettings,
    Outcome,
    Terminated,
    interrupts_deferred,
    minimum_duration_s,
    play,
)

__all__ = ["add_parser", "run"]

# Exit statuses: 0 when every expectation held, as documented in docs/demo.md.
EXIT_FAILED = 1
EXIT_USAGE = 2  # what argparse uses
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

_MIN_INTERVAL_S = 0.1
# How many intervals the scenario takes with the default --max-idle.
_SCENARIO_INTERVALS = 11
_MAX_SECONDS = 86_400.0

_DESCRIPTION = """\
Play a scripted scenario against real worker processes and narrate it: a
pool with the roles embed, chat and rerank, and a HealthTicker watching it.
An idle worker is reaped and stays down; a worker killed with SIGKILL is
noticed by the next tick; a worker frozen with SIGSTOP times out, is
reported unhealthy, and recovers after SIGCONT. It ends with each role's
health and the ticker's counters, and exits 0 only if everything it
expected happened, so it doubles as a smoke test. Ctrl-C or SIGTERM stops
it cleanly.
"""

_EPILOG = """\
exit status: 0 every expectation held, 1 one did not, 2 bad arguments,
130 interrupted by Ctrl-C, 143 stopped by SIGTERM.
"""


def _seconds(text: str) -> float:
    """Parse a command-line duration: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > _MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0 and at most {_MAX_SECONDS:g}, got {text!r}"
        )
    return value


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` command to ``commands``, the result of ``add_subparsers()``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="play a scripted scenario against real worker processes",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"seconds between health ticks, at least {_MIN_INTERVAL_S:g} (default: 1, or "
        f"short enough for the scenario to fit twice into --duration)",
    )
    parser.add_argument(
        "--max-idle",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds a worker may go unused before the pool reaps it, at least twice "
        "--interval (default: 3 x --interval)",
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="the most the scenario may take, at least the time to the first tick after "
        "--max-idle plus 7 more ticks (--max-idle + 8 x --interval with the defaults); if what "
        "it expects has not happened by then it stops and fails (default: 60, or --max-idle + "
        "15 x --interval if that is longer)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON lines instead of colored text"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print debug events, such as each tick"
    )
    parser.set_defaults(run=run, parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed ``args``; return the exit status."""
    parser: argparse.ArgumentParser = args.parser
    interval: float
    if args.interval is not None:
        interval = args.interval
    elif args.duration is not None:
        # The scenario takes about 11 intervals (max idle is 3 of them, then
        # 8 more); give it half of the time allowed, so a busy machine fits.
        interval = min(1.0, max(_MIN_INTERVAL_S, args.duration / (2 * _SCENARIO_INTERVALS)))
    else:
        interval = 1.0
    if interval < _MIN_INTERVAL_S:
        parser.error(f"argument --interval: must be at least {_MIN_INTERVAL_S:g}, got {interval:g}")
    max_idle: float = 3 * interval if args.max_idle is None else args.max_idle
    if max_idle < 2 * interval:
        parser.error(
            f"argument --max-idle: must be at least twice --interval ({2 * interval:g}), got "
            f"{max_idle:g}: the workers the demo keeps busy must not be reaped between two "
            "requests"
        )
    # The scenario needs at least minimum_duration_s(); the default leaves room.
    duration: float = (
        max(60.0, max_idle + 15 * interval) if args.duration is None else args.duration
    )
    minimum = minimum_duration_s(interval, max_idle)
    if duration < minimum:
        parser.error(
            f"argument --duration: must be at least {minimum:g} (the scenario takes at least "
            f"that long with --interval {interval:g} and --max-idle {max_idle:g}), got "
            f"{duration:g}"
        )
    settings = DemoSettings(interval_s=interval, max_idle_s=max_idle, duration_s=duration)
    out = _Stdout(sys.stdout)
    color = not args.json and _wants_color(out)
    previous = structlog.get_config()
    try:
        return _play(settings, out, as_json=args.json, verbose=args.verbose, color=color)
    finally:
        structlog.configure(**previous)


def _play(
    settings: DemoSettings, out: _Stdout, *, as_json: bool, verbose: bool, color: bool
) -> int:
    """Configure logging, play the scenario and summarize it; return the exit status."""
    try:
        with _sigterm_raises():
            _configure_logging(out, as_json=as_json, verbose=verbose, color=color)
            log = structlog.get_logger("lilbee_ticker.demo")
            outcome = play(settings, log)
            _summarize(outcome, log, out, as_json=as_json, color=color)
    except KeyboardInterrupt as interrupt:
        # Everything play() started is stopped by now. A second Ctrl-C while
        # this is said must not turn into a traceback.
        with contextlib.suppress(KeyboardInterrupt), interrupts_deferred():
            name = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
            structlog.get_logger("lilbee_ticker.demo").warning(
                "demo.interrupted",
                message=f"Interrupted by {name}: the ticker, every worker process and the "
                "loop are stopped",
                signal=name,
            )
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    except Exception as exc:
        structlog.get_logger("lilbee_ticker.demo").critical("demo.crashed", exc_info=exc)
        print(f"lilbee-ticker demo: crashed: {exc!r}", file=sys.stderr)
        return EXIT_FAILED
    if outcome.passed:
        return 0
    first = outcome.failures[0]
    print(f"lilbee-ticker demo: FAILED: {first.name}: {first.detail}", file=sys.stderr)
    return EXIT_FAILED


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the demo runs, so it stops as on Ctrl-C.

    Only the main thread can install a signal handler; elsewhere (a test
    calling :func:`run` from a thread) SIGTERM keeps its default action.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_signum: int, _frame: types.FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- output --------------------------------------------------------------------------


class _Stdout:
    """Standard output that goes quiet, instead of raising, once its reader has gone.

    ``lilbee-ticker demo | head`` closes the pipe early. Output from any
    thread (the ticker's logs too) then raises BrokenPipeError; this keeps
    the demo running to its end and its exit status, and points the file
    descriptor at /dev/null so that the interpreter's final flush is quiet.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)


def _wants_color(stream: _Stdout) -> bool:
    """Color for a terminal, unless NO_COLOR is set (https://no-color.org); FORCE_COLOR forces."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def _configure_logging(out: _Stdout, *, as_json: bool, verbose: bool, color: bool) -> None:
    processors: list[Any] = [structlog.processors.add_log_level]
    if as_json:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            _Elapsed(),
            _sentence_first,
            structlog.dev.ConsoleRenderer(
                colors=color, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        context_class=dict,
        # WriteLogger writes each line in one write(), so a Ctrl-C cannot
        # cut one short and glue the next one to it; it needs only write()
        # and flush(), which _Stdout has.
        logger_factory=structlog.WriteLoggerFactory(cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )


def _sentence_first(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """For text: show a narration event as its sentence rather than its dotted name.

    The step's number and the expectation's name are in the sentence already,
    so they are not repeated.
    """
    message = event_dict.pop("message", None)
    if message is not None:
        event_dict["event"] = message
        event_dict.pop("expectation", None)
        event_dict.pop("step", None)
    return event_dict


class _Elapsed:
    """A structlog processor that stamps each event with the seconds since the demo began."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["timestamp"] = f"{time.monotonic() - self._start:7.3f}s"
        return event_dict


_GREEN, _RED, _BOLD, _RESET = "\033[32m", "\033[31m", "\033[1m", "\033[0m"


def _summarize(outcome: Outcome, log: Any, out: _Stdout, *, as_json: bool, color: bool) -> None:
    """Print each role's health, the ticker's counters and the expectations."""
    if as_json:
        log.info(
            "demo.summary",
            passed=outcome.passed,
            elapsed_s=round(outcome.elapsed_s, 3),
            health={
                role: {**dataclasses.asdict(record), "pid": outcome.pids.get(role)}
                for role, record in outcome.health.items()
            },
            stats=dataclasses.asdict(outcome.stats),
            expectations=[dataclasses.asdict(e) for e in outcome.expectations],
        )
        return

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines = ["", paint("Health at the end", _BOLD)]
    rows = [("role", "status", "pid", "spawned", "pings", "failures", "last error")]
    for role in ROLES:
        record = outcome.health.get(role)
        pid = outcome.pids.get(role)
        rows.append(
            (
                role,
                "-" if record is None else record.status.value,
                "-" if pid is None else str(pid),
                str(outcome.spawns.get(role, 0)),
                "-" if record is None else str(record.pings),
                "-" if record is None else str(record.failures),
                "-" if record is None or record.last_error is None else record.last_error,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())

    stats = outcome.stats
    lines += ["", paint("Ticker counters", _BOLD)]
    counters = {
        key: value
        for key, value in dataclasses.asdict(stats).items()
        if not key.endswith("duration_s")
    }
    lines.append("  " + "  ".join(f"{key}={value}" for key, value in counters.items()))
    lines.append(
        f"  last_tick_duration_s={_seconds_text(stats.last_tick_duration_s)}  "
        f"max_tick_duration_s={_seconds_text(stats.max_tick_duration_s)}"
    )

    lines += ["", paint("Expectations", _BOLD)]
    for expectation in outcome.expectations:
        mark = paint("PASS", _GREEN) if expectation.passed else paint("FAIL", _RED)
        lines.append(f"  {mark}  {expectation.name}: {expectation.detail}")
    verdict = (
        paint("The demo passed: every expectation held", _GREEN)
        if outcome.passed
        else paint(f"The demo FAILED: {len(outcome.failures)} expectation(s) did not hold", _RED)
    )
    lines += ["", f"{verdict} ({outcome.elapsed_s:.1f}s)."]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _seconds_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
