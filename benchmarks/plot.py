"""The cadence plot: each contender's drift and period error, tick by tick (needs matplotlib)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

__all__ = ["plot_cadence"]


def plot_cadence(report: Mapping[str, Any], path: pathlib.Path) -> None:
    """Draw the cadence section of ``report`` into a PNG at ``path``.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never look for a display
    import matplotlib.pyplot as plt

    section = report["sections"]["cadence"]
    interval_ms = section["interval_ms"]
    drift, errors = section["series"]["drift_ms"], section["series"]["period_error_ms"]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(9.0, 7.0), sharex=True, constrained_layout=True
    )
    for contender in report["contenders"]:
        key, label = contender["key"], contender["label"]
        top.plot(range(len(drift[key])), drift[key], label=label, linewidth=1.2)
        bottom.plot(range(1, len(errors[key]) + 1), errors[key], label=label, linewidth=0.7)
    for sign in (1, -1):
        top.axhline(sign * interval_ms, color="grey", linestyle="--", linewidth=0.8)
    top.set_yscale("symlog", linthresh=1.0)
    top.set_ylabel("drift from t0 + k·interval (ms, symlog)")
    top.set_title(
        f"Cadence: {interval_ms:g} ms interval, one {report['sizes']['cadence_work_s'] * 1e3:g} ms "
        "ping per tick (dashed: ± one interval)"
    )
    top.legend(loc="lower right", ncol=2)  # below zero drift is empty
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set_ylabel("period error t(k) - t(k-1) - interval (ms)")
    bottom.set_xlabel("tick k")
    machine = report["machine"]
    figure.text(
        0.99,
        0.005,
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['python']}, {machine['date']}",
        ha="right",
        va="bottom",
        fontsize=7,
        color="grey",
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
