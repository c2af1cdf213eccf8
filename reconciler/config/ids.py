"""Account ids that look alike: Unicode normalisation, invisible code points and mixed scripts.

Two ids a reviewer cannot tell apart must not both reach the API. The schema's pattern refuses the invisible
code points (controls, bidi controls, zero-width and every other default-ignorable one); what a pattern cannot
say is here: an id is compared in Unicode NFC (two ids equal after NFC are one id, and an id not written in NFC
is an error that shows its NFC form), and an id that mixes Latin, Cyrillic or Greek letters is a warning.

Every check here is for non-ASCII ids only: an ASCII id is already in NFC, holds no default-ignorable code point
and is all one script, and `str.isascii` is the only cost it pays (a configuration may hold 100,000 ids).
"""

from __future__ import annotations

#: Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 14.0, as carried by
#: Python 3.11's unicodedata and by Perl's `\p{Default_Ignorable_Code_Point}`), as inclusive ranges. These
#: code points show as nothing, so an id holding one looks like the id without it. The schema's account id
#: pattern (schemas/accounts.schema.json) refuses each of them; tests/integration/test_config_unicode.py checks
#: that it does.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER, HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ, AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, MONGOLIAN VOWEL SEPARATOR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE .. RIGHT-TO-LEFT MARK
    (0x202A, 0x202E),  # LEFT-TO-RIGHT EMBEDDING .. RIGHT-TO-LEFT OVERRIDE
    (0x2060, 0x206F),  # WORD JOINER .. NOMINAL DIGIT SHAPES (isolates, invisible operators, reserved)
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1 .. -16
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT LETTER OVERLAP .. UP STEP
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM .. END PHRASE
    (0xE0000, 0xE0FFF),  # tags (U+E0000-U+E007F), VARIATION SELECTOR-17 .. -256 (U+E0100-U+E01EF), reserved
)

#: The scripts whose letters look alike (`a` and Cyrillic `а`, `o` and Greek `ο`), as the first word of a
#: letter's Unicode name says it (`CYRILLIC SMALL LETTER A`).
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


_ESCAPES = {"'": "\\'", "\\": "\\\\"}


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_default_ignorable(char: str) -> bool:
    code = ord(char)
    return any(first <= code <= last for first, last in DEFAULT_IGNORABLE)


def escaped(text: str, limit: int = 80) -> str:
    """`text` quoted, with every character outside printable ASCII escaped as in a Python string (`\\xe9`,
    `\\u0301`, `\\U000e0001`), so that two ids that look the same read differently: `'cafe\\u0301'` beside
    `'caf\\xe9'`. Cut at `limit`."""
    shown = "".join(_ESCAPES.get(char, char) if " " <= char <= "~" else _escape(char) for char in text)
    return f"'{shown}'" if len(shown) <= limit else f"'{shown[:limit]}…'"


def nfc(account_id: str) -> str:
    """The id as it is compared and stored: Unicode NFC (an ASCII id is its own)."""
    if account_id.isascii():
        return account_id
    import unicodedata  # only for non-ASCII ids: start-up counts (BENCHMARKS.md)

    return unicodedata.normalize("NFC", account_id)


def not_nfc_problem(account_id: str, normal: str) -> str:
    """The error for an id that is not in NFC (`normal` is its NFC form)."""
    return (
        f"account id {escaped(account_id)} is not in Unicode NFC; write it as {escaped(normal)} "
        f"(the same text in NFC: {normal[:80]!r})"
    )


def mixed_scripts(account_id: str) -> tuple[str, ...]:
    """The look-alike scripts (Latin, Cyrillic, Greek) whose letters `account_id` mixes; () for one or none."""
    if account_id.isascii():
        return ()
    import unicodedata

    found: list[str] = []
    for char in account_id:
        if char.isascii():
            script = "LATIN" if char.isalpha() else None
        elif char.isalpha():
            words = unicodedata.name(char, "").split()
            script = next((word for word in words if word in _CONFUSABLE_SCRIPTS), None)
        else:
            script = None  # digits, punctuation, combining marks: shared by every script
        if script is not None and script not in found:
            found.append(script)
    return tuple(word.capitalize() for word in found) if len(found) > 1 else ()


def mixed_scripts_warning(account_id: str, scripts: tuple[str, ...]) -> str:
    return (
        f"account id {escaped(account_id)} mixes {' and '.join(scripts)} letters, which look alike: "
        "it may be mistaken for another id"
    )
