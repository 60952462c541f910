"""Every Python example in the README and docs/ runs, so the docs cannot rot.

A ```python block is run as a script in a fresh interpreter. A block after
an ``<!-- run: pytest -->`` comment is a test module, run by pytest with
this package's plugin.
"""

from __future__ import annotations

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
