"""The code a :class:`ProcessPool` worker process runs: answer requests until its parent is gone.

A worker is a child started with multiprocessing's ``spawn`` context. It
serves one role, one request at a time, over its end of a
:func:`multiprocessing.Pipe`. The messages are small tuples::

    parent -> worker    ("ping", request_id)
                        ("work", request_id, seconds)
                        ("stop",)
    worker -> parent    ("ready", pid)              once, when it is ready
                        ("done", request_id, pid)   the answer to a ping or work

A worker must never outlive the process that spawned it, so it watches for
its parent's death in three ways. Any of them is enough for a worker that
runs; one stopped with ``SIGSTOP`` can only be ended by the first:

* On Linux the kernel sends it ``SIGKILL`` when the thread that spawned it
  ends (``prctl(PR_SET_PDEATHSIG)``). That thread is the pool's event loop
  thread, whose end means the pool is gone, and ``SIGKILL`` works even on a
  worker stopped with ``SIGSTOP``.
* The parent's end of the pipe closes when the parent dies, so the next read
  sees EOF. (Spawned children inherit only the descriptors passed to them,
  so no other process holds the parent's end open.)
* Between requests, and during work, it checks every ``PARENT_CHECK_S``
  that it still has the same parent: an orphan is adopted by another process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from multiprocessing.connection import Connection

__all__ = ["PARENT_CHECK_S", "answer", "serve"]

# How often a worker that has nothing to read, or is working, checks that
# its parent is still there. Bounds how long an orphan can live where the
# death signal is not available.
PARENT_CHECK_S = 0.25

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def serve(conn: Connection, role: str, parent_pid: int) -> None:
    """Run a worker for ``role``: report ready, then answer requests until told to stop.

    This is the target of the worker's :class:`multiprocessing.Process`.

    Args:
        conn: The worker's end of the pipe.
        role: The role it serves (for the process's name in tracebacks).
        parent_pid: The pid of the process that spawned it.
    """
    # Ctrl-C in a terminal reaches the whole foreground process group. A
    # worker belongs to its pool, which stops it; it must not die (with a
    # traceback) on its own. The pool spawns it with SIGINT blocked, so the
    # signal cannot arrive before this line; unblocking it after ignoring it
    # discards one that is pending.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent()
    try:
        # The parent may have died before the death signal was armed.
        if os.getppid() != parent_pid:
            return
        conn.send(("ready", os.getpid()))
        answer(conn, parent_pid)
    except OSError:
        pass  # the parent closed the pipe while we wrote to it: it is gone
    finally:
        conn.close()


def answer(conn: Connection, parent_pid: int, check_s: float = PARENT_CHECK_S) -> str:
    """Answer requests on ``conn`` one at a time; return why it stopped.

    Returns:
        ``"stopped"`` when asked to stop, ``"eof"`` when the parent's end of
        the pipe closed, ``"orphaned"`` when the parent is no longer
        ``parent_pid``.

    Raises:
        OSError: Writing an answer to a pipe whose parent end is gone.
    """
    pid = os.getpid()
    while True:
        if not conn.poll(check_s):
            if os.getppid() != parent_pid:
                return "orphaned"
            continue
        try:
            request = conn.recv()
        except EOFError:
            return "eof"
        kind = request[0]
        if kind == "stop":
            return "stopped"
        if kind == "work" and not _work(request[2], parent_pid, check_s):
            return "orphaned"
        if kind in ("ping", "work"):
            conn.send(("done", request[1], pid))


def _work(seconds: float, parent_pid: int, check_s: float) -> bool:
    """Do ``seconds`` of fake work; return False, early, if the parent is gone."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, check_s))
        if os.getppid() != parent_pid:
            return False
    return True


def _die_with_parent() -> None:
    """On Linux, ask the kernel to SIGKILL this process when its parent thread ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl here: EOF on the pipe and the parent check remain
