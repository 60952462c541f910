"""The pytest plugin, tested the way pytest plugins are: with pytester.

The inner runs are in this interpreter (``runpytest_inprocess``): each test
here needs only the outcome and output of a pytest run with the plugin
loaded through its entry point, which a subprocess would give for a second
more each. The guard in ``conftest.py`` checks that no inner run leaves a
ticker behind.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from .conftest import INNER_PYTEST_ARGS

INI = """
[pytest]
filterwarnings = error
lilbee_ticker_stop_timeout = 0.5
lilbee_ticker_wait_timeout = 0.5
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    """Installing the package registers lilbee_ticker.pytest_plugin with pytest."""
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.value == "lilbee_ticker.pytest_plugin" for ep in plugins)


def test_clean_ticker_passes(inner: pytest.Pytester) -> None:
    """A test that starts a ticker and leaves its stopping to make_ticker passes."""
    inner.makepyfile(
        """
        def test_ticks(make_ticker, fake_pool, wait_for_ticks):
            ticker = make_ticker(interval_s=0.01).start()
            report = wait_for_ticks(ticker, 3)
            assert report.number >= 3
            assert set(report.pinged) == set(fake_pool.registered_roles_for_test)
        """.replace("fake_pool.registered_roles_for_test", '("embed", "chat", "rerank")')
    )
    inner.runpytest_inprocess(*INNER_PYTEST_ARGS).assert_outcomes(passed=1)


def test_leaked_ticker_fails_the_test_and_names_it(inner: pytest.Pytester) -> None:
    """A ticker whose thread will not stop makes the test error at teardown, naming the ticker."""
    inner.makepyfile(
        """
        import threading

        import pytest

        entered, release = threading.Event(), threading.Event()

        def wedge(old, new):
            entered.set()
            release.wait(30)  # wedges the ticker thread

        @pytest.fixture
        def unwedge():
            yield
            release.set()  # after make_ticker's teardown has reported the leak

        def test_leak(unwedge, make_ticker):
            ticker = make_ticker(name="leaky-ticker", interval_s=0.01, on_change=wedge).start()
            assert entered.wait(10)
        """
    )
    result = inner.runpytest_inprocess(*INNER_PYTEST_ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ticker 'leaky-ticker': thread still alive 0.5s after stop()*"])


def test_ticker_that_died_with_an_exception_fails_the_test(inner: pytest.Pytester) -> None:
    """A ticker whose own code raised makes the test error, naming the ticker and the error."""
    inner.makepyfile(
        """
        def test_broken(make_ticker, wait_for_ticks, monkeypatch):
            ticker = make_ticker(name="broken-ticker", interval_s=0.01)

            def bug():
                raise RuntimeError("a bug in the tick")

            monkeypatch.setattr(ticker, "_tick", bug)  # stands in for a bug in the library
            ticker.start()
            ticker.stop_event.wait(0.2)
        """
    )
    result = inner.runpytest_inprocess(*INNER_PYTEST_ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*'broken-ticker' raised an unexpected exception*RuntimeError('a bug in the tick')*"]
    )


def test_wait_for_ticks_fails_after_its_bound(inner: pytest.Pytester) -> None:
    """wait_for_ticks fails the test, saying how far the ticker got, instead of hanging."""
    inner.makepyfile(
        """
        def test_slow(make_ticker, wait_for_ticks):
            ticker = make_ticker(interval_s=3600).start()
            wait_for_ticks(ticker, 1)
        """
    )
    result = inner.runpytest_inprocess(*INNER_PYTEST_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*completed 0 of 1 ticks within 0.5s*"])


def test_wrong_thread_access_fails_the_test(inner: pytest.Pytester) -> None:
    """Touching fake_pool state from the test's thread fails the test at teardown."""
    inner.makepyfile(
        """
        def test_peek(fake_pool):
            try:
                fake_pool.registered_roles
            except AssertionError:
                pass  # swallowed, as a buggy ticker might; the fixture still notices
        """
    )
    result = inner.runpytest_inprocess(*INNER_PYTEST_ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*pool state was touched from the wrong thread*MainThread*"])


def test_work_left_pending_on_the_runtime_fails_the_test(inner: pytest.Pytester) -> None:
    """A coroutine left running on lilbee_runtime is reported by name at teardown."""
    inner.makepyfile(
        """
        import asyncio

        async def forgotten():
            await asyncio.sleep(60)

        def test_forget(lilbee_runtime):
            lilbee_runtime.submit(forgotten())
        """
    )
    result = inner.runpytest_inprocess(*INNER_PYTEST_ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*still pending on the runtime's loop*forgotten*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A nonsensical ini bound is refused with a message naming the option."""
    pytester.makeini("[pytest]\nlilbee_ticker_wait_timeout = soon\n")
    pytester.makepyfile("def test_x(wait_for_ticks):\n    pass\n")
    result = pytester.runpytest_inprocess(*INNER_PYTEST_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*lilbee_ticker_wait_timeout*'soon'*"])
