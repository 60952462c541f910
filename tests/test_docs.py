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
