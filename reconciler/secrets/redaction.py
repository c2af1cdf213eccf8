"""Redaction of outside text: the run's `Redactor` and the index it searches with.

An API answer may echo the request (its body, its X-API-KEY header) in `detail`; a library's log record may
quote a URL. `Redactor.redact` replaces every secret the run knows in such text, in each form it could have
been echoed in: raw, JSON-escaped, URL-encoded, HTML-escaped, hex and base64 (at any alignment inside a longer
base64 text), letters compared without regard to case. Of a secret of PIECE characters or more, any run of
PIECE consecutive characters of one of those forms is redacted too (a key echoed cut short, a password's first
characters); a shorter secret is looked for whole.

Each command invocation makes one `Redactor` and hands it to whatever meets outside text or secrets: the
configuration loader (it registers every resolved secret), the API client, the state backend, the log filter.
Nothing here is kept between runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Literal
from urllib.parse import quote, quote_plus

#: Shorter values would redact ordinary words from log lines; such a secret is weak anyway.
MIN_REDACTED_LENGTH = 4


def redaction_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every value long enough to redact, longest first (a secret holding another is replaced
    whole); None when there is none."""
    ordered = sorted({value for value in values if len(value) >= MIN_REDACTED_LENGTH}, key=len, reverse=True)
    return re.compile("|".join(re.escape(value) for value in ordered)) if ordered else None


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


class SecretIndex:
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


class Redactor:
    """The secrets one run knows (the API key, every password and every resolved `${VAR}` or secrets file's
    value), and the redaction of outside text (an API answer, a log record) of them before it is stored or
    shown.

    `register` only notes a value (a set insertion under a lock: it is called for every secret of a large
    configuration, and from the recording thread's log records); the index is brought up to date when text is
    next redacted.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._index = SecretIndex()
        for value in values:
            self.register(value)

    def register(self, value: str) -> None:
        """Note a plaintext secret (the API key, a password) so that any outside text or log line holding it is
        redacted."""
        if len(value) >= MIN_REDACTED_LENGTH and value not in self._known:  # the same secret in many accounts
            with self._lock:
                self._known.add(value)

    def known(self) -> AbstractSet[str]:
        """The registered values (read only: the set itself, so a log line costs no copy)."""
        return self._known

    def _current(self) -> SecretIndex:
        """The index of every registered secret (brought up to date: the set only grows)."""
        index = self._index
        if len(index) != len(self._known):
            with self._lock:
                index.add(list(self._known))
        return index

    def redact(self, text: str, limit: int | None = None) -> str:
        """`text` (from outside: an API answer, a log record) with every registered secret replaced by `***`, in
        any of the forms of `secret_forms`, and every piece of PIECE characters or more of a long one; with
        `limit`, cut to at most that many characters after redaction."""
        return self._current().redact(text, limit)

    def redact_together(self, texts: Sequence[str], limits: Sequence[int | None]) -> list[str]:
        """`redact` of each of `texts` (each cut to its limit), and of any secret split between two of them, such
        as an answer's `type` and `detail`: a find across the end of one and the start of another is redacted in
        both."""
        return self._current().redact_together(texts, limits)
