"""Every Python example in the README and docs/ runs, so the docs cannot rot.

A ```python block is run as a script in a fresh interpreter. A block after
an ``<!-- run: pytest -->`` comment is a test module, run by pytest with
this package's plugin.
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

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


@pytest.mark.parametrize(("code", "how"), EXAMPLES)
def test_example_runs(code: str, how: str, tmp_path: pathlib.Path) -> None:
    """The example runs to completion without an error or a warning."""
    if how == "pytest":
        module = tmp_path / "test_example.py"
        module.write_text(code, encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            str(module),
        ]
    else:
        assert how == "python", f"unknown run marker {how!r}"
        command = [sys.executable, "-W", "error", "-c", code]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


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
