"""Values not known here: a plan made while some variables are unset or some secrets files not decrypted.

A value waits for "sources": environment variables (`PROXY_PASSWORD`) and secrets files, named by their alias
as `vault.*` (every value of the file `secrets: {vault: ...}` names). The two never look alike: an alias
has no capital letter and a variable name has no `.`.

Validating and planning need no secret: a value whose `${VAR}` is unset loads as `Unresolved` (the names it
waits for) instead of failing. An empty variable counts as unset: a CI secret that is missing arrives as an
empty string, and an empty password sent would be a mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def unset_message(names: Sequence[str]) -> str:
    """`environment variable A is not set or empty` (or `variables A, B are ...`): one wording for every command."""
    many = len(names) > 1
    return f"environment variable{'s' if many else ''} {', '.join(names)} {'are' if many else 'is'} not set or empty"


def needed_message(names: Sequence[str], command: str, use: str) -> str:
    """`environment variable A is not set or empty; apply needs it for the values it sends`: a command that
    cannot go on without the values (`use`: what it does with them)."""
    them = "them" if len(names) > 1 else "it"
    return f"{unset_message(names)}; {command} needs {them} for the values it {use}"


class Unresolved:
    """A configuration value that cannot be known because environment variables it refers to are unset.

    It stands where the resolved `Secret` would be. `names` are the unset variables, sorted, each once. It holds
    no text of the value (nor of the variables that are set), is equal to nothing (itself included, so a value
    that cannot be known never looks unchanged), and shows as `Unresolved(NAME, ...)`.
    """

    __slots__ = ("names",)

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Unresolved({', '.join(self.names)})"

    __str__ = __repr__


#: The suffix of a secrets file's name among the sources a value waits for: `vault.*`.
FILE_SOURCE_SUFFIX = ".*"


def file_source(alias: str) -> str:
    """The name of the secrets file `alias` among the sources a value may wait for: `vault.*`."""
    return alias + FILE_SOURCE_SUFFIX


def is_file_source(name: str) -> bool:
    return name.endswith(FILE_SOURCE_SUFFIX)


def unknown_marker(names: Iterable[str]) -> str:
    """How a value behind unset variables or secrets files not decrypted reads in a plan:
    `(not known here: PROXY_PASSWORD unset)`, `(not known here: vault.* not decrypted)`, or both:
    `(not known here: PROXY_PASSWORD unset; vault.* not decrypted)`."""
    return f"(not known here: {sources_text(list(names))})"


class NotKnown:
    """A planned value that is not known here: it waits for `sources` (unset variables, secrets files not
    decrypted as `vault.*`). It stands in a plan's `after` where the fingerprint would be; it becomes text
    (`unknown_marker`) only where a plan is rendered or saved (`masked(..., text=True)`, `text_of`), and a
    saved plan's text is read back into one when the plan is loaded (planfile.py).

    Equal to another of the same sources (a saved plan's changes are compared with a plan made again), and to
    nothing else: never to a fingerprint, so a value not known never looks unchanged.
    """

    __slots__ = ("sources",)

    def __init__(self, sources: Iterable[str]) -> None:
        self.sources: tuple[str, ...] = tuple(sources)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotKnown) and other.sources == self.sources

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.sources)

    def __repr__(self) -> str:
        return f"NotKnown({', '.join(self.sources)})"

    def __str__(self) -> str:
        return unknown_marker(self.sources)


def text_of(value: object) -> str:
    """json's `default` for a `NotKnown` inside a document: its text. TypeError for anything else."""
    if isinstance(value, NotKnown):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def sources_text(names: Sequence[str], variables: str = "unset", files: str = "not decrypted") -> str:
    """`PROXY_PASSWORD, OTHER unset; vault.* not decrypted`: the sources named with what is missing of each
    (`variables` and `files` say it)."""
    unset = [name for name in names if not is_file_source(name)]
    undecrypted = [name for name in names if is_file_source(name)]
    parts = []
    if unset:
        parts.append(f"{', '.join(unset)} {variables}")
    if undecrypted:
        parts.append(f"{', '.join(undecrypted)} {files}")
    return (" and " if variables.startswith("(") else "; ").join(parts)


def unresolved_names(settings: Mapping[str, Any] | None) -> set[str]:
    """The unset variables (and secrets files not decrypted) the values of `settings` wait for."""
    names: set[str] = set()
    for value in (settings or {}).values():
        if isinstance(value, dict):
            names |= unresolved_names(value)
        elif isinstance(value, Unresolved):
            names.update(value.names)
    return names
