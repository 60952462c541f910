"""The tick's coroutine on a real loop: outcomes settled once, calls that never overlap."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lilbee_ticker import CallTimeoutError
from lilbee_ticker._calls import CallBook, Gate, LazyCoroutine, TickJob, role_names, run_tick
from lilbee_ticker.testing import FakePool, IgnoreCancel, SlowClose


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
