"""How to install what is missing: the extras, for the installation that is running (never an unpinned name)."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import unquote, urlsplit

DISTRIBUTION = "postpress-reconciler"


def extra_command(extra: str) -> str:
    """The pip command that adds `extra` to the installation that is running: the same checkout for one installed
    from a source tree (editable or not), the same git reference for one installed from git, else the release
    that is running, pinned (see `install_command`)."""
    from importlib.metadata import (
        PackageNotFoundError,
        distribution,
    )  # ~10 ms: only on the way to this message

    try:
        installed = distribution(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that is not installed
        return f"install this checkout with its [{extra}] extra"
    try:
        origin = json.loads(installed.read_text("direct_url.json") or "null")
    except ValueError:
        origin = None
    return install_command(extra, installed.version, origin if isinstance(origin, dict) else None)


def install_command(extra: str, version: str, origin: dict[str, Any] | None) -> str:
    """The pip command that adds `extra` to version `version` installed from `origin` (the installation's PEP 610
    `direct_url.json`; None: from an index). A local directory (a source checkout) gives that directory again
    (`pip install -e '/path/to/checkout[postgres]'` for an editable one): a checkout's version may be unreleased.
    A git URL gives the same URL and reference. Anything else gives the release, pinned:
    `pip install 'postpress-reconciler[postgres]==0.2.0'`."""
    pinned = f"pip install '{DISTRIBUTION}[{extra}]=={version}'"
    url = origin.get("url") if origin else None
    if not isinstance(url, str) or origin is None:
        return pinned
    parts = urlsplit(url)
    directory = origin.get("dir_info")
    if isinstance(directory, dict) and parts.scheme == "file":
        editable = "-e " if directory.get("editable") else ""
        return f"pip install {editable}{shlex.quote(unquote(parts.path) + f'[{extra}]')}"
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        reference = vcs.get("requested_revision") or vcs.get("commit_id")
        at = f"@{reference}" if isinstance(reference, str) else ""
        requirement = f"{DISTRIBUTION}[{extra}] @ {vcs['vcs']}+{url}{at}"
        return f"pip install {shlex.quote(requirement)}"
    return pinned
