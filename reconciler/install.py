"""How to install what is missing: the extras, pinned to the version that is running."""

from __future__ import annotations

DISTRIBUTION = "postpress-reconciler"


def extra_command(extra: str) -> str:
    """The pip command that adds `extra` to the installed version (never an unpinned name)."""
    from importlib.metadata import PackageNotFoundError, version  # ~10 ms: only on the way to this message

    try:
        installed = version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that is not installed
        return f"install this checkout with its [{extra}] extra"
    return f"pip install '{DISTRIBUTION}[{extra}]=={installed}'"
