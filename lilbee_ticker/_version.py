"""The single place the package version is written.

Between releases it is the next release's development version (PEP 440
``X.Y.Z.devN``), which sorts before ``X.Y.Z``: the docstrings'
``versionadded``/``versionchanged`` may name ``X.Y.Z`` and the CHANGELOG's
``Unreleased`` section collects what it will bring.
"""

__version__ = "0.2.0.dev0"
