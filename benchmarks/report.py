"""Turn measured samples into the report: summaries, ratios, the issue's targets, JSON, Markdown.

Each cell of a table is the median and the 99th percentile of a
contender's samples, and the ratio of its median to HealthTicker's. Every
metric is lower-is-better unless its row says otherwise, so a ratio above 1
means a figure worse than HealthTicker's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks import recovery as recovery_section
from benchmarks.contenders import Contender
from benchmarks.measure import Section, Sizes

__all__ = [
    "SCHEMA",
    "Figure",
    "Target",
    "build",
    "evaluate_figures",
    "evaluate_targets",
    "percentile",
    "render_markdown",
    "summarize",
    "write",
]

SCHEMA = 2
"""The version of the JSON layout; bump it when a key changes meaning."""

# Samples are kept in the JSON with this many significant digits.
_DIGITS = 6


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile of ``values``, interpolating linearly between ranks."""
    if not values:
        raise ValueError("percentile() of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Sequence[float] | None) -> dict[str, Any] | None:
    """Return the median, p99, count and samples of ``samples``; ``None`` if nothing was run."""
    if not samples:
        return None
    return {
        "median": _round(statistics.median(samples)),
        "p99": _round(percentile(samples, 99.0)),
        "n": len(samples),
        "samples": [_round(value) for value in samples],
    }


def _round(value: float) -> float:
    if value == 0.0 or not math.isfinite(value):
        return value
    return round(value, _DIGITS - 1 - math.floor(math.log10(abs(value))))


@dataclasses.dataclass(frozen=True)
class Target:
    """One of the issue's targets for HealthTicker, and whether this run meets it."""

    name: str
    measured: str
    holds: bool


def _row(sections: Mapping[str, Any], section: str, row_id: str) -> Mapping[str, Any]:
    for row in sections[section]["rows"]:
        if row["id"] == row_id:
            return row  # type: ignore[no-any-return]
    raise KeyError(f"no row {row_id!r} in section {section!r}")


def _cell(sections: Mapping[str, Any], section: str, row_id: str, key: str) -> Mapping[str, Any]:
    value = _row(sections, section, row_id)["values"][key]
    if value is None:
        raise KeyError(f"{key} was not run in {section}/{row_id}")
    return value  # type: ignore[no-any-return]


def evaluate_targets(
    sections: Mapping[str, Any], sizes: Sizes, reference: str, baseline: str
) -> list[Target]:
    """Check the issue's targets for ``reference`` (HealthTicker) against this run's figures.

    Args:
        sections: The ``sections`` of a report built by :func:`build`.
        sizes: The sizes the run used.
        reference: The key of the contender the targets are for.
        baseline: The key of the contender whose no-op overhead it must not exceed.
    """
    targets = []

    slow_ping = max(sizes.ping_ms)
    one = _cell(sections, "tick_duration", f"roles1_ping{slow_ping:g}ms", reference)["median"]
    ratios = {
        roles: _cell(sections, "tick_duration", f"roles{roles}_ping{slow_ping:g}ms", reference)[
            "median"
        ]
        / one
        for roles in sizes.roles
        if roles > 1
    }
    targets.append(
        Target(
            f"Tick time with N concurrent {slow_ping:g} ms pings within 1.5x of one ping",
            "; ".join(f"N={roles}: {ratio:.2f}x" for roles, ratio in ratios.items())
            + f" (one ping: {one:.1f} ms, medians)",
            all(ratio <= 1.5 for ratio in ratios.values()),
        )
    )

    interval_ms = sizes.cadence_interval_s * 1e3
    worst = _cell(sections, "cadence", "drift_max", reference)["median"]
    targets.append(
        Target(
            f"Drift bounded by one interval ({interval_ms:g} ms) over {sizes.cadence_ticks} ticks",
            f"largest |drift| {worst:.2f} ms",
            worst <= interval_ms,
        )
    )

    idle = _cell(sections, "stop_latency", "idle", reference)["p99"]
    idle_event = _cell(sections, "stop_latency", "idle_event", reference)["p99"]
    targets.append(
        Target(
            "Stop latency while idle under 5 ms p99",
            f"stop(): {idle:.2f} ms p99; setting stop_event: {idle_event:.2f} ms p99",
            max(idle, idle_event) < 5.0,
        )
    )

    hung = max(
        _cell(sections, "stop_latency", row_id, reference)["p99"]
        for row_id in ("hung", "hung_cancelled")
    )
    hung_event = max(
        _cell(sections, "stop_latency", row_id, reference)["p99"]
        for row_id in ("hung_event", "hung_event_cancelled")
    )
    targets.append(
        Target(
            "Stop latency during a hung ping under 50 ms p99 (until the ping is cancelled too)",
            f"stop(): {hung:.2f} ms p99; setting stop_event: {hung_event:.2f} ms p99",
            max(hung, hung_event) < 50.0,
        )
    )

    quiet = _cell(sections, "idle_cost", "between_ticks", reference)
    per_tick = _cell(sections, "idle_cost", "thread_wakeups", reference)["median"]
    targets.append(
        Target(
            "Zero wake-ups between ticks beyond one per interval",
            f"{quiet['median']:.2f} wake-ups between two idle ticks (p99 {quiet['p99']:.2f}); "
            f"{per_tick:.2f} per idle tick in all (the clock, the survey's round trip, any "
            "wait for the GIL)",
            quiet["p99"] < 0.05,
        )
    )

    cpu = _cell(sections, "overhead", "cpu_per_tick", reference)["median"]
    cpu_baseline = _cell(sections, "overhead", "cpu_per_tick", baseline)["median"]
    wall = _cell(sections, "tick_duration", "roles1_ping0ms", reference)["median"] * 1e3
    wall_baseline = _cell(sections, "tick_duration", "roles1_ping0ms", baseline)["median"] * 1e3
    targets.append(
        Target(
            "No-op tick overhead no worse than the asyncio design's",
            f"CPU {cpu:.0f} µs vs {cpu_baseline:.0f} µs per tick; "
            f"wall {wall:.0f} µs vs {wall_baseline:.0f} µs per tick (medians)",
            cpu <= cpu_baseline and wall <= wall_baseline,
        )
    )
    return targets


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of issue 14's table: HealthTicker's value, its floor or peer, and the goal."""

    name: str
    measured: str
    floor: str
    ratio: float
    goal: str
    met: bool


def evaluate_figures(sections: Mapping[str, Any], sizes: Sizes, reference: str) -> list[Figure]:
    """Return issue 14's five figures, each as a ratio to its floor or peer, from one run.

    The floor is the ``bare`` contender: the same work as one bare coroutine
    submitted with ``asyncio.run_coroutine_threadsafe`` on the same loop.
    """
    floor_key = "bare"
    one, few, many = sizes.floor_roles
    slow = sizes.floor_ping_ms

    def median(section: str, row_id: str, key: str) -> float:
        return float(_cell(sections, section, row_id, key)["median"])

    figures = []
    ticker = median("floor", f"roles{one}_instant", reference)
    bare = median("floor", f"roles{one}_instant", floor_key)
    figures.append(
        Figure(
            f"tick() end to end, {one} live role, instant ping ÷ one bare round trip",
            f"{ticker * 1e3:.0f} µs",
            f"{bare * 1e3:.0f} µs",
            ticker / bare,
            "≤ 1.3x",
            ticker / bare <= 1.3,
        )
    )
    ticker = median("floor", f"roles{many}_ping{slow:g}ms", reference)
    bare = median("floor", f"roles{many}_ping{slow:g}ms", floor_key)
    figures.append(
        Figure(
            f"tick() end to end, {many} roles x {slow:g} ms ping ÷ bare survey+reap+gather",
            f"{ticker:.1f} ms",
            f"{bare:.1f} ms",
            ticker / bare,
            "≤ 1.5x",
            ticker / bare <= 1.5,
        )
    )

    def per_role(key: str, roles: int) -> float:
        base = median("floor", f"roles{one}_instant", key)
        return (median("floor", f"roles{roles}_instant", key) - base) / (roles - one)

    ratio = per_role(reference, many) / per_role(reference, few)
    bare_ratio = per_role(floor_key, many) / per_role(floor_key, few)
    figures.append(
        Figure(
            f"per-role cost of tick() at {many} roles ÷ at {few} roles (instant pings)",
            f"{per_role(reference, many) * 1e3:.1f} µs/role at {many}, "
            f"{per_role(reference, few) * 1e3:.1f} µs/role at {few}",
            f"the floor's own ratio: {bare_ratio:.2f}x "
            f"({per_role(floor_key, many) * 1e3:.1f} and {per_role(floor_key, few) * 1e3:.1f} "
            "µs/role)",
            ratio,
            "≤ 1.2x: linear",
            ratio <= 1.2,
        )
    )

    stop = _cell(sections, "stop_latency", "hung_tail", reference)
    cancelled = _cell(sections, "stop_latency", "hung_tail_cancelled", reference)
    woken = _cell(sections, "stop_latency", "hang_wakeups_app_event", reference)
    bare_stop = _cell(sections, "stop_latency", "hung_tail", floor_key)
    worst = max(max(stop["samples"]), max(cancelled["samples"]))
    most_woken = max(woken["samples"])
    figures.append(
        Figure(
            "stop by setting an application's plain stop_event during a hung ping, p99",
            f"{stop['p99']:.2f} ms to the thread ended, {cancelled['p99']:.2f} ms to the ping "
            f"cancelled, over {stop['n']} stops (worst {worst:.2f} ms); ticker thread "
            f"wake-ups during {sizes.hang_watch_s * 1e3:g} ms of hang: at most "
            f"{most_woken:g} (median {woken['median']:g})",
            f"the floor's stop (event + future.cancel()): {bare_stop['p99']:.2f} ms p99",
            max(stop["p99"], cancelled["p99"]) / bare_stop["p99"],
            "≤ 2 ms, no polling wake-ups",
            max(stop["p99"], cancelled["p99"]) <= 2.0 and most_woken == 0,
        )
    )
    ticker = median("overhead", "thread_cpu_per_tick", reference)
    bare = median("overhead", "thread_cpu_per_tick", floor_key)
    figures.append(
        Figure(
            "ticker-thread CPU per tick ÷ a minimal Event-loop thread doing the same submit",
            f"{ticker:.0f} µs",
            f"{bare:.0f} µs",
            ticker / bare,
            "≤ 1.3x",
            ticker / bare <= 1.3,
        )
    )
    return figures


def build(
    *,
    machine: Mapping[str, Any],
    mode: str,
    sizes: Sizes,
    contenders: Sequence[type[Contender]],
    sections: Sequence[Section],
    notes: Sequence[str],
    elapsed_s: float,
    recovery: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the JSON-ready report: summaries and ratios per row, then the targets.

    ``recovery`` is the section :func:`benchmarks.recovery.measure` returned,
    kept apart from ``sections``: it has one design, real processes, and
    ratios to bounds rather than to HealthTicker.
    """
    keys = [cls.key for cls in contenders]
    reference = keys[0]
    built: dict[str, Any] = {}
    for section in sections:
        rows = []
        for row in section.rows:
            values = {key: summarize(row.samples.get(key)) for key in keys}
            base = values[reference]
            for value in values.values():
                if value is not None:
                    value["ratio"] = (
                        _round(value["median"] / base["median"])
                        if row.ratio and base is not None and base["median"] > 0
                        else None
                    )
            rows.append(
                {
                    "id": row.id,
                    "metric": row.metric,
                    "unit": row.unit,
                    "note": row.note,
                    "values": values,
                }
            )
        built[section.key] = {
            "title": section.title,
            "description": section.description,
            "rows": rows,
            **section.extra,
        }
    baseline = next(
        (cls.key for cls in contenders if cls.pings_one_at_a_time), keys[min(1, len(keys) - 1)]
    )
    targets = evaluate_targets(built, sizes, reference, baseline)
    figures = evaluate_figures(built, sizes, reference)
    return {
        "schema": SCHEMA,
        "mode": mode,
        "machine": dict(machine),
        "elapsed_s": round(elapsed_s, 1),
        "sizes": dataclasses.asdict(sizes),
        "contenders": [{"key": cls.key, "label": cls.label} for cls in contenders],
        "reference": reference,
        "sections": built,
        "targets": [dataclasses.asdict(target) for target in targets],
        "figures": [
            {**dataclasses.asdict(figure), "ratio": _round(figure.ratio)} for figure in figures
        ],
        "recovery": None if recovery is None else dict(recovery),
        "notes": list(notes),
        "plot": None,
    }


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _cell_text(text: str) -> str:
    return _prose(text).replace("|", "\\|")


def _prose(text: str) -> str:
    # "/proc/self/task/<tid>" would otherwise read as an HTML tag.
    return text.replace("<", "&lt;")


def _format_cell(value: Mapping[str, Any] | None, reference: bool) -> str:
    if value is None:
        return "—"
    text = _number(value["median"])
    if value["n"] > 1:
        text += f" / {_number(value['p99'])}"
    ratio = value.get("ratio")
    if not reference and ratio is not None:
        text += f" (x{ratio:.0f})" if ratio >= 100 else f" (x{ratio:.2g})"
    return text


def render_markdown(report: Mapping[str, Any]) -> str:
    """Render the report as Markdown: the machine, the targets, then one table per section."""
    machine = report["machine"]
    contenders = report["contenders"]
    reference = report["reference"]
    labels = {c["key"]: c["label"] for c in contenders}
    lines = [
        "# lilbee_ticker benchmarks",
        "",
        f"Generated by `python -m benchmarks{' --quick' if report['mode'] == 'quick' else ''}` "
        f"on {machine['date']} in {report['elapsed_s']:g} s.",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores "
        f"({machine['cores_usable']} usable), {machine['kernel']}",
        f"- Python: {machine['python']}; packages: "
        + ", ".join(f"{name} {version}" for name, version in machine["packages"].items()),
        f"- Load average at the start: {', '.join(str(x) for x in machine['load_average'])}",
        "",
        "Each cell is `median / p99` over the samples, then `(xR)`, where R is the "
        f"contender's median divided by {labels[reference]}'s. Lower is better unless a row "
        "says otherwise. A single figure is a single sample. `—`: not run (see the notes).",
        "",
        "## Targets",
        "",
        f"| Target for {labels[reference]} | Measured | Holds |",
        "|---|---|---|",
    ]
    for target in report["targets"]:
        verdict = "yes" if target["holds"] else "**no**"
        lines.append(
            f"| {_cell_text(target['name'])} | {_cell_text(target['measured'])} | {verdict} |"
        )
    lines += [
        "",
        "## Issue 14's figures, against their floors",
        "",
        "The floor is the bare coroutine: the same work submitted with "
        "`asyncio.run_coroutine_threadsafe` on the same loop, waited with `future.result()`.",
        "",
        "| Figure | HealthTicker | Floor or peer | Ratio | Goal | Met |",
        "|---|---|---|---|---|---|",
    ]
    for figure in report["figures"]:
        verdict = "yes" if figure["met"] else "**no**"
        lines.append(
            f"| {_cell_text(figure['name'])} | {_cell_text(figure['measured'])} | "
            f"{_cell_text(figure['floor'])} | {figure['ratio']:.2f}x | {figure['goal']} | "
            f"{verdict} |"
        )
    header = "| Metric | Unit | " + " | ".join(labels[c["key"]] for c in contenders) + " |"
    rule = "|---|---|" + "---|" * len(contenders)
    for section in report["sections"].values():
        description = _prose(section["description"])
        lines += ["", f"## {section['title']}", "", description, "", header, rule]
        notes = []
        for row in section["rows"]:
            cells = [
                _format_cell(row["values"][c["key"]], c["key"] == reference) for c in contenders
            ]
            lines.append(
                f"| {_cell_text(row['metric'])} | {row['unit']} | " + " | ".join(cells) + " |"
            )
            if row["note"]:
                notes.append(f"- *{row['metric']}*: {_prose(row['note'])}")
        if notes:
            lines += ["", *notes]
    if report.get("recovery"):
        lines += ["", *recovery_section.render_markdown(report["recovery"])]
    if report["notes"]:
        lines += ["", "## Notes from the run", "", *(f"- {note}" for note in report["notes"])]
    return "\n".join(lines) + "\n"


def write(report: Mapping[str, Any], out: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``latest.json`` and ``latest.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out / "latest.json", out / "latest.md"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, markdown_path
