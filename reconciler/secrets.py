"""The one place a secret's plaintext is handled: environment references, fingerprints and masking.

A `Secret` holds plaintext in memory between resolving the configuration and building a request body; its
`repr` and `str` never show it. Everything persisted or printed sees `fingerprint()` or `SENSITIVE`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal
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
# in: raw, JSON-escaped, URL-encoded, HTML-escaped, hex and base64 (at any alignment inside a longer base64
# text), letters compared without regard to case. Of a secret of PIECE characters or more, any run of PIECE
# consecutive characters of one of those forms is redacted too (a key echoed cut short, a password's first
# characters); a shorter secret is looked for whole.

REDACTED = "***"
#: A secret this long or longer is redacted in pieces: any run of this many consecutive characters of it.
PIECE = 8
_PREFIX = MIN_REDACTED_LENGTH
_URLSAFE = str.maketrans("+/", "-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")
#: Text that may encode PIECE bytes of a secret: 2 * PIECE hex digits, or 11 base64 characters (8 * 8 / 6).
_HEX_RUN = re.compile(rf"(?<![0-9A-Fa-f])[0-9A-Fa-f]{{{2 * PIECE},}}")
_BASE64_RUN = re.compile(rf"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{{{-(-8 * PIECE // 6)},}}")
#: How far past a cut a secret's part can reach and still have gone unrecognised before it (hex and base64
#: pieces at their widest), for the short secrets' whole forms see Redactor.longest.
_PIECE_REACH = 2 * PIECE + 4


def fold(text: str) -> str:
    """`text` with its letters in lower case, one character for one (so that offsets into it are offsets into
    `text`): how redaction compares a text with a secret."""
    folded = text.lower()
    if len(folded) == len(text):  # no character became two ('İ'): the common case, at C speed
        return folded
    return "".join(low if len(low := character.lower()) == 1 else character for character in text)


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


def _json_escaped(value: str) -> set[str]:
    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return escaped | {form.replace("/", "\\/") for form in escaped}  # some encoders escape the slash too


def _text_forms(value: str) -> set[str]:
    """`value` as text could hold it: raw, JSON-escaped, URL-encoded, HTML-escaped, and (when not ASCII) its
    UTF-8 bytes read one character a byte, as they come out of hex or base64."""
    import html  # here: made once per secret, and html.entities comes with it (start-up counts)

    escaped = _json_escaped(value)
    forms = {value, *escaped}
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value, safe="")):
        forms.update((encoded, _HEX_ESCAPE.sub(lambda match: match.group().lower(), encoded)))
    forms.update((html.escape(value), html.escape(value, quote=False)))
    for text in {value, *escaped}:
        data = text.encode("utf-8", "surrogatepass")
        if not data.isascii():
            forms.add(data.decode("latin-1"))
    return forms


def secret_forms(value: str) -> set[str]:
    """Every whole form of `value` that redaction recognises, each at least MIN_REDACTED_LENGTH long: the text
    forms, and the hex and the base64 (at each alignment) of it raw or JSON-escaped."""
    forms = _text_forms(value)
    for text in {value, *_json_escaped(value)}:
        data = text.encode("utf-8", "surrogatepass")
        forms.add(data.hex())
        forms.update(_base64_cores(data))
    return {form for form in forms if len(form) >= MIN_REDACTED_LENGTH}


#: Each byte as `fold` would write the character of that code point (Latin-1 stays Latin-1).
_FOLD_BYTES = bytes(ord(chr(code).lower()) for code in range(256))
#: The machine word of `width` bytes, for memoryview.cast.
_WORD: dict[int, Literal["I", "Q"]] = {4: "I", 8: "Q"}


def _folded_bytes(text: str) -> bytes:
    """`fold(text)` one byte a character, as redaction indexes and scans it: Latin-1, and a character past
    U+00FF as one of the 32 C1 bytes (its code point modulo 32). Such a character can be taken for another
    one: a redaction can only grow by it, never miss a secret."""
    folded = fold(text)
    try:
        return folded.encode("latin-1")
    except UnicodeEncodeError:
        return "".join(c if c < "\u0100" else chr(0x80 + ord(c) % 32) for c in folded).encode("latin-1")


def _words(data: bytes, width: int, offset: int) -> memoryview:
    """The runs of `width` bytes of `data` that start at `offset`, `offset + width`, ... as machine words (one
    int each, made at C speed)."""
    count = (len(data) - offset) // width
    return memoryview(data)[offset : offset + count * width].cast(_WORD[width])


def _every_word(data: bytes, width: int) -> Iterator[int]:
    """Every run of `width` bytes of `data`, as a machine word."""
    for offset in range(min(width, len(data) - width + 1)):
        yield from _words(data, width, offset)


def _starts(data: bytes, width: int, wanted: AbstractSet[int]) -> list[int]:
    """Where in `data` a run of `width` bytes that is in `wanted` starts (in no particular order)."""
    spare = len(data) - width + 1
    if spare < 2 * width:  # a few runs: one lookup each costs less than a pass per alignment
        return [
            start
            for start in range(spare)
            if int.from_bytes(data[start : start + width], sys.byteorder) in wanted
        ]
    found: list[int] = []
    contains = wanted.__contains__
    for offset in range(width):
        words = _words(data, width, offset)
        if any(map(contains, words)):  # the common case: no piece of a secret, and no list made
            found += [offset + width * index for index, word in enumerate(words) if word in wanted]
    return found


class Redactor:
    """Finds every form of a set of secrets in a text, and every piece of the long ones; overlapping finds are
    redacted as one.

    A secret of PIECE characters or more is indexed by each run of PIECE characters of each of its text forms,
    case-folded, one byte a character (`_folded_bytes`), as one machine word: a set lookup at each position of
    a text finds any such run, and runs found next to each other make one redaction as long as the part of the
    secret that was echoed. Hex and base64 runs of the text are decoded (hex at both alignments, base64 at all
    four) and looked up the same way. Memory: one entry per character of each distinct form; time: linear in
    the text, whatever the number of secrets. A shorter secret is looked for whole, in every form of
    `secret_forms`, indexed by its first MIN_REDACTED_LENGTH characters.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pieces: set[int] = set()
        self._forms: dict[bytes, list[bytes]] = {}  # the short secrets' forms by their first _PREFIX bytes
        self._prefixes: set[int] = set()  # the same first bytes, as machine words
        #: The longest whole form of a short secret (a cut can hide at most that much of one).
        self.longest = 0

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            if value in self._values or len(value) < MIN_REDACTED_LENGTH:
                continue
            self._values.add(value)
            if len(value) >= PIECE:
                for form in _text_forms(value):
                    self._pieces.update(_every_word(_folded_bytes(form), PIECE))
                continue
            for data in {_folded_bytes(form) for form in secret_forms(value)}:
                self._forms.setdefault(data[:_PREFIX], []).append(data)
                self._prefixes.update(_words(data, _PREFIX, 0)[:1])
                self.longest = max(self.longest, len(data))

    def __len__(self) -> int:
        return len(self._values)

    @property
    def reach(self) -> int:
        """How much of a text before a cut may hold a part of a secret recognised only with what follows."""
        return max(self.longest, _PIECE_REACH)

    def _piece_spans(self, data: bytes) -> list[tuple[int, int]]:
        return [(start, start + PIECE) for start in _starts(data, PIECE, self._pieces)]

    def _encoded_spans(self, text: str) -> list[tuple[int, int]]:
        """The pieces found in the hex and base64 runs of `text`, as spans of `text`."""
        spans: list[tuple[int, int]] = []
        for match in _BASE64_RUN.finditer(text):
            if (
                match.end() - match.start() >= 2 * PIECE
            ):  # hex digits are base64 characters: a hex run is in one
                for hex_match in _HEX_RUN.finditer(match.group()):
                    run = hex_match.group()
                    for offset in (0, 1):
                        start = match.start() + hex_match.start() + offset
                        decoded = bytes.fromhex(run[offset : offset + (len(run) - offset) // 2 * 2])
                        found = self._piece_spans(decoded.translate(_FOLD_BYTES))
                        spans += [(start + 2 * first, start + 2 * stop) for first, stop in found]
            run = match.group().translate(_FROM_URLSAFE)
            for offset in range(4):
                chunk = run[offset:]
                if len(chunk) * 6 // 8 < PIECE:
                    break
                if len(chunk) % 4 == 1:  # a lone last character holds no whole byte
                    chunk = chunk[:-1]
                start = match.start() + offset
                decoded = binascii.a2b_base64(chunk + "=" * (-len(chunk) % 4))  # the last bytes too
                found = self._piece_spans(decoded.translate(_FOLD_BYTES))
                # byte k is bits 8k to 8k + 7: the characters 8k // 6 to (8k + 7) // 6
                spans += [(start + 8 * first // 6, start + (8 * stop - 1) // 6 + 1) for first, stop in found]
        return spans

    def _spans(self, text: str) -> list[tuple[int, int]]:
        data = _folded_bytes(text)
        spans: list[tuple[int, int]] = []
        if self._pieces and len(data) >= PIECE:
            spans += self._piece_spans(data)
            spans += self._encoded_spans(text)
        if self._prefixes:
            for start in _starts(data, _PREFIX, self._prefixes):
                for form in self._forms[data[start : start + _PREFIX]]:
                    if data.startswith(form, start):
                        spans.append((start, start + len(form)))
        return spans

    def redact_all(self, text: str, marked: Sequence[tuple[int, int]] = ()) -> str:
        """`text` without any form of the secrets, nor the `marked` spans."""
        spans = self._spans(text) if self._pieces or self._prefixes else []
        spans += [(start, min(stop, len(text))) for start, stop in marked if start < len(text)]
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

    def redact(self, text: str, limit: int | None = None, marked: Sequence[tuple[int, int]] = ()) -> str:
        """`text` without any form of the secrets (nor the `marked` spans); with `limit`, at most its first
        `limit` characters.

        A long text is redacted a window at a time, and cut only where no secret can straddle the cut: a
        secret cut in half would not be recognised, and its first half would be shown.
        """
        if limit is None or len(text) <= limit:
            return self.redact_all(text, marked)[:limit]
        reach = self.reach
        window = limit + 2 * reach
        while True:
            redacted = self.redact_all(text[:window], marked)
            if window >= len(text) or len(redacted) >= limit + reach:
                return redacted[:limit]
            window *= 2

    def _meeting(self, before: str, after: str) -> tuple[int, int]:
        """How many characters at the end of `before` and at the start of `after` a find across the place they
        meet takes (0, 0 when none does)."""
        end = before[-self.reach :]
        tail = head = 0
        for start, stop in self._spans(end + after[: self.reach]):
            if start < len(end) < stop:
                tail, head = max(tail, len(end) - start), max(head, stop - len(end))
        return tail, head

    def redact_together(self, texts: Sequence[str], limits: Sequence[int | None]) -> list[str]:
        """Each of `texts` redacted and cut to its limit, and also of a secret split between two of them: a find
        that spans the end of one and the start of another (in either order) is redacted on both sides.

        The ends are looked at as they came (so that a part redacted alone still tells where its secret goes
        on), then as they are shown (a text cut at its limit ends where it is cut).
        """
        marked: list[list[tuple[int, int]]] = [[] for _ in texts]
        for first, before in enumerate(texts):
            limit = limits[first]
            shown_end = before if limit is None else before[:limit]
            for second, after in enumerate(texts):
                if first != second and shown_end and after:
                    tail, head = self._meeting(shown_end, after)
                    if tail:
                        marked[first].append((len(shown_end) - tail, len(shown_end)))
                        marked[second].append((0, head))
        shown = [
            self.redact(text, limit, spans) for text, limit, spans in zip(texts, limits, marked, strict=True)
        ]
        tails = [0] * len(shown)  # characters to redact at the end of each, as shown
        heads = [0] * len(shown)  # and at its start
        for first, before in enumerate(shown):
            for second, after in enumerate(shown):
                if first != second and before and after:
                    tail, head = self._meeting(before, after)
                    tails[first], heads[second] = max(tails[first], tail), max(heads[second], head)
        result: list[str] = []
        for text, tail, head, limit in zip(shown, tails, heads, limits, strict=True):
            if tail or head:
                if head + tail >= len(text):
                    text = REDACTED
                else:
                    marks = len(REDACTED) * ((head > 0) + (tail > 0))
                    middle = text[head : len(text) - tail]
                    if limit is not None:
                        middle = middle[: max(0, limit - marks)]
                    text = (REDACTED if head else "") + middle + (REDACTED if tail else "")
            result.append(text)
        return result


_redactor = Redactor()


def _current() -> Redactor:
    """The redactor of every registered secret (brought up to date: the registry only grows until cleared)."""
    redactor = _redactor
    if len(redactor) != len(_registry):
        with _registry_lock:
            redactor.add(list(_registry))
    return redactor


def redact(text: str, limit: int | None = None) -> str:
    """`text` (from outside: an API answer, a log record) with every registered secret replaced by `***`, in
    any of the forms of `secret_forms`, and every piece of PIECE characters or more of a long one; with `limit`,
    cut to at most that many characters after redaction."""
    return _current().redact(text, limit)


def redact_together(texts: Sequence[str], limits: Sequence[int | None]) -> list[str]:
    """`redact` of each of `texts` (each cut to its limit), and of any secret split between two of them, such as
    an answer's `type` and `detail`: a find across the end of one and the start of another is redacted in both."""
    return _current().redact_together(texts, limits)


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
