"""Soak mode: RECONCILER_SOAK=1 runs the reliability suite at a larger scale (RELIABILITY.md has its figures)."""

from __future__ import annotations

import os

SOAK = os.environ.get("RECONCILER_SOAK") == "1"


def scale(ci: int, soak: int) -> int:
    """`ci` in a normal run, `soak` in soak mode."""
    return soak if SOAK else ci
