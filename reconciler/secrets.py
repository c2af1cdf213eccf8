"""The one place a secret's plaintext is handled: environment references, fingerprints and masking.

A `Secret` holds plaintext in memory between resolving the configuration and building a request body; its
`repr` and `str` never show it. Everything persisted or printed sees `fingerprint()` or `SENSITIVE`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any
from urllib.parse import quote, quote_plus

SENSITIVE = "(sensitive)"
FINGERPRINT_PREFIX = "sha256:"
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


#: Distinct secret values (the API key, every password and every resolved `${VAR}`), always kept: whatever comes
#: from outside (an API answer, a log record) is redacted of them before it is stored or shown. See `redact`.
_registry: set[str] = set()
_registry_lock = threading.Lock()
#: Shorter values would redact ordinary words from log lines; such a secret is weak anyway.
MIN_REDACTED_LENGTH = 4


def register(value: str) -> None:
    """Note a plaintext secret (the API key, a password) so that any outside text or log line holding it is
    redacted."""
    if len(value) >= MIN_REDACTED_LENGTH:
        with _registry_lock:
            _registry.add(value)


def registered() -> AbstractSet[str]:
    """The registered values (read only: the set itself, so a log line costs no copy)."""
    return _registry


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
        if not environ.get(name):
            raise ReferenceError_(f"environment variable {name} is not set or empty")
        parts.append(environ[name])
        used = True
    parts.append(text[position:])
    return "".join(parts), used


def fingerprinted(settings: Mapping[str, Any] | None, salt: str) -> dict[str, Any] | None:
    """A copy of desired settings with every Secret replaced by its fingerprint: safe to persist. A value behind
    an unset variable becomes its `unknown_marker` (never persisted: apply refuses to run without it)."""
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
                value = unknown_marker(value.names)
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
# waits for) instead of failing. Only a malformed reference is an error here. An empty variable counts as
# unset: a CI secret that is missing arrives as an empty string, and an empty password sent would be a mistake.


def unset_message(names: Sequence[str]) -> str:
    """`environment variable A is not set or empty` (or `variables A, B are ...`): one wording for every command."""
    many = len(names) > 1
    return f"environment variable{'s' if many else ''} {', '.join(names)} {'are' if many else 'is'} not set or empty"


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
    unset = [name for name in _checked_names(text) if not environ.get(name)]
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


# -- Redaction of outside text -------------------------------------------------------------------------------
#
# An API answer may echo the request (its body, its X-API-KEY header) in `detail`; a library's log record may
# quote a URL. `redact` replaces every registered secret in such text, in each form it could have been echoed
# in: raw, JSON-escaped, URL-encoded, HTML-escaped and base64 (at any alignment inside a longer base64 text).

REDACTED = "***"
#: Up to this many forms, each is searched with str.find (C speed); past it, one pass indexed by prefix.
_FIND_EACH_UP_TO = 64
_PREFIX = MIN_REDACTED_LENGTH
_URLSAFE = str.maketrans("+/", "-_")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that encode only `data`, at each of the three alignments it can have inside a
    longer base64 text (the characters shared with neighbouring bytes are left out)."""
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        first = -(-8 * offset // 6)  # the first character made only of `data`'s bits
        end = 8 * (offset + len(data)) // 6  # past the last one
        core = encoded[first:end]
        cores.update((core, core.translate(_URLSAFE)))
    return cores


def secret_forms(value: str) -> set[str]:
    """Every form of `value` that redaction looks for, each at least MIN_REDACTED_LENGTH long."""
    import html  # here: made once per secret, and html.entities comes with it (start-up counts)

    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    escaped |= {form.replace("/", "\\/") for form in escaped}  # some encoders escape the slash too
    forms = {value, *escaped}
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value, safe="")):
        forms.update((encoded, _HEX_ESCAPE.sub(lambda match: match.group().lower(), encoded)))
    forms.update((html.escape(value), html.escape(value, quote=False)))
    for text in {value, *escaped}:
        forms.update(_base64_cores(text.encode("utf-8", "surrogatepass")))
    return {form for form in forms if len(form) >= MIN_REDACTED_LENGTH}


class Redactor:
    """Finds every form of a set of secrets in a text; overlapping finds are redacted as one."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: list[str] = []
        self._by_prefix: dict[str, list[str]] = {}
        self.longest = 0

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            if value in self._values or len(value) < MIN_REDACTED_LENGTH:
                continue
            self._values.add(value)
            for form in secret_forms(value):
                self._forms.append(form)
                self._by_prefix.setdefault(form[:_PREFIX], []).append(form)
                self.longest = max(self.longest, len(form))

    def __len__(self) -> int:
        return len(self._values)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        if len(self._forms) <= _FIND_EACH_UP_TO:
            for form in self._forms:
                start = text.find(form)
                while start >= 0:
                    spans.append((start, start + len(form)))
                    start = text.find(form, start + 1)
        else:
            lookup = self._by_prefix.get
            for start in range(len(text) - _PREFIX + 1):
                for form in lookup(text[start : start + _PREFIX], ()):
                    if text.startswith(form, start):
                        spans.append((start, start + len(form)))
        return spans

    def redact_all(self, text: str) -> str:
        spans = self._spans(text) if self._forms else []
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, stop in sorted(spans):
            if merged and start <= merged[-1][1]:  # overlapping or adjacent finds: one redaction
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        parts: list[str] = []
        position = 0
        for start, stop in merged:
            parts += (text[position:start], REDACTED)
            position = stop
        parts.append(text[position:])
        return "".join(parts)

    def redact(self, text: str, limit: int | None = None) -> str:
        """`text` without any form of the secrets; with `limit`, at most its first `limit` characters.

        A long text is redacted a window at a time, and cut only where no secret can straddle the cut: a
        secret cut in half would not be recognised, and its first half would be shown.
        """
        if limit is None or len(text) <= limit:
            return self.redact_all(text)[:limit]
        window = limit + 2 * self.longest
        while True:
            redacted = self.redact_all(text[:window])
            if window >= len(text) or len(redacted) >= limit + self.longest:
                return redacted[:limit]
            window *= 2


_redactor = Redactor()


def redact(text: str, limit: int | None = None) -> str:
    """`text` (from outside: an API answer, a log record) with every registered secret replaced by `***`, in
    any of the forms of `secret_forms`; with `limit`, cut to at most that many characters after redaction."""
    redactor = _redactor
    if len(redactor) != len(_registry):  # the registry only grows (until cleared)
        with _registry_lock:
            redactor.add(list(_registry))
    return redactor.redact(text, limit)


def clear_registered() -> None:
    """Forget every registered secret (for tests that run many commands in one process)."""
    global _redactor
    with _registry_lock:
        _registry.clear()
        _redactor = Redactor()


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


# -- values not known here: a plan made while some variables are unset or some secrets files not decrypted ------
#
# A value waits for "sources": environment variables (`PROXY_PASSWORD`) and secrets files, named by their alias
# as `vault.*` (every value of the file `secrets: {vault: ...}` names). The two never look alike: an alias
# has no capital letter and a variable name has no `.`.

_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FILE_NAME = r"[a-z][a-z0-9_]*\.\*"
_UNKNOWN = re.compile(
    rf"\(not known here: (?:(?P<env>{_ENV_NAME}(?:, {_ENV_NAME})*) unset(?:; |\)\Z))?"
    rf"(?:(?P<files>{_FILE_NAME}(?:, {_FILE_NAME})*) not decrypted\)\Z)?"
)
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
    names = list(names)
    variables = [name for name in names if not is_file_source(name)]
    files = [name for name in names if is_file_source(name)]
    parts = []
    if variables:
        parts.append(f"{', '.join(variables)} unset")
    if files:
        parts.append(f"{', '.join(files)} not decrypted")
    return f"(not known here: {'; '.join(parts)})"


def is_unknown(value: object) -> bool:
    """Whether `value` is an `unknown_marker` (a planned value that only apply, with the secrets, can know)."""
    if not isinstance(value, str) or not value.startswith("(not known here: "):
        return False
    match = _UNKNOWN.fullmatch(value)
    return match is not None and (match.group("env") is not None or match.group("files") is not None)


def unknown_names(value: object) -> tuple[str, ...]:
    """The sources (variables, `ALIAS.*`) an `unknown_marker` names (none for any other value)."""
    if not is_unknown(value):
        return ()
    assert isinstance(value, str)
    match = _UNKNOWN.fullmatch(value)
    assert match is not None
    names: list[str] = []
    for group in ("env", "files"):
        if match.group(group):
            names += match.group(group).split(", ")
    return tuple(names)


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
