"""`HealthTicker`: a daemon thread that reaps and pings a worker pool on a cadence.

Its loop is ``threading.Timer``'s idea grown up: wait on its own clock
(``_wake``), take a turn (``_turns``), run a tick (``_tickrun``; on the loop,
``_calls``), decide (``_verdict``), publish (``_board``), tell (``_events``),
supervise (``_supervise``). See docs/architecture.md.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from lilbee_ticker import _clock
from lilbee_ticker._board import Board
from lilbee_ticker._callbook import CallBook
from lilbee_ticker._events import Events, OnChange
from lilbee_ticker._exceptions import RuntimeUnavailableError
from lilbee_ticker._health import RoleHealth
from lilbee_ticker._probe import Probe
from lilbee_ticker._protocols import Pool, Runtime
from lilbee_ticker._report import TickReport
from lilbee_ticker._settings import Setting, settle
from lilbee_ticker._stats import TickerStats
from lilbee_ticker._supervise import NO_SUPERVISION, RestartPolicy, Supervisor, Unsupervised
from lilbee_ticker._tickrun import TickRun
from lilbee_ticker._turns import TickTurns
from lilbee_ticker._validate import check_count, check_seconds
from lilbee_ticker._verdict import Ending, decide
from lilbee_ticker._wake import Lifecycle, in_event_loop_thread, join, register

__all__ = ["HealthTicker", "OnChange"]


class HealthTicker:
    """Reap idle workers and ping live ones on a fixed cadence, from a daemon thread.

    Every ``interval_s`` the thread runs one tick: it reads which roles are
    alive, calls the pool's ``reap_idle()``, then pings every role still
    alive, all at once, each step bounded by ``call_timeout_s``. A call still
    running then is a :class:`CallTimeoutError`, a verdict nothing later
    changes: a ping (the ticker's own probe) is cancelled, a reap (the pool's
    cleanup) is not, and no call ever overlaps itself. A ticker runs once,
    like :class:`threading.Thread`: use it as a context manager, or call
    :meth:`start` and :meth:`stop`. Every argument's range and default is in
    docs/configuration.md.

    Args:
        pool: The worker pool (:class:`Pool`); read on the runtime's loop only.
        runtime: Runs coroutines on the pool's loop (:class:`Runtime`).
        interval_s: Seconds between the starts of two ticks.
        call_timeout_s: Real seconds for each step of a tick (the reap, then the
            pings); by default ``min(10, interval_s / 2)``, so a tick fits its interval.
        stop_event: An application's shutdown event: setting it stops the
            ticker at once. The ticker only reads it; :meth:`stop` never sets it.
        name: The thread's name, also ``ticker`` on every log event.
        failure_threshold: Failed pings in a row that make a role ``UNHEALTHY``.
        success_threshold: Successful pings in a row that make it ``HEALTHY`` again.
        on_change: ``on_change(old, new)`` once per status transition, on the
            thread running the tick, after its health is published.
        initial_delay_s: Seconds from :meth:`start` to the first tick (None: one interval).
        stale_after_s: How old the last survey may get before a running ticker
            is not :attr:`healthy` (None: ``2 * interval_s + 2 * call_timeout_s + 1``).
        restart: A :class:`RestartPolicy` to restart ``UNHEALTHY`` roles through
            the pool's ``restart_role(role)``; None (the default) only observes.

    Raises:
        TypeError, ValueError: An argument has the wrong type or is out of its range.

    Thread safety: every public member may be used from any thread; ticks never overlap.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       :meth:`stop` no longer sets an application's ``stop_event``,
       ``call_timeout_s`` follows ``interval_s`` by default, and ``restart``.
    """

    name: Setting[str] = Setting("The ticker's name, also its thread's name.")
    interval_s: Setting[float] = Setting("Seconds between the starts of two ticks.")
    call_timeout_s: Setting[float] = Setting("Real seconds each step of a tick may take.")
    failure_threshold: Setting[int] = Setting("Failed pings in a row that make a role unhealthy.")
    success_threshold: Setting[int] = Setting("Successful pings in a row that heal a role.")
    initial_delay_s: Setting[float | None] = Setting("Seconds from start() to the first tick.")
    stale_after_s: Setting[float] = Setting("How old the last survey may get while healthy.")

    def __init__(
        self,
        pool: Pool,
        runtime: Runtime,
        *,
        interval_s: float = 30.0,
        call_timeout_s: float | None = None,
        stop_event: threading.Event | None = None,
        name: str = "lilbee-health-ticker",
        failure_threshold: int = 3,
        success_threshold: int = 1,
        on_change: OnChange | None = None,
        initial_delay_s: float | None = None,
        stale_after_s: float | None = None,
        restart: RestartPolicy | None = None,
    ) -> None:
        self._settings = s = settle(
            pool, runtime, stop_event, interval_s, call_timeout_s, name, failure_threshold,
            success_threshold, on_change, initial_delay_s, stale_after_s, restart,
        )  # fmt: skip
        self._pool, self._runtime = pool, runtime
        self._life = life = Lifecycle(s.name, stop_event)  # the thread, its clock and its stop
        self._book = CallBook()  # the calls in flight; changed on the loop only
        self._turns = TickTurns(s.slot_bound_s, life.stopping)
        self._board = Board(s, life)  # what the ticks publish, and every answer from it
        self._events = Events(s.name, s.on_change, self._keep_error)
        self._supervisor: Supervisor | Unsupervised = (
            NO_SUPERVISION if restart is None else Supervisor(restart, self._events.emit)
        )
        self._tick_count, self._runtime_lost = 0, False  # written by the slot holder only
        self._exception: BaseException | None = None
        register(self)
        for event, fields in s.warnings():
            self._events.emit("warning", event, **fields)

    @property
    def stop_event(self) -> threading.Event:
        """The application's event it was given, or its own; setting it stops the ticker."""
        return self._life.stop_event

    @property
    def is_running(self) -> bool:
        """True while the background thread is alive (in this process)."""
        return self._life.running()

    @property
    def last_report(self) -> TickReport | None:
        """The report of the most recent tick, background or manual, or ``None``."""
        return self._board.published.report

    @property
    def exception(self) -> BaseException | None:
        """The last unexpected exception in the ticker's own code (logged too), or ``None``."""
        return self._exception

    def health(self) -> Mapping[str, RoleHealth]:
        """Every registered role's record as of the latest tick, as one read-only snapshot."""
        return self._board.records()

    def stats(self) -> TickerStats:
        """The ticker's counters, as of the latest completed tick."""
        return self._board.stats()

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopped"`` (an orderly end) or ``"crashed"``.

        .. versionadded:: 0.2.0
        """
        return self._board.liveness().state

    @property
    def healthy(self) -> bool:
        """False while a role is UNHEALTHY, the loop is stuck, the thread dead or the ticker stale.

        .. versionchanged:: 0.2.0
           Also False for an unresponsive loop, a crashed thread, or a stale ticker.
        """
        return not self._board.liveness().problems

    @property
    def ready(self) -> bool:
        """True once a tick has read the pool, while the ticker is new or running and not stale.

        .. versionadded:: 0.2.0
        """
        return self._board.liveness().ready

    def probe(self) -> Probe:
        """What a ``/healthz`` endpoint serves, from one reading of the ticker.

        .. versionadded:: 0.2.0
        """
        return self._board.probe()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> HealthTicker:
        """Start the background thread and return the ticker.

        Raises:
            TickerUsageError: It was already started or stopped, its
                ``stop_event`` is set, or it was made in another process.
        """
        self._life.refuse_if_forked("start()")
        problem = self._life.start(self._run, self.name)
        if problem is None:
            return self
        raise self._life.usage(
            problem,
            "a ticker runs once, like threading.Thread: create a new HealthTicker "
            "(with a stop_event that is not set) to start again",
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the ticker: cancel its pings, and wait up to ``timeout`` for it to end.

        Each ping in flight is cancelled once and let finish its cleanup; a reap
        or restart in flight is never cancelled. An application's ``stop_event``
        is not set. Safe before :meth:`start`, twice, from any thread, and from
        a signal handler while the main thread is in a ticker call.

        Returns:
            True if the thread has ended (or never started) and no call the
            ticker started still runs; False if one did when ``timeout`` passed,
            or when called from the ticker's own thread (a hook). From a thread
            running an event loop it does not wait for the calls.
        """
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        if self._life.forked():
            return True  # the thread lives only in the parent process
        thread = self._life.stop()
        self._turns.notify()
        budget = _clock.Budget(timeout)
        # Inside a tick on this thread (a signal handler): its calls end after.
        ended = join(thread, budget) and (self._turns.mine() or self._wait_for_calls(budget))
        if not ended and thread is not threading.current_thread():
            self._events.stop_timeout(timeout, thread, self._book.running())
        return ended

    def join(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds for the background thread to end; True if it has."""
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        return self._life.forked() or join(self._life.thread, _clock.Budget(timeout))

    def tick(self) -> TickReport:
        """Run one full tick now, in the calling thread, after any in progress; return its report.

        Raises:
            TickerUsageError: The ticker is stopped, or the call comes from
                inside a tick or a thread running an event loop, where it would
                wait for itself (use ``await asyncio.to_thread(ticker.tick)``).
            RuntimeUnavailableError: ``runtime.submit()`` raised.
            TimeoutError: The tick in progress elsewhere outlived its worst case.
        """
        self._life.refuse_if_forked("tick()")
        self._life.refuse_to_block(
            "tick()",
            "return from the hook and let the current tick finish",
            "ticker.tick",
            in_tick=self._turns.mine(),
        )
        self._turns.claim_or_raise(self._life.usage)
        try:
            return self._tick()
        finally:
            self._turns.release()

    def tick_soon(self) -> None:
        """Ask the background thread for a tick now, and return at once; a no-op if not running.

        Calls while one is pending make one tick, and the cadence restarts from
        it. It never blocks: safe from any thread, the runtime's loop (a pool
        that sees a worker die) and a signal handler.

        .. versionadded:: 0.2.0
        """
        if self.is_running:
            self._life.wake.ask()

    def wait_for_tick(self, number: int = 1, timeout: float = 60.0) -> TickReport | None:
        """Block until tick ``number`` (1-based) has completed; return the latest report.

        Returns:
            The latest report, or ``None`` if ``timeout`` passed, the ticker
            was stopped, or its thread ended first.

        Raises:
            TickerUsageError: The ticker was never started and no tick is in
                progress, so none would come; or the call would wait for itself.
        """
        number = check_count("number", number)
        budget = _clock.Budget(check_seconds("timeout", timeout, allow_zero=True))
        report = self._board.latest()
        if report is not None and report.number >= number:
            return report
        if self._life.forked() or self._life.stopping():
            return None
        self._life.refuse_to_block(
            "wait_for_tick()",
            "return from the hook; the tick's report is published right after it",
            "ticker.wait_for_tick, n",
            in_tick=self._turns.mine(),
        )
        self._life.refuse_never_started(
            "wait_for_tick()", ticked=self._tick_count > 0 or self._turns.owner is not None
        )
        return self._turns.wait(number, budget, self._board.latest, self._life.over)

    def __enter__(self) -> HealthTicker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "new" if self.state == "new" else "stopped"
        ticks = self._tick_count
        return f"<HealthTicker {self.name!r} {state} interval_s={self.interval_s:g} ticks={ticks}>"

    # -- the thread, and one tick -------------------------------------------------------

    def _run(self) -> None:
        """The thread's body: tick on the cadence until stopped; never die silently."""
        s = self._settings
        self._events.emit(
            "info", "ticker.started", interval_s=s.interval_s, call_timeout_s=s.call_timeout_s
        )
        reason = "stopped"
        try:
            wait = s.first_delay_s
            deadline = _clock.monotonic() + wait
            while (why := self._life.wake.wait_for_tick(wait)) != "stop":
                self._tick_in_turn()
                now = _clock.monotonic()
                # An asked tick starts the interval again; a due one keeps the grid.
                if why == "asked":
                    deadline = now + s.interval_s
                else:
                    deadline = _clock.next_deadline(deadline, now, s.interval_s)
                wait = _clock.next_wait(deadline, now, s.interval_s)
        except RuntimeUnavailableError:
            reason = "runtime_unavailable"  # logged where it was found
        except BaseException as exc:
            reason = "crashed"
            self._exception = exc
            self._events.emit("critical", "ticker.crashed", exc_info=exc)
        finally:
            self._life.ended(reason)
            self._turns.notify()  # wake wait_for_tick(): no more ticks will come
            self._events.emit("info", "ticker.stopped", reason=reason, ticks=self._tick_count)

    def _tick_in_turn(self) -> None:
        """Run one background tick when its turn comes; a bug in it is logged, not fatal."""
        if not self._turns.claim():
            return  # stopping, or a manual tick outlived its bound: the clock decides
        try:
            self._tick()
        except RuntimeUnavailableError:
            raise
        except Exception as exc:
            self._exception = exc
            self._events.emit("error", "tick.crashed", exc_info=exc)
        finally:
            self._turns.release()
        if self._runtime_lost:
            raise RuntimeUnavailableError(self.name, "the tick")

    def _tick(self) -> TickReport:
        """Run one tick and publish it; the caller holds the tick slot."""
        self._tick_count += 1
        sup = self._supervisor
        restart = sup.before(self._board.rows)
        try:
            run = TickRun(
                self._settings, self._pool, self._runtime, self._book, self._life, restart
            )
        except RuntimeUnavailableError as exc:
            self._runtime_gone(exc.__cause__)
            raise
        record = run.wait(self._runtime, self._tick_count)
        if record.ending is Ending.RUNTIME_GONE:
            self._runtime_gone(None)
        report = decide(record)
        # Health first, for the hooks; the report last, once the hooks ran.
        restarts = sup.after(report, self._board.rows, self._book.restart_ends)
        registered = record.registered if report.snapshot_error is None else None
        transitions = self._board.count(report, registered, restarts)
        self._events.tick(report, self._book.late)
        fatal = self._events.transitions(transitions)
        self._board.announce(report)
        if sup.observe_records(self._board.rows) and self.is_running:
            self._life.wake.ask()  # a restart is due now: the first of a streak comes at once
        if fatal is not None:
            raise fatal
        return report

    def _runtime_gone(self, exc: BaseException | None) -> None:
        self._runtime_lost = True
        self._events.runtime_unavailable("the tick", exc)

    def _keep_error(self, exc: BaseException) -> None:
        if self._exception is None:  # logging itself failed: keep the first such error
            self._exception = exc

    def _wait_for_calls(self, budget: _clock.Budget) -> bool:
        # Not when the runtime is gone (nothing runs there again), nor on a
        # thread running an event loop, which may be the very loop the calls need.
        return self._runtime_lost or in_event_loop_thread() or self._book.wait_idle(budget)

    def _reinit_after_fork(self) -> None:
        """Give every lock and event of this ticker a fresh state (in a forked child only)."""
        self._life.reinit_after_fork()
        self._turns.reinit_after_fork()
        self._book.idle._at_fork_reinit()  # type: ignore[attr-defined]  # Event's own reset
