"""ProcessPool: real worker processes that fit the Pool protocol and never outlive their parent.

Every test that starts workers goes through ``make_process_pool``, whose
teardown closes the pools and then reads the process table: no worker of
this process may be left, running or uncollected.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from lilbee_ticker import (
    CallTimeoutError,
    HealthStatus,
    HealthTicker,
    LoopRuntime,
    RestartPolicy,
    RoleHealth,
)
from lilbee_ticker.demo import (
    PoolClosedError,
    ProcessPool,
    WorkerDiedError,
    WorkerUnresponsiveError,
)
from lilbee_ticker.demo._worker import answer
from lilbee_ticker.pytest_plugin import MakeTicker, WaitForTicks
from tests import _proctable as proctable

pytestmark = proctable.linux_only

MakeProcessPool = Callable[..., ProcessPool]

# Generous bounds for a machine busy with other work: a test that passes
# never waits this long, it only decides how long a failing one takes.
_BOUND_S = 10.0


@pytest.fixture
def make_process_pool(lilbee_runtime: LoopRuntime) -> Iterator[MakeProcessPool]:
    """Build ProcessPools on the test runtime; close them after the test and check for leftovers."""
    pools: list[ProcessPool] = []
    # Children that other tests left behind are not this test's business.
    others = {proc.pid for proc in proctable.workers_of(os.getpid())}

    def make(roles: tuple[str, ...] = ("embed", "chat", "rerank"), **kwargs: Any) -> ProcessPool:
        kwargs.setdefault("stop_timeout_s", 0.5)
        pool = ProcessPool(roles, **kwargs)
        pools.append(pool)
        return pool

    yield make

    def ours() -> list[proctable.Proc]:
        return [proc for proc in proctable.workers_of(os.getpid()) if proc.pid not in others]

    started = ours()
    for pool in pools:
        lilbee_runtime.run(pool.aclose(), timeout=_BOUND_S)
    # aclose() has waited for every exit already; this only bounds a failure.
    assert proctable.wait_until_exited(started, timeout=_BOUND_S) == []
    # ...and collected them: not even a zombie child is left.
    assert ours() == []


def _call(runtime: LoopRuntime, pool: ProcessPool, role: str, work_s: float = 0.0) -> int:
    return runtime.run(pool.call(role, work_s), timeout=_BOUND_S)


async def _state(pool: ProcessPool, role: str) -> tuple[bool, int | None, int]:
    accessor = pool.accessor(role)
    return accessor.is_alive, accessor.pid, accessor.spawns


async def _crashes(pool: ProcessPool, role: str) -> int:
    return pool.accessor(role).crashes


class _Changes:
    """An on_change hook that records each transition with the number of the tick that made it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()  # guards _seen
        self._seen: list[tuple[int, RoleHealth]] = []
        self.ticker: HealthTicker | None = None

    def __call__(self, old: RoleHealth | None, new: RoleHealth) -> None:
        # Hooks run before their tick's report is published.
        last = None if self.ticker is None else self.ticker.last_report
        tick = 1 if last is None else last.number + 1
        with self._changed:
            self._seen.append((tick, new))
            self._changed.notify_all()

    def wait_for(self, role: str, *statuses: HealthStatus) -> tuple[int, RoleHealth]:
        def find() -> tuple[int, RoleHealth] | None:
            return next(
                ((t, h) for t, h in self._seen if h.role == role and h.status in statuses), None
            )

        with self._changed:
            found = self._changed.wait_for(find, _BOUND_S)
        assert found is not None, f"{role} never became {statuses}: {self._seen}"
        return found

    def wait_for_after(
        self, role: str, tick: int, *statuses: HealthStatus
    ) -> tuple[int, RoleHealth]:
        """Like :meth:`wait_for`, for a transition made by a tick after ``tick``."""

        def find() -> tuple[int, RoleHealth] | None:
            return next(
                (
                    (t, h)
                    for t, h in self._seen
                    if t > tick and h.role == role and h.status in statuses
                ),
                None,
            )

        with self._changed:
            found = self._changed.wait_for(find, _BOUND_S)
        assert found is not None, f"{role} never became {statuses} after {tick}: {self._seen}"
        return found


# -- the pool contract --------------------------------------------------------------------


def test_a_call_spawns_a_worker_process_that_answers_pings(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """A call spawns the role's worker, a child process of ours, which then answers pings."""
    pool = make_process_pool()
    assert lilbee_runtime.run(_state(pool, "chat")) == (False, None, 0)
    pid = _call(lilbee_runtime, pool, "chat", work_s=0.01)
    worker = proctable.read(pid)
    assert worker is not None and worker.ppid == os.getpid() and worker.state != "Z"
    lilbee_runtime.run(pool.ping_role("chat"), timeout=_BOUND_S)
    assert lilbee_runtime.run(_state(pool, "chat")) == (True, pid, 1)
    assert lilbee_runtime.run(_state(pool, "embed")) == (False, None, 0)
    assert pool.registered_roles == ("embed", "chat", "rerank")


def test_reaped_worker_exits_and_a_ping_spawns_a_new_one_like_a_real_call(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """reap_idle() stops an idle worker at once; ping_role() on the dead role spawns a new one."""
    pool = make_process_pool(("embed",), max_idle_s=0.0)
    pid = _call(lilbee_runtime, pool, "embed")
    worker = proctable.read(pid)
    assert worker is not None
    assert lilbee_runtime.run(pool.reap_idle()) == ("embed",)
    assert lilbee_runtime.run(_state(pool, "embed")) == (False, None, 1)
    assert proctable.wait_until_exited([worker], timeout=_BOUND_S) == []
    lilbee_runtime.run(pool.ping_role("embed"), timeout=_BOUND_S)
    alive, new_pid, spawns = lilbee_runtime.run(_state(pool, "embed"))
    assert alive and new_pid not in (None, pid) and spawns == 2


def test_work_in_flight_counts_as_liveness_and_use(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """While a call is in flight, a ping succeeds without waiting behind it and no reap takes it."""
    pool = make_process_pool(("embed",), max_idle_s=0.0)
    _call(lilbee_runtime, pool, "embed")

    async def ping_and_reap_while_busy() -> tuple[float, tuple[str, ...], tuple[str, ...]]:
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(pool.call("embed", 1.0))
        await asyncio.sleep(0)  # the call's first step sends its request
        start = loop.time()
        await pool.ping_role("embed")
        ping_s = loop.time() - start
        while_busy = await pool.reap_idle()
        await work
        return ping_s, while_busy, await pool.reap_idle()

    ping_s, while_busy, after = lilbee_runtime.run(ping_and_reap_while_busy(), timeout=_BOUND_S)
    assert ping_s < 0.5  # the work takes 1 s; a ping behind it would too
    assert while_busy == ()
    assert after == ("embed",)


# -- failures: killed, frozen, unresponsive --------------------------------------------------


def test_sigkilled_worker_is_noticed_within_one_tick(
    lilbee_runtime: LoopRuntime,
    make_process_pool: MakeProcessPool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
) -> None:
    """A worker killed with SIGKILL is reported by the first tick that starts after the kill."""
    pool = make_process_pool(("embed", "chat"))
    pids = {role: _call(lilbee_runtime, pool, role) for role in pool.registered_roles}
    changes = _Changes()
    ticker = make_ticker(pool=pool, interval_s=0.2, call_timeout_s=1.0, on_change=changes)
    changes.ticker = ticker
    ticker.start()
    wait_for_ticks(ticker, 1)
    report = ticker.last_report
    assert report is not None
    before = report.number
    os.kill(pids["chat"], signal.SIGKILL)

    # Tick before + 1 may have begun before the kill; before + 2 cannot have.
    tick, _ = changes.wait_for("chat", HealthStatus.DOWN, HealthStatus.FAILING)
    assert tick <= before + 2
    changes.wait_for("chat", HealthStatus.DOWN)
    assert lilbee_runtime.run(_state(pool, "chat")) == (False, None, 1)
    assert ticker.health()["embed"].status is HealthStatus.HEALTHY


def test_idle_worker_is_reaped_by_a_tick_and_stays_down(
    lilbee_runtime: LoopRuntime,
    make_process_pool: MakeProcessPool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
) -> None:
    """A ticker reaps a worker idle past max_idle_s, and its later pings never respawn it."""
    pool = make_process_pool(("embed",), max_idle_s=0.3)
    pid = _call(lilbee_runtime, pool, "embed")
    worker = proctable.read(pid)
    assert worker is not None
    changes = _Changes()
    ticker = make_ticker(pool=pool, interval_s=0.1, call_timeout_s=1.0, on_change=changes)
    changes.ticker = ticker
    ticker.start()

    tick, _ = changes.wait_for("embed", HealthStatus.DOWN)
    wait_for_ticks(ticker, tick + 3)

    assert ticker.stats().roles_reaped == 1
    assert ticker.health()["embed"].status is HealthStatus.DOWN
    assert lilbee_runtime.run(_state(pool, "embed")) == (False, None, 1)  # spawned once only
    assert proctable.wait_until_exited([worker], timeout=_BOUND_S) == []


def test_sigstopped_worker_times_out_and_does_not_hold_up_the_rest_of_the_tick(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool, make_ticker: MakeTicker
) -> None:
    """A frozen worker's ping times out while the others answer at once; SIGCONT heals it."""
    pool = make_process_pool()
    pids = {role: _call(lilbee_runtime, pool, role) for role in pool.registered_roles}
    ticker = make_ticker(pool=pool, call_timeout_s=0.5)

    # The first role the ticker pings: a frozen worker must not delay those after it.
    os.kill(pids["embed"], signal.SIGSTOP)
    try:
        frozen = ticker.tick()
    finally:
        os.kill(pids["embed"], signal.SIGCONT)
    thawed = ticker.tick()

    assert isinstance(frozen.failed["embed"], CallTimeoutError)
    assert sorted(frozen.pinged) == ["chat", "rerank"]
    assert max(frozen.latencies.values()) < 0.25  # they did not wait for the frozen one
    assert frozen.duration_s < 0.5 + 0.5
    assert "embed" in thawed.pinged
    assert ticker.health()["embed"].status is HealthStatus.HEALTHY
    assert lilbee_runtime.run(_state(pool, "embed")) == (True, pids["embed"], 1)


def test_a_ping_unanswered_past_unresponsive_after_s_kills_the_worker(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """ping_role() on a worker frozen too long raises, kills it, and the next call respawns."""
    pool = make_process_pool(("chat",), unresponsive_after_s=0.3)
    pid = _call(lilbee_runtime, pool, "chat")
    worker = proctable.read(pid)
    assert worker is not None
    os.kill(pid, signal.SIGSTOP)
    start = time.monotonic()
    with pytest.raises(WorkerUnresponsiveError, match="left a ping unanswered") as info:
        lilbee_runtime.run(pool.ping_role("chat"), timeout=_BOUND_S)
    assert 0.3 <= time.monotonic() - start < _BOUND_S
    assert (info.value.role, info.value.pid) == ("chat", pid)
    assert isinstance(info.value, TimeoutError)
    assert lilbee_runtime.run(_state(pool, "chat")) == (False, None, 1)
    assert proctable.wait_until_exited([worker], timeout=_BOUND_S) == []  # SIGKILL ends it
    assert _call(lilbee_runtime, pool, "chat") != pid


def test_a_worker_that_dies_during_a_ping_raises_worker_died_error(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """A ping outstanding when its worker dies raises WorkerDiedError, and the role is dropped."""
    pool = make_process_pool(("chat",))
    pid = _call(lilbee_runtime, pool, "chat")

    async def ping_then_kill() -> BaseException | None:
        os.kill(pid, signal.SIGSTOP)  # so that the ping stays outstanding
        ping = asyncio.create_task(pool.ping_role("chat"))
        await asyncio.sleep(0)  # the ping's first step sends it
        os.kill(pid, signal.SIGKILL)
        return (await asyncio.gather(ping, return_exceptions=True))[0]

    error = lilbee_runtime.run(ping_then_kill(), timeout=_BOUND_S)
    assert isinstance(error, WorkerDiedError) and isinstance(error, ConnectionError)
    assert error.pid == pid
    assert lilbee_runtime.run(_state(pool, "chat")) == (False, None, 1)


# -- restarts and the crash callback ------------------------------------------------------------


def _frozen(runtime: LoopRuntime, pool: ProcessPool, role: str) -> proctable.Proc:
    """Spawn ``role``'s worker, freeze it with SIGSTOP, and return it as the table shows it."""
    pid = _call(runtime, pool, role)
    os.kill(pid, signal.SIGSTOP)
    # The stop takes effect when the worker is next scheduled, and no event
    # tells it: read the table in short waits, within a bound.
    deadline = time.monotonic() + _BOUND_S
    while (proc := proctable.read(pid)) is not None and proc.state != "T":
        assert time.monotonic() < deadline, f"pid {pid} never stopped: {proc}"
        time.sleep(0.001)
    assert proc is not None
    return proc


def test_restart_role_ends_a_frozen_worker_with_sigkill_and_starts_a_ready_one(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """restart_role() SIGKILLs a stopped worker via the crash path, collects it, and respawns."""
    # A stop timeout far past the test's bound: a worker asked to stop, or
    # sent SIGTERM, would outlive it; only an immediate SIGKILL ends it in time.
    pool = make_process_pool(("chat",), stop_timeout_s=2 * _BOUND_S)
    old = _frozen(lilbee_runtime, pool, "chat")

    async def restart_under_a_waiting_ping() -> BaseException | None:
        ping = asyncio.create_task(pool.ping_role("chat"))
        await asyncio.sleep(0)  # the ping's first step sends it to the frozen worker
        await pool.restart_role("chat")
        return (await asyncio.gather(ping, return_exceptions=True))[0]

    with capture_logs() as logs:
        waiter = lilbee_runtime.run(restart_under_a_waiting_ping(), timeout=_BOUND_S)

    assert proctable.read(old.pid) is None  # exited and collected before restart_role returned
    died = [e for e in logs if e["event"] == "worker.died" and e["pid"] == old.pid]
    assert [(e["exitcode"], e["cause"]) for e in died] == [(-signal.SIGKILL, "killed by SIGKILL")]
    assert isinstance(waiter, WorkerDiedError) and "to restart it" in str(waiter)
    alive, pid, spawns = lilbee_runtime.run(_state(pool, "chat"))
    assert alive and pid not in (None, old.pid) and spawns == 2  # ready when it returned
    assert lilbee_runtime.run(_crashes(pool, "chat")) == 1  # the pool's own crash accounting
    assert _call(lilbee_runtime, pool, "chat") == pid


def test_restart_role_on_a_role_with_no_worker_starts_one(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """restart_role() on a role with no worker spawns one and counts no crash."""
    pool = make_process_pool(("chat",))
    lilbee_runtime.run(pool.restart_role("chat"), timeout=_BOUND_S)
    alive, pid, spawns = lilbee_runtime.run(_state(pool, "chat"))
    assert alive and pid is not None and spawns == 1
    assert lilbee_runtime.run(_crashes(pool, "chat")) == 0
    lilbee_runtime.run(pool.aclose(), timeout=_BOUND_S)
    with pytest.raises(PoolClosedError, match="restart_role"):
        lilbee_runtime.run(pool.restart_role("chat"), timeout=_BOUND_S)


def test_a_ticker_restarts_a_frozen_worker_of_a_real_pool(
    lilbee_runtime: LoopRuntime,
    make_process_pool: MakeProcessPool,
    make_ticker: MakeTicker,
) -> None:
    """With a RestartPolicy a SIGSTOPped worker is restarted: new pid, healthy, the old one gone."""
    pool = make_process_pool(("embed", "chat"), stop_timeout_s=2 * _BOUND_S)  # as above
    _call(lilbee_runtime, pool, "embed")
    old = _frozen(lilbee_runtime, pool, "chat")
    changes = _Changes()
    ticker = make_ticker(
        pool=pool,
        interval_s=0.1,
        call_timeout_s=0.5,
        failure_threshold=2,
        on_change=changes,
        # No second restart within the test, whatever the machine's speed.
        restart=RestartPolicy(backoff_s=3600, max_backoff_s=3600),
    )
    changes.ticker = ticker
    pool.on_crash = ticker.tick_soon
    ticker.start()

    unhealthy, _ = changes.wait_for("chat", HealthStatus.UNHEALTHY)
    _, record = changes.wait_for_after("chat", unhealthy, HealthStatus.HEALTHY)

    assert record.restarts == 1 and record.last_restart_error is None and not record.given_up
    assert proctable.wait_until_exited([old], timeout=_BOUND_S) == []
    assert proctable.read(old.pid) is None  # collected too: not even a zombie
    alive, pid, spawns = lilbee_runtime.run(_state(pool, "chat"))
    assert alive and pid not in (None, old.pid) and spawns == 2
    assert _call(lilbee_runtime, pool, "chat") == pid  # the next request gets the new worker
    assert lilbee_runtime.run(_crashes(pool, "chat")) == 1
    assert ticker.stats().restarts == 1
    assert ticker.health()["embed"].status is HealthStatus.HEALTHY


def test_a_restarted_worker_is_pinged_before_any_second_restart(
    lilbee_runtime: LoopRuntime,
    make_process_pool: MakeProcessPool,
    make_ticker: MakeTicker,
) -> None:
    """With no backoff, the tick after a restart pings the new worker, which answers."""
    pool = make_process_pool(("chat",))
    _frozen(lilbee_runtime, pool, "chat")
    ticker = make_ticker(
        pool=pool,
        interval_s=3600,
        call_timeout_s=2.0,
        failure_threshold=1,
        restart=RestartPolicy(backoff_s=0, max_backoff_s=0),
    )
    assert isinstance(ticker.tick().failed["chat"], CallTimeoutError)
    assert ticker.tick().restarted == ("chat",)
    after = ticker.tick()
    assert after.restarted == () and "chat" in after.pinged
    assert ticker.health()["chat"].restarts == 1


def test_on_crash_wakes_the_ticker_at_once_after_a_sigkill(
    lilbee_runtime: LoopRuntime,
    make_process_pool: MakeProcessPool,
    make_ticker: MakeTicker,
    wait_for_ticks: WaitForTicks,
) -> None:
    """With on_crash=ticker.tick_soon, a SIGKILL brings a tick at once, an hour before it is due."""
    pool = make_process_pool(("embed", "chat"))
    pids = {role: _call(lilbee_runtime, pool, role) for role in pool.registered_roles}
    ticker = make_ticker(pool=pool, interval_s=3600, call_timeout_s=1.0, initial_delay_s=0)
    pool.on_crash = ticker.tick_soon
    ticker.start()
    wait_for_ticks(ticker, 1)

    os.kill(pids["chat"], signal.SIGKILL)
    report = wait_for_ticks(ticker, 2)

    assert "chat" not in report.live and "embed" in report.pinged
    assert ticker.health()["chat"].status is HealthStatus.DOWN
    assert lilbee_runtime.run(_crashes(pool, "chat")) == 1


def test_on_crash_is_called_on_the_loop_for_a_death_only(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """on_crash runs on the loop thread for a worker that died, not for a restart or a reap."""
    called: list[str] = []
    died = threading.Event()

    def on_crash() -> None:
        called.append(threading.current_thread().name)
        died.set()

    pool = make_process_pool(("embed", "chat"), max_idle_s=3600, on_crash=on_crash)
    _call(lilbee_runtime, pool, "embed")
    pid = _call(lilbee_runtime, pool, "chat")
    lilbee_runtime.run(pool.restart_role("embed"), timeout=_BOUND_S)
    assert called == []
    os.kill(pid, signal.SIGKILL)
    assert died.wait(_BOUND_S)
    assert lilbee_runtime.thread is not None
    assert called == [lilbee_runtime.thread.name]
    alive, _, _ = lilbee_runtime.run(_state(pool, "chat"))
    assert not alive  # dropped before the callback ran


def test_an_on_crash_that_raises_is_logged_and_the_pool_goes_on(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """An on_crash that raises is logged (pool.on_crash_failed); the dead worker is dropped."""
    failed = threading.Event()

    def on_crash() -> None:
        failed.set()
        raise LookupError("the callback is broken")

    pool = make_process_pool(("chat",))
    pool.on_crash = on_crash
    pid = _call(lilbee_runtime, pool, "chat")
    with capture_logs() as logs:
        os.kill(pid, signal.SIGKILL)
        assert failed.wait(_BOUND_S)
        # The log call follows the callback on the loop: one round trip orders after it.
        lilbee_runtime.run(_state(pool, "chat"))
    errors = [e for e in logs if e["event"] == "pool.on_crash_failed"]
    assert len(errors) == 1 and errors[0]["pid"] == pid and errors[0]["log_level"] == "error"
    assert _call(lilbee_runtime, pool, "chat") != pid


# -- never an orphan ---------------------------------------------------------------------------


def test_aclose_stops_every_worker_a_frozen_one_included(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """aclose() returns once every worker has exited and been collected, SIGKILLing a frozen one."""
    pool = make_process_pool(stop_timeout_s=0.2)
    pids = [_call(lilbee_runtime, pool, role) for role in pool.registered_roles]
    os.kill(pids[0], signal.SIGSTOP)
    start = time.monotonic()
    lilbee_runtime.run(pool.aclose(), timeout=_BOUND_S)
    assert time.monotonic() - start < 0.2 + 2.0
    assert [proctable.read(pid) for pid in pids] == [None, None, None]  # exited and collected
    with pytest.raises(PoolClosedError, match="is closed"):
        _call(lilbee_runtime, pool, "chat")
    assert lilbee_runtime.run(pool.reap_idle()) == ()
    lilbee_runtime.run(pool.aclose())  # idempotent


def test_leaving_an_async_with_block_on_an_exception_stops_the_workers(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """An exception out of ``async with pool`` still stops and collects every worker."""
    pool = make_process_pool()
    pids: list[int] = []

    async def use_then_fail() -> None:
        async with pool:
            pids.extend([await pool.call(role) for role in pool.registered_roles])
            raise LookupError("the application failed")

    with pytest.raises(LookupError):
        lilbee_runtime.run(use_then_fail(), timeout=_BOUND_S)
    assert len(pids) == 3
    assert [proctable.read(pid) for pid in pids] == [None, None, None]


_PARENT = textwrap.dedent(
    """
    import json, os, signal, sys, threading
    from lilbee_ticker import LoopRuntime
    from lilbee_ticker.demo import ProcessPool

    def main():
        how, channel, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        runtime = LoopRuntime().start()
        pool = ProcessPool()
        pids = [runtime.run(pool.call(role), timeout=30) for role in pool.registered_roles]
        os.kill(pids[-1], signal.SIGSTOP)  # a stopped worker can neither read nor check
        with os.fdopen(channel, "w") as out:
            out.write(json.dumps(pids) + "\\n")
        with os.fdopen(go, "rb") as wait:
            wait.read()  # EOF: the test has read the process table, die now
        if how == "raise":
            raise RuntimeError("the application crashed without closing its pool")
        threading.Event().wait()  # until it is killed

    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.parametrize("how", ["sigkill", "raise"])
def test_workers_exit_when_their_parent_dies(tmp_path: pathlib.Path, how: str) -> None:
    """When the parent is SIGKILLed, or exits on an exception without closing, no worker is left."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT, encoding="utf-8")
    # The pids come through a pipe of their own, which the workers do not
    # inherit (they do inherit stdout), so that its EOF depends on the
    # parent alone. A second pipe holds the parent until the test has read
    # the process table: a parent that raises starts stopping its workers as
    # it exits, and a table read meanwhile would miss some of them.
    channel_r, channel_w = os.pipe()
    go_r, go_w = os.pipe()
    with (
        (tmp_path / "output.txt").open("w+", encoding="utf-8") as output,
        os.fdopen(go_w, "wb") as go,
    ):
        parent = subprocess.Popen(
            [sys.executable, "-W", "error", str(script), how, str(channel_w), str(go_r)],
            pass_fds=(channel_w, go_r),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        os.close(channel_w)
        os.close(go_r)
        try:
            with os.fdopen(channel_r, encoding="utf-8") as channel:
                line = channel.readline()  # once the workers are up; EOF if it crashed
            assert line, "the parent crashed before its workers were up"
            pids = json.loads(line)
            procs = [proc for proc in map(proctable.read, pids) if proc is not None]
            procs += [proc for proc in proctable.children(parent.pid) if proc.pid not in pids]
            assert len(procs) >= 4  # three workers and the resource tracker
            go.close()  # let the parent go on to its death
            if how == "sigkill":
                parent.kill()
            parent.wait(_BOUND_S)  # with "raise", a parent stuck at exit fails here
            # The resource tracker goes too, once the last holder of its pipe is gone.
            assert proctable.wait_until_exited(procs, timeout=5.0) == []
        finally:
            parent.kill()
            parent.wait(_BOUND_S)
        output.seek(0)
        if how == "raise":
            assert "the application crashed" in output.read()


def test_a_worker_stops_at_eof_and_when_orphaned() -> None:
    """A worker's request loop ends when its pipe closes, and when its parent has changed."""
    parent_end, worker_end = multiprocessing.Pipe()
    parent_end.close()
    assert answer(worker_end, os.getppid()) == "eof"
    worker_end.close()

    parent_end, worker_end = multiprocessing.Pipe()
    with parent_end, worker_end:
        assert answer(worker_end, parent_pid=-1, check_s=0.01) == "orphaned"
        parent_end.send(("stop",))
        assert answer(worker_end, os.getppid()) == "stopped"


# -- misuse --------------------------------------------------------------------------------------


def test_the_pool_refuses_other_threads_and_loops(
    lilbee_runtime: LoopRuntime, make_process_pool: MakeProcessPool
) -> None:
    """Once bound to its loop, the pool refuses reads from other threads and runs on other loops."""
    pool = make_process_pool(("chat",))
    lilbee_runtime.run(pool.reap_idle())
    with pytest.raises(RuntimeError, match=r"is_alive was read from thread .* submitted"):
        pool.accessor("chat").is_alive  # noqa: B018
    with pytest.raises(RuntimeError, match="different event loop"):
        asyncio.run(pool.ping_role("chat"))
    with pytest.raises(KeyError, match="'vision' is not registered"):
        pool.accessor("vision")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"roles": ()}, ValueError, "at least one role"),
        ({"roles": ("chat", "chat")}, ValueError, r"distinct.*\['chat'\]"),
        ({"roles": ("chat", "")}, ValueError, "non-empty strings"),
        ({"roles": "chat"}, TypeError, "not a str"),
        ({"max_idle_s": -1}, ValueError, "max_idle_s"),
        ({"unresponsive_after_s": 0}, ValueError, "unresponsive_after_s"),
        ({"spawn_timeout_s": float("nan")}, ValueError, "spawn_timeout_s"),
        ({"stop_timeout_s": "1"}, TypeError, "stop_timeout_s"),
        ({"on_crash": "tick_soon"}, TypeError, "on_crash must be a callable"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_them(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """The constructor names the bad argument and its value."""
    with pytest.raises(error, match=match):
        ProcessPool(**kwargs)
