"""The one place a secret's plaintext is handled: environment references, fingerprints and masking.

A `Secret` holds plaintext in memory between resolving the configuration and building a request body; its
`repr` and `str` never show it. Everything persisted or printed sees `fingerprint()` or `SENSITIVE`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

SENSITIVE = "(sensitive)"
FINGERPRINT_PREFIX = "sha256:"
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


#: Distinct secret values, kept only while verbose logging is on (logs.py redacts them); None otherwise.
_registry: set[str] | None = None
#: Shorter values would redact ordinary words from log lines; such a secret is weak anyway.
MIN_REDACTED_LENGTH = 4


def start_registry() -> None:
    global _registry
    _registry = set() if _registry is None else _registry


def register(value: str) -> None:
    """Note a plaintext secret (the API key, a password) so that any log line holding it is redacted."""
    if _registry is not None and len(value) >= MIN_REDACTED_LENGTH:
        _registry.add(value)


def registered() -> AbstractSet[str]:
    """The registered values (read only: the set itself, so a log line costs no copy)."""
    return _registry if _registry is not None else frozenset()


def redaction_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every value long enough to redact, longest first (a secret holding another is replaced
    whole); None when there is none."""
    ordered = sorted({value for value in values if len(value) >= MIN_REDACTED_LENGTH}, key=len, reverse=True)
    return re.compile("|".join(re.escape(value) for value in ordered)) if ordered else None


def referenced_names(text: str) -> list[str]:
    """The NAMEs of the well-formed `${NAME}` references in `text` (`$${` is a literal, not a reference)."""
    return [
        match.group(1)
        for match in _REFERENCE.finditer(text)
        if match.group(1) is not None and _NAME.match(match.group(1))
    ]


class Secret:
    """A plaintext value that must never be printed, logged or persisted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        """The plaintext, for building a request body and nothing else."""
        return self._value

    def fingerprint(self, salt: str) -> str:
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


def fingerprint(value: str, salt: str) -> str:
    """A salted SHA-256 (HMAC) of `value`: equal for equal values under one salt, useless without it."""
    digest = hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
    return FINGERPRINT_PREFIX + digest


def is_fingerprint(value: object) -> bool:
    return isinstance(value, str) and _FINGERPRINT.match(value) is not None


class ReferenceError_(ValueError):
    """A `${...}` reference that is malformed or names an unset variable."""


def resolve_references(text: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """Replace `${NAME}` with the environment's value and `$${` with a literal `${`.

    Returns the resolved text and whether any reference was used (which makes the value a secret).
    Raises ReferenceError_ naming the first unset variable or malformed reference.
    """
    if "$" not in text:
        return text, False
    used = False
    parts: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(text):
        parts.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token == "$${":
            parts.append("${")
            continue
        name = match.group(1)
        if name is None:
            raise ReferenceError_("unterminated '${' (write '$${' for a literal '${')")
        if not _NAME.match(name):
            raise ReferenceError_(f"'${{{name}}}' is not a valid environment variable reference")
        if name not in environ:
            raise ReferenceError_(f"environment variable {name} is not set")
        parts.append(environ[name])
        used = True
    parts.append(text[position:])
    return "".join(parts), used


def fingerprinted(settings: Mapping[str, Any] | None, salt: str) -> dict[str, Any] | None:
    """A copy of desired settings with every Secret replaced by its fingerprint: safe to persist. A value behind
    an unset variable becomes its `unknown_marker` (never persisted: apply refuses to run without it)."""
    if settings is None:
        return None
    return {
        key: (
            fingerprinted(value, salt)
            if isinstance(value, Mapping)
            else value.fingerprint(salt)
            if isinstance(value, Secret)
            else unknown_marker(value.names)
            if isinstance(value, Unresolved)
            else value
        )
        for key, value in settings.items()
    }


def revealed(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of desired settings with plaintext in place of every Secret: only for a request body."""
    return {
        key: (
            revealed(value)
            if isinstance(value, Mapping)
            else value.reveal()
            if isinstance(value, Secret)
            else value
        )
        for key, value in settings.items()
    }


SECRET_KEYS = frozenset(("password",))


def masked(value: Any) -> Any:
    """A copy of settings with every fingerprint, Secret or password shown as `(sensitive)`, and every value
    behind an unset variable as its `unknown_marker`."""
    if isinstance(value, Mapping):
        return {
            key: (
                SENSITIVE
                if key in SECRET_KEYS and value[key] is not None and not _unknown(value[key])
                else masked(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, Unresolved):
        return unknown_marker(value.names)
    if isinstance(value, Secret) or is_fingerprint(value):
        return SENSITIVE
    return value


def _unknown(value: Any) -> bool:
    return isinstance(value, Unresolved) or is_unknown(value)


# --- Environment references that may be unset --------------------------------------------------------------
#
# Validating and planning need no secret: a value whose `${VAR}` is unset loads as `Unresolved` (the names it
# waits for) instead of failing. Only a malformed reference is an error here.


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


def resolve_or_mark(text: str, environ: Mapping[str, str]) -> tuple[str | Unresolved, bool]:
    """Like `resolve_references`, but an unset variable gives `Unresolved` (naming every unset one) rather
    than an error. A malformed reference anywhere in `text` still raises ReferenceError_, set variables or not.

    Returns the resolved text (or the marker) and whether any reference was used.
    """
    if "$" not in text:
        return text, False
    unset = [name for name in _checked_names(text) if name not in environ]
    if unset:
        return Unresolved(unset), True
    return resolve_references(text, environ)


def _checked_names(text: str) -> list[str]:
    """The names of the references in `text`; ReferenceError_ for the first malformed one (not quoted: the
    text may be a password)."""
    names: list[str] = []
    for match in _REFERENCE.finditer(text):
        if match.group(0) == "$${":
            continue
        name = match.group(1)
        if name is None:
            raise ReferenceError_("unterminated '${' (write '$${' for a literal '${')")
        if not _NAME.match(name):
            raise ReferenceError_(
                f"malformed reference at character {match.start() + 1}: '${{...}}' takes a variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        names.append(name)
    return names


# -- fingerprint keys and the aggregate digest of saved plans --------------------------------------------------

#: An optional key, from the environment only, mixed into every fingerprint's HMAC key; it is never stored.
FINGERPRINT_KEY_VARIABLE = "RECONCILER_FINGERPRINT_KEY"
#: scrypt's cost for the aggregate digest: 16 MiB and a fraction of a second, paid once per saved plan (and
#: once per guess by whoever tries to guess a secret from it).
SCRYPT_N = 2**14


def fingerprint_key(environ: Mapping[str, str]) -> str | None:
    """The fingerprint key the environment gives (`RECONCILER_FINGERPRINT_KEY`), or None when unset or empty."""
    key = environ.get(FINGERPRINT_KEY_VARIABLE) or None
    if key is not None:
        register(key)
    return key


def keyed_salt(salt: str, key: str | None) -> str:
    """The salt fingerprints are made with: the state's own salt, or with a key, an HMAC of the salt under it.

    With a key, a copy of the state (its salt and fingerprints) cannot confirm a guessed password without the
    key as well. Without one the salt is used as it is, so fingerprints recorded before keys existed still match.
    """
    if not key:
        return salt
    return "keyed:" + hmac.new(key.encode(), salt.encode(), hashlib.sha256).hexdigest()


def _secret_leaves(settings: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Secret]]:
    for key, value in sorted(settings.items()):
        if isinstance(value, Mapping):
            yield from _secret_leaves(value, f"{prefix}{key}.")
        elif isinstance(value, Secret):
            yield prefix + key, value


def secrets_digest(settings_by_account: Mapping[str, Mapping[str, Any] | None], salt: str) -> str:
    """One digest of every secret in the desired settings (with the account and the path each sits at).

    It changes when any secret changes and says nothing about any one of them: it is keyed by `salt` (the
    state's, which a saved plan does not hold) and costs scrypt's work factor per guess. "none" when there is no
    secret at all.
    """
    found = [
        [account_id, path, secret.reveal()]
        for account_id in sorted(settings_by_account)
        for path, secret in _secret_leaves(settings_by_account[account_id] or {})
    ]
    if not found:
        return "none"
    message = hashlib.sha256(json.dumps(found, ensure_ascii=False).encode()).digest()
    digest = hashlib.scrypt(message, salt=salt.encode(), n=SCRYPT_N, r=8, p=1, maxmem=2**26, dklen=32)
    return "scrypt:" + digest.hex()


# -- values not known here: a plan made while some variables are unset --------------------------------------------

_UNKNOWN = re.compile(r"\(not known here: [A-Za-z_][A-Za-z0-9_]*(, [A-Za-z_][A-Za-z0-9_]*)* unset\)\Z")


def unknown_marker(names: Iterable[str]) -> str:
    """How a value behind unset variables reads in a plan: `(not known here: PROXY_PASSWORD unset)`."""
    return f"(not known here: {', '.join(names)} unset)"


def is_unknown(value: object) -> bool:
    """Whether `value` is an `unknown_marker` (a planned value that only apply, with the variables, can know)."""
    return isinstance(value, str) and _UNKNOWN.match(value) is not None


def unresolved_names(settings: Mapping[str, Any] | None) -> set[str]:
    """The unset variables the values of `settings` wait for."""
    names: set[str] = set()
    for value in (settings or {}).values():
        if isinstance(value, Mapping):
            names |= unresolved_names(value)
        elif isinstance(value, Unresolved):
            names.update(value.names)
    return names
