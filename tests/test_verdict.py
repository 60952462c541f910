"""What a tick means, decided from plain values: no threads, no loops."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from lilbee_ticker import CallTimeoutError, LoopUnresponsiveError
from lilbee_ticker._outcome import NotAlive
from lilbee_ticker._verdict import Ending, TickRecord, decide


def _record(**overrides: Any) -> TickRecord:
    fields: dict[str, Any] = {
        "number": 7,
        "started_at": 1000.0,
        "duration_s": 0.01,
        "ending": Ending.FINISHED,
        "registered": ("embed", "chat"),
        "live": ("embed", "chat"),
        "reap_done": True,
        "outcomes": {"embed": 0.002, "chat": 0.003},
        "loop_lag_s": 0.0001,
    }
    fields.update(overrides)
    return TickRecord(**fields)


def test_a_clean_tick_is_ok_with_its_latencies() -> None:
    """Every ping succeeded: an ok report with each latency and the loop's lag."""
    report = decide(_record())
    assert report.ok and not report.interrupted
    assert report.pinged == ("embed", "chat")
    assert dict(report.latencies) == {"embed": 0.002, "chat": 0.003}
    assert report.loop_lag_s == 0.0001 and report.number == 7


def test_each_outcome_lands_where_it_belongs() -> None:
    """A latency is pinged, an exception failed, NOT_ALIVE gone; a survey failure is failed too."""
    timeout = CallTimeoutError("ping_role('chat')", 0.2)
    report = decide(
        _record(
            registered=("embed", "chat", "rerank", "vision"),
            live=("embed", "chat", "rerank"),
            outcomes={"embed": 0.001, "chat": timeout, "rerank": NotAlive.NOT_ALIVE},
            survey_failures={"vision": KeyError("vision")},
        )
    )
    assert report.pinged == ("embed",)
    assert report.gone == ("rerank",)
    assert report.failed["chat"] is timeout
    assert isinstance(report.failed["vision"], KeyError)
    assert not report.ok


def test_a_stop_interrupts_and_blames_no_unfinished_ping() -> None:
    """Pings with no outcome when the ticker stopped are cancellations; the tick is interrupted."""
    report = decide(_record(ending=Ending.STOPPED, outcomes={"embed": 0.001, "chat": None}))
    assert report.interrupted and not report.ok
    assert isinstance(report.failed["chat"], concurrent.futures.CancelledError)
    assert "the ticker stopped" in str(report.failed["chat"])
    assert report.pinged == ("embed",)


def test_a_gone_runtime_interrupts_and_blames_no_one() -> None:
    """A runtime that went away mid-tick interrupts it; the unfinished calls are cancellations."""
    report = decide(
        _record(ending=Ending.RUNTIME_GONE, reap_done=False, outcomes={}, reap_error=None)
    )
    assert report.interrupted
    assert report.reap_error is None and report.loop_error is None
    assert report.failed == {}


@pytest.mark.parametrize("stage", ["start", "reap", "pings"])
def test_a_stalled_loop_is_a_loop_error_charged_to_no_role(stage: str) -> None:
    """The loop missed a deadline: a LoopUnresponsiveError, and no unfinished call is a failure."""
    record = _record(
        ending=Ending.LOOP_STALLED,
        stall_stage=stage,
        waited_s=1.2,
        registered=None if stage == "start" else ("embed", "chat"),
        live=None if stage == "start" else ("embed", "chat"),
        reap_done=stage == "pings",
        outcomes={"embed": 0.001, "chat": None} if stage == "pings" else {},
    )
    report = decide(record)
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert report.loop_error.stage == stage and report.loop_error.waited_s == 1.2
    assert "chat" not in report.failed
    assert report.reap_error is None and report.snapshot_error is None
    assert not report.interrupted and not report.ok and not report.skipped


def test_a_cancelled_future_is_interrupted_not_an_error() -> None:
    """The runtime cancelled the tick as it shut down: interrupted, not a pool failure."""
    report = decide(
        _record(
            cancelled=True,
            escaped=concurrent.futures.CancelledError(),
            outcomes={"embed": asyncio.CancelledError(), "chat": None},
        )
    )
    assert report.interrupted
    assert report.snapshot_error is None and report.reap_error is None


def test_an_escaped_exception_is_charged_to_the_step_it_cut_short() -> None:
    """A tick coroutine that ended on an exception charges it to the step it did not finish."""
    bug = RuntimeError("boom")
    assert decide(_record(escaped=bug, live=None, registered=None)).snapshot_error is bug
    assert decide(_record(escaped=bug, reap_done=False, outcomes={})).reap_error is bug
    report = decide(_record(escaped=bug, outcomes={"embed": 0.001, "chat": None}))
    assert report.failed["chat"] is bug


def test_recorded_errors_stand_as_they_are() -> None:
    """Errors the loop recorded (survey, reap) are reported as recorded."""
    survey = TypeError("registered_roles must give an iterable of role names")
    report = decide(_record(live=None, registered=None, snapshot_error=survey, outcomes={}))
    assert report.snapshot_error is survey and not report.ok and not report.skipped
    still = CallTimeoutError("reap_idle()", 0.2, still_running=True)
    assert decide(_record(reap_error=still)).reap_error is still


def test_nothing_alive_is_a_skipped_tick() -> None:
    """A survey that found nothing alive is a skipped tick, and ok."""
    report = decide(_record(live=(), outcomes={}))
    assert report.skipped and report.ok


def test_no_cancellation_in_an_interrupted_tick_is_evidence() -> None:
    """In an interrupted tick an asyncio.CancelledError outcome is no one's failure."""
    report = decide(
        _record(ending=Ending.STOPPED, outcomes={"embed": asyncio.CancelledError(), "chat": 0.1})
    )
    error = report.failed["embed"]
    assert isinstance(error, concurrent.futures.CancelledError)
    assert "was cancelled: the ticker stopped" in str(error)


def test_a_tick_stopped_at_its_gate_is_interrupted() -> None:
    """A tick that skipped a step because the ticker gave up is interrupted, never ok."""
    report = decide(_record(gated=True, outcomes={}))
    assert report.interrupted and not report.ok


def test_a_loop_that_woke_late_for_a_deadline_is_the_loops_error() -> None:
    """A late wake-up recorded on the loop becomes the loop's error, charged to no role."""
    report = decide(_record(loop_late=("pings", 0.4), outcomes={"embed": 0.001, "chat": None}))
    assert isinstance(report.loop_error, LoopUnresponsiveError)
    assert report.loop_error.stage == "pings" and report.loop_error.waited_s == 0.4
    assert "chat" not in report.failed
