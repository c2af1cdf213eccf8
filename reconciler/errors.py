"""The exception hierarchy. Each exception carries one user-facing message; the CLI prints it and exits 1."""

from __future__ import annotations

from reconciler.plain import Compared


class ReconcilerError(Exception):
    """Base of every error the CLI turns into one line and exit code 1."""


#: A message about hostile input (a 50 MB key, say) stays one readable line.
MESSAGE_LIMIT = 400

_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def one_line(text: str) -> str:
    """`text` with every character that is not printable escaped, so it shows as exactly one line as written.

    Control characters (C0, DEL, C1), bidi controls, zero-width characters, line and paragraph separators and
    other invisible ones become `\\n`, `\\t`, `\\r`, `\\x1b`, `\\u202e`, as in a Python repr: a key holding a
    newline cannot split a message, and an override cannot make it read differently. Backslashes are kept as
    they are, so the function is idempotent.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def describe(value: object, null: str = "nothing") -> str:
    """What kind of value this is, in words ("a string", "a mapping"), for a message that must not quote it;
    `null` names None (YAML's "nothing", JSON's "null")."""
    if value is None:
        return null
    for kind, words in _KINDS:  # bool before int: a boolean is an int to isinstance
        if isinstance(value, kind):
            return words
    return type(value).__name__


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (dict, "a mapping"),
    (list, "a list"),
)


def brief(value: object, limit: int = 60) -> str:
    """A value's repr cut to `limit` characters, so a huge value never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class Problem(Compared):
    """One positioned finding in a configuration file; never changed once made.

    `path` is the dotted path of the offending value (`accounts.acc_1.proxy.port`), "" when the problem is
    about the file as a whole. Every text field is made one line on construction (`one_line`), whoever builds
    the problem.
    """

    __slots__ = ("file", "line", "col", "message", "severity", "path")

    def __init__(
        self, file: str, line: int, col: int, message: str, severity: str = "error", path: str = ""
    ) -> None:
        self.file = one_line(file)
        self.line = line
        self.col = col
        self.message = one_line(message)
        self.severity = severity  # "error" or "warning"
        self.path = one_line(path)

    def __hash__(self) -> int:  # type: ignore[override]  # never changed once made: hashable, as before
        return hash((self.file, self.line, self.col, self.message, self.severity, self.path))

    def with_message(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.col, message, self.severity, self.path)

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        message = self.message if len(self.message) <= MESSAGE_LIMIT else self.message[:MESSAGE_LIMIT] + "…"
        return f"{self.file}:{self.line}:{self.col}: {prefix}{message}"


class ConfigError(ReconcilerError):
    """The configuration is invalid; `problems` lists every error found in one pass.

    `note`, when set, is one line to show after the problems: that the pass stopped early (a file could not be
    parsed), so fixing these problems may reveal others.
    """

    def __init__(
        self, problems: list[Problem], warnings: list[Problem] | None = None, note: str | None = None
    ) -> None:
        self.problems = problems
        self.warnings = warnings or []
        self.note = note
        super().__init__("\n".join([str(p) for p in problems] + ([note] if note else [])))


class StateError(ReconcilerError):
    """The recorded state cannot be read, written or trusted."""


#: What to do about a held lock, the same words whichever backend holds it.
LOCK_ADVICE = (
    "wait for it with --lock-timeout SECONDS, or ask whoever runs that command; the lock ends with its process, "
    "so there is nothing to remove"
)
#: The same, once --lock-timeout ran out.
LOCK_ADVICE_AFTER_WAITING = (
    "wait longer with a larger --lock-timeout, or ask whoever runs that command; the lock ends with its process, "
    "so there is nothing to remove"
)


class LockHeld(StateError):
    """Another process holds the state lock."""

    @classmethod
    def by(cls, state: str, holder: str, waited: float = 0.0) -> LockHeld:
        """The refusal of every backend: which state, who holds it and since when, and what to do; after
        `waited` seconds of `--lock-timeout`, how long it waited."""
        if waited > 0:
            return cls(
                f"the state {state} is still locked by {holder} after waiting {waited:g} s (--lock-timeout); "
                f"{LOCK_ADVICE_AFTER_WAITING}"
            )
        return cls(f"the state {state} is locked by {holder}; {LOCK_ADVICE}")


class StalePlan(ReconcilerError):
    """A saved plan no longer matches the state, the configuration or the secrets."""


class WrongState(ReconcilerError):
    """A saved plan was made against another state than the one apply would use (or names none it can use)."""


class UnsafePlan(ReconcilerError):
    """The plan changes more of the recorded accounts than the safety bounds allow."""


class UsageError(ReconcilerError):
    """A flag combination or environment that cannot work (e.g. no API key)."""
