"""Interpreter exit: a program that forgets its ticker, or stops it in atexit, still exits cleanly.

Each case runs a script in a fresh interpreter with warnings as errors. The
ticker's pool has a ping that hangs forever, so the program always exits while
a tick is waiting on the loop.
"""

from __future__ import annotations

import pytest

from .conftest import Figures
from .support import run_script

# A fresh interpreter importing the library takes a fraction of a second; one
# whose exit waits on a thread would take the ping's call_timeout_s (60 s) or
# forever. Ten seconds tells the two apart on any machine.
EXIT_BOUND_S = 10.0

_PROLOGUE = """
import atexit, sys, time
from lilbee_ticker import HealthTicker, LoopRuntime
from lilbee_ticker.testing import Delay, FakePool, Hang

runtime = LoopRuntime().start()
pool = FakePool(["embed", "chat"], loop_thread=runtime.thread)
pool.set_ping("chat", Hang())
pool.set_ping("embed", Delay(0.0005))
ticker = HealthTicker(pool, runtime, interval_s=60, call_timeout_s=60, initial_delay_s=0).start()
assert pool.wait_for_calls("ping_role", role="chat", timeout=10)
"""

SCRIPTS = {
    "left-running": _PROLOGUE + 'print("leaving without stopping anything")\n',
    "stopped-in-atexit": _PROLOGUE
    + """
def stop_everything():
    start = time.monotonic()
    stopped = ticker.stop(timeout=5)
    shut = runtime.shutdown(timeout=5)
    print(f"atexit: stopped={stopped} shut={shut} pending={list(runtime.pending_at_shutdown)}"
          f" latency={time.monotonic() - start:.4f}")

atexit.register(stop_everything)
print("leaving; atexit stops the ticker")
""",
    "sys-exit-mid-tick": _PROLOGUE + "sys.exit(0)\n",
    "runtime-shut-down-ticker-left": _PROLOGUE
    + """
runtime.shutdown(timeout=5)
print("runtime shut down, ticker left to notice")
""",
}


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_interpreter_exits_promptly_and_cleanly(case: str, figures: Figures) -> None:
    """The program ends with exit code 0, no traceback, and no wait on the ticker's threads."""
    script = run_script(SCRIPTS[case], timeout_s=EXIT_BOUND_S)

    assert script.returncode == 0, script.explain()
    # No traceback, no "Exception ignored". With logging left unconfigured, the
    # standard library prints warnings on stderr: a runtime shut down under a
    # running ticker is one, if the ticker notices before the interpreter ends.
    # A warning's message reads on its own: the event name, then its fields.
    stderr = script.stderr.strip()
    if case == "runtime-shut-down-ticker-left" and stderr:
        assert stderr.startswith("runtime.unavailable: ticker="), script.explain()
        assert "\n" not in stderr, script.explain()
    else:
        assert stderr == "", script.explain()
    assert "Traceback" not in script.stdout, script.explain()  # nor one logged by the ticker
    assert script.elapsed_s < EXIT_BOUND_S
    if case == "stopped-in-atexit":
        assert "atexit: stopped=True shut=True pending=[]" in script.stdout, script.explain()
    figures.record(exit_s=script.elapsed_s)
