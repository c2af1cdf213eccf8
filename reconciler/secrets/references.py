"""The `${...}` grammar of configuration values, with its one parser and one wording for each mistake.

`${NAME}` reads an environment variable; `${ALIAS.KEY...}` a value of the secrets file `secrets: {ALIAS: ...}`
names (`$account` among the keys stands for the account's id); `$${` is a literal `${`, and a whole value
`$$NAME` the literal `$NAME` (a whole value `$NAME` is refused as a shell-style slip: `shell_variable`). A value whose
reference cannot be known here (a variable unset or empty, a file not decrypted) resolves to `Unresolved`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from reconciler.secrets.unknown import Unresolved, file_source

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: A secrets file's alias: lower-case letters, digits and '_'.
ALIAS = re.compile(r"[a-z][a-z0-9_]*\Z")
#: The path segment that stands for the id of the account a value ends up in.
ACCOUNT_SEGMENT = "$account"
#: One key of a dotted path: anything but a dot, whitespace, `$`, `{` and `}` (or exactly `$account`).
_SEGMENT = re.compile(r"[^.\s${}]+\Z")
#: A whole value `$NAME`, shell-style: the name in group 1.
_SHELL_WHOLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\Z")
#: `$NAME` anywhere, not after a `$` (`$$NAME` is no variable).
_SHELL_ANYWHERE = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
#: A whole value `$$NAME`: the literal text `$NAME`.
_SHELL_LITERAL = re.compile(r"\$\$[A-Za-z_][A-Za-z0-9_]*\Z")
_UNTERMINATED = "unterminated '${' (write '$${' for a literal '${')"


class ReferenceError_(ValueError):
    """A `${...}` reference that is malformed, names an alias not declared or a key a file lacks."""


class FileReference:
    """`${ALIAS.KEY...}`: the alias and the keys of the path (`$account` among them, maybe)."""

    __slots__ = ("alias", "keys")

    def __init__(self, alias: str, keys: tuple[str, ...]) -> None:
        self.alias = alias
        self.keys = keys

    @property
    def per_account(self) -> bool:
        return ACCOUNT_SEGMENT in self.keys

    def path(self, account_id: str | None) -> tuple[str, ...]:
        return tuple(
            account_id if key == ACCOUNT_SEGMENT and account_id is not None else key for key in self.keys
        )


#: A reference: an environment variable's name, or a secrets file's value.
Reference = str | FileReference


def parse_reference(name: str, position: int) -> Reference:
    """The inside of one `${...}`: an environment variable's name, or a FileReference. ReferenceError_ for a
    malformed one (the text is not quoted: it may be a password)."""
    if _NAME.match(name):
        return name
    alias, dot, rest = name.partition(".")
    keys = tuple(rest.split(".")) if dot else ()
    if (
        not dot
        or not ALIAS.match(alias)
        or not all(_SEGMENT.match(key) or key == ACCOUNT_SEGMENT for key in keys)
    ):
        if not dot:
            raise ReferenceError_(
                f"malformed reference at character {position}: '${{...}}' takes a variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        raise ReferenceError_(
            f"malformed reference at character {position}: '${{ALIAS.KEY...}}' takes a secrets file's alias "
            "(lower-case letters, digits and '_') and a dotted path of keys"
        )
    return FileReference(alias, keys)


def shell_variable(text: str, anywhere: bool = False) -> str | None:
    """The NAME of a shell-style `$NAME` written for `${NAME}`: `text` is exactly `$NAME` (or, with `anywhere`,
    holds one not after a `$`); None otherwise. A `$` elsewhere in a value (`pa$word`) is literal text, as it
    always was: only a whole value can be told apart from a password."""
    if "$" not in text:  # most values: no regex run (this is called for every proxy string)
        return None
    match = (_SHELL_ANYWHERE.search if anywhere else _SHELL_WHOLE.match)(text)
    return match.group(1) if match else None


def parts(text: str) -> list[tuple[str, Reference | None]]:
    """`text` as (literal text, the reference after it) pairs, the last with None; `$${` is part of the literal
    text as `${`, and a whole `$$NAME` is the literal `$NAME`. ReferenceError_ for the first malformed reference."""
    if text.startswith("$$") and _SHELL_LITERAL.match(text):
        return [(text[1:], None)]
    found: list[tuple[str, Reference | None]] = []
    position = 0
    literal: list[str] = []
    for match in _REFERENCE.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        if match.group(0) == "$${":
            literal.append("${")
            continue
        inside = match.group(1)
        if inside is None:
            raise ReferenceError_(_UNTERMINATED)
        found.append(("".join(literal), parse_reference(inside, match.start() + 1)))
        literal = []
    literal.append(text[position:])
    found.append(("".join(literal), None))
    return found


def references(text: str) -> list[Reference]:
    """Every well-formed reference of `text`, in order (malformed ones are left to `Resolver.resolve`)."""
    found: list[Reference] = []
    for match in _REFERENCE.finditer(text):
        if match.group(1) is None:
            continue
        try:
            found.append(parse_reference(match.group(1), match.start() + 1))
        except ReferenceError_:
            continue
    return found


def referenced_names(text: str) -> list[str]:
    """The NAMEs of the well-formed `${NAME}` references in `text` (`$${` is a literal, not a reference)."""
    return [
        match.group(1)
        for match in _REFERENCE.finditer(text)
        if match.group(1) is not None and _NAME.match(match.group(1))
    ]


def per_account(text: str) -> bool:
    """Whether `text` holds a reference with `$account` (resolved for each account, not once)."""
    return ACCOUNT_SEGMENT in text and any(
        isinstance(reference, FileReference) and reference.per_account for reference in references(text)
    )


class FileLookup(Protocol):
    """The secrets files one configuration file declares (config/secretfiles.py `SecretFiles`)."""

    def source_of(self, file: str, alias: str) -> object | None: ...

    def lookup(self, file: str, reference: FileReference, account_id: str | None) -> str | None: ...


class Resolver:
    """Resolves the `${...}` of one configuration file's strings: environment and secrets files."""

    def __init__(self, file: str, environ: Mapping[str, str], files: FileLookup | None) -> None:
        self.file = file
        self.environ = environ
        self.files = files
        #: Each text's parts, parsed once: a large configuration writes the same `${VAR}` in every account.
        self._parsed: dict[str, list[tuple[str, Reference | None]]] = {}

    def resolve(self, text: str, account_id: str | None = None) -> tuple[str | Unresolved, bool]:
        """`text` with every reference replaced (and `$${` made `${`), and whether any reference was used; an
        `Unresolved` naming what is missing (unset variables, `ALIAS.*` of files not decrypted) instead when
        something is. ReferenceError_ for a malformed reference, an alias not declared, or a key a file lacks.

        `account_id`: the account the value ends up in, for `$account` (None: the text is in `defaults`, and a
        reference with `$account` is resolved per account later: see `per_account`)."""
        if "$" not in text:
            return text, False
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = self._parsed[text] = parts(text)
        resolved: list[str] = []
        missing: set[str] = set()
        used = False
        for literal, reference in parsed:
            resolved.append(literal)
            if reference is None:
                continue
            used = True
            if isinstance(reference, str):
                value = self.environ.get(reference)
                if value:
                    resolved.append(value)
                else:
                    missing.add(reference)
                continue
            if self.files is None:
                raise ReferenceError_(
                    f"'{reference.alias}' is not an alias of a secrets file: declare it under 'secrets:' in "
                    "this file"
                )
            if reference.per_account and account_id is None:
                # Checked now that the alias exists; the key is looked up for each account.
                if self.files.source_of(self.file, reference.alias) is None:
                    self.files.lookup(self.file, reference, None)  # raises: the alias is not declared
                missing.add(file_source(reference.alias))
                continue
            found = self.files.lookup(self.file, reference, account_id)
            if found is None:
                missing.add(file_source(reference.alias))
            else:
                resolved.append(found)
        if missing:
            return Unresolved(missing), used
        return "".join(resolved), used


def resolve_or_mark(text: str, environ: Mapping[str, str]) -> tuple[str | Unresolved, bool]:
    """`text` with its `${NAME}` resolved from `environ` (no secrets file), or `Unresolved` naming every unset
    variable; whether any reference was used. ReferenceError_ for a malformed reference, set variables or not."""
    return Resolver("", environ, None).resolve(text)
