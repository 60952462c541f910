"""TickReport: an immutable record with derived skipped and ok flags."""

from __future__ import annotations

import dataclasses
import types

import pytest

from lilbee_ticker import CallTimeoutError, TickReport


def _report(**fields: object) -> TickReport:
    return TickReport(number=1, started_at=0.0, duration_s=0.0, **fields)  # type: ignore[arg-type]


def test_defaults_describe_a_skipped_ok_tick() -> None:
    """A report with nothing live is skipped and ok."""
    report = _report()
    assert report.skipped
    assert report.ok
    assert report.failed == {}
    assert report.latencies == {}


@pytest.mark.parametrize(
    ("fields", "skipped"),
    [
        ({"failed": types.MappingProxyType({"a": RuntimeError()}), "live": ("a",)}, False),
        ({"reap_error": RuntimeError(), "live": ("a",)}, False),
        ({"snapshot_error": CallTimeoutError("the survey", 1.0)}, False),
        ({"interrupted": True}, False),
    ],
)
def test_any_problem_makes_it_not_ok(fields: dict[str, object], skipped: bool) -> None:
    """A failed ping, a reap error, a snapshot error or an interruption each make ok False."""
    report = _report(**fields)
    assert not report.ok
    assert report.skipped is skipped


def test_is_frozen() -> None:
    """Reports cannot be changed after the fact."""
    report = _report()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.number = 2  # type: ignore[misc]


def test_fields_are_keyword_only() -> None:
    """Fields are keyword-only, so adding one later breaks no caller."""
    with pytest.raises(TypeError):
        TickReport(1, 0.0, 0.0)  # type: ignore[misc]
