"""The recorded state: what was last applied to each account, behind one `Backend` interface."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

from reconciler.errors import StateError, UsageError
from reconciler.install import extra_command
from reconciler.model import Elsewhere
from reconciler.reference import StateReference
from reconciler.secrets.redaction import Redactor
from reconciler.state.base import SHARDS_NEED_POSTGRES, Backend, Journal
from reconciler.suggestions import closest
from reconciler.urls import display_url

DEFAULT_STATE = ".reconciler/state.json"
SANDBOX_STATE = ".reconciler/sandbox-state.json"

__all__ = [
    "Backend",
    "Journal",
    "StateReference",
    "open_backend",
    "look_elsewhere",
    "held_elsewhere",
    "close_schema_note",
    "location_note",
    "display_location",
    "resolve_state_location",
    "sandbox_state_note",
    "DEFAULT_STATE",
    "SANDBOX_STATE",
    "SHARDS_NEED_POSTGRES",
]


def resolve_state_location(option: str | None, sandbox: bool = False) -> str:
    """`--state`, else `RECONCILER_STATE`, else the default (a separate file for sandbox runs)."""
    if option:
        return option
    if sandbox:
        return SANDBOX_STATE
    return os.environ.get("RECONCILER_STATE") or DEFAULT_STATE


def sandbox_state_note(location: str) -> str | None:
    """A line for a plan against the default state when only the sandbox's state exists: else every account
    shows as new, and a user who has just run `apply --sandbox` would think nothing was recorded."""
    if location != DEFAULT_STATE or not Path(SANDBOX_STATE).is_file():
        return None
    if Path(DEFAULT_STATE).exists() or Path(DEFAULT_STATE + ".journal").exists():
        return None
    return (
        f"note: nothing is recorded in {DEFAULT_STATE} yet; what apply --sandbox recorded is in "
        f"{SANDBOX_STATE} (plan --sandbox reads it)"
    )


#: The longest workspace name a hint repeats (a name is outside text: the database holds any).
_NAME_LIMIT = 200


def _clipped(name: str) -> str:
    return name if len(name) <= _NAME_LIMIT else name[:_NAME_LIMIT] + "…"


def look_elsewhere(backend: Backend, account_ids: list[str]) -> Elsewhere | None:
    """For a state that holds no accounts: another state that holds most of `account_ids` (the accounts a plan
    would create), the one that holds the most. Looked for: the other workspaces of the same PostgreSQL schema
    (a mistyped `workspace=`); when that schema holds no account at all (it does not exist yet: a mistyped or
    forgotten `schema=`), the workspaces of the other schemas of the same database that hold reconciler state;
    and the default file state, `.reconciler/state.json` in the working directory, beside any other state (a
    state moved to PostgreSQL with `--state` or `RECONCILER_STATE`, the file left).

    A hint, not a check of the state: a place that cannot be read is not looked at."""
    if not account_ids:
        return None
    most = _most_elsewhere(backend, account_ids)
    if most is None or 2 * most.holds <= len(account_ids):
        return None
    return most


def held_elsewhere(backend: Backend) -> Elsewhere | None:
    """For a state that holds no accounts, with no accounts to look for (`state list`): the other state, of
    those `look_elsewhere` looks at, that holds the most accounts (its `holds` and `of` both that number), if
    one holds any."""
    most = _most_elsewhere(backend, None)
    return None if most is None or most.holds == 0 else most


def _most_elsewhere(backend: Backend, account_ids: list[str] | None) -> Elsewhere | None:
    """The place `look_elsewhere` looks at that holds the most of `account_ids` (None: of any account)."""
    of = 0 if account_ids is None else len(account_ids)
    here = backend.describe()
    found: list[Elsewhere] = []
    try:
        for workspace, holds in backend.other_workspaces(account_ids).items():
            found.append(Elsewhere("workspace", _clipped(workspace), holds, of or holds, here=here))
        for schema, workspaces in backend.other_schemas(account_ids).items():
            for workspace, holds in workspaces.items():
                found.append(Elsewhere("schema", schema, holds, of or holds, _clipped(workspace), here))
    except StateError:
        pass
    default = Path(DEFAULT_STATE)
    path = getattr(backend, "path", None)
    beside = path is None or os.path.realpath(path) != os.path.realpath(default)
    if beside and (default.exists() or Path(DEFAULT_STATE + ".journal").exists()):
        try:
            from reconciler.state.file.backend import FileBackend

            recorded = FileBackend(default, explicit=False).account_ids()
            wanted = recorded if account_ids is None else account_ids
            holds = sum(1 for i in wanted if i in recorded)
            found.append(Elsewhere("file", DEFAULT_STATE, holds, of or holds, here=here))
        except (StateError, OSError):
            pass
    return max(found, key=lambda elsewhere: elsewhere.holds, default=None)


def close_schema_note(backend: Backend) -> str | None:
    """For a PostgreSQL state whose schema holds no account, when no other state holds most of the accounts
    (`look_elsewhere` found none): a line naming another schema of the same database that holds reconciler state
    and whose name is close to this one's (a mistyped `schema=`). None otherwise, and when it cannot be read."""
    schema = backend.reference().schema
    if schema is None:
        return None
    try:
        others = list(backend.other_schemas([]))
    except StateError:
        return None
    close = closest(schema, others, limit=1)
    if not close:
        return None
    parameter = urlencode({"schema": close[0]})
    return (
        f"note: schema {schema!r} holds no accounts; did you mean {close[0]!r}, which holds reconciler state? "
        f"({parameter} in the state URL)"
    )


def display_location(location: str) -> str:
    """A state location as every message, plan and report shows it: a URL's user kept and its password
    replaced by `***`; a URL with a malformed percent escape shown without its userinfo; a path as it is."""
    return display_url(location) if "://" in location else location


def open_backend(
    location: str,
    explicit: bool | None = None,
    unnamed: str = "the default state",
    redactor: Redactor | None = None,
) -> Backend:
    """A backend for a path, a `file://` URL or a `postgresql://` URL.

    `explicit` says whether the user named this location; by default, any location but the two default paths.
    A state path that is a symbolic link is followed only when explicit, and then `location_note` says where it
    leads; otherwise the refusal calls the state `unnamed` (what named it: the default, a saved plan).
    `redactor`: the run's, told the URL's password and redacting the server's messages (PostgreSQL).
    """
    if location.startswith(("postgresql://", "postgres://")):
        return _postgres_backend(location, redactor)
    if explicit is None:
        explicit = location not in (DEFAULT_STATE, SANDBOX_STATE)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if "://" in location:
        raise UsageError(
            f"unsupported state location {display_url(location)}: use a path, a file:// URL or a postgresql:// URL"
        )
    from reconciler.state.file.backend import FileBackend

    return FileBackend(Path(location), explicit=explicit, unnamed=unnamed)


def location_note(backend: Backend) -> str | None:
    """The line the command line shows on stderr when `backend`'s state is not where it was named: where a
    followed symbolic link leads. None otherwise."""
    note = getattr(backend, "link_note", None)  # the file backend's, which a PostgreSQL run need not import
    return note if isinstance(note, str) else None


def _postgres_backend(location: str, redactor: Redactor | None) -> Backend:
    try:
        from reconciler.state.postgres.backend import PostgresBackend
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "psycopg":
            raise
        raise StateError(
            f"a postgresql:// state needs PostgreSQL support, which is not installed: {extra_command('postgres')}"
        ) from None
    except ImportError as exc:  # psycopg is there but cannot load its libpq binding
        message = " ".join(str(exc).split())[:300]
        raise StateError(
            f"PostgreSQL support cannot load ({message}); reinstall it: {extra_command('postgres')}"
        ) from None
    return PostgresBackend(location, redactor)
