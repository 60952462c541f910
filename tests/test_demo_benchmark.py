"""The benchmark of detection and recovery with the demo's real worker processes runs and is whole.

It checks the shape of the figures and that no process is left, never a
time: the published figures come from a full run (docs/performance.md).
"""

from __future__ import annotations

import math
import os

from benchmarks import recovery
from tests import _proctable as proctable

pytestmark = proctable.linux_only

_ROWS = ("kill_on_crash", "kill_cadence", "stop_unhealthy", "recovered", "restart")


def test_the_recovery_section_reports_each_figure_against_its_bound() -> None:
    """One trial gives every figure, in ms and as a ratio to its bound, and leaves no process."""
    others = {proc.pid for proc in proctable.workers_of(os.getpid())}
    lines: list[str] = []

    section = recovery.measure(
        trials=1, interval_s=0.1, call_timeout_s=0.5, failure_threshold=1, progress=lines.append
    )

    assert lines == ["recovery: trial 1 of 1, real worker processes"]
    assert section["config"] == {
        "interval_s": 0.1,
        "call_timeout_s": 0.5,
        "failure_threshold": 1,
        "trials": 1,
    }
    assert tuple(row["id"] for row in section["rows"]) == _ROWS
    for row in section["rows"]:
        assert row["n"] == len(row["samples_ms"]) == len(row["bounds_ms"]) == 1
        for key in ("median_ms", "max_ms", "median_ratio", "max_ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["id"], key)
    markdown = "\n".join(recovery.render_markdown(section))
    assert markdown.startswith(f"## {section['title']}")
    assert markdown.count("\n| ") == 1 + len(_ROWS)  # the header and one line per figure
    # The section closed its pool, which collected every worker: not even a zombie is left.
    assert [proc for proc in proctable.workers_of(os.getpid()) if proc.pid not in others] == []
