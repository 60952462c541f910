"""The tick's coroutine on a real loop: outcomes settled once, calls that never overlap."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lilbee_ticker import CallTimeoutError
from lilbee_ticker._callbook import CallBook, Countdown
from lilbee_ticker._calls import role_names, run_tick
from lilbee_ticker._job import Gate, TickJob, TickState
from lilbee_ticker._lazy import LazyCoroutine
from lilbee_ticker.testing import Delay, FakePool, IgnoreCancel, SlowClose


def _job(pool: FakePool, book: CallBook, timeout: float = 0.05) -> TickJob:
    return TickJob(pool, book, Gate(threading.Event()), timeout, None)


@pytest.mark.parametrize("late", [0.0, 0.02], ids=["at-once", "later"])
def test_a_ping_that_returns_after_its_deadline_keeps_its_timeout(late: float) -> None:
    """Once the deadline settled a timeout, the ping returning after its cancel changes nothing."""

    async def scenario() -> object:
        pool = FakePool(("embed", "chat"))
        pool.set_ping("chat", IgnoreCancel(late))
        book = CallBook()
        job = _job(pool, book)
        await run_tick(job)
        # Let the stubborn ping finish on this loop, after the tick has ended.
        while book.pings:
            await asyncio.sleep(0.001)
        return job.state.outcomes["chat"]

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, CallTimeoutError) and not outcome.still_running


def test_a_reap_is_left_running_past_its_deadline_and_not_started_twice() -> None:
    """The tick stops waiting for a slow reap without cancelling it; the next tick skips it."""

    async def scenario() -> tuple[object, object, int, bool]:
        pool = FakePool(("embed",))
        pool.set_reap(SlowClose(0.2))
        book = CallBook()
        first = _job(pool, book)
        await run_tick(first)
        second = _job(pool, book)
        await run_tick(second)
        in_flight = book.reap is not None
        while book.reap is not None:
            await asyncio.sleep(0.001)
        return first.state.reap_error, second.state.reap_error, pool.count("reap_idle"), in_flight

    first, second, reaps, in_flight = asyncio.run(scenario())
    assert isinstance(first, CallTimeoutError) and not first.still_running
    assert isinstance(second, CallTimeoutError) and second.still_running
    assert reaps == 1 and in_flight


def test_the_book_is_idle_only_when_every_call_has_ended() -> None:
    """CallBook.idle is clear while a reap or ping of the ticker's runs, and set after."""

    async def scenario() -> tuple[bool, bool]:
        pool = FakePool(("embed",))
        pool.set_reap(SlowClose(0.1))
        book = CallBook()
        await run_tick(_job(pool, book, timeout=0.01))
        during = book.idle.is_set()
        while book.size:
            await asyncio.sleep(0.001)
        return during, book.idle.is_set()

    assert asyncio.run(scenario()) == (False, True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("embed", "iterable of role names"),
        (42, "iterable of role names"),
        ([["embed"]], r"role names \(str\)"),
        ({"embed": object()}, None),
    ],
)
def test_role_names_accepts_only_names(value: object, message: str | None) -> None:
    """Anything but an iterable of str is a TypeError naming the member; a dict gives its keys."""
    if message is None:
        assert role_names(value, "reap_idle()") == ("embed",)
        return
    with pytest.raises(TypeError, match=message) as caught:
        role_names(value, "reap_idle()")
    assert "reap_idle()" in str(caught.value)


def test_role_names_keeps_order_and_drops_repeats() -> None:
    """A name listed twice counts once, in the order first seen."""
    assert role_names(["chat", "embed", "chat"], "registered_roles") == ("chat", "embed")


def test_role_names_says_a_method_should_be_a_property() -> None:
    """registered_roles given as a method gets a message naming the fix."""
    with pytest.raises(TypeError, match="make registered_roles a property"):
        role_names(FakePool.count, "registered_roles")


def test_a_lazy_coroutine_never_started_leaves_nothing_to_warn_about() -> None:
    """A LazyCoroutine that is dropped unstarted creates no coroutine, so nothing is unawaited."""
    created = []

    async def work() -> int:
        return 1

    def factory():  # type: ignore[no-untyped-def]
        created.append(True)
        return work()

    lazy = LazyCoroutine(factory)
    lazy.close()
    del lazy
    assert created == []
    assert asyncio.run(_await(LazyCoroutine(factory))) == 1
    assert created == [True]


async def _await(coro: LazyCoroutine) -> object:
    return await asyncio.ensure_future(coro)


def test_a_call_is_in_the_book_before_the_pools_code_runs() -> None:
    """While the pool's reap and ping code runs, CallBook.idle already says a call is in flight.

    On Python 3.12+ the tasks start eagerly, running the pool's code before
    the task can be recorded: a stop() reading the book from another thread
    in that moment must not take the ticker for idle.
    """

    class Observing(FakePool):
        seen: list[tuple[str, bool]] = []  # noqa: RUF012 - filled by the one test

        async def reap_idle(self) -> tuple[str, ...]:
            self.seen.append(("reap_idle", book.idle.is_set()))
            return await super().reap_idle()

        async def ping_role(self, role: str) -> None:
            self.seen.append(("ping_role", book.idle.is_set()))
            await super().ping_role(role)

    book = CallBook()

    async def scenario() -> None:
        await run_tick(_job(Observing(("embed",)), book))

    asyncio.run(scenario())
    assert Observing.seen == [("reap_idle", False), ("ping_role", False)]


def test_a_tick_resumes_when_its_last_call_ends_not_at_its_deadline() -> None:
    """With an hour's bound, a tick whose reap and pings each wait a little still ends at once.

    The reap and every ping count themselves out of their step's countdown
    from their own last step; a call that failed to would keep the tick
    waiting for its deadline (here, past the test's 10 s guard).
    """

    async def scenario() -> TickState:
        pool = FakePool(("embed", "chat", "rerank"))
        pool.set_reap(Delay(0.005))
        for role in ("embed", "chat", "rerank"):
            pool.set_ping(role, Delay(0.005))
        job = _job(pool, CallBook(), timeout=3600.0)
        await asyncio.wait_for(run_tick(job), 10.0)
        return job.state

    state = asyncio.run(scenario())
    assert state.reap_error is None and state.loop_late is None
    assert all(isinstance(outcome, float) for outcome in state.outcomes.values())
    assert sorted(state.outcomes) == ["chat", "embed", "rerank"]


@pytest.mark.parametrize("how", ["returns", "raises", "thrown-before-start", "thrown-later"])
def test_a_lazy_coroutine_says_once_that_it_ended_after_metering_its_last_step(how: str) -> None:
    """on_end runs once, however the coroutine ends, and the step's time is already counted."""
    state = TickState()
    seen: list[float] = []

    async def work() -> int:
        await asyncio.sleep(0)
        if how == "raises":
            raise ValueError("boom")
        return 1

    async def scenario() -> None:
        lazy = LazyCoroutine(work, state, lambda: seen.append(state.loop_busy_s))
        task = asyncio.ensure_future(lazy)
        if how == "thrown-before-start":
            task.cancel()
        elif how == "thrown-later":
            await asyncio.sleep(0)  # the task is now waiting inside work()
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert len(seen) == 1
    assert seen[0] == state.loop_busy_s
    assert (state.loop_busy_s > 0) is (how != "thrown-before-start")


def test_a_countdown_stops_waiting_at_its_deadline_and_leaves_the_call_running() -> None:
    """At the deadline the wait ends; the call it counted is not cancelled, and ends later."""

    async def scenario() -> tuple[bool, bool, int]:
        loop = asyncio.get_running_loop()
        countdown = Countdown()
        countdown.one_started()
        release = asyncio.Event()

        async def call() -> None:
            try:
                await release.wait()
            finally:
                countdown.one_ended()

        task = asyncio.ensure_future(call())
        await countdown.wait(loop.time() + 0.01)
        running_at_deadline = not task.done()
        release.set()
        await task
        return running_at_deadline, task.cancelled(), countdown.left

    running_at_deadline, cancelled, left = asyncio.run(scenario())
    assert running_at_deadline and not cancelled and left == 0


def test_a_countdown_with_nothing_left_does_not_wait() -> None:
    """Calls that all ended before the wait (eager tasks) need no waiter and no timer."""

    async def scenario() -> object:
        countdown = Countdown()
        countdown.one_started()
        countdown.one_ended()
        await countdown.wait(asyncio.get_running_loop().time() + 3600.0)
        return countdown.waiter

    assert asyncio.run(scenario()) is None


class _Alive:
    is_alive = True


class _NoReapTaskPool:
    """reap_idle() fails at once (no reap task runs); "fast" answers at once, "slow" waits."""

    registered_roles = ("fast", "slow")

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def accessor(self, role: str) -> _Alive:
        return _Alive()

    def reap_idle(self) -> object:
        raise RuntimeError("reap broke")

    async def ping_role(self, role: str) -> None:
        if role == "slow":
            await self.release.wait()


def test_the_book_is_not_idle_while_a_later_ping_of_the_same_tick_runs() -> None:
    """A ping that ends at once (eagerly, on 3.12+) does not make the book idle for the next.

    stop() waits on CallBook.idle: set while "slow" still runs, it would
    return True with one of the ticker's calls still on the loop.
    """

    async def scenario() -> tuple[list[str], bool]:
        pool = _NoReapTaskPool()
        book = CallBook()
        job = TickJob(pool, book, Gate(threading.Event()), 5.0, None)  # type: ignore[arg-type]
        tick = asyncio.ensure_future(run_tick(job))
        while "slow" not in book.pings:
            await asyncio.sleep(0)
        seen = (list(book.pings), book.idle.is_set())
        pool.release.set()
        await tick
        return seen

    in_flight, idle = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert "slow" in in_flight
    assert not idle


class _SlowStartPool:
    """Every call works synchronously for a while (blocking the loop), then awaits as long."""

    registered_roles = ("chat",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def accessor(self, role: str) -> _Alive:
        return _Alive()

    async def reap_idle(self) -> tuple[str, ...]:
        time.sleep(self.seconds)  # the synchronous start of a real reap, say
        await asyncio.sleep(self.seconds)
        return ()

    async def ping_role(self, role: str) -> None:
        time.sleep(self.seconds)
        await asyncio.sleep(self.seconds)


def test_a_calls_synchronous_start_counts_against_its_bound_on_every_python() -> None:
    """0.3 s of synchronous work and 0.3 s of waiting outlive a 0.5 s bound: both time out.

    On 3.12+ the first step of a call runs at once, inside the tick's own
    step; its deadline is taken before it starts, as on 3.10 and 3.11, so
    the verdict is the same on every Python.
    """

    async def scenario() -> TickState:
        book = CallBook()
        job = TickJob(_SlowStartPool(0.3), book, Gate(threading.Event()), 0.5, None)  # type: ignore[arg-type]
        await run_tick(job)
        while not book.idle.is_set():  # let the reap that was left running end here
            await asyncio.sleep(0.01)
        return job.state

    state = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert state.loop_late is None
    assert isinstance(state.reap_error, CallTimeoutError)
    assert isinstance(state.outcomes["chat"], CallTimeoutError)


class _LoopBlockingPool(_SlowStartPool):
    """A reap and a ping that each block the loop past their deadline, then hang a while."""

    async def reap_idle(self) -> tuple[str, ...]:
        await asyncio.sleep(0)  # the tick is waiting for it now, its deadline set
        time.sleep(self.seconds)
        await asyncio.sleep(self.seconds)
        return ()

    async def ping_role(self, role: str) -> None:
        await asyncio.sleep(0)
        time.sleep(self.seconds)
        await asyncio.sleep(self.seconds)


def test_the_first_deadline_the_loop_woke_late_for_is_the_one_reported() -> None:
    """A loop late for the reap's deadline, then for the pings', is reported late at the reap.

    The reap's lateness came first, and it is why nothing after it in the
    tick is the pool's fault; the pings' lateness must not hide it (a reap
    left running with no timeout and no lateness would go unaccounted).
    """

    async def scenario() -> TickState:
        book = CallBook()
        job = TickJob(_LoopBlockingPool(0.25), book, Gate(threading.Event()), 0.05, None)  # type: ignore[arg-type]
        await run_tick(job)
        while not book.idle.is_set():
            await asyncio.sleep(0.01)
        return job.state

    state = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert state.loop_late is not None and state.loop_late[0] == "reap"
    assert state.loop_late[1] > 0.1  # late_grace(0.05): the loop, not the calls
    assert state.reap_error is None
    assert state.outcomes == {"chat": None}  # no evidence about the ping either


class _StopAtThirdLook(Gate):
    """A gate that a stop() closes right after the tick's second look at it.

    run_tick looks at its gate when it starts and again before the reap; a
    stop landing between that look and the reap's start closes the gate and
    then reads the book, as HealthTicker.stop() does.
    """

    def __init__(self, book: CallBook) -> None:
        super().__init__(threading.Event())
        self.book = book
        self.looks = 0
        self.idle_seen_by_stop: bool | None = None

    def open(self) -> bool:
        self.looks += 1
        if self.looks == 3:
            self.closed = True
            self.idle_seen_by_stop = self.book.idle.is_set()
        return super().open()


def test_a_stop_just_before_the_reap_starts_none_and_finds_the_book_busy() -> None:
    """No reap starts after a stop that found the book idle: the book is busy before the gate.

    The book says a call is starting before the gate is read the last time,
    and the pool's reap_idle() is called only after that read.
    """

    async def scenario() -> tuple[_StopAtThirdLook, TickState, int, bool]:
        pool = FakePool(("embed",))
        book = CallBook()
        gate = _StopAtThirdLook(book)
        job = TickJob(pool, book, gate, 5.0, None)
        await run_tick(job)
        return gate, job.state, pool.count("reap_idle"), book.idle.is_set()

    gate, state, reaps, idle_after = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert gate.looks >= 3
    assert gate.idle_seen_by_stop is False
    assert reaps == 0
    assert state.gated and idle_after
