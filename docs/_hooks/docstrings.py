"""Griffe extension: render the Sphinx markup our Google-style docstrings carry.

The docstrings use Sphinx roles (``:class:`X```) and the directives
``.. versionadded::`` and ``.. versionchanged::``, which IDEs and ``help()``
understand, but which mkdocstrings' Markdown renderer would show as literal
text. This rewrites each docstring, as griffe loads it, into plain Markdown:
a role becomes a code span, and a directive an "Added in version" or
"Changed in version" line of its own.

It runs inside mkdocstrings (``extensions:`` in ``mkdocs.yml``), not as an
MkDocs hook, so that any site generator that runs mkdocstrings (MkDocs, or
Zensical, which runs no MkDocs hooks) renders the API reference alike.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|attr|func|mod|data|exc|obj):`(~?)([^`]+)`")
# A directive and the lines indented under it.
_DIRECTIVE = re.compile(
    r"^\.\. version(added|changed):: (\S+)[ \t]*\n?((?:[ \t]+\S.*(?:\n|$))*)", re.MULTILINE
)


def rewrite(text: str) -> str:
    """Return ``text`` with its Sphinx roles and version directives as Markdown."""
    text = _ROLE.sub(_code_span, text)
    return _DIRECTIVE.sub(_version_line, text).rstrip() + "\n"


def _code_span(match: re.Match[str]) -> str:
    # "~a.b.C" shows as "C", as in Sphinx; anything else is shown as written.
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _version_line(match: re.Match[str]) -> str:
    kind, version = match.group(1), match.group(2)
    detail = " ".join(match.group(3).split())
    if kind == "added":
        return f"\n*Added in version {version}.*\n\n"
    return f"\n*Changed in version {version}:* {detail}\n\n"


class SphinxMarkup(griffe.Extension):
    """Rewrite every docstring griffe loads (see :func:`rewrite`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for each object it loads, before its docstring is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
