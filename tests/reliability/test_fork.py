"""Fork: os.fork() while the ticker runs leaves the child a dead copy and the parent untouched.

The child reports through a pipe, as JSON, and always leaves with ``os._exit``
so that it never runs the rest of the test session. The parent waits for it
with a bound and kills it if it hangs.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from lilbee_ticker import HealthTicker, LoopRuntime, TickerUsageError
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from lilbee_ticker.testing import Delay, FakePool, Hang

from ..conftest import MakePool
from .conftest import Figures
from .support import real_now, scaled

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns that forking a multi-threaded process may deadlock the child:
    # that risk is exactly what these tests measure.
    "ignore:.*fork.*:DeprecationWarning"
)

# A child answers in a few tens of milliseconds; one that has not after this is stuck
# (a bounded wait of its own would have ended by then) and is killed.
CHILD_BOUND_S = 5.0
STOP_BOUND_S = 0.5


def _in_child(work: Callable[[], dict[str, Any]], bound_s: float = CHILD_BOUND_S) -> dict[str, Any]:
    """Fork; run ``work`` in the child and return what it reported, as seen by the parent."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then leave at once
        os.close(read_end)
        try:
            answer = work()
        except BaseException as exc:
            answer = {"error": repr(exc)}
        try:
            os.write(write_end, json.dumps(answer, default=str).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], bound_s)
        raw = os.read(read_end, 65536) if ready else b""
    finally:
        os.close(read_end)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if not ready:
        return {"error": f"the child did not answer within {bound_s:g}s: it hangs"}
    reported: dict[str, Any] = json.loads(raw)
    return reported


def _child_checks(ticker: HealthTicker) -> dict[str, Any]:
    """In the child: the inherited ticker is inert, and a new runtime and ticker work."""
    answer: dict[str, Any] = {"running": ticker.is_running}
    # tick() and start() first: after a stop() they would raise for that reason instead.
    for name, call in (("tick", ticker.tick), ("start", ticker.start)):
        try:
            call()
        except TickerUsageError:
            answer[name] = "TickerUsageError"
        else:
            answer[name] = "returned"
    start = real_now()
    answer["stopped"] = ticker.stop(timeout=5.0)
    answer["stop_s"] = real_now() - start
    answer["joined"] = ticker.join(timeout=5.0)
    with LoopRuntime(name="child-runtime") as runtime:
        pool = FakePool(["chat"], loop_thread=runtime.thread)
        with HealthTicker(
            pool, runtime, interval_s=0.005, call_timeout_s=10, name="child-ticker"
        ) as fresh:
            report = fresh.wait_for_tick(3, timeout=5.0)
            answer["fresh_ticks"] = 0 if report is None else report.number
            answer["fresh_ok"] = report is not None and report.ok
        answer["fresh_stopped"] = not fresh.is_running
    answer["pending"] = list(runtime.pending_at_shutdown)
    return answer


def test_fork_while_running(
    make_pool: MakePool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
    seed: int,
    figures: Figures,
) -> None:
    """A child forked mid-tick sees a stopped ticker and runs a new one; the parent ticks on."""
    rng = random.Random(seed)
    pool = make_pool(("embed", "chat", "rerank"))
    pool.set_ping("chat", Delay(0.002))  # most forks land in the middle of a tick
    ticker = make_ticker(pool, interval_s=0.002, call_timeout_s=10, name="forked-ticker").start()
    wait_for_ticks(ticker, 1)
    forks = scaled(8, 100)
    expected = {
        "running": False,
        "stopped": True,
        "joined": True,
        "tick": "TickerUsageError",
        "start": "TickerUsageError",
        "fresh_ok": True,
        "fresh_stopped": True,
        "pending": [],
    }
    answers = []
    for _ in range(forks):
        last = ticker.last_report
        assert last is not None
        wait_for_ticks(ticker, last.number + rng.randint(1, 3))
        answer = _in_child(lambda: _child_checks(ticker))
        assert {key: answer.get(key) for key in expected} == expected, answer
        assert answer["stop_s"] < STOP_BOUND_S
        assert answer["fresh_ticks"] >= 3
        answers.append(answer)
    # The parent's ticker never noticed.
    before = ticker.last_report
    assert before is not None
    after = wait_for_ticks(ticker, before.number + 5)
    assert ticker.is_running and ticker.exception is None
    assert after.ok
    assert ticker.stats().snapshot_failures == 0 and ticker.stats().ping_failures == 0
    figures.record(
        forks=forks,
        children_ok=len(answers),
        max_child_stop_s=max(answer["stop_s"] for answer in answers),
        parent_ticks=after.number,
    )


def test_child_wait_for_tick_on_the_inherited_ticker_does_not_hang(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Forked while the ticker's thread held its slot, a child's wait_for_tick() returns at once."""
    pool = make_pool(("chat",))
    pool.set_ping("chat", Hang())  # the thread holds the tick slot while it waits on the ping
    ticker = make_ticker(pool, interval_s=0.005, call_timeout_s=10, name="held-ticker").start()
    assert pool.wait_for_calls("ping_role", role="chat", timeout=10.0)

    def child() -> dict[str, Any]:
        start = real_now()
        report = ticker.wait_for_tick(10**9, timeout=0.5)
        return {"returned": repr(report), "seconds": real_now() - start}

    try:
        answer = _in_child(child, bound_s=1.0)
    finally:
        ticker.stop(timeout=5)
    assert "error" not in answer, answer
    assert answer["returned"] == "None" and answer["seconds"] < 0.5 + STOP_BOUND_S, answer


@pytest.mark.parametrize("how", ["stop_event.set", "stop"])
def test_a_child_stopping_the_inherited_ticker_never_hangs(
    make_pool: MakePool, make_ticker: MakeTicker, seed: int, figures: Figures, how: str
) -> None:
    """A child forked at any moment may set the parent ticker's own stop event, or stop it.

    The parent's ticker thread waits on that event and its own wake-up event
    hundreds of times a second, so a fork often copies one of their locks held;
    the child gets fresh ones and never waits for a thread it does not have.
    """
    rng = random.Random(seed)
    pool = make_pool(("embed", "chat"))
    ticker = make_ticker(pool, interval_s=0.0005, call_timeout_s=10, name="forked-often").start()
    assert ticker.wait_for_tick(1, timeout=CHILD_BOUND_S) is not None
    forks = scaled(200, 1000)

    def child() -> dict[str, Any]:
        start = real_now()
        if how == "stop":
            returned: object = ticker.stop(timeout=1.0)
        else:
            ticker.stop_event.set()
            returned = ticker.stop_event.is_set()
        return {"returned": returned, "seconds": real_now() - start}

    slowest = 0.0
    for _ in range(forks):
        # A random moment of the parent's cadence, without sleeping: spin a little.
        for _ in range(rng.randrange(2000)):
            pass
        answer = _in_child(child)
        assert answer.get("returned") is True, answer
        slowest = max(slowest, answer["seconds"])
    assert ticker.is_running, "the parent's ticker never noticed"
    assert not ticker.stop_event.is_set()
    figures.record(forks=forks, child_max_s=slowest)


def test_a_child_forked_while_the_tickers_locks_are_held_can_still_stop_it(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """Forked at the worst moment, with every lock of the ticker held, the child still stops it.

    Another thread of the parent holds the ticker's lock and the locks inside its
    stop and wake-up events, as the ticker's own thread does for a moment many
    times a second; the fork copies them held, with no thread left to release them.
    """
    ticker = make_ticker(make_pool(("chat",)), interval_s=3600.0, name="held-at-fork").start()
    held = threading.Event()
    release = threading.Event()
    locks = [
        ticker._life._lock,
        ticker._turns._lock,
        ticker.stop_event._cond,  # type: ignore[attr-defined]
    ]

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait(CHILD_BOUND_S)
        for lock in reversed(locks):
            lock.release()

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    assert held.wait(CHILD_BOUND_S)
    try:

        def child() -> dict[str, Any]:
            start = real_now()
            ticker.stop_event.set()
            stopped = ticker.stop(timeout=1.0)
            return {"set": ticker.stop_event.is_set(), "stopped": stopped, "s": real_now() - start}

        answer = _in_child(child, bound_s=2.0)
    finally:
        release.set()
        holder.join(CHILD_BOUND_S)
    assert answer.get("set") is True and answer.get("stopped") is True, answer


def test_a_forked_child_of_a_running_ticker_is_not_healthy(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """In a child, the parent's running ticker checks nothing: "crashed", reason "forked", 503."""
    ticker = make_ticker(
        make_pool(("chat",)), interval_s=0.005, call_timeout_s=10, name="parent-only"
    ).start()
    assert ticker.wait_for_tick(1, timeout=CHILD_BOUND_S) is not None
    answer = _in_child(lambda: {"probe": ticker.probe().body, "code": ticker.probe().status_code})
    assert answer.get("code") == 503, answer
    assert answer["probe"]["state"] == "crashed" and answer["probe"]["reason"] == "forked"
    assert ticker.healthy  # the parent's own is unaffected


def test_a_child_forked_while_an_application_event_is_held_can_still_set_it(
    make_pool: MakePool, make_ticker: MakeTicker
) -> None:
    """The application's stop event, whose lock the ticker's thread takes on every wait, too."""
    event = threading.Event()
    ticker = make_ticker(
        make_pool(("chat",)), stop_event=event, interval_s=3600.0, name="app-event-held"
    ).start()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with event._cond:  # type: ignore[attr-defined]
            held.set()
            release.wait(CHILD_BOUND_S)

    holder = threading.Thread(target=hold, name="event-lock-holder")
    holder.start()
    assert held.wait(CHILD_BOUND_S)
    try:

        def child() -> dict[str, Any]:
            ticker.stop_event.set()
            return {"set": ticker.stop_event.is_set(), "stopped": ticker.stop(timeout=1.0)}

        answer = _in_child(child, bound_s=2.0)
    finally:
        release.set()
        holder.join(CHILD_BOUND_S)
    assert answer.get("set") is True and answer.get("stopped") is True, answer
