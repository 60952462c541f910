"""``python -m lilbee_ticker demo``: it plays, passes, stops on Ctrl-C and leaves no process.

The demo runs in a subprocess with a short interval (a whole scenario takes
about three seconds). Its JSON lines are read as they come, so each test
acts on what the demo says it did, not after a guessed delay.
"""

from __future__ import annotations

import json
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
from collections.abc import Callable
from typing import Any

import pytest

from lilbee_ticker import __version__
from lilbee_ticker.__main__ import main
from tests import _proctable as proctable

pytestmark = proctable.linux_only

Event = dict[str, Any]

_DEMO = [sys.executable, "-W", "error", "-m", "lilbee_ticker", "demo"]
_FAST = ["--interval", "0.2", "--duration", "30"]
_BOUND_S = 30.0  # generous: only a failing test waits this long
# An event name as the library's own: lowercase words joined by dots (expect.passed).
_DOTTED = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class _Demo:
    """The demo in a subprocess with ``--json``; a thread reads its events as they come.

    Each time a worker is spawned, the reader also records the demo's
    children from the process table (the workers and multiprocessing's
    resource tracker), so the test can check afterwards that none is left.
    """

    def __init__(self, tmp_path: pathlib.Path, *args: str) -> None:
        self._stderr = (tmp_path / "stderr.txt").open("w+", encoding="utf-8")
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


@pytest.fixture
def demo(tmp_path: pathlib.Path) -> Any:
    """Start demos with ``demo(*args)``; each is killed after the test if still running."""
    started: list[_Demo] = []

    def start(*args: str) -> _Demo:
        started.append(_Demo(tmp_path, *args))
        return started[-1]

    yield start
    for each in started:
        each.close()


def _frozen(event: Event) -> bool:
    return event["event"] == "role.failing" and event["role"] == "rerank"


def test_demo_plays_its_scenario_and_exits_0(demo: Any) -> None:
    """The demo's every expectation holds, it exits 0, and all its processes are gone after."""
    run = demo(*_FAST)
    summary = run.wait_for(lambda event: event["event"] == "demo.summary")
    returncode, stderr = run.finish()

    assert returncode == 0, stderr
    assert summary["passed"] is True
    failed = [e for e in summary["expectations"] if not e["passed"]]
    assert failed == []
    assert len(summary["expectations"]) == 10
    statuses = {role: record["status"] for role, record in summary["health"].items()}
    assert statuses == {"embed": "down", "chat": "healthy", "rerank": "healthy"}
    assert summary["stats"]["roles_reaped"] == 1
    assert summary["stats"]["timeouts"] >= 3
    spawned = [e["pid"] for e in run.events if e["event"] == "worker.spawned"]
    assert len(spawned) == 4  # chat was killed and spawned again
    assert {proc.pid for proc in run.worker_procs} >= set(spawned)
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


def test_json_event_names_are_dotted_and_sentences_have_a_field_of_their_own(demo: Any) -> None:
    """With --json every event name is a dotted identifier; the narration is in ``message``."""
    run = demo(*_FAST)
    run.wait_for(lambda event: event["event"] == "demo.summary")
    returncode, stderr = run.finish()

    assert returncode == 0, stderr
    names = [event["event"] for event in run.events]
    assert [name for name in names if not _DOTTED.fullmatch(name)] == []
    steps = [e for e in run.events if e["event"] == "step.started"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5]
    assert all(e["message"].startswith(f"Step {e['step']}: ") for e in steps)
    passed = [e for e in run.events if e["event"] == "expect.passed"]
    assert len(passed) == 10
    assert all(e["message"] == f"expected: {e['expectation']}" for e in passed)
    assert run.events[0]["event"] == "demo.started"
    assert run.events[0]["message"].startswith("The demo starts")


def test_demo_prints_colored_text_in_a_terminal(tmp_path: pathlib.Path) -> None:
    """In a terminal the demo narrates in colored text and ends with its health table."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*_DEMO, *_FAST], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    chunks = []
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
        returncode = process.wait(_BOUND_S)
    finally:
        os.close(controller)
        process.kill()
        process.wait(_BOUND_S)
    text = b"".join(chunks).decode()
    assert returncode == 0, text
    assert "\x1b[" in text
    for expected in ("Step 1", "Step 5", "Health at the end", "Ticker counters", "PASS"):
        assert expected in text
    assert "The demo passed" in text
    assert "FAIL " not in text


def test_ctrl_c_stops_the_demo_within_a_second_without_orphans(demo: Any) -> None:
    """SIGINT while a worker is frozen ends the demo within a second, with status 130."""
    run = demo(*_FAST)
    run.wait_for(_frozen)
    procs = run.worker_procs
    start = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    returncode, stderr = run.finish()
    stopped_in = time.monotonic() - start

    assert returncode == 130, stderr
    assert stopped_in < 1.0
    assert run.events[-1]["event"] == "demo.interrupted"
    assert run.events[-1]["signal"] == "SIGINT"
    assert "Traceback" not in stderr
    assert proctable.wait_until_exited(procs, timeout=5.0) == []


def test_sigterm_stops_the_demo_like_ctrl_c_and_exits_143(demo: Any) -> None:
    """SIGTERM while a worker is frozen stops everything, says so, and exits with status 143."""
    run = demo(*_FAST)
    run.wait_for(_frozen)
    procs = run.worker_procs
    start = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    returncode, stderr = run.finish()
    stopped_in = time.monotonic() - start

    assert returncode == 143, stderr
    assert stopped_in < 1.0
    last = run.events[-1]
    assert last["event"] == "demo.interrupted" and last["signal"] == "SIGTERM"
    assert "the ticker, every worker process and the loop are stopped" in last["message"]
    assert "Traceback" not in stderr
    assert proctable.wait_until_exited(procs, timeout=5.0) == []


def test_ctrl_c_as_soon_as_the_demo_starts_prints_no_traceback(demo: Any) -> None:
    """SIGINT right at the demo's first event, while it is still starting up, exits 130 quietly."""
    run = demo(*_FAST)
    run.wait_for(lambda event: event["event"] == "demo.started")
    run.process.send_signal(signal.SIGINT)
    returncode, stderr = run.finish()

    assert returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert run.events[-1]["event"] == "demo.interrupted"
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


def test_killing_the_demo_with_sigkill_leaves_no_orphan_workers(demo: Any) -> None:
    """SIGKILL of the demo while a worker is frozen still ends every worker process."""
    run = demo(*_FAST)
    run.wait_for(_frozen)
    procs = run.worker_procs
    assert len(procs) >= 4  # three workers and the resource tracker
    run.process.kill()
    run.finish()
    assert proctable.wait_until_exited(procs, timeout=5.0) == []


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


def test_a_scenario_that_runs_out_of_time_exits_1(demo: Any) -> None:
    """When an expected event does not come within --duration, the demo says so and exits 1."""
    # The least duration the scenario accepts for this interval: it counts the
    # ticks the scenario needs, and the workers take time to spawn on top.
    run = demo("--interval", "0.2", "--duration", "2.2")
    summary = run.wait_for(lambda event: event["event"] == "demo.summary")
    returncode, stderr = run.finish()

    assert returncode == 1
    assert summary["passed"] is False
    assert "FAILED" in stderr and "ran out of time" in stderr
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["demo", "--interval", "soon"], "argument --interval: expected a number of seconds"),
        (["demo", "--interval", "0"], "argument --interval: expected a number of seconds > 0"),
        (["demo", "--interval", "0.01"], "argument --interval: must be at least 0.1, got 0.01"),
        (["demo", "--duration", "inf"], "argument --duration: expected a number of seconds > 0"),
        (["demo", "--max-idle", "1"], "argument --max-idle: must be at least twice --interval"),
        (["demo", "--duration", "1"], "argument --duration: must be at least 1.1 (the scenario"),
        (
            ["demo", "--interval", "0.2", "--duration", "2.1"],
            "argument --duration: must be at least 2.2 (the scenario",
        ),
        (["demo", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_get_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad argument exits with status 2 and a message that names it."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the demo's options and --version prints the version."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--interval", "--max-idle", "--duration", "--json", "exit status"):
        assert option in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"lilbee-ticker {__version__}"


def test_duration_alone_scales_the_interval_to_fit(demo: Any) -> None:
    """`demo --duration 5` picks an interval that lets the whole scenario pass in time."""
    run = demo("--duration", "5")
    summary = run.wait_for(lambda event: event["event"] == "demo.summary")
    returncode, _ = run.finish()
    assert returncode == 0
    assert summary["passed"] is True
    assert proctable.wait_until_exited(run.worker_procs, timeout=5.0) == []


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
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["[]", "['asyncio', 'structlog']"]
