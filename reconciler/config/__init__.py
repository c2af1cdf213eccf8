"""Loading the desired-state file: YAML with positions, the schema, the semantic rules, environment references."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.config.accounts import AccountBuilder
from reconciler.config.fastcheck import ACCOUNT_ID, account_certainly_valid, document_certainly_valid
from reconciler.config.schema import schema_problems
from reconciler.config.yamlpos import Loaded, YMap, decode, load
from reconciler.errors import ConfigError, Problem, ReconcilerError, brief, describe, one_line
from reconciler.model import AccountSpec, Desired
from reconciler.secrets import SENSITIVE, redaction_pattern, referenced_names

__all__ = ["load_config", "config_files", "schema_subject", "STDIN", "STDIN_NAME"]

#: The CONFIG that means standard input, and the file name messages then use.
STDIN = "-"
STDIN_NAME = "<stdin>"

#: Said once when a file could not be parsed: the checks that need the parsed file did not run.
STOPPED_NOTE = "fix this error first: the file could not be parsed, so the other checks did not run"
STOPPED_NOTE_PLURAL = "fix these errors first: the files could not be parsed, so the other checks did not run"


def config_files(config: str) -> list[Path]:
    """The files a CONFIG names: the file itself, or a directory's `*.yaml`/`*.yml` sorted by name."""
    path = Path(config)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir())
        # Each entry is read as a regular file (below): a FIFO here would block the read for ever.
        if not files:
            raise ReconcilerError(f"{config}: the directory holds no *.yaml or *.yml file")
        return files
    if not path.exists():
        raise ReconcilerError(f"{config}: no such file or directory")
    return [path]


def _sources(config: str, regular_only: bool = False) -> list[tuple[str, str, Callable[[], bytes]]]:
    """(name in messages, name in the digest, reader) of each file CONFIG names; `-` is standard input.
    `regular_only`: CONFIG itself too is read only if it is a regular file (as a directory's entries are)."""
    if config == STDIN:
        return [(STDIN_NAME, STDIN_NAME, lambda: sys.stdin.buffer.read())]
    files = config_files(config)
    if regular_only or Path(config).is_dir():
        return [(str(path), path.name, functools.partial(_read_regular, path)) for path in files]
    return [(str(path), path.name, path.read_bytes) for path in files]


def load_config(
    config: str,
    environ: Mapping[str, str] | None = None,
    check_digest: Callable[[str], None] | None = None,
) -> Desired:
    """Read, validate and resolve CONFIG (a file, a directory, or `-` for standard input).

    Raises ConfigError listing every problem found, in one pass; when a file cannot be parsed, the pass stops
    after parsing every file, and the error's `note` says the other checks did not run. Needs no secret: a
    value behind an unset `${VAR}` loads as `secrets.Unresolved`, named in `Desired.unset_variables`.

    `check_digest` (apply --plan: a saved plan named CONFIG) is given the digest of the files' bytes once all
    are read, before any is parsed, and raises when it is not the one planned: no line of a file other than
    the one planned is then quoted in a message. Every file is then read only if it is a regular file.
    """
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    stopping: list[Problem] = []
    names: list[str] = []
    parsed: list[tuple[str, Loaded]] = []
    digest = hashlib.sha256()
    read_files: list[tuple[str, bytes]] = []
    for name, label, read in _sources(config, regular_only=check_digest is not None):
        names.append(name)
        try:
            raw = read()
        except OSError as exc:
            problems.append(Problem(name, 1, 1, f"cannot read the file: {exc.strerror or exc}"))
            continue
        # The file's own name, not the path as typed: `apply --plan` reloads it by its absolute path.
        digest.update(label.encode() + b"\0" + hashlib.sha256(raw).digest())
        read_files.append((name, raw))
    if check_digest is not None:
        if problems:  # what could not be read, said before anything is parsed
            raise ConfigError(problems)
        check_digest(digest.hexdigest())
    for name, raw in read_files:
        try:
            parsed.append((name, load(name, decode(name, raw))))
        except ConfigError as exc:
            stopping.extend(exc.problems)
    read_files.clear()  # the parsed documents are what is kept
    order = {one_line(name): index for index, name in enumerate(names)}  # as a Problem holds it

    def in_order(found: list[Problem]) -> list[Problem]:
        return sorted(found, key=lambda p: (order.get(p.file, len(order)), p.line, p.col))

    if stopping:
        note = STOPPED_NOTE if len(stopping) == 1 else STOPPED_NOTE_PLURAL
        raise ConfigError(in_order(problems + stopping), note=note)
    warnings: list[Problem] = []
    accounts: dict[str, AccountSpec] = {}
    unbuilt: dict[str, tuple[str, int, int]] = {}  # declared accounts that have problems: where
    unset: set[str] = set()
    for name, loaded in parsed:
        problems.extend(loaded.duplicates)
        document = loaded.value
        if not isinstance(document, YMap):
            problems.append(Problem(name, *loaded.mark, _not_a_mapping(document)))
            continue
        certainly_valid = document_certainly_valid(document)
        found, bad_paths = ([], set()) if certainly_valid else schema_problems(name, schema_subject(document))
        problems.extend(found)
        builder = AccountBuilder(name, document, environ)
        _check_accounts(name, document, builder, bad_paths, accounts, unbuilt, problems, certainly_valid)
        problems.extend(builder.problems)
        warnings.extend(builder.warnings)
        unset |= builder.unset
    if problems:
        documents = [loaded.value for _, loaded in parsed if isinstance(loaded.value, YMap)]
        raise ConfigError(_redacted(in_order(problems), documents, environ), warnings)
    return Desired(
        accounts=accounts,
        warnings=warnings,
        files=names,
        config_digest=digest.hexdigest(),
        unset_variables=tuple(sorted(unset)),
    )


def _not_a_mapping(document: object) -> str:
    if document is None:
        return "the document is empty: the file must be a mapping with 'version' and 'accounts'"
    return f"the file must be a mapping with 'version' and 'accounts', not {describe(document)}"


def _check_accounts(
    name: str,
    document: YMap,
    builder: AccountBuilder,
    bad_paths: set[tuple[Any, ...]],
    accounts: dict[str, AccountSpec],
    unbuilt: dict[str, tuple[str, int, int]],
    problems: list[Problem],
    ids_checked: bool = False,
) -> None:
    """Check every account of one file (id, then body, whatever the schema found) and keep the valid ones.

    `ids_checked`: every id is known to be valid (the fast schema check passed the whole file)."""
    declared = document.get("accounts")
    if not isinstance(declared, YMap):
        return  # the schema's message
    marks = declared.marks
    for account_id, body in declared.items():
        key_mark = marks[account_id][:2]
        previous = accounts.get(account_id)
        first = (previous.file, previous.line, previous.col) if previous else unbuilt.get(account_id)
        if first is not None:
            problems.append(
                Problem(
                    name,
                    *key_mark,
                    f"account {brief(account_id, 260)} is also declared in {first[0]}:{first[1]}:{first[2]}",
                    path=f"accounts.{account_id}",
                )
            )
            continue
        id_problem = None if ids_checked else account_id_problem(account_id)
        if id_problem is not None:
            problems.append(Problem(name, *key_mark, id_problem, path=f"accounts.{account_id}"))
        valid = id_problem is None and not (bad_paths and ("accounts", account_id) in bad_paths)
        spec = builder.build(account_id, body, key_mark, valid)
        if spec is not None:
            accounts[account_id] = spec
        else:
            unbuilt[account_id] = (name, *key_mark)


_REFUSED_CHARACTERS = (
    (lambda char: char <= "\x1f" or "\x7f" <= char <= "\x9f", "a control character"),
    (
        lambda char: (
            char in "\u061c\u200e\u200f" or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069"
        ),
        "a bidi control",
    ),
    (lambda char: char.isspace(), "whitespace"),
    (lambda char: True, "a zero-width character"),
)


def account_id_problem(account_id: str) -> str | None:
    """Why `account_id` is not a valid id (naming the first character refused, and where), or None."""
    if ACCOUNT_ID.fullmatch(account_id):
        return None
    rule = "1-256 characters, no whitespace, control, bidi or zero-width characters"
    shown = brief(account_id, 80)
    if not account_id:
        return f"invalid account id '': {rule}"
    for index, char in enumerate(account_id):
        if not ACCOUNT_ID.fullmatch(char):
            kind = next(label for test, label in _REFUSED_CHARACTERS if test(char))
            return f"invalid account id {shown}: character {index + 1} is U+{ord(char):04X}, {kind}; {rule}"
    return f"invalid account id {shown}: {len(account_id):,} characters; {rule}"


def _redacted(problems: list[Problem], documents: list[YMap], environ: Mapping[str, str]) -> list[Problem]:
    """Problems with every secret value the files hold replaced by SENSITIVE.

    A message may quote a value (`country: 'hunter2' is not ...`): when that value is also a proxy password,
    or what a `${VAR}` in a proxy reads (README: any such value is secret), it is a secret wherever it was
    written.
    """
    values: set[str] = set()
    for proxy in _proxies(documents):
        for key, value in proxy.items():
            if not isinstance(value, str):
                continue
            if key == "password":
                values.add(value)
            values.update(environ[name] for name in referenced_names(value) if name in environ)
    pattern = redaction_pattern(values)
    if pattern is None:
        return problems
    return [p.with_message(pattern.sub(SENSITIVE, p.message)) for p in problems]


def _proxies(documents: list[YMap]) -> Iterator[dict[str, Any]]:
    """Every proxy mapping of the files: the defaults' and each account's."""
    for document in documents:
        defaults = document.get("defaults")
        if isinstance(defaults, dict) and isinstance(defaults.get("proxy"), dict):
            yield defaults["proxy"]
        accounts = document.get("accounts")
        for body in accounts.values() if isinstance(accounts, dict) else ():
            if isinstance(body, dict) and isinstance(body.get("proxy"), dict):
                yield body["proxy"]


def schema_subject(document: YMap) -> YMap:
    """The document with only the accounts the fast check cannot vouch for, positions kept.

    jsonschema then costs what the suspect accounts cost: measured, one bad account among 1.1 million (a 50 MB
    file) took 110 s to report with the whole document validated. Sound because no rule of the schema spans
    accounts (fastcheck.account_certainly_valid).
    """
    accounts = document.get("accounts")
    if not isinstance(accounts, YMap):
        return document
    suspects = YMap(accounts.pos)
    suspects.marks = accounts.marks
    suspects.update((key, body) for key, body in accounts.items() if not account_certainly_valid(key, body))
    subject = YMap(document.pos)
    subject.marks = document.marks
    subject.update(document)
    subject["accounts"] = suspects
    return subject


def _read_regular(path: Path) -> bytes:
    """Read a file found in a directory, refusing what is not a regular file (a FIFO, a socket, a device).

    A CONFIG named explicitly may be a pipe (`<(generate)`); a directory's entries may not, so that a stray
    FIFO cannot hang a CI job.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return stream.read()
    finally:
        os.close(fd)
