"""`python -m benchmarks --quick` runs end to end and writes complete results, so it cannot rot.

These tests check the shape of the results, never a time: CI machines are
too noisy for that. The published figures come from a full run on a known
machine (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

SECTIONS = (
    "floor",
    "tick_duration",
    "overhead",
    "cadence",
    "stall",
    "stop_latency",
    "idle_cost",
    "scale",
)
CONTENDERS = {
    "health_ticker": "HealthTicker",
    "bare": "bare coroutine",
    "asyncio": "asyncio loop",
    "timer": "threading.Timer",
    "apscheduler": "APScheduler",
}

# `python -m benchmarks`, with matplotlib made unimportable first: the quick
# run must not need it (plotting is optional).
_RUN_WITHOUT_MATPLOTLIB = (
    "import runpy, sys; sys.modules['matplotlib'] = None; "
    "runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)"
)

# A quick run takes about eleven seconds on a busy 2-core machine.
_BUDGET_S = 40.0


class QuickRun:
    """The outcome of one quick benchmark run."""

    def __init__(self, done: subprocess.CompletedProcess[str], out: pathlib.Path) -> None:
        self.done = done
        self.out = out

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "latest.json").read_text(encoding="utf-8"))
        return data


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """Run the benchmark entry point once with --quick into a temporary directory."""
    out = tmp_path_factory.mktemp("benchmarks")
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUN_WITHOUT_MATPLOTLIB, "--quick", "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=_BUDGET_S,
        check=False,
    )
    return QuickRun(done, out)


def test_quick_run_succeeds_quietly(quick_run: QuickRun) -> None:
    """The quick run exits 0 without matplotlib and prints no traceback or warning."""
    done = quick_run.done
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    # Python warnings, stdlib logging errors (the harness, APScheduler), structlog errors.
    troubles = ("Traceback", "Exception ignored", "Warning", "ERROR", "CRITICAL", "[error", "[crit")
    for trouble in troubles:
        assert trouble not in done.stderr, done.stderr


def test_every_section_has_every_contender(quick_run: QuickRun) -> None:
    """Each section has rows, and each row has a summary for every contender or says why not."""
    report = quick_run.report
    assert [c["key"] for c in report["contenders"]] == list(CONTENDERS)
    assert report["reference"] == "health_ticker"
    assert tuple(report["sections"]) == SECTIONS
    for name, section in report["sections"].items():
        assert section["rows"], name
        for row in section["rows"]:
            assert set(row["values"]) == set(CONTENDERS), (name, row["id"])
            assert row["values"]["health_ticker"] is not None, (name, row["id"])
            for key, value in row["values"].items():
                if value is None:
                    assert row["note"], f"{name}/{row['id']}: {key} not run and no note says why"
                    continue
                assert {"median", "p99", "n", "ratio", "samples"} <= set(value)
                assert value["n"] == len(value["samples"]) >= 1


def test_tick_durations_cover_each_size(quick_run: QuickRun) -> None:
    """Tick duration has a row for every number of roles and ping time the run used."""
    report = quick_run.report
    sizes = report["sections"]["tick_duration"]
    expected = {
        f"roles{roles}_ping{ping:g}ms"
        for roles in report["sizes"]["roles"]
        for ping in report["sizes"]["ping_ms"]
    }
    assert {row["id"] for row in sizes["rows"]} == expected


def test_floor_runs_health_ticker_and_the_bare_coroutine_only(quick_run: QuickRun) -> None:
    """The floor section has tick() and the bare coroutine at every size, and the 5 ms cell."""
    report = quick_run.report
    sizes = report["sizes"]
    rows = {row["id"]: row for row in report["sections"]["floor"]["rows"]}
    largest = sizes["floor_roles"][-1]
    cells = [f"roles{roles}_instant" for roles in sizes["floor_roles"]]
    cells.append(f"roles{largest}_ping{sizes['floor_ping_ms']:g}ms")
    for cell in cells:
        for row_id in (cell, f"{cell}_loop_cpu"):
            values = rows[row_id]["values"]
            assert values["health_ticker"] is not None, row_id
            assert values["bare"] is not None, row_id
            assert values["timer"] is None, row_id
        assert rows[f"{cell}_loop_busy"]["values"]["health_ticker"] is not None


def test_issue_figures_are_ratios_to_their_floor(quick_run: QuickRun) -> None:
    """The five figures of issue 14 are each judged, as a ratio, in the same run.

    The quick run's sizes are too small for the figures to mean anything, so
    the ratio is only checked to be a number: a per-role cost at tiny sizes
    can even come out below zero, in the noise.
    """
    figures = quick_run.report["figures"]
    assert len(figures) == 5
    for figure in figures:
        assert {"name", "measured", "floor", "ratio", "goal", "met"} <= set(figure)
        assert isinstance(figure["ratio"], (int, float)) and math.isfinite(figure["ratio"])
        assert isinstance(figure["met"], bool)
    markdown = (quick_run.out / "latest.md").read_text(encoding="utf-8")
    assert "## Issue 14's figures, against their floors" in markdown


def test_stop_counts_wakeups_during_a_hung_ping(quick_run: QuickRun) -> None:
    """The app-event stop is measured, with the ticker's wake-ups counted while the ping hangs."""
    rows = {row["id"]: row for row in quick_run.report["sections"]["stop_latency"]["rows"]}
    for row_id in ("hung_app_event", "hung_app_event_cancelled", "hang_wakeups_app_event"):
        assert rows[row_id]["values"]["health_ticker"] is not None, row_id
    assert set(rows["hang_wakeups"]["values"]) == set(CONTENDERS)


def test_stall_times_the_ticks_after_a_blocked_loop(quick_run: QuickRun) -> None:
    """The cadence-under-load section keeps, per design, when each tick after the stall came."""
    stall = quick_run.report["sections"]["stall"]
    ticks = quick_run.report["sizes"]["stall_ticks_after"]
    for key in CONTENDERS:
        runs = stall["offsets_ms"][key]
        assert runs, key
        assert all(len(offsets) == ticks for offsets in runs), key


def test_cadence_keeps_a_series_per_contender(quick_run: QuickRun) -> None:
    """The cadence section keeps every contender's drift series, for the plot."""
    report = quick_run.report
    series = report["sections"]["cadence"]["series"]
    for kind in ("drift_ms", "period_error_ms"):
        assert set(series[kind]) == set(CONTENDERS)
    ticks = report["sizes"]["cadence_ticks"]
    assert all(len(drift) == ticks for drift in series["drift_ms"].values())


def test_machine_and_targets_are_recorded(quick_run: QuickRun) -> None:
    """The report names the machine and the date, and judges each of the issue's six targets."""
    report = quick_run.report
    machine = report["machine"]
    for field in ("date", "cpu_model", "cores", "python", "kernel"):
        assert machine[field], field
    assert len(report["targets"]) == 6
    assert all(isinstance(target["holds"], bool) for target in report["targets"])


def test_markdown_shows_every_section_and_contender(quick_run: QuickRun) -> None:
    """latest.md has the machine, a table per section and a column per contender."""
    markdown = (quick_run.out / "latest.md").read_text(encoding="utf-8")
    report = quick_run.report
    assert report["machine"]["cpu_model"] in markdown
    for section in report["sections"].values():
        assert f"## {section['title']}" in markdown
    for label in CONTENDERS.values():
        assert label in markdown


def test_quick_run_draws_no_plot(quick_run: QuickRun) -> None:
    """Without --plot a quick run draws nothing, so it needs no matplotlib."""
    assert quick_run.report["plot"] is None
    assert not (quick_run.out / "cadence.png").exists()
