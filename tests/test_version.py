"""The package version agrees with the docstrings and the CHANGELOG."""

from __future__ import annotations

import pathlib
import re

from packaging.version import Version

import lilbee_ticker

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = pathlib.Path(lilbee_ticker.__file__).parent
VERSION = Version(lilbee_ticker.__version__)
# The release the package is on, or on the way to: 0.2.0 for 0.2.0.dev0.
RELEASE = Version(VERSION.base_version)
DIRECTIVE = re.compile(r"^\s*\.\. version(?:added|changed):: (\S+)", re.MULTILINE)


def _directives() -> list[tuple[str, Version]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in DIRECTIVE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(PACKAGE.parent)}:{line}", Version(match.group(1))))
    return found


def test_no_docstring_names_a_version_ahead_of_the_package() -> None:
    """The newest ``versionadded``/``versionchanged`` is at most the package's release.

    A docstring that says 0.3.0 fails this until ``_version.py`` moves on to
    ``0.3.0.dev0``; a dev version counts as the release it leads to.
    """
    directives = _directives()
    assert len(directives) >= 20, directives  # the regex finds them
    ahead = [f"{where}: {version}" for where, version in directives if version > RELEASE]
    assert ahead == [], f"the package is {VERSION}"


def test_the_changelog_has_a_section_for_the_version() -> None:
    """A development version has an Unreleased section on top; a release has its dated one."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", changelog, re.MULTILINE)
    assert headings, "CHANGELOG.md has no release headings"
    if VERSION.is_prerelease or VERSION.is_devrelease:
        assert headings[0][0] == "Unreleased", headings[0]
        released = [Version(name) for name, _ in headings[1:]]
        assert all(old < VERSION for old in released), (VERSION, released)
    else:
        assert headings[0][0] == str(VERSION), headings[0]
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", headings[0][1]), headings[0]
