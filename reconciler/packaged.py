"""Files shipped inside the package (the JSON schemas, the country list), read from beside this module.

Not `importlib.resources`: importing it, and the zip reader its first read brings, took ~30 ms of every
start-up (measured; BENCHMARKS.md), and this package is always installed as files (a wheel unpacks; an editable
install is the source tree).
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).parent


def read_text(relative: str, encoding: str = "utf-8") -> str:
    """The text of the packaged file at `relative` (a `/`-separated path inside the package)."""
    return _ROOT.joinpath(*relative.split("/")).read_text(encoding)
