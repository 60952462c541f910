"""``python -m lilbee_ticker demo``: it plays, passes, stops on Ctrl-C and leaves no process.

The demo runs in a subprocess with a short interval (a whole scenario takes
about two and a half seconds). Its JSON lines are read as they come, so
each test acts on what the demo says it did, not after a guessed delay.

A run of the demo costs seconds, so the runs are module-scoped fixtures and
several tests assert different things about one run: ``finished`` (played
to its end with ``--json``) and ``in_a_terminal`` (played to its end in a
pseudo-terminal). A run that a signal ends is one run per signal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lilbee_ticker import __version__
from lilbee_ticker.__main__ import main
from lilbee_ticker.demo._scenario import minimum_duration_s
from tests import _proctable as proctable

pytestmark = proctable.linux_only

Event = dict[str, Any]

_DEMO = [sys.executable, "-W", "error", "-m", "lilbee_ticker", "demo"]
_FAST = ["--interval", "0.2", "--duration", "30"]
_BOUND_S = 30.0  # generous: only a failing test waits this long
# An event name as the library's own: lowercase words joined by dots (expect.passed).
_DOTTED = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# A number with a decimal point, in text: its significant digits are counted.
_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\d.])")


class _Demo:
    """The demo in a subprocess with ``--json``; a thread reads its events as they come.

    Each time a worker is spawned, the reader also records the demo's
    children from the process table (the workers and multiprocessing's
    resource tracker), so the test can check afterwards that none is left.
    """

    def __init__(self, directory: pathlib.Path, *args: str) -> None:
        self._stderr = (directory / "stderr.txt").open("w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [*_DEMO, "--json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._changed = threading.Condition()  # guards events, procs and ended
        self.events: list[Event] = []
        self.procs: dict[int, proctable.Proc] = {}
        self.ended = False
        self._reader = threading.Thread(target=self._read, name="demo-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event: Event = json.loads(line)
            procs = []
            if event["event"] == "worker.spawned":
                procs = proctable.children(self.process.pid)
            with self._changed:
                self.events.append(event)
                self.procs.update((proc.pid, proc) for proc in procs)
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool]) -> Event:
        """Wait until the demo prints an event that satisfies ``predicate``; return it."""

        def find() -> Event | None:
            return next((event for event in self.events if predicate(event)), None)

        with self._changed:
            found = self._changed.wait_for(lambda: find() or self.ended, _BOUND_S)
            event = find()
        assert event is not None, f"no such event (ended: {found is True}): {self.events[-5:]}"
        return event

    def finish(self) -> tuple[int, str]:
        """Wait for the demo to exit; return its exit status and its stderr."""
        returncode = self.process.wait(_BOUND_S)
        self._reader.join(_BOUND_S)
        self._stderr.seek(0)
        return returncode, self._stderr.read()

    def close(self) -> None:
        self.process.kill()
        self.process.wait(_BOUND_S)
        self._reader.join(_BOUND_S)
        # A leftover worker holds the pipe open (and has already failed the
        # test): closing it under the blocked reader would hang, so leave it.
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()
        self._stderr.close()

    @property
    def worker_procs(self) -> list[proctable.Proc]:
        with self._changed:
            return list(self.procs.values())


@pytest.fixture(autouse=True, scope="module")
def _children_take_ctrl_c() -> Iterator[None]:
    """Let the demos this module starts take SIGINT, as they would from a terminal.

    A command that a non-interactive shell runs in the background (``&``)
    starts with SIGINT ignored, and its children inherit that; Python then
    installs no Ctrl-C handler at all. A handler of our own is not inherited
    across exec, so with one here each demo starts with the default action.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)


@dataclasses.dataclass(frozen=True)
class _Ended:
    """A demo run that has exited, and what the test saw of it."""

    run: _Demo
    returncode: int
    stderr: str
    left: list[proctable.Proc]  # its processes still running 5 s after it exited
    summary: Event | None = None
    stopped_in: float = 0.0  # from the signal that ended it to its exit, in seconds


@pytest.fixture
def demo(tmp_path: pathlib.Path) -> Iterator[Callable[..., _Demo]]:
    """Start demos with ``demo(*args)``; each is killed after the test if still running."""
    started: list[_Demo] = []

    def start(*args: str) -> _Demo:
        started.append(_Demo(tmp_path, *args))
        return started[-1]

    yield start
    for each in started:
        each.close()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Ended]:
    """``demo --json --duration 5`` played to its end; a SIGINT is sent once its summary is read.

    ``--duration`` alone makes the demo pick its interval. The SIGINT comes
    after the demo is over, which must change nothing.
    """
    run = _Demo(tmp_path_factory.mktemp("finished"), "--duration", "5")
    try:
        summary = run.wait_for(lambda event: event["event"] == "demo.summary")
        run.process.send_signal(signal.SIGINT)
        returncode, stderr = run.finish()
        left = proctable.wait_until_exited(run.worker_procs, timeout=5.0)
        yield _Ended(run, returncode, stderr, left, summary=summary)
    finally:
        run.close()


@dataclasses.dataclass(frozen=True)
class _Terminal:
    """A demo run in a pseudo-terminal: everything it wrote there, and its exit status."""

    text: str
    returncode: int


@pytest.fixture(scope="module")
def in_a_terminal() -> _Terminal:
    """The demo in a terminal (its stdout and stderr), played to its end; then a SIGTERM.

    The SIGTERM is sent once "The demo passed" has been read: the demo is
    over by then, and it must change nothing.
    """
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*_DEMO, *_FAST], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    chunks: list[bytes] = []
    signalled = False
    deadline = time.monotonic() + _BOUND_S
    try:
        # Read until every holder of the terminal (the demo and its workers)
        # has closed it, when the read fails with EIO; select() bounds each wait.
        while select.select([controller], [], [], max(deadline - time.monotonic(), 0))[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not signalled and b"The demo passed" in b"".join(chunks[-2:]):
                process.send_signal(signal.SIGTERM)
                signalled = True
        returncode = process.wait(_BOUND_S)
    finally:
        os.close(controller)
        process.kill()
        process.wait(_BOUND_S)
    return _Terminal(b"".join(chunks).decode(), returncode)


def _frozen(event: Event) -> bool:
    return event["event"] == "role.failing" and event["role"] == "rerank"


def _signal_when_frozen(directory: pathlib.Path, signum: signal.Signals) -> _Ended:
    """Run the demo until its rerank worker is frozen and failing, then send it ``signum``."""
    run = _Demo(directory, *_FAST)
    try:
        run.wait_for(_frozen)
        procs = run.worker_procs
        start = time.monotonic()
        run.process.send_signal(signum)
        returncode, stderr = run.finish()
        stopped_in = time.monotonic() - start
        left = proctable.wait_until_exited(procs, timeout=5.0)
        return _Ended(run, returncode, stderr, left, stopped_in=stopped_in)
    finally:
        run.close()


def _significant_digits(number: str) -> int:
    return len(number.replace(".", "").lstrip("0").rstrip("0") or "0")


# -- a run to the end, with --json ---------------------------------------------------


def test_demo_plays_its_scenario_and_exits_0(finished: _Ended) -> None:
    """The demo's every expectation holds, it exits 0, and all its processes are gone after."""
    summary, run = finished.summary, finished.run
    assert summary is not None
    assert finished.returncode == 0, finished.stderr
    assert summary["passed"] is True
    failed = [e for e in summary["expectations"] if not e["passed"]]
    assert failed == []
    assert len(summary["expectations"]) == 13
    statuses = {role: record["status"] for role, record in summary["health"].items()}
    assert statuses == {"embed": "down", "chat": "healthy", "rerank": "healthy"}
    assert summary["stats"]["roles_reaped"] == 1
    assert summary["stats"]["timeouts"] >= 3
    assert summary["stats"]["restarts"] == 1
    assert summary["health"]["rerank"]["restarts"] == 1
    spawned = [e["pid"] for e in run.events if e["event"] == "worker.spawned"]
    assert len(spawned) == 5  # chat was killed and spawned again, rerank restarted
    restarted = [e for e in run.events if e["event"] == "worker.restarted"]
    assert [(e["role"], e["pid"]) for e in restarted] == [("rerank", spawned[-1])]
    assert {proc.pid for proc in run.worker_procs} >= set(spawned)
    assert finished.left == []


def test_json_event_names_are_dotted_and_sentences_have_a_field_of_their_own(
    finished: _Ended,
) -> None:
    """With --json every event name is a dotted identifier; the narration is in ``message``."""
    events = finished.run.events
    assert finished.returncode == 0, finished.stderr
    names = [event["event"] for event in events]
    assert [name for name in names if not _DOTTED.fullmatch(name)] == []
    steps = [e for e in events if e["event"] == "step.started"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(e["message"].startswith(f"Step {e['step']}: ") for e in steps)
    assert steps[0]["message"].endswith("each worker is spawned by its first request")
    passed = [e for e in events if e["event"] == "expect.passed"]
    assert len(passed) == 13
    assert all(e["message"] == f"expected: {e['expectation']}" for e in passed)
    assert events[0]["event"] == "demo.started"
    assert events[0]["message"].startswith("The demo starts")


def test_duration_alone_scales_the_interval_to_fit(finished: _Ended) -> None:
    """`demo --duration 5` picks an interval that lets the whole scenario pass in time."""
    started = finished.run.events[0]
    # 5 s / (2 x 11 intervals), in whole hundredths: every figure from it reads cleanly.
    assert (started["interval_s"], started["call_timeout_s"], started["max_idle_s"]) == (
        0.22,
        0.11,
        0.66,
    )
    assert finished.returncode == 0
    assert finished.summary is not None and finished.summary["passed"] is True
    assert finished.left == []


def test_json_figures_have_three_significant_digits(finished: _Ended) -> None:
    """Every duration in every event, the library's and the summary's too, is rounded alike."""

    def durations(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
        if isinstance(value, float) and key.endswith("_s"):
            yield key, value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from durations(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from durations(v, key)

    found = [pair for event in finished.run.events for pair in durations(event)]
    assert {"last_loop_lag_s", "max_tick_duration_s", "elapsed_s", "idle_s"} <= {
        key for key, _ in found
    }
    too_precise = [
        (key, value)
        for key, value in found
        if value != 0 and value != round(value, 2 - math.floor(math.log10(abs(value))))
    ]
    assert too_precise == []


def test_a_ctrl_c_after_the_summary_changes_nothing(finished: _Ended) -> None:
    """SIGINT once the summary is out: exit 0 as the summary says, and nothing on stderr."""
    assert finished.returncode == 0
    # Not "Exception ignored in threading._shutdown ... KeyboardInterrupt".
    assert finished.stderr == ""


# -- a run to the end, in a terminal -------------------------------------------------


def test_demo_prints_colored_text_in_a_terminal(in_a_terminal: _Terminal) -> None:
    """In a terminal the demo narrates in colored text and ends with its health table."""
    text = in_a_terminal.text
    assert in_a_terminal.returncode == 0, text
    assert "\x1b[" in text
    for expected in ("Step 1", "Step 4", "Health at the end", "Ticker counters", "PASS"):
        assert expected in text
    assert "The demo passed" in text
    assert "FAIL " not in text


def test_a_sigterm_after_the_summary_changes_nothing(in_a_terminal: _Terminal) -> None:
    """SIGTERM once "The demo passed" is out: exit 0, and no traceback or ignored exception."""
    assert in_a_terminal.returncode == 0
    for noise in ("Traceback", "Exception ignored", "KeyboardInterrupt", "Terminated"):
        assert noise not in in_a_terminal.text


def test_text_figures_have_three_significant_digits(in_a_terminal: _Terminal) -> None:
    """In the narration, the log fields and the summary, no figure has more than 3 digits."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", in_a_terminal.text)
    lines = [line for line in plain.splitlines() if line.strip()]
    # The first column of a log line is the time since the start, to the millisecond.
    figures = [
        number
        for line in lines
        for number in _DECIMAL.findall(re.sub(r"^\s*\d+\.\d{3}s ", "", line))
    ]
    assert len(figures) > 20
    assert [number for number in figures if _significant_digits(number) > 3] == []
    assert "last_loop_lag_s=" in plain and "max_tick_duration_s=" in plain


# -- runs that a signal ends ------------------------------------------------------------


def test_ctrl_c_stops_the_demo_within_a_second_without_orphans(
    tmp_path: pathlib.Path,
) -> None:
    """SIGINT while a worker is frozen ends the demo within a second, with status 130."""
    ended = _signal_when_frozen(tmp_path, signal.SIGINT)
    events = ended.run.events

    assert ended.returncode == 130, ended.stderr
    assert ended.stopped_in < 1.0
    assert events[-1]["event"] == "demo.interrupted"
    assert events[-1]["signal"] == "SIGINT"
    assert "Traceback" not in ended.stderr
    assert ended.left == []


def test_sigterm_stops_the_demo_like_ctrl_c_and_exits_143(tmp_path: pathlib.Path) -> None:
    """SIGTERM while a worker is frozen stops everything, says so, and exits with status 143."""
    ended = _signal_when_frozen(tmp_path, signal.SIGTERM)

    assert ended.returncode == 143, ended.stderr
    assert ended.stopped_in < 1.0
    last = ended.run.events[-1]
    assert last["event"] == "demo.interrupted" and last["signal"] == "SIGTERM"
    assert "the ticker, every worker process and the loop are stopped" in last["message"]
    assert "Traceback" not in ended.stderr
    assert ended.left == []


def test_killing_the_demo_with_sigkill_leaves_no_orphan_workers(tmp_path: pathlib.Path) -> None:
    """SIGKILL of the demo while a worker is frozen still ends every worker process."""
    ended = _signal_when_frozen(tmp_path, signal.SIGKILL)
    assert len(ended.run.worker_procs) >= 4  # three workers and the resource tracker
    assert ended.left == []


def test_ctrl_c_as_soon_as_the_demo_starts_prints_no_traceback(
    demo: Callable[..., _Demo],
) -> None:
    """SIGINT right at the demo's first event, while it is still starting up, exits 130 quietly.

    A second SIGINT once it has said so changes nothing either.
    """
    run = demo(*_FAST)
    run.wait_for(lambda event: event["event"] == "demo.started")
    run.process.send_signal(signal.SIGINT)
    run.wait_for(lambda event: event["event"] == "demo.interrupted")
    run.process.send_signal(signal.SIGINT)
    returncode, stderr = run.finish()

    assert returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr == ""
    assert run.events[-1]["event"] == "demo.interrupted"
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


# -- where the output goes ---------------------------------------------------------------


def test_demo_plays_on_quietly_when_its_reader_goes_away(tmp_path: pathlib.Path) -> None:
    """Piped to a reader that stops early (``| head``), the demo still finishes with status 0."""
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [*_DEMO, *_FAST], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        assert process.stdout is not None
        try:
            assert process.stdout.readline()
        finally:
            process.stdout.close()  # what head does after its lines
        returncode = process.wait(_BOUND_S)
        stderr.seek(0)
        errors = stderr.read()
    assert returncode == 0, errors
    assert errors == ""


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_an_output_that_cannot_be_written_stops_the_demo_with_status_74(
    as_json: bool, tmp_path: pathlib.Path
) -> None:
    """To /dev/full the demo stops at its first line, says why in one line, and exits 74."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*_DEMO, *_FAST, *(["--json"] if as_json else [])],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=_BOUND_S,
            check=False,
        )
    assert done.returncode == 74, done.stderr
    assert done.stderr.splitlines() == [
        "lilbee-ticker demo: cannot write to standard output ([Errno 28] No space left on "
        "device): the demo stopped early, and so did everything it had started; exit status 74"
    ]


def test_a_closed_output_stops_the_demo_before_it_starts_with_status_74() -> None:
    """With standard output closed (``>&-``) the demo starts nothing, says so, and exits 74."""
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *_DEMO, *_FAST],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=_BOUND_S,
        check=False,
    )
    assert done.returncode == 74, done.stderr
    assert done.stderr == (
        "lilbee-ticker demo: cannot write to standard output: it is closed; nothing was started\n"
    )


# -- a run that fails ------------------------------------------------------------------


def test_a_scenario_that_runs_out_of_time_exits_1(demo: Callable[..., _Demo]) -> None:
    """When an expected event does not come within --duration, the demo says so and exits 1."""
    # The least duration the scenario accepts for this interval: it counts the
    # ticks the scenario needs, and the workers take time to spawn on top.
    least = minimum_duration_s(0.2, 0.6)  # the default --max-idle for this interval
    run = demo("--interval", "0.2", "--duration", f"{least:g}")
    summary = run.wait_for(lambda event: event["event"] == "demo.summary")
    returncode, stderr = run.finish()

    assert returncode == 1
    assert summary["passed"] is False
    assert "FAILED" in stderr and "ran out of time" in stderr
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


# -- the command line, in this process ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (
            ["demo", "--interval", "soon"],
            "argument --interval: expected a number of seconds from 0.1 to 86400, got 'soon'",
        ),
        (
            ["demo", "--interval", "0"],
            "argument --interval: expected a number of seconds from 0.1 to 86400, got '0'",
        ),
        (
            ["demo", "--interval", "-1"],
            "argument --interval: expected a number of seconds from 0.1 to 86400, got '-1'",
        ),
        (
            ["demo", "--interval", "0.05"],
            "argument --interval: expected a number of seconds from 0.1 to 86400, got '0.05'",
        ),
        (
            ["demo", "--duration", "inf"],
            "argument --duration: expected a number of seconds from the least time the "
            "scenario takes to 86400, got 'inf'",
        ),
        (
            ["demo", "--max-idle", "1"],
            "argument --max-idle: expected a number of seconds from 2 to 86400, got 1. The "
            "least is twice the interval, which is 1 (the default: --interval was not given)",
        ),
        (
            ["demo", "--max-idle", "0.5"],
            "argument --max-idle: expected a number of seconds from 2 to 86400, got 0.5.",
        ),
        (
            ["demo", "--interval", "0.3", "--max-idle", "0.5"],
            "from 0.6 to 86400, got 0.5. The least is twice the interval, which is 0.3 "
            "(--interval 0.3)",
        ),
        (
            ["demo", "--duration", "5", "--max-idle", "0.3"],
            "from 0.44 to 86400, got 0.3. The least is twice the interval, which is 0.22 "
            "(picked to fit --duration 5)",
        ),
        (
            ["demo", "--duration", "0.9"],
            "argument --duration: expected a number of seconds from 1 to 86400, got 0.9. The "
            "least is the time the scenario takes, in ticks, with an interval of 0.1 (picked to "
            "fit --duration 0.9, at least 0.1) and a max idle of 0.3 (3 x the interval, the "
            "default).",
        ),
        (
            ["demo", "--interval", "0.2", "--duration", "1.9"],
            "argument --duration: expected a number of seconds from 2 to 86400, got 1.9. "
            "The least is the time the scenario takes, in ticks, with an interval of 0.2 "
            "(--interval 0.2) and a max idle of 0.6 (3 x the interval, the default).",
        ),
        (
            ["demo", "--duration", "100000"],
            "expected a number of seconds from 10 to 86400, got 100000. The least is the time "
            "the scenario takes, in ticks, with an interval of 1 (picked to fit --duration "
            "100000, at most 1)",
        ),
        (["demo", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_get_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad argument exits with status 2 and a message that names it, its value and range."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_option_of_the_demo_shows_the_demo_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`demo --bogus` is the demo's error, with the demo's usage, not the top-level one."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lilbee-ticker demo ")
    assert err.splitlines()[-1] == "lilbee-ticker demo: error: unrecognized arguments: --bogus"


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the demo's options and --version prints the version."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--interval", "--max-idle", "--duration", "--json", "exit status", "74"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"lilbee-ticker {__version__}"


def test_ctrl_c_while_the_command_imports_the_library_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C while main() imports the demo (and the library) is status 130, no traceback."""
    import builtins

    real_import = builtins.__import__

    def interrupted_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "lilbee_ticker.demo":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err == ""


def test_importing_the_package_defers_the_heavy_imports() -> None:
    """`import lilbee_ticker` loads neither asyncio nor structlog: a Ctrl-C then is main()'s."""
    script = (
        "import sys, lilbee_ticker\n"
        "print(sorted(m for m in ('asyncio', 'structlog') if m in sys.modules))\n"
        "lilbee_ticker.HealthTicker\n"
        "print(sorted(m for m in ('asyncio', 'structlog') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['asyncio', 'structlog']"]
