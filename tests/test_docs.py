"""Every Python example in the README and docs/ runs, so the docs cannot rot.

A ```python block is run as a script, as ``__main__``, in a namespace of its
own: it sees only what it imports itself. A block after an
``<!-- run: pytest -->`` comment is a test module, run by pytest with this
package's plugin. Both run in this interpreter, not a fresh one each, which
cost a second or two per example; warnings are errors here as they were with
``-W error``, and the guard in ``conftest.py`` fails an example that leaves a
ticker running. What an example may set up for the rest of a script (a
handler on the ``lilbee_ticker`` logger, a structlog configuration) is undone
after it, as the end of its interpreter would.
"""

from __future__ import annotations

import ast
import gc
import logging
import pathlib
import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from .conftest import INNER_PYTEST_ARGS

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# A fenced block, possibly indented (inside a tab or an admonition).
BLOCK = re.compile(
    r"(?:^<!-- run: (?P<how>\w+) -->\n)?^(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```",
    re.DOTALL | re.MULTILINE,
)


def _examples() -> list[Any]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            how = match.group("how") or "python"
            rel = path.relative_to(ROOT)
            code = textwrap.dedent(match.group("code"))
            found.append(pytest.param(code, how, id=f"{rel}:{line}"))
    return found


EXAMPLES = _examples()


def test_there_are_examples() -> None:
    """The collector finds the documentation's examples (a broken regex would find none)."""
    assert len(EXAMPLES) >= 3


@pytest.fixture
def _as_its_own_script() -> Iterator[None]:
    """Undo what an example set up for the rest of its script, as its interpreter's end would."""
    loggers = [logging.getLogger(name) for name in ("", "lilbee_ticker")]
    saved = [(list(log.handlers), log.level, log.propagate, log.disabled) for log in loggers]
    was_configured = structlog.is_configured()
    structlog_config = structlog.get_config()
    try:
        yield
    finally:
        for log, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            for handler in log.handlers:
                if handler not in handlers:
                    handler.close()
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate, log.disabled = propagate, disabled
        if was_configured:
            structlog.configure(**structlog_config)
        else:
            structlog.reset_defaults()


@pytest.mark.usefixtures("_as_its_own_script")
@pytest.mark.parametrize(("code", "how"), EXAMPLES)
def test_example_runs(code: str, how: str, request: pytest.FixtureRequest) -> None:
    """The example runs to completion without an error or a warning."""
    if how == "pytest":
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makepyfile(test_example=code)
        result = pytester.runpytest_inprocess(*INNER_PYTEST_ARGS, "-q", "-W", "error")
        assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
        return
    assert how == "python", f"unknown run marker {how!r}"
    compiled = compile(code, f"<example {request.node.callspec.id}>", "exec")
    exec(compiled, {"__name__": "__main__"})
    gc.collect()  # an object the example left unclosed warns now, in this test


def _front_page_diagram() -> str:
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    match = re.search(r"^```mermaid\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert match, "docs/index.md has no ```mermaid diagram"
    return match.group(1)


def test_the_front_page_diagram_shows_a_tick_as_one_round_trip() -> None:
    """The diagram agrees with docs/tick.md: one submit per tick, and the loop does the rest."""
    diagram = _front_page_diagram()
    submits = [line.strip() for line in diagram.splitlines() if "T->>L" in line]
    assert len(submits) == 1 and "run_tick" in submits[0], submits
    replies = [line.strip() for line in diagram.splitlines() if "L-->>T" in line]
    assert len(replies) == 1, replies
    # The pool is reached from the loop only, never from the ticker's thread.
    assert "T->>P" not in diagram
    for call in ("is_alive", "reap_idle()", "ping_role(r)"):
        assert any(call in line and "L->>P" in line for line in diagram.splitlines()), call


ARCHITECTURE = ROOT / "docs" / "architecture.md"
_LOCK_TYPES = {"Lock", "RLock", "Condition"}


def _module_diagram() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    match = re.search(r"^```mermaid\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert match, "docs/architecture.md has no ```mermaid diagram"
    return match.group(1)


def test_the_architecture_diagram_names_every_module() -> None:
    """The module diagram names every module of the package: a new one cannot go unmapped."""
    package = ROOT / "lilbee_ticker"
    modules = sorted(path.stem for path in package.glob("*.py"))
    diagram = _module_diagram()
    missing = [name for name in modules if not re.search(rf"(?<![\w]){name}(?![\w])", diagram)]
    assert not missing, f"docs/architecture.md's diagram lacks {missing}"


def _lock_owners() -> set[str]:
    """Who holds each lock made in the package: its class, or its module-level name."""
    owners = set()
    for path in (ROOT / "lilbee_ticker").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in ast.walk(node):
                    if isinstance(item, ast.Assign) and _makes_lock(item.value):
                        owners.add(node.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _makes_lock(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        owners.add(target.id)
    return owners


def _makes_lock(value: ast.expr) -> bool:
    return any(
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in _LOCK_TYPES
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "threading"
        for call in ast.walk(value)
    )


def test_the_lock_table_lists_every_lock() -> None:
    """Every lock the package makes is in docs/architecture.md's lock table, by its owner."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text[text.index("## Locks") : text.index("## Which module keeps which promise")]
    owners = _lock_owners()
    assert {"_Bell", "TickTurns", "_relays_lock"} <= owners, owners
    missing = sorted(owner for owner in owners if f"{owner}" not in table)
    assert not missing, f"docs/architecture.md's lock table lacks {missing}"
