"""Secret values and their fingerprints: a `Secret` holds plaintext in memory between resolving the configuration
and building a request body; its `repr` and `str` never show it. Everything persisted or printed sees
`fingerprint()` or `SENSITIVE`.

A Secret knows nothing of redaction: whoever makes one (the configuration loader) hands its plaintext to the
run's `Redactor` (redaction.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from reconciler.secrets.unknown import NotKnown, Unresolved, unknown_marker

SENSITIVE = "(sensitive)"
FINGERPRINT_PREFIX = "sha256:"


class Fingerprint(str):
    """A secret's salted fingerprint, `sha256:<64 hex digits>`: a value of its own type, so that nothing has to
    recognise its text; the text is how the state stores it (a state read back holds text until it is typed
    at the state's boundary: reconciler.state.stored)."""

    __slots__ = ()

    @property
    def digest(self) -> str:
        return self[len(FINGERPRINT_PREFIX) :]


class Secret:
    """A plaintext value that must never be printed, logged or persisted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext, for building a request body and nothing else."""
        return self._value

    def fingerprint(self, salt: str) -> Fingerprint:
        return fingerprint(self._value, salt)

    def __repr__(self) -> str:
        return f"Secret({SENSITIVE})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would persist plaintext
        raise TypeError("a Secret cannot be pickled")


def fingerprint(value: str, salt: str) -> Fingerprint:
    """A salted SHA-256 (HMAC) of `value`: equal for equal values under one salt, useless without it."""
    digest = hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
    return Fingerprint(FINGERPRINT_PREFIX + digest)


def fingerprinted(settings: Mapping[str, Any] | None, salt: str) -> dict[str, Any] | None:
    """A copy of desired settings with every Secret replaced by its `Fingerprint`: safe to persist. A value
    behind an unset variable becomes `NotKnown` (never persisted: apply refuses to run without it)."""
    if settings is None:
        return None
    copy: dict[str, Any] = {}
    for key, value in settings.items():
        if type(value) not in _PLAIN:  # a loop, not a comprehension: run for every account of a plan
            if isinstance(value, dict):
                value = fingerprinted(value, salt)
            elif isinstance(value, Secret):
                value = value.fingerprint(salt)
            elif isinstance(value, Unresolved):
                value = NotKnown(value.names)
        copy[key] = value
    return copy


#: Values `fingerprinted` copies as they are, by exact type.
_PLAIN = frozenset((str, int, bool, float, type(None)))


def revealed(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of desired settings with plaintext in place of every Secret: only for a request body."""
    return {
        key: (
            revealed(value)
            if isinstance(value, dict)
            else value.reveal()
            if isinstance(value, Secret)
            else value
        )
        for key, value in settings.items()
    }


SECRET_KEYS = frozenset(("password",))


def masked(value: Any, text: bool = False) -> Any:
    """A copy of settings with every `Fingerprint`, Secret or password shown as `(sensitive)`, and every value
    behind an unset variable as `NotKnown`; with `text` (where a plan is rendered or saved), as the NotKnown's
    text, `(not known here: ...)`, in the same pass."""
    if isinstance(value, Mapping):
        return {
            key: (
                SENSITIVE
                if key in SECRET_KEYS and value[key] is not None and not _unknown(value[key])
                else masked(item, text)
            )
            for key, item in value.items()
        }
    if isinstance(value, Unresolved):
        return NotKnown(value.names) if not text else unknown_marker(value.names)
    if isinstance(value, NotKnown):
        return value if not text else str(value)
    if isinstance(value, Secret | Fingerprint):
        return SENSITIVE
    return value


def _unknown(value: Any) -> bool:
    return isinstance(value, Unresolved | NotKnown)
