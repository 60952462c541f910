"""The measurements: one function per section of the report, each returning a :class:`Section`.

Contenders run one at a time, and sections that repeat interleave them
(round 1: every contender, round 2: every contender, ...), so that noise from
other work on the machine falls on all of them alike. Every tick of every
design reaches the pool once, at its survey, so milestones on the pool's
survey count (:meth:`~benchmarks.pools.BenchPool.at_survey`) let the harness
start and end a measured stretch on tick boundaries without adding any
wake-up per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from benchmarks.contenders import Contender, HealthTickerContender, bare_tick
from benchmarks.pools import BenchPool, CountingRuntime
from benchmarks.system import ThreadLedger, open_fds, process_counters, read_thread, rss_bytes
from lilbee_ticker import HealthTicker, LoopRuntime

__all__ = [
    "FULL",
    "QUICK",
    "Bench",
    "Row",
    "Section",
    "Sizes",
    "cadence",
    "floor",
    "idle_cost",
    "overhead",
    "run_all",
    "scale",
    "stall",
    "stop_latency",
    "tick_duration",
]

# How long the harness waits for something that takes milliseconds before it
# declares the run broken.
_GIVE_UP_S = 60.0

# How long after a hung ping began the harness starts counting the ticker's
# wake-ups during the hang, so that the ticker is surely waiting on it.
_HANG_SETTLE_S = 0.01

# Where in the interval after a tick the harness stops an idle ticker.
_IDLE_STOP_FRACTION = 0.3

# The quiet stretch between two idle ticks starts this long after a tick
# reached the pool (an idle tick takes well under a millisecond) and ends
# this long before the next is due.
_QUIET_MARGIN_S = 0.01


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much of everything to run: :data:`FULL` takes minutes, :data:`QUICK` seconds."""

    roles: tuple[int, ...] = (1, 8, 64)
    ping_ms: tuple[float, ...] = (0.0, 20.0)
    floor_roles: tuple[int, ...] = (1, 64, 4096)
    """Live roles of the floor section's instant-ping cells: one, few, many."""
    floor_ping_ms: float = 5.0
    """The ping of the floor section's slow cell, at the largest number of roles."""
    floor_rounds: int = 5
    floor_reps: tuple[int, ...] = (60, 20, 3)
    """Back-to-back ticks per round, per design, for each of ``floor_roles``."""
    hang_watch_s: float = 0.1
    """How long the harness counts the ticker's wake-ups during a hung ping."""
    stall_interval_s: float = 0.04
    stall_intervals: float = 2.5
    stall_repeats: int = 3
    stall_ticks_after: int = 6
    tick_rounds: int = 3
    ticks_per_round: int = 10
    tick_round_budget_s: float = 1.5
    overhead_interval_s: float = 0.005
    overhead_rounds: int = 10
    overhead_ticks: int = 50
    cadence_ticks: int = 300
    cadence_interval_s: float = 0.010
    cadence_work_s: float = 0.002
    stop_interval_s: float = 0.05
    stop_idle_repeats: int = 20
    stop_hung_repeats: int = 10
    stop_tail_repeats: int = 200
    """Repeats of the issue's stop figure alone (no wake-up watch), enough for a p99."""
    call_timeout_s: float = 0.5
    """The call timeout of the hung-ping stop; elsewhere it is 5 s, never reached."""
    idle_interval_s: float = 0.05
    idle_stretch_s: float = 1.5
    idle_rounds: int = 3
    slow_ping_s: float = 0.2
    slow_ping_ticks: int = 4
    scale_roles: int = 4096
    scale_ticks: int = 4
    scale_interval_s: float = 0.6
    scale_tickers: int = 100
    scale_interval_many_s: float = 0.2
    scale_run_s: float = 1.5
    recovery_trials: int = 20
    """Trials of the recovery section, each with real worker processes: about 2 s each."""
    recovery_interval_s: float = 0.2
    recovery_call_timeout_s: float = 0.15
    """Above the restart's own time (a worker process starts in about 0.1 s here)."""
    recovery_failure_threshold: int = 2


FULL = Sizes()
"""The sizes the issue asks for."""

QUICK = Sizes(
    roles=(1, 4),
    ping_ms=(0.0, 10.0),
    floor_roles=(1, 4, 64),
    floor_ping_ms=2.0,
    floor_rounds=1,
    floor_reps=(3, 3, 2),
    hang_watch_s=0.02,
    stall_interval_s=0.02,
    stall_repeats=1,
    stall_ticks_after=3,
    tick_rounds=1,
    ticks_per_round=2,
    tick_round_budget_s=0.3,
    overhead_interval_s=0.005,
    overhead_rounds=2,
    overhead_ticks=10,
    cadence_ticks=20,
    stop_interval_s=0.02,
    stop_idle_repeats=2,
    stop_hung_repeats=1,
    stop_tail_repeats=3,
    call_timeout_s=0.1,
    idle_interval_s=0.04,
    idle_stretch_s=0.2,
    idle_rounds=1,
    slow_ping_s=0.04,
    slow_ping_ticks=2,
    scale_roles=50,
    scale_ticks=2,
    scale_interval_s=0.02,
    scale_tickers=5,
    scale_interval_many_s=0.02,
    scale_run_s=0.1,
    recovery_trials=2,
)
"""Tiny sizes, for the smoke test: every section and contender, in seconds."""


@dataclasses.dataclass
class Row:
    """One metric: the samples of every contender, by key (``None``: not run, see ``note``)."""

    id: str
    metric: str
    unit: str
    samples: dict[str, list[float] | None]
    note: str = ""
    ratio: bool = True
    """False where a ratio means nothing (signed figures)."""


@dataclasses.dataclass
class Section:
    """A titled group of rows, with whatever else the section wants to keep (``extra``)."""

    key: str
    title: str
    description: str
    rows: list[Row]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Session:
    """A started contender; :meth:`Bench.session` stops and closes it on exit, once.

    Attributes:
        contender: The running contender.
        ledger: Counters of the contender's own threads (see :class:`ThreadLedger`).
    """

    def __init__(self, contender: Contender, ledger: ThreadLedger) -> None:
        self.contender = contender
        self.ledger = ledger
        self.stopped = False

    def stop(self) -> float:
        """Stop the contender the way its design stops; return when it had ended."""
        self.stopped = True
        return self.contender.stop()

    def stop_via_event(self) -> float:
        """Stop a HealthTicker by setting its ``stop_event``; return when its thread ended."""
        contender = self.contender
        if not isinstance(contender, HealthTickerContender):
            raise TypeError(f"only HealthTicker has a stop_event, not {contender.label}")
        self.stopped = True
        return contender.stop_via_event()


class Bench:
    """The shared runtime, the contenders, the sizes and the notes of one benchmark run.

    Args:
        sizes: How much to run.
        contenders: The designs to compare; the first is the reference.
        progress: Called with a line of progress text.
    """

    def __init__(
        self,
        sizes: Sizes,
        contenders: Sequence[type[Contender]],
        progress: Callable[[str], None],
    ) -> None:
        self.sizes = sizes
        self.contenders = tuple(contenders)
        self.progress = progress
        self.notes: list[str] = []
        self._runtime = LoopRuntime(name="bench-runtime")
        self.runtime = CountingRuntime(self._runtime)
        self._names = itertools.count(1)

    def __enter__(self) -> Bench:
        self._runtime.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._runtime.shutdown()
        if self._runtime.pending_at_shutdown:
            self.notes.append(
                f"work left on the runtime's loop: {self._runtime.pending_at_shutdown}"
            )

    @property
    def keys(self) -> list[str]:
        """The contenders' keys, in order."""
        return [contender.key for contender in self.contenders]

    @property
    def loop_thread(self) -> threading.Thread:
        """The shared runtime's loop thread."""
        thread = self._runtime.thread
        assert thread is not None, "use the Bench as a context manager"
        return thread

    def pool(self, roles: int, **options: Any) -> BenchPool:
        """Return a :class:`BenchPool` on the shared runtime's loop."""
        thread = self._runtime.thread
        assert thread is not None, "use the Bench as a context manager"
        return BenchPool(roles, loop_thread=thread, **options)

    def make(
        self,
        cls: type[Contender],
        pool: BenchPool,
        *,
        interval_s: float,
        call_timeout_s: float = 5.0,
    ) -> Contender:
        """Build a contender on the shared pool and runtime, with a unique name."""
        return cls(
            pool,
            self.runtime,
            interval_s=interval_s,
            call_timeout_s=call_timeout_s,
            name=f"bench-{cls.key}-{next(self._names)}",
        )

    @contextlib.contextmanager
    def session(
        self,
        cls: type[Contender],
        pool: BenchPool,
        *,
        interval_s: float,
        call_timeout_s: float = 5.0,
        record_retired: bool = False,
        app_event: bool = False,
    ) -> Iterator[Session]:
        """Start a contender on ``pool``; stop and close it on exit, and check it left nothing.

        ``app_event`` passes a HealthTicker a plain application event as its
        ``stop_event`` (see :attr:`HealthTickerContender.app_event`).
        """
        gc.collect()
        existing = {thread.ident for thread in threading.enumerate() if thread.ident is not None}
        contender = self.make(cls, pool, interval_s=interval_s, call_timeout_s=call_timeout_s)
        contender.record_retired = record_retired
        if app_event:
            if not isinstance(contender, HealthTickerContender):
                raise TypeError(f"only HealthTicker takes a stop_event, not {cls.label}")
            contender.app_event = True
        session = Session(contender, ThreadLedger(existing, contender.retired))
        contender.start()
        try:
            yield session
        finally:
            if not session.stopped:
                session.stop()
            contender.close()
            for thread in session.ledger.threads():
                thread.join(1.0)
                if thread.is_alive():
                    self.notes.append(f"{contender.label}: thread {thread.name} outlived close()")
            if pool.violations:
                raise AssertionError(
                    f"{contender.label} touched the pool from a thread other than the loop's "
                    f"{pool.violations} times"
                )
            if contender.errors:
                self.notes.append(f"{contender.label}: {contender.errors} ticks raised (logged)")

    def tick_durations(
        self,
        cls: type[Contender],
        pool: BenchPool,
        *,
        interval_s: float,
        ticks: int,
        budget_s: float,
    ) -> list[float]:
        """Run a contender for ``ticks`` ticks (fewer if ``budget_s`` runs out); return durations.

        The first tick of a run warms up and is dropped; at least one more is kept.
        """
        pool.reset()
        begun = time.perf_counter()
        with self.session(cls, pool, interval_s=interval_s) as session:
            contender = session.contender
            if not contender.wait_for_ticks(2, _GIVE_UP_S):
                raise RuntimeError(f"{cls.label} did not tick twice in {_GIVE_UP_S}s")
            left = budget_s - (time.perf_counter() - begun)
            contender.wait_for_ticks(ticks + 1, max(0.0, left))
        return list(contender.durations[1:])


def _per_contender(bench: Bench) -> dict[str, list[float] | None]:
    return {key: [] for key in bench.keys}


def _extend(samples: dict[str, list[float] | None], key: str, values: Sequence[float]) -> None:
    kept = samples[key]
    assert kept is not None
    kept.extend(values)


def _ms(values: Sequence[float]) -> list[float]:
    return [value * 1e3 for value in values]


def tick_duration(bench: Bench) -> Section:
    """Tick duration with N live roles whose ping takes L ms, for every N and L."""
    sizes = bench.sizes
    cells = [(roles, ping_ms) for ping_ms in sizes.ping_ms for roles in sizes.roles]
    samples = {cell: _per_contender(bench) for cell in cells}
    in_flight: dict[str, dict[str, int]] = {}
    for round_number in range(sizes.tick_rounds):
        for roles, ping_ms in cells:
            bench.progress(
                f"tick duration: round {round_number + 1}, {roles} roles x {ping_ms:g} ms"
            )
            pool = bench.pool(roles, ping_s=ping_ms / 1e3)
            for cls in bench.contenders:
                durations = bench.tick_durations(
                    cls,
                    pool,
                    interval_s=max(0.02, 2.5 * ping_ms / 1e3),
                    ticks=sizes.ticks_per_round,
                    budget_s=sizes.tick_round_budget_s,
                )
                _extend(samples[roles, ping_ms], cls.key, _ms(durations))
                in_flight.setdefault(_cell_id(roles, ping_ms), {})[cls.key] = pool.max_in_flight
    rows = [
        Row(
            id=_cell_id(roles, ping_ms),
            metric=f"{roles} live role{'s' if roles > 1 else ''}, {ping_ms:g} ms ping",
            unit="ms",
            samples=samples[roles, ping_ms],
        )
        for roles, ping_ms in cells
    ]
    return Section(
        key="tick_duration",
        title="Tick duration",
        description=(
            "From the survey's submission to the last ping's result, as each design's tick "
            f"measures it; {_plural(sizes.tick_rounds, 'round')} of up to "
            f"{sizes.ticks_per_round} ticks (within {sizes.tick_round_budget_s:g} s) per "
            "contender and cell, the first tick "
            "of each round dropped."
        ),
        rows=rows,
        extra={"max_pings_in_flight": in_flight},
    )


def _cell_id(roles: int, ping_ms: float) -> str:
    return f"roles{roles}_ping{ping_ms:g}ms"


def overhead(bench: Bench) -> Section:
    """CPU, submissions and wake-ups per tick with one live role and a no-op ping."""
    sizes = bench.sizes
    cpu, submits, wakeups = _per_contender(bench), _per_contender(bench), _per_contender(bench)
    thread_cpu, thread_wakeups = _per_contender(bench), _per_contender(bench)
    pool = bench.pool(1, ping_s=0.0)
    warmup = 5
    for round_number in range(sizes.overhead_rounds):
        bench.progress(f"overhead: round {round_number + 1} of {sizes.overhead_rounds}")
        for cls in bench.contenders:
            pool.reset()
            first = pool.at_survey(warmup)
            last = pool.at_survey(warmup + sizes.overhead_ticks)
            with bench.session(cls, pool, interval_s=sizes.overhead_interval_s) as session:
                _wait(first, cls)
                session.ledger.begin()
                before, submits_before, surveys_before = (
                    process_counters(),
                    bench.runtime.submits,
                    pool.surveys,
                )
                _wait(last, cls)
                after, submits_after, surveys_after = (
                    process_counters(),
                    bench.runtime.submits,
                    pool.surveys,
                )
                own = session.ledger.end()
            ticks = surveys_after - surveys_before
            used = after - before
            _extend(thread_cpu, cls.key, [own.cpu_s / ticks * 1e6])
            _extend(thread_wakeups, cls.key, [own.voluntary / ticks])
            _extend(cpu, cls.key, [used.cpu_s / ticks * 1e6])
            _extend(wakeups, cls.key, [used.voluntary / ticks])
            _extend(submits, cls.key, [(submits_after - submits_before) / ticks])
    return Section(
        key="overhead",
        title="Per-tick overhead, no-op pool",
        description=(
            "One live role whose ping returns at once, ticking every "
            f"{sizes.overhead_interval_s * 1e3:g} ms; each sample is the mean over "
            f"{sizes.overhead_ticks} ticks, {sizes.overhead_rounds} samples per contender. "
            "CPU and wake-ups count every thread of the process (the runtime's loop included, "
            "which does the same work for all); a wake-up is a voluntary context switch, the "
            "price of each hop between threads. The ticker's own threads are those the "
            "design started (HealthTicker's thread, the floor's thread, the asyncio design's "
            "loop thread, the Timer threads, APScheduler's threads)."
        ),
        rows=[
            Row(
                "thread_cpu_per_tick",
                "CPU per tick, the ticker's own thread(s)",
                "µs",
                thread_cpu,
                "The issue's ticker-thread CPU figure: HealthTicker's thread against the "
                "floor's minimal Event-loop thread doing the same one submit per tick.",
            ),
            Row(
                "thread_wakeups_per_tick",
                "wake-ups per tick, the ticker's own thread(s)",
                "switches",
                thread_wakeups,
            ),
            Row("cpu_per_tick", "CPU per tick, all threads", "µs", cpu),
            Row("submits_per_tick", "runtime.submit() calls per tick", "calls", submits),
            Row("wakeups_per_tick", "thread wake-ups per tick, all threads", "switches", wakeups),
        ],
    )


def _wait(event: threading.Event, cls: type[Contender]) -> None:
    if not event.wait(_GIVE_UP_S):
        raise RuntimeError(f"{cls.label}: the pool saw no tick for {_GIVE_UP_S}s")


def cadence(bench: Bench) -> Section:
    """When each tick reaches the pool, against the grid ``t0 + k * interval``."""
    sizes = bench.sizes
    interval = sizes.cadence_interval_s
    pool = bench.pool(1, ping_s=sizes.cadence_work_s)
    jitter, last_drift, worst_drift = (_per_contender(bench) for _ in range(3))
    drift_series: dict[str, list[float]] = {}
    error_series: dict[str, list[float]] = {}
    for cls in bench.contenders:
        bench.progress(f"cadence: {cls.label}, {sizes.cadence_ticks} ticks")
        pool.reset()
        done = pool.at_survey(sizes.cadence_ticks)
        with bench.session(cls, pool, interval_s=interval):
            _wait_long(done, cls, sizes.cadence_ticks * interval * 4)
        times = pool.survey_times[: sizes.cadence_ticks]
        drift = [(t - times[0] - k * interval) * 1e3 for k, t in enumerate(times)]
        errors = [
            (later - earlier - interval) * 1e3 for earlier, later in itertools.pairwise(times)
        ]
        drift_series[cls.key] = drift
        error_series[cls.key] = errors
        _extend(jitter, cls.key, [abs(error) for error in errors])
        _extend(last_drift, cls.key, [drift[-1]])
        _extend(worst_drift, cls.key, [max(abs(value) for value in drift)])
    return Section(
        key="cadence",
        title="Cadence",
        description=(
            f"{sizes.cadence_ticks} ticks at a {interval * 1e3:g} ms interval with "
            f"{sizes.cadence_work_s * 1e3:g} ms of work per tick (one ping). Tick k is the "
            "moment its survey reached the pool; drift is its distance from t0 + k·interval, "
            "the period error is (t(k) - t(k-1)) - interval."
        ),
        rows=[
            Row("period_error", "jitter: size of the period error", "ms", jitter),
            Row(
                "drift_last",
                f"drift of tick {sizes.cadence_ticks - 1} (+ is late)",
                "ms",
                last_drift,
                ratio=False,
            ),
            Row("drift_max", "largest drift, either way", "ms", worst_drift),
        ],
        extra={
            "interval_ms": interval * 1e3,
            "series": {"drift_ms": drift_series, "period_error_ms": error_series},
        },
    )


def _wait_long(event: threading.Event, cls: type[Contender], expected_s: float) -> None:
    if not event.wait(expected_s + _GIVE_UP_S):
        raise RuntimeError(f"{cls.label}: the run did not finish in {expected_s + _GIVE_UP_S}s")


def _stop_during_hang(
    bench: Bench, cls: type[Contender], mode: str, pool: BenchPool, watch_s: float
) -> tuple[float, float, int]:
    """Stop ``cls`` (by ``mode``) while its ping hangs on ``pool``.

    Returns:
        Milliseconds from the stop to the ticker having ended, and to the
        hung ping having been cancelled on the loop; and how many times the
        ticker's threads woke during ``watch_s`` of the hang before it (0 if
        ``watch_s`` is 0: not watched).
    """
    sizes = bench.sizes
    pool.reset()
    with bench.session(
        cls,
        pool,
        interval_s=sizes.stop_interval_s,
        call_timeout_s=sizes.call_timeout_s,
        app_event=mode == "app_event",
    ) as session:
        if not pool.hang_started.wait(_GIVE_UP_S):
            raise RuntimeError(f"{cls.label} did not ping in {_GIVE_UP_S}s")
        time.sleep(_HANG_SETTLE_S)
        woken = 0
        if watch_s:
            # A design that polls while a call hangs wakes here; one that
            # waits for the call's answer or its stop does not.
            session.ledger.begin()
            time.sleep(watch_s)
            woken = session.ledger.end().voluntary
        begun = time.perf_counter()
        ended = session.stop() if mode == "stop" else session.stop_via_event()
        if not pool.hang_cancelled.wait(_GIVE_UP_S):
            raise RuntimeError(f"{cls.label} never cancelled the hung ping")
    assert pool.hang_cancelled_at is not None
    return (ended - begun) * 1e3, (pool.hang_cancelled_at - begun) * 1e3, woken


def stop_latency(bench: Bench) -> Section:
    """From the stop call (or setting the event) to the ticker and its work having ended."""
    sizes = bench.sizes
    reference = bench.contenders[0]
    modes = ("stop", "own_event", "app_event")
    idle = {
        mode: _per_contender(bench) if mode == "stop" else _only(bench, reference.key)
        for mode in modes
    }
    hung = {
        mode: _per_contender(bench) if mode == "stop" else _only(bench, reference.key)
        for mode in modes
    }
    cancelled = {
        mode: _per_contender(bench) if mode == "stop" else _only(bench, reference.key)
        for mode in modes
    }
    wakeups = {
        mode: _per_contender(bench) if mode == "stop" else _only(bench, reference.key)
        for mode in modes
    }
    # (contender, how it is stopped): stop() for all; for HealthTicker also by
    # setting its own stop_event, and by setting an application's plain event
    # passed in as its stop_event.
    variants = [(cls, "stop") for cls in bench.contenders]
    if issubclass(reference, HealthTickerContender):
        variants += [(reference, "own_event"), (reference, "app_event")]

    pool = bench.pool(1, ping_s=0.0)
    for repeat in range(sizes.stop_idle_repeats):
        bench.progress(f"stop latency, idle: repeat {repeat + 1} of {sizes.stop_idle_repeats}")
        for cls, mode in variants:
            pool.reset()
            with bench.session(
                cls, pool, interval_s=sizes.stop_interval_s, app_event=mode == "app_event"
            ) as session:
                if not session.contender.wait_for_ticks(1, _GIVE_UP_S):
                    raise RuntimeError(f"{cls.label} did not tick in {_GIVE_UP_S}s")
                time.sleep(sizes.stop_interval_s * _IDLE_STOP_FRACTION)
                begun = time.perf_counter()
                ended = session.stop() if mode == "stop" else session.stop_via_event()
            _extend(idle[mode], cls.key, [(ended - begun) * 1e3])

    pool = bench.pool(1, hang=True)
    for repeat in range(sizes.stop_hung_repeats):
        bench.progress(f"stop latency, hung ping: repeat {repeat + 1} of {sizes.stop_hung_repeats}")
        for cls, mode in variants:
            ended_ms, cancelled_ms, woken = _stop_during_hang(
                bench, cls, mode, pool, sizes.hang_watch_s
            )
            _extend(hung[mode], cls.key, [ended_ms])
            _extend(cancelled[mode], cls.key, [cancelled_ms])
            _extend(wakeups[mode], cls.key, [float(woken)])

    # The stop figure again, with enough repeats for its p99 to be a
    # p99 and not the worst of ten: HealthTicker stopped through an
    # application's plain event, and the floor through its own stop.
    floor_cls = next((cls for cls in bench.contenders if cls.key == "bare"), None)
    tail_variants = [(reference, "app_event")]
    if floor_cls is not None:
        tail_variants.append((floor_cls, "stop"))
    tail_keys = [cls.key for cls, _ in tail_variants]
    tail, tail_cancelled = _only_many(bench, tail_keys), _only_many(bench, tail_keys)
    for repeat in range(sizes.stop_tail_repeats):
        if repeat % 50 == 0:
            bench.progress(
                f"stop latency, hung ping, p99 sample: repeats {repeat + 1} to "
                f"{min(repeat + 50, sizes.stop_tail_repeats)} of {sizes.stop_tail_repeats}"
            )
        for cls, mode in tail_variants:
            ended_ms, cancelled_ms, _ = _stop_during_hang(bench, cls, mode, pool, 0.0)
            _extend(tail, cls.key, [ended_ms])
            _extend(tail_cancelled, cls.key, [cancelled_ms])

    event_note = "Only HealthTicker has a stop event to set."
    app_note = (
        "A plain threading.Event of the application's, passed as stop_event: the issue's "
        "stop figure. lilbee_ticker's watcher thread relays it to the ticker."
    )
    watch_ms = f"{sizes.hang_watch_s * 1e3:g} ms"
    return Section(
        key="stop_latency",
        title="Stop latency",
        description=(
            "From the stop call to the ticker having really ended: HealthTicker.stop() until "
            "its thread has ended; the floor's event set plus future.cancel() until its thread "
            "has ended; the asyncio design's future.cancel() until its task is done "
            "(cancel() itself returns at once); Timer.cancel() plus joining its threads; "
            "BackgroundScheduler.shutdown(wait=True), which joins its threads. Idle: "
            f"{_IDLE_STOP_FRACTION:g} of a {sizes.stop_interval_s * 1e3:g} ms interval after "
            f"a tick, {_plural(sizes.stop_idle_repeats, 'repeat')}. Hung ping: a ping that "
            f"never answers began; its wake-ups are counted over {watch_ms} from "
            f"{_HANG_SETTLE_S * 1e3:g} ms into it, then the ticker is stopped; "
            f"{sizes.call_timeout_s:g} s call timeout where the design has one, "
            f"{_plural(sizes.stop_hung_repeats, 'repeat')}. The p99 sample: the same hung ping, "
            "no wake-up watch, HealthTicker stopped by setting an application's plain "
            "stop_event and the floor by its stop, "
            f"{_plural(sizes.stop_tail_repeats, 'repeat')} each."
        ),
        rows=[
            Row("idle", "idle: stop → ticker ended", "ms", idle["stop"]),
            Row(
                "idle_event",
                "idle: set own stop_event → thread ended",
                "ms",
                idle["own_event"],
                event_note,
            ),
            Row(
                "idle_app_event",
                "idle: set app's stop_event → thread ended",
                "ms",
                idle["app_event"],
                app_note,
            ),
            Row("hung", "hung ping: stop → ticker ended", "ms", hung["stop"]),
            Row(
                "hung_cancelled",
                "hung ping: stop → ping cancelled on the loop",
                "ms",
                cancelled["stop"],
            ),
            Row(
                "hung_event",
                "hung ping: set own stop_event → thread ended",
                "ms",
                hung["own_event"],
                event_note,
            ),
            Row(
                "hung_event_cancelled",
                "hung ping: set own stop_event → ping cancelled",
                "ms",
                cancelled["own_event"],
                event_note,
            ),
            Row(
                "hung_app_event",
                "hung ping: set app's stop_event → thread ended",
                "ms",
                hung["app_event"],
                app_note,
            ),
            Row(
                "hung_app_event_cancelled",
                "hung ping: set app's stop_event → ping cancelled",
                "ms",
                cancelled["app_event"],
                app_note,
            ),
            Row(
                "hung_tail",
                "hung ping, p99 sample: set app's stop_event (HealthTicker) or stop (the "
                "floor) → thread ended",
                "ms",
                tail,
                app_note,
            ),
            Row(
                "hung_tail_cancelled",
                "hung ping, p99 sample: set app's stop_event (HealthTicker) or stop (the "
                "floor) → ping cancelled",
                "ms",
                tail_cancelled,
                app_note,
            ),
            Row(
                "hang_wakeups",
                f"hung ping: ticker thread(s) wake-ups in {watch_ms}",
                "switches",
                wakeups["stop"],
                ratio=False,
            ),
            Row(
                "hang_wakeups_app_event",
                f"hung ping, app's stop_event: ticker thread(s) wake-ups in {watch_ms}",
                "switches",
                wakeups["app_event"],
                app_note + f" A 25 ms poll would show about {sizes.hang_watch_s / 0.025:g} here.",
                ratio=False,
            ),
        ],
    )


def floor(bench: Bench) -> Section:
    """HealthTicker's ``tick()`` against the floor, the same work as one bare coroutine.

    Both run back to back from the harness thread, alternating tick by tick,
    on the same loop and pools: ``tick()`` on a HealthTicker that is not
    started, and ``asyncio.run_coroutine_threadsafe(bare_tick(pool),
    loop).result()``. The wall time is what the caller waits for. The loop
    time held is the loop thread's CPU time across the call (schedstat; the
    loop does nothing else meanwhile), and HealthTicker's own
    ``TickReport.loop_busy_s``.
    """
    sizes = bench.sizes
    reference, floor_key = bench.keys[0], "bare"
    loop = bench.runtime.loop
    loop_thread = bench.loop_thread
    assert loop_thread.native_id is not None
    loop_tid = loop_thread.native_id
    largest = sizes.floor_roles[-1]
    cells = [
        (roles, 0.0, reps) for roles, reps in zip(sizes.floor_roles, sizes.floor_reps, strict=True)
    ]
    cells.append((largest, sizes.floor_ping_ms, sizes.floor_reps[-1]))
    keys = (reference, floor_key)
    wall = {cell[:2]: _only_many(bench, keys) for cell in cells}
    held = {cell[:2]: _only_many(bench, keys) for cell in cells}
    busy = {cell[:2]: _only(bench, reference) for cell in cells}
    setups: dict[tuple[int, float], tuple[BenchPool, HealthTicker]] = {}
    for roles, ping_ms, _ in cells:
        pool = bench.pool(roles, ping_s=ping_ms / 1e3)
        ticker = HealthTicker(
            pool, bench.runtime, interval_s=3600.0, call_timeout_s=5.0, name=f"bench-floor-{roles}"
        )
        ticker.tick()  # the first tick creates every health record: warm-up
        asyncio.run_coroutine_threadsafe(bare_tick(pool), loop).result(_GIVE_UP_S)
        setups[roles, ping_ms] = (pool, ticker)

    def loop_cpu() -> float:
        counters = read_thread(loop_tid)
        assert counters is not None
        return counters.cpu_s

    try:
        for round_number in range(sizes.floor_rounds):
            for roles, ping_ms, reps in cells:
                bench.progress(
                    f"floor: round {round_number + 1}, {roles} roles x {ping_ms:g} ms, "
                    f"{reps} ticks each"
                )
                pool, ticker = setups[roles, ping_ms]
                gc.collect()
                for _ in range(reps):
                    before = loop_cpu()
                    begun = time.perf_counter()
                    report = ticker.tick()
                    took = time.perf_counter() - begun
                    after = loop_cpu()
                    if report.failed or report.snapshot_error or report.loop_error:
                        raise RuntimeError(f"floor: HealthTicker's tick failed: {report}")
                    _extend(wall[roles, ping_ms], reference, [took * 1e3])
                    _extend(held[roles, ping_ms], reference, [(after - before) * 1e3])
                    if report.loop_busy_s is not None:
                        _extend(busy[roles, ping_ms], reference, [report.loop_busy_s * 1e3])

                    before = loop_cpu()
                    begun = time.perf_counter()
                    future = asyncio.run_coroutine_threadsafe(bare_tick(pool), loop)
                    future.result(_GIVE_UP_S)
                    took = time.perf_counter() - begun
                    after = loop_cpu()
                    _extend(wall[roles, ping_ms], floor_key, [took * 1e3])
                    _extend(held[roles, ping_ms], floor_key, [(after - before) * 1e3])
                if pool.violations:
                    raise AssertionError("floor: the pool was touched off the loop thread")
    finally:
        for _, ticker in setups.values():
            ticker.stop()

    note = "Only HealthTicker and its floor run here: the others are in the tables above."
    rows: list[Row] = []
    for roles, ping_ms, _ in cells:
        name = f"{roles} live role{'s' if roles > 1 else ''}, " + (
            f"{ping_ms:g} ms ping" if ping_ms else "instant ping"
        )
        cell_id = _floor_id(roles, ping_ms)
        rows += [
            Row(cell_id, f"{name}: tick() end to end", "ms", wall[roles, ping_ms], note),
            Row(
                f"{cell_id}_loop_cpu",
                f"{name}: loop time held per tick (loop thread CPU)",
                "ms",
                held[roles, ping_ms],
                note,
            ),
            Row(
                f"{cell_id}_loop_busy",
                f"{name}: loop time held per tick (report.loop_busy_s)",
                "ms",
                busy[roles, ping_ms],
                "HealthTicker's own meter of the time its steps ran on the loop.",
            ),
        ]
    return Section(
        key="floor",
        title="Against the floor: tick() end to end",
        description=(
            "HealthTicker.tick() called from a plain thread, against its floor: the same work "
            "(survey, reap_idle(), every ping under one asyncio.gather) as one bare coroutine "
            "submitted with asyncio.run_coroutine_threadsafe on the same loop and waited with "
            "future.result(). The two alternate tick by tick; "
            f"{_plural(sizes.floor_rounds, 'round')} of "
            + ", ".join(
                f"{reps} ticks at {roles} role{'s' if roles > 1 else ''}"
                for roles, _, reps in cells
            )
            + " per design. Each ticker's first tick (which creates its health records) is a "
            "warm-up. Loop time held: the loop thread's CPU (schedstat) from just before the "
            "submit to just after the caller has the result; the loop serves nothing else."
        ),
        rows=rows,
    )


def _floor_id(roles: int, ping_ms: float) -> str:
    return f"roles{roles}_" + (f"ping{ping_ms:g}ms" if ping_ms else "instant")


def _only_many(bench: Bench, keys: Sequence[str]) -> dict[str, list[float] | None]:
    return {other: ([] if other in keys else None) for other in bench.keys}


def stall(bench: Bench) -> Section:
    """Cadence under load: block the loop for 2.5 intervals and see when the next ticks come."""
    sizes = bench.sizes
    interval = sizes.stall_interval_s
    stall_s = interval * sizes.stall_intervals
    loop = bench.runtime.loop
    before_ticks = 4
    burst, first_late, phase, skipped = (_per_contender(bench) for _ in range(4))
    series: dict[str, list[list[float]]] = {key: [] for key in bench.keys}
    pool = bench.pool(1, ping_s=0.0)
    for repeat in range(sizes.stall_repeats):
        for cls in bench.contenders:
            bench.progress(f"stall: {cls.label}, repeat {repeat + 1} of {sizes.stall_repeats}")
            pool.reset()
            last = before_ticks + sizes.stall_ticks_after
            with bench.session(cls, pool, interval_s=interval):
                _wait(pool.at_survey(before_ticks), cls)
                anchor = pool.survey_times[before_ticks - 1]
                _sleep_until(anchor + _IDLE_STOP_FRACTION * interval)
                # The loop runs nothing else for stall_s: a GC pause, a
                # synchronous call in a request handler, a loaded machine.
                loop.call_soon_threadsafe(time.sleep, stall_s)
                _wait_long(pool.at_survey(last), cls, (sizes.stall_ticks_after + 3) * interval)
            after = pool.survey_times[before_ticks:last]
            offsets = [(moment - anchor) * 1e3 for moment in after]
            series[cls.key].append(offsets)
            first = after[0]
            _extend(burst, cls.key, [min(b - a for a, b in itertools.pairwise(after)) * 1e3])
            _extend(first_late, cls.key, [(first - anchor - interval) * 1e3])
            later = [((t - anchor) % interval) * 1e3 for t in after[2:]] or [0.0]
            _extend(phase, cls.key, [statistics.median(later)])
            slots = round((after[-1] - anchor) / interval)
            _extend(skipped, cls.key, [float(slots - len(after))])
    stall_ms = f"{stall_s * 1e3:g} ms"
    return Section(
        key="stall",
        title="Cadence under load",
        description=(
            f"One live role, ticking every {interval * 1e3:g} ms. "
            f"{_IDLE_STOP_FRACTION:g} of an interval after tick {before_ticks} reached the pool, "
            f"the runtime's loop is blocked for {stall_ms} ({sizes.stall_intervals:g} "
            f"intervals); the next {sizes.stall_ticks_after} ticks are timed against the old "
            f"grid (tick {before_ticks} + k·interval). "
            f"{_plural(sizes.stall_repeats, 'repeat')} per design."
        ),
        rows=[
            Row(
                "min_gap",
                "shortest gap between two ticks after the stall",
                "ms",
                burst,
                "About 0: a tick fired back to back with the late one (a catch-up tick).",
                ratio=False,
            ),
            Row(
                "first_late",
                "first tick after the stall: late against its slot",
                "ms",
                first_late,
                ratio=False,
            ),
            Row(
                "phase",
                "later ticks: phase against the old grid",
                "ms",
                phase,
                f"0 or {interval * 1e3:g}: the old grid kept; in between: re-anchored.",
                ratio=False,
            ),
            Row(
                "skipped",
                "grid slots without a tick",
                "slots",
                skipped,
                ratio=False,
            ),
        ],
        extra={"interval_ms": interval * 1e3, "stall_ms": stall_s * 1e3, "offsets_ms": series},
    )


def _only(bench: Bench, key: str) -> dict[str, list[float] | None]:
    return {other: ([] if other == key else None) for other in bench.keys}


def idle_cost(bench: Bench) -> Section:
    """What the ticker's own threads cost while no role is alive, and during a slow ping."""
    sizes = bench.sizes
    interval = sizes.idle_interval_s
    windows = max(1, round(sizes.idle_stretch_s / interval))
    between, wakeups, cpu, process_wakeups, ticks_per_interval, stat_cpu = (
        _per_contender(bench) for _ in range(6)
    )
    pool = bench.pool(8, alive=False)
    for round_number in range(sizes.idle_rounds):
        bench.progress(f"idle cost: round {round_number + 1} of {sizes.idle_rounds}")
        for cls in bench.contenders:
            pool.reset()
            # Tick 1 warms up; ticks 2 .. 2 + windows are measured.
            ticks = [pool.at_survey(number) for number in range(1, windows + 3)]
            with bench.session(cls, pool, interval_s=interval, record_retired=True) as session:
                _wait(ticks[1], cls)
                whole = ThreadLedger(session.ledger.existing, session.contender.retired)
                whole.begin()
                before, begun = process_counters(), time.perf_counter()
                quiet = 0
                for number in range(2, windows + 2):
                    _wait(ticks[number - 1], cls)
                    tick_began = pool.survey_times[number - 1]
                    _sleep_until(tick_began + _QUIET_MARGIN_S)
                    session.ledger.begin()
                    _sleep_until(tick_began + interval - _QUIET_MARGIN_S)
                    quiet += session.ledger.end().voluntary
                _wait(ticks[windows + 1], cls)
                own = whole.end()
                after, elapsed = process_counters(), time.perf_counter() - begun
            _extend(between, cls.key, [quiet / windows])
            _extend(wakeups, cls.key, [own.voluntary / windows])
            _extend(cpu, cls.key, [own.cpu_s / windows * 1e6])
            _extend(stat_cpu, cls.key, [own.stat_cpu_s * 1e3])
            _extend(process_wakeups, cls.key, [(after - before).voluntary / windows])
            _extend(ticks_per_interval, cls.key, [windows / (elapsed / interval)])

    slow = _per_contender(bench)
    pool = bench.pool(1, ping_s=sizes.slow_ping_s)
    for cls in bench.contenders:
        bench.progress(f"idle cost: {cls.label}, one {sizes.slow_ping_s * 1e3:g} ms ping per tick")
        pool.reset()
        first, last = pool.at_survey(2), pool.at_survey(2 + sizes.slow_ping_ticks)
        with bench.session(
            cls, pool, interval_s=1.5 * sizes.slow_ping_s, record_retired=True
        ) as session:
            _wait(first, cls)
            session.ledger.begin()
            _wait(last, cls)
            own = session.ledger.end()
        _extend(slow, cls.key, [own.voluntary / sizes.slow_ping_ticks])

    margin_ms = _QUIET_MARGIN_S * 1e3
    return Section(
        key="idle_cost",
        title="Idle cost",
        description=(
            f"8 registered roles, none alive, ticking every {interval * 1e3:g} ms; "
            f"{windows} ticks per round, {_plural(sizes.idle_rounds, 'round')}. The ticker's "
            "threads are the threads the design started: HealthTicker's thread; the asyncio "
            "design's loop thread; every Timer thread (each records its counters as it ends); "
            "APScheduler's scheduler thread and executor workers. A wake-up is a voluntary "
            "context switch (/proc/self/task/<tid>/status), CPU is schedstat's run time. "
            f"'Between ticks' counts from {margin_ms:g} ms after a tick reached the pool to "
            f"{margin_ms:g} ms before the next is due, where a design that only waits for its "
            "clock has no reason to wake. 'Per tick' counts everything: the clock, each round "
            "trip to the runtime's loop, and the GIL changing hands."
        ),
        rows=[
            Row("between_ticks", "ticker thread(s): wake-ups between ticks", "switches", between),
            Row("thread_wakeups", "ticker thread(s): wake-ups per tick", "switches", wakeups),
            Row("thread_cpu", "ticker thread(s): CPU per tick", "µs", cpu),
            Row(
                "process_wakeups",
                "whole process: wake-ups per tick",
                "switches",
                process_wakeups,
            ),
            Row(
                "ticks_per_interval",
                "ticks per interval elapsed",
                "ticks",
                ticks_per_interval,
                "1.0 for a fixed-rate clock; below 1 when each tick delays the next.",
            ),
            Row(
                "slow_ping_wakeups",
                f"ticker thread(s): wake-ups per tick with one {sizes.slow_ping_s * 1e3:g} ms ping",
                "switches",
                slow,
                "One live role. Waiting for the ping without polling needs a wake-up for the "
                "clock and one per round trip to the loop (one per tick for HealthTicker; two, "
                "the survey and the ping, for the others), plus the GIL's hand-offs.",
            ),
        ],
        extra={"stat_utime_plus_stime_ms": stat_cpu},
    )


def _sleep_until(moment: float) -> None:
    left = moment - time.perf_counter()
    if left > 0.0:
        time.sleep(left)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def scale(bench: Bench) -> Section:
    """A thousand live roles in one tick, and a hundred tickers in one process."""
    sizes = bench.sizes
    sequential = {cls.key for cls in bench.contenders if cls.pings_one_at_a_time}
    many: dict[float, dict[str, list[float] | None]] = {}
    for ping_ms in sizes.ping_ms:
        many[ping_ms] = _per_contender(bench)
        pool = bench.pool(sizes.scale_roles, ping_s=ping_ms / 1e3)
        for cls in bench.contenders:
            if ping_ms > 0 and cls.key in sequential:
                many[ping_ms][cls.key] = None
                continue
            bench.progress(f"scale: {cls.label}, {sizes.scale_roles} roles x {ping_ms:g} ms")
            durations = bench.tick_durations(
                cls,
                pool,
                interval_s=sizes.scale_interval_s,
                ticks=sizes.scale_ticks,
                budget_s=sizes.scale_ticks * sizes.scale_interval_s * 2,
            )
            _extend(many[ping_ms], cls.key, _ms(durations))

    rows = [
        Row(
            f"roles{sizes.scale_roles}_ping{ping_ms:g}ms",
            f"{sizes.scale_roles} live roles, {ping_ms:g} ms ping: tick duration",
            "ms",
            many[ping_ms],
            (
                f"Not run for the asyncio design: its pings run one after another, so a tick "
                f"takes over {sizes.scale_roles} x {ping_ms:g} ms = "
                f"{sizes.scale_roles * ping_ms / 1e3:g} s."
                if ping_ms > 0
                else ""
            ),
        )
        for ping_ms in sizes.ping_ms
    ]
    rows.extend(_many_tickers(bench))
    return Section(
        key="scale",
        title="Scale",
        description=(
            f"A tick over {sizes.scale_roles} live roles ({sizes.scale_ticks} ticks each); then "
            f"{sizes.scale_tickers} tickers of one design in one process, each ticking one live "
            f"no-op role every {sizes.scale_interval_many_s * 1e3:g} ms, measured over "
            f"{sizes.scale_run_s:g} s (one run: n = 1)."
        ),
        rows=rows,
    )


def _many_tickers(bench: Bench) -> list[Row]:
    sizes = bench.sizes
    count = sizes.scale_tickers
    threads, memory, fds, cpu, rate, stop_all = (_per_contender(bench) for _ in range(6))
    pool = bench.pool(1, ping_s=0.0)
    for cls in bench.contenders:
        bench.progress(f"scale: {count} x {cls.label}")
        pool.reset()
        gc.collect()
        threads_before, rss_before, fds_before = threading.active_count(), rss_bytes(), open_fds()
        contenders = [
            bench.make(cls, pool, interval_s=sizes.scale_interval_many_s) for _ in range(count)
        ]
        started: list[Contender] = []
        try:
            for contender in contenders:
                contender.start()
                started.append(contender)
            _wait(pool.at_survey(2 * count), cls)
            _extend(threads, cls.key, [threading.active_count() - threads_before])
            _extend(memory, cls.key, [(rss_bytes() - rss_before) / 2**20])
            _extend(fds, cls.key, [open_fds() - fds_before])
            # Tickers started together tick in bursts: count over whole intervals.
            window = sizes.scale_interval_many_s * max(
                1, round(sizes.scale_run_s / sizes.scale_interval_many_s)
            )
            before, begun = process_counters(), time.perf_counter()
            time.sleep(window)
            after, elapsed = process_counters(), time.perf_counter() - begun
            ticks = sum(1 for moment in pool.survey_times if begun <= moment < begun + window)
            _extend(cpu, cls.key, [(after - before).cpu_s / elapsed * 100.0])
            _extend(rate, cls.key, [ticks / window])
        finally:
            begun = time.perf_counter()
            for contender in started:
                contender.stop()
            _extend(stop_all, cls.key, [(time.perf_counter() - begun) * 1e3])
            for contender in started:
                contender.close()
        if pool.violations:
            raise AssertionError(f"{cls.label} touched the pool off the loop thread")
    expected_rate = count / sizes.scale_interval_many_s
    return [
        Row(f"tickers{count}_threads", f"{count} tickers: threads added", "threads", threads),
        Row(f"tickers{count}_rss", f"{count} tickers: resident memory added", "MiB", memory),
        Row(f"tickers{count}_fds", f"{count} tickers: file descriptors added", "fds", fds),
        Row(f"tickers{count}_cpu", f"{count} tickers: CPU", "% of a core", cpu),
        Row(
            f"tickers{count}_rate",
            f"{count} tickers: ticks per second",
            "ticks/s",
            rate,
            f"Higher is better: {expected_rate:g}/s is every ticker on time.",
        ),
        Row(f"tickers{count}_stop", f"{count} tickers: stop them all", "ms", stop_all),
    ]


SECTIONS: tuple[Callable[[Bench], Section], ...] = (
    floor,
    tick_duration,
    overhead,
    cadence,
    stall,
    stop_latency,
    idle_cost,
    scale,
)
"""Every section, in report order."""


def run_all(bench: Bench) -> list[Section]:
    """Run every section in order and return them."""
    return [section(bench) for section in SECTIONS]
