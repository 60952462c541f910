"""The shipped demo is example code: it uses the library's public API only.

Read from the demo's source with :mod:`ast`, so an import anywhere in a
module (inside a function, under ``TYPE_CHECKING``) counts.
"""

from __future__ import annotations

import ast
import pathlib

import lilbee_ticker.demo

DEMO = pathlib.Path(lilbee_ticker.demo.__file__).parent
PACKAGE = "lilbee_ticker"


def _imported(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, by line, with relative imports resolved."""
    here = f"{PACKAGE}.demo" if path.name == "__init__.py" else f"{PACKAGE}.demo.{path.stem}"
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            # `from lilbee_ticker import _clock` imports a module too.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def _private(module: str) -> bool:
    """True for a private module of the library itself; the demo's own may be private."""
    parts = module.split(".")
    if parts[0] != PACKAGE or parts[1:2] == ["demo"]:
        return False
    return any(part.startswith("_") and not part.startswith("__") for part in parts[1:])


def test_the_demo_imports_no_private_module_of_the_library() -> None:
    """No demo module imports ``lilbee_ticker._*``: what it needs, a user's code can import."""
    sources = sorted(DEMO.rglob("*.py"))
    assert len(sources) >= 5, sources
    offending = [
        f"{path.relative_to(DEMO.parent)}:{line}: {module}"
        for path in sources
        for line, module in _imported(path)
        if _private(module)
    ]
    assert offending == []


def test_the_check_sees_a_private_import(tmp_path: pathlib.Path) -> None:
    """The check itself catches each way of reaching a private module."""
    module = tmp_path / "_example.py"
    module.write_text(
        "import lilbee_ticker._ticker\n"
        "from lilbee_ticker import _clock\n"
        "from lilbee_ticker._health import HealthStatus\n"
        "from .. import _validate\n"
        "from lilbee_ticker import HealthTicker, __version__\n"
        "from lilbee_ticker.demo import _worker\n",
        encoding="utf-8",
    )
    private = sorted({module for _, module in _imported(module) if _private(module)})
    assert private == [
        "lilbee_ticker._clock",
        "lilbee_ticker._health",
        "lilbee_ticker._health.HealthStatus",
        "lilbee_ticker._ticker",
        "lilbee_ticker._validate",
    ]
