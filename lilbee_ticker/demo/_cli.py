"""``lilbee-ticker demo``: the command line around the scenario, its log output and its summary.

This is an application, not the library: it configures structlog for the
length of the command (and puts the previous configuration back after), so
that the ticker's and the pool's events are printed with the narration.
"""

from __future__ import annotations

import _thread
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
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TextIO, cast

import structlog

from lilbee_ticker.demo import _figures as figures
from lilbee_ticker.demo._scenario import (
    ROLES,
    DemoSettings,
    Outcome,
    Terminated,
    minimum_duration_s,
    play,
)

__all__ = ["add_parser", "run"]

# Exit statuses: 0 when every expectation held, as documented in docs/demo.md.
EXIT_FAILED = 1
EXIT_USAGE = 2  # what argparse uses
EXIT_OUTPUT = 74  # EX_IOERR in sysexits.h: standard output could not be written
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

_MIN_INTERVAL_S = 0.1
_DEFAULT_INTERVAL_S = 1.0
_DEFAULT_DURATION_S = 60.0
# How many intervals the scenario takes with the default --max-idle.
_SCENARIO_INTERVALS = 11
_MAX_SECONDS = 86_400.0

_DESCRIPTION = """\
Play a scripted scenario against real worker processes and narrate it: a
pool with the roles embed, chat and rerank, and a HealthTicker watching it.
An idle worker is reaped and stays down; a worker killed with SIGKILL is
noticed at once; a worker frozen with SIGSTOP times out, is reported
unhealthy, and is restarted by the ticker, with no SIGCONT. It ends with
each role's health and the ticker's counters, and exits 0 only if
everything it expected happened, so it doubles as a smoke test. Ctrl-C or
SIGTERM stops it cleanly.
"""

_EPILOG = """\
exit status: 0 every expectation held, 1 one did not, 2 bad arguments,
74 standard output could not be written, 130 interrupted by Ctrl-C,
143 stopped by SIGTERM.
"""


def _seconds(expected: str, low: float | None = None) -> Callable[[str], float]:
    """A command-line duration: a finite number of seconds, from ``low`` to a day if given.

    ``expected`` says the flag's whole range in words, so a value that is not
    a number is told the range too. A range that depends on other flags is
    checked once they are known, by :func:`_settings`.
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (low is not None and not low <= value <= _MAX_SECONDS):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_INTERVAL_RANGE = f"a number of seconds from {_MIN_INTERVAL_S:g} to {_MAX_SECONDS:g}"
_MAX_IDLE_RANGE = f"a number of seconds from twice the interval to {_MAX_SECONDS:g}"
_DURATION_RANGE = f"a number of seconds from the least time the scenario takes to {_MAX_SECONDS:g}"


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
        type=_seconds(_INTERVAL_RANGE, _MIN_INTERVAL_S),
        default=None,
        metavar="SECONDS",
        help=f"seconds between health ticks, from {_MIN_INTERVAL_S:g} to {_MAX_SECONDS:g} "
        "(default: 1, or short enough for the scenario to fit twice into --duration)",
    )
    parser.add_argument(
        "--max-idle",
        type=_seconds(_MAX_IDLE_RANGE),
        default=None,
        metavar="SECONDS",
        help="seconds a worker may go unused before the pool reaps it, from twice the "
        f"interval to {_MAX_SECONDS:g} (default: 3 x the interval)",
    )
    parser.add_argument(
        "--duration",
        type=_seconds(_DURATION_RANGE),
        default=None,
        metavar="SECONDS",
        help="the most the scenario may take, from the time to the first tick after the max "
        "idle plus 7 more ticks (max idle + 8 x interval with the defaults) to "
        f"{_MAX_SECONDS:g}; if what it expects has not happened by then it stops and fails "
        "(default: 60, or max idle + 15 x interval if that is longer)",
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
    """Run the demo for parsed ``args``; return the exit status.

    On the main thread, once the demo is over (its summary, or the note that
    it was interrupted, is next) it ignores Ctrl-C and SIGTERM for the rest of
    the process: everything it started is stopped, and a signal during the
    interpreter's exit could only print "Exception ignored" noise.
    """
    settings = _settings(args)
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        _say("cannot write to standard output: it is closed; nothing was started")
        return EXIT_OUTPUT
    out = _Stdout(sys.stdout, interrupt_main=threading.current_thread() is threading.main_thread())
    color = not args.json and _wants_color(out)
    previous = structlog.get_config()
    try:
        return _play(settings, out, as_json=args.json, verbose=args.verbose, color=color)
    finally:
        structlog.configure(**previous)


@dataclasses.dataclass(frozen=True)
class _Figure:
    """A setting's value and, for the error messages, where it came from."""

    value: float
    origin: str  # "--interval 0.3", "1, the default", ...

    def __str__(self) -> str:
        return f"{figures.seconds_text(self.value)} ({self.origin})"


def _settings(args: argparse.Namespace) -> DemoSettings:
    """Resolve the timings from the flags given, or exit with status 2 naming the flag at fault.

    Every message names the flag, the value, the range it must be in, and
    where each value it depends on came from (a flag, or a default).
    """
    parser: argparse.ArgumentParser = args.parser
    if args.interval is not None:
        interval = _Figure(args.interval, f"--interval {args.interval:g}")
    elif args.duration is not None:
        # The scenario takes about 11 intervals (max idle is 3 of them, then
        # 8 more); give it half of the time allowed, so a busy machine fits.
        # Whole hundredths, rounded down, so every figure derived from it is
        # one a person reads at a glance.
        fitted = math.floor(args.duration / (2 * _SCENARIO_INTERVALS) * 100) / 100
        origin = f"picked to fit --duration {args.duration:g}"
        if fitted < _MIN_INTERVAL_S:
            origin += f", at least {_MIN_INTERVAL_S:g}"
        elif fitted > _DEFAULT_INTERVAL_S:
            origin += f", at most {_DEFAULT_INTERVAL_S:g}"
        interval = _Figure(min(_DEFAULT_INTERVAL_S, max(_MIN_INTERVAL_S, fitted)), origin)
    else:
        interval = _Figure(_DEFAULT_INTERVAL_S, "the default: --interval was not given")
    if args.max_idle is not None:
        max_idle = _Figure(args.max_idle, f"--max-idle {args.max_idle:g}")
        _check_range(
            parser,
            "--max-idle",
            max_idle.value,
            2 * interval.value,
            f"The least is twice the interval, which is {interval}: the workers the demo "
            "keeps busy must not be reaped between two requests.",
        )
    else:
        max_idle = _Figure(figures.seconds(3 * interval.value), "3 x the interval, the default")
    if args.duration is not None:
        duration = _Figure(args.duration, f"--duration {args.duration:g}")
        _check_range(
            parser,
            "--duration",
            duration.value,
            minimum_duration_s(interval.value, max_idle.value),
            f"The least is the time the scenario takes, in ticks, with an interval of "
            f"{interval} and a max idle of {max_idle}.",
        )
    else:
        # The default leaves room: a minute, or 15 intervals past the max idle if longer.
        longer = figures.seconds(max_idle.value + 15 * interval.value)
        duration = _Figure(max(_DEFAULT_DURATION_S, longer), "the default")
    return DemoSettings(
        interval_s=interval.value, max_idle_s=max_idle.value, duration_s=duration.value
    )


def _check_range(
    parser: argparse.ArgumentParser, flag: str, value: float, least: float, why: str
) -> None:
    """Exit with status 2 unless ``least <= value <= _MAX_SECONDS``, saying ``why`` that least."""
    if not least <= value <= _MAX_SECONDS:
        parser.error(
            f"argument {flag}: expected a number of seconds from {figures.seconds_text(least)} "
            f"to {_MAX_SECONDS:g}, got {value:g}. {why}"
        )


def _say(message: str) -> None:
    """Print ``lilbee-ticker demo: message`` on standard error, if there is one to write to."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError):
            print(f"lilbee-ticker demo: {message}", file=sys.stderr, flush=True)


def _play(
    settings: DemoSettings, out: _Stdout, *, as_json: bool, verbose: bool, color: bool
) -> int:
    """Configure logging, play the scenario and summarize it; return the exit status."""
    outcome: Outcome | None = None
    interrupt: KeyboardInterrupt | None = None
    crash: Exception | None = None
    try:
        with _sigterm_raises():
            _configure_logging(out, as_json=as_json, verbose=verbose, color=color)
            outcome = play(settings, structlog.get_logger("lilbee_ticker.demo"))
    except KeyboardInterrupt as exc:
        interrupt = exc
    except Exception as exc:
        crash = exc
    # Everything play() started is stopped by now: the demo is over.
    _ignore_interrupts()
    log = structlog.get_logger("lilbee_ticker.demo")
    if (lost := out.lost()) is not None:
        return _output_lost(lost)
    if crash is not None:
        log.critical("demo.crashed", exc_info=crash)
        _say(f"crashed: {crash!r}")
        return EXIT_FAILED
    if interrupt is not None or outcome is None:
        name = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        log.warning(
            "demo.interrupted",
            message=f"Interrupted by {name}: the ticker, every worker process and the "
            "loop are stopped",
            signal=name,
        )
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    _summarize(outcome, log, out, as_json=as_json, color=color)
    if (lost := out.lost()) is not None:
        return _output_lost(lost)
    if outcome.passed:
        return 0
    first = outcome.failures[0]
    _say(f"FAILED: {first.name}: {first.detail}")
    return EXIT_FAILED


def _output_lost(error: OSError) -> int:
    _say(
        f"cannot write to standard output ({error}): the demo stopped early, and so did "
        f"everything it had started; exit status {EXIT_OUTPUT}"
    )
    return EXIT_OUTPUT


def _ignore_interrupts() -> None:
    """Ignore Ctrl-C and SIGTERM from now until the process exits; only on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        # signal.signal() first runs the handler of a signal that is pending,
        # which raises; the disposition is unchanged then, so set it again.
        for _ in range(3):
            with contextlib.suppress(KeyboardInterrupt):
                signal.signal(signum, signal.SIG_IGN)
                break


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
    """Standard output that goes quiet, instead of raising, once it cannot be written.

    ``lilbee-ticker demo | head`` closes the pipe early. Output from any
    thread (the ticker's logs too) then raises BrokenPipeError; the reader
    chose to stop, so the demo plays on to its end and its exit status.

    Any other error (``> /dev/full``, a full disk) means the narration the
    user asked for is lost: the first one is kept, and the
    demo is stopped as on Ctrl-C (when it runs on the main thread), so that
    it can say so and exit with :data:`EXIT_OUTPUT`; :meth:`lost` tells.

    Either way the file descriptor is pointed at /dev/null, so that later
    writes, and the interpreter's final flush, are quiet.
    """

    def __init__(self, stream: TextIO, *, interrupt_main: bool) -> None:
        self._stream = stream
        self._interrupt_main = interrupt_main
        self._lock = threading.Lock()  # guards _error: any thread may write
        self._error: OSError | None = None

    def lost(self) -> OSError | None:
        """The first error that lost output the user asked for, if any (not a closed pipe)."""
        with self._lock:
            return self._error

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _failed(self, exc: OSError) -> None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        if isinstance(exc, BrokenPipeError):
            return
        with self._lock:
            first = self._error is None
            if first:
                self._error = exc
        if first and self._interrupt_main:
            # Stop the scenario the way Ctrl-C does, with its bounded shutdown;
            # a no-op once the demo ignores SIGINT (it is over by then).
            _thread.interrupt_main(signal.SIGINT)


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
            _rounded,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            _Elapsed(),
            _sentence_first,
            _rounded_text,
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


def _rounded(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Round every figure in an event, the library's own events too (see :mod:`._figures`)."""
    return {key: figures.round_figures(value, key) for key, value in event_dict.items()}


def _rounded_text(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Round every figure in an event for the text output, written without exponents."""
    return {
        key: figures.round_figures(value, key, as_text=True) for key, value in event_dict.items()
    }


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
            elapsed_s=outcome.elapsed_s,
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
    rows = [("role", "status", "pid", "spawned", "pings", "failures", "restarts", "last error")]
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
                "-" if record is None else str(record.restarts),
                "-" if record is None or record.last_error is None else record.last_error,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())

    lines += ["", paint("Ticker counters", _BOLD)]
    counters = dataclasses.asdict(outcome.stats)
    counts = [f"{key}={value}" for key, value in counters.items() if not key.endswith("_s")]
    durations = [
        f"{key}={'-' if value is None else figures.seconds_text(value)}"
        for key, value in counters.items()
        if key.endswith("_s")
    ]
    lines += ["  " + "  ".join(counts), "  " + "  ".join(durations)]

    lines += ["", paint("Expectations", _BOLD)]
    for expectation in outcome.expectations:
        mark = paint("PASS", _GREEN) if expectation.passed else paint("FAIL", _RED)
        lines.append(f"  {mark}  {expectation.name}: {expectation.detail}")
    verdict = (
        paint("The demo passed: every expectation held", _GREEN)
        if outcome.passed
        else paint(f"The demo FAILED: {len(outcome.failures)} expectation(s) did not hold", _RED)
    )
    lines += ["", f"{verdict} ({figures.seconds_text(outcome.elapsed_s)}s)."]
    out.write("\n".join(lines) + "\n")
    out.flush()
