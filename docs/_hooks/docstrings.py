"""MkDocs hook: render the Sphinx markup our Google-style docstrings carry.

The docstrings use Sphinx roles (``:class:`X```) and ``.. versionadded::``,
which IDEs and ``help()`` understand, but which mkdocstrings' Markdown
renderer leaves as literal text. This hook turns them into plain code
spans and an "Added in version" line in the built pages.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|attr|func|mod|data|exc|obj):<code>([^<]*)</code>")
_VERSION = re.compile(r"<p>\.\. versionadded:: ([^<\s]+)</p>")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite each page's HTML after Markdown and mkdocstrings have rendered it."""
    html = _ROLE.sub(lambda m: f"<code>{_target(m.group(1))}</code>", html)
    return _VERSION.sub(r'<p class="version-added"><em>Added in version \1.</em></p>', html)


def _target(text: str) -> str:
    # "~a.b.C" shows as "C", as in Sphinx; anything else is shown as written.
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text
