"""The recorded state: what was last applied to each account, behind one `Backend` interface."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.state.base import Backend, Journal

DEFAULT_STATE = ".reconciler/state.json"
SANDBOX_STATE = ".reconciler/sandbox-state.json"

__all__ = ["Backend", "Journal", "open_backend", "resolve_state_location", "DEFAULT_STATE", "SANDBOX_STATE"]


def resolve_state_location(option: str | None, sandbox: bool = False) -> str:
    """`--state`, else `RECONCILER_STATE`, else the default (a separate file for sandbox runs)."""
    if option:
        return option
    if sandbox:
        return SANDBOX_STATE
    return os.environ.get("RECONCILER_STATE") or DEFAULT_STATE


def open_backend(location: str) -> Backend:
    """A backend for a path, a `file://` URL or a `postgresql://` URL."""
    if location.startswith(("postgresql://", "postgres://")):
        from reconciler.state.postgres import PostgresBackend

        return PostgresBackend(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if "://" in location:
        raise UsageError(f"unsupported state location {location.split('://')[0]}://; use a path or file://")
    from reconciler.state.file import FileBackend

    return FileBackend(Path(location))
