"""Whether the ticker itself is alive and seeing, decided from plain values."""

from __future__ import annotations

from typing import Any

import pytest

from lilbee_ticker import HealthStatus, RoleHealth
from lilbee_ticker._liveness import Reading, assess


def _reading(**overrides: Any) -> Reading:
    fields: dict[str, Any] = {
        "records": {"chat": RoleHealth(role="chat", status=HealthStatus.HEALTHY, since=0.0)},
        "loop_stalls_in_row": 0,
        "failure_threshold": 3,
        "started": True,
        "thread_alive": True,
        "stop_requested": False,
        "forked": False,
        "end_reason": None,
        "surveyed_age_s": 1.0,
        "since_first_due_s": 5.0,
        "stale_after_s": 10.0,
    }
    fields.update(overrides)
    return Reading(**fields)


def test_a_running_ticker_that_sees_the_pool_is_healthy_and_ready() -> None:
    """Running, recently surveyed, every role fine: no problem, ready."""
    live = assess(_reading())
    assert live == ("running", None, True, ())


@pytest.mark.parametrize(
    ("overrides", "state", "reason", "ready", "healthy"),
    [
        (
            {"started": False, "thread_alive": False, "surveyed_age_s": None},
            "new",
            None,
            False,
            True,
        ),
        ({"started": False, "thread_alive": False}, "new", None, True, True),  # manual ticks
        ({"thread_alive": False, "end_reason": "stopped"}, "stopped", "stopped", False, True),
        ({"thread_alive": False, "end_reason": "crashed"}, "crashed", "crashed", False, False),
        (
            {"thread_alive": False, "end_reason": "runtime_unavailable"},
            "crashed",
            "runtime_unavailable",
            False,
            False,
        ),
        ({"forked": True}, "crashed", "forked", False, False),
        ({"forked": True, "started": False, "thread_alive": False}, "stopped", None, False, True),
        ({"surveyed_age_s": 11.0}, "running", None, False, False),  # stale
        ({"surveyed_age_s": None, "since_first_due_s": 11.0}, "running", None, False, False),
        ({"surveyed_age_s": None, "since_first_due_s": 0.0}, "running", None, False, True),
        ({"loop_stalls_in_row": 3}, "running", None, True, False),
        ({"loop_stalls_in_row": 2}, "running", None, True, True),
    ],
)
def test_each_way_to_be_unhealthy_or_unready(
    overrides: dict[str, Any], state: str, reason: str | None, ready: bool, healthy: bool
) -> None:
    """The state, reason, readiness and health of each situation, one at a time."""
    live = assess(_reading(**overrides))
    assert (live.state, live.reason, live.ready, not live.problems) == (
        state,
        reason,
        ready,
        healthy,
    )


def test_an_unhealthy_role_is_named_with_its_error() -> None:
    """A role UNHEALTHY is a problem that names it and its last error."""
    record = RoleHealth(
        role="chat", status=HealthStatus.UNHEALTHY, since=0.0, last_error="TimeoutError: slow"
    )
    live = assess(_reading(records={"chat": record}))
    assert live.problems == ("role 'chat' is unhealthy: TimeoutError: slow",)
    assert live.ready  # readiness is about the checks running, not their verdict


def test_a_stopped_ticker_is_not_stale() -> None:
    """Staleness is asked of a running ticker only: an orderly stop keeps the last verdict."""
    live = assess(_reading(thread_alive=False, end_reason="stopped", surveyed_age_s=1e9))
    assert live.problems == () and live.state == "stopped"
