"""Figures as a person reads them: a duration has three significant digits, everywhere.

The demo's sentences, its log fields (the library's own events included), its
summary and its JSON lines all round a duration in seconds the same way, so
one figure never shows as ``0.22727272727272727`` in one place and ``0.227``
in another. Timestamps (seconds since the epoch) keep millisecond precision.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["round_figures", "seconds", "seconds_text"]


def seconds(value: float) -> float:
    """Round a duration in seconds to three significant digits: 0.000353, 0.114, 3.79, 86400."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, _decimals(value))


def seconds_text(value: float) -> str:
    """Write a duration in seconds with three significant digits, never in exponent form."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    text = f"{seconds(value):.{max(_decimals(value), 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def round_figures(value: Any, key: str = "", *, as_text: bool = False) -> Any:
    """Round every figure in a log event's ``value``, found by its key's name.

    A float under a key ending in ``_s`` is a duration: three significant
    digits (as text when ``as_text``). One ending in ``_at``, or ``since``,
    is a timestamp: milliseconds. Mappings, lists and tuples are walked.
    """
    if isinstance(value, float):
        if key.endswith("_s"):
            return seconds_text(value) if as_text else seconds(value)
        if key.endswith("_at") or key == "since":
            return round(value, 3)
        return value
    if isinstance(value, dict):
        return {k: round_figures(v, str(k), as_text=as_text) for k, v in value.items()}
    if isinstance(value, list):
        return [round_figures(v, key, as_text=as_text) for v in value]
    if isinstance(value, tuple):
        return tuple(round_figures(v, key, as_text=as_text) for v in value)
    return value


def _decimals(value: float) -> int:
    # 2 for 1 <= |value| < 10, 3 below 1, and negative (whole tens) from 1000 up.
    return 2 - math.floor(math.log10(abs(value)))
