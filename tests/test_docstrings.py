"""Every public object is documented: a one-line summary, versionadded, and thread safety."""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Iterator

import pytest

import lilbee_ticker
import lilbee_ticker.demo
import lilbee_ticker.pytest_plugin
import lilbee_ticker.testing


def _is_class(obj: object) -> bool:
    # On Python 3.10 a parametrized generic such as Callable[[int], object] (a
    # type alias like OnChange) passes inspect.isclass(); from 3.11 on it does not.
    return inspect.isclass(obj) and typing.get_origin(obj) is None


def _public() -> Iterator[tuple[str, object]]:
    for module in (lilbee_ticker, lilbee_ticker.testing, lilbee_ticker.demo):
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("__") or not (_is_class(obj) or inspect.isfunction(obj)):
                continue  # __version__ and type aliases
            yield f"{module.__name__}.{name}", obj
    for name in ("lilbee_runtime", "fake_pool", "make_ticker", "wait_for_ticks"):
        yield f"lilbee_ticker.pytest_plugin.{name}", getattr(lilbee_ticker.pytest_plugin, name)


PUBLIC = list(_public())


def _needs_thread_safety(obj: object) -> bool:
    # Exceptions and enums carry no state worth a statement.
    return _is_class(obj) and not issubclass(obj, (BaseException, enum.Enum))


@pytest.mark.parametrize(("name", "obj"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_object_is_documented(name: str, obj: object) -> None:
    """The docstring opens with a one-sentence summary and says when the object was added."""
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith("."), f"{name}: summary line is not a sentence: {summary!r}"
    if not name.startswith("lilbee_ticker.pytest_plugin."):
        assert ".. versionadded::" in doc, f"{name} does not say when it was added"


@pytest.mark.parametrize(
    ("name", "obj"),
    [(n, o) for n, o in PUBLIC if _needs_thread_safety(o)],
    ids=[n for n, o in PUBLIC if _needs_thread_safety(o)],
)
def test_public_class_states_its_thread_safety(name: str, obj: object) -> None:
    """Every public class with state says which threads may use it."""
    doc = inspect.getdoc(obj) or ""
    assert "Thread safety:" in doc, f"{name} does not state its thread safety"


def test_public_methods_have_docstrings() -> None:
    """Every public method and property of a public class has a docstring."""
    missing = []
    for name, obj in PUBLIC:
        if not _is_class(obj) or issubclass(obj, enum.Enum):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            target = value.fget if isinstance(value, property) else value
            if callable(target) and not inspect.getdoc(target):
                missing.append(f"{name}.{attr}")
    assert missing == []
