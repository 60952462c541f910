"""``python -m benchmarks``: run every benchmark, then write the JSON, the Markdown and the plot.

Usage::

    python -m benchmarks                 # the full run: a few minutes on 2 cores
    python -m benchmarks --quick         # tiny sizes, seconds; no plot
    python -m benchmarks --out DIR       # write somewhere other than benchmarks/results
    python -m benchmarks --recovery      # only detection and recovery, real processes; print it
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from benchmarks import recovery
from benchmarks.contenders import CONTENDERS
from benchmarks.measure import FULL, QUICK, Bench, Sizes, run_all
from benchmarks.report import build, write
from benchmarks.system import machine

__all__ = ["main"]

_RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _quiet_logging() -> None:
    """Configure logging as a production application would: warnings show, per-tick debug does not.

    HealthTicker logs one debug event per tick. Unconfigured, structlog would
    print it, and the benchmark would time a terminal.
    """
    structlog.configure(
        # The recovery section's ticker and pool fail on purpose: their warnings are expected.
        processors=[recovery.hush_expected, *structlog.get_config()["processors"]],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # While a ping hangs, APScheduler warns at every interval that it skips the
    # run because the previous one is still going: expected here.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def _recovery(sizes: Sizes, progress: Callable[[str], None]) -> dict[str, Any]:
    return recovery.measure(
        sizes.recovery_trials,
        sizes.recovery_interval_s,
        sizes.recovery_call_timeout_s,
        sizes.recovery_failure_threshold,
        progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the benchmarks and write the results; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure HealthTicker against the designs people would otherwise use.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: every section and contender in seconds, no plot unless --plot",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=_RESULTS,
        metavar="DIR",
        help="where to write latest.json, latest.md and cadence.png (default: %(default)s)",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="draw the cadence plot in a --quick run too (the full run always does)",
    )
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="run only the recovery section (real worker processes, about 40 s; with --quick, "
        "seconds) and print its table; writes nothing",
    )
    args = parser.parse_args(argv)
    if args.recovery:
        _quiet_logging()
        sizes = QUICK if args.quick else FULL
        began = time.perf_counter()
        section = _recovery(sizes, lambda line: print(line, file=sys.stderr, flush=True))
        print("\n".join(recovery.render_markdown(section)))
        print(f"\n({time.perf_counter() - began:.1f} s)")
        return 0
    if importlib.util.find_spec("apscheduler") is None:
        parser.error("APScheduler 3.x is a contender: pip install 'apscheduler>=3.10,<4'")
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    if args.plot and not has_matplotlib:
        parser.error("--plot needs matplotlib: pip install matplotlib")

    _quiet_logging()
    sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    started = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {line}", file=sys.stderr, flush=True)

    about = machine()
    with Bench(sizes, CONTENDERS, progress) as bench:
        sections = run_all(bench)
    recovered = _recovery(sizes, progress)
    report = build(
        machine=about,
        mode=mode,
        sizes=sizes,
        contenders=CONTENDERS,
        sections=sections,
        notes=bench.notes,
        elapsed_s=time.perf_counter() - started,
        recovery=recovered,
    )
    out: pathlib.Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.plot or not args.quick:
        if has_matplotlib:
            from benchmarks.plot import plot_cadence

            plot_cadence(report, out / "cadence.png")
            report["plot"] = "cadence.png"
        else:
            report["notes"].append("matplotlib is not installed: no cadence plot was drawn")
    json_path, markdown_path = write(report, out)

    for target in report["targets"]:
        verdict = "holds" if target["holds"] else "DOES NOT HOLD"
        print(f"{verdict:>13}: {target['name']}: {target['measured']}")
    for figure in report["figures"]:
        verdict = "met" if figure["met"] else "NOT MET"
        print(
            f"{verdict:>13}: {figure['name']}: {figure['measured']} against "
            f"{figure['floor']}: {figure['ratio']:.2f}x (goal {figure['goal']})"
        )
    for row in recovered["rows"]:
        print(
            f"{'recovery':>13}: {row['metric']}: median {row['median_ms']:g} ms, "
            f"max {row['max_ms']:g} ms; ÷ bound ({row['bound']}): "
            f"{row['median_ratio']:.3f} median, {row['max_ratio']:.3f} max"
        )
    print(f"wrote {json_path} and {markdown_path}" + (" and the plot" if report["plot"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
