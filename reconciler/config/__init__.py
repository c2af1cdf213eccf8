"""Loading the desired-state file: YAML with positions, the schema, the semantic rules, environment references."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler import fsutil
from reconciler.config.accounts import AccountBuilder, shown_variable
from reconciler.config.fastcheck import ACCOUNT_ID, account_certainly_valid, document_certainly_valid
from reconciler.config.ids import (
    escaped,
    is_default_ignorable,
    mixed_scripts,
    mixed_scripts_warning,
    nfc,
    not_nfc_problem,
)
from reconciler.config.schema import schema_problems
from reconciler.config.secretfiles import Decrypt, SecretFiles
from reconciler.config.yamlpos import Loaded, YMap, decode, load
from reconciler.errors import ConfigError, Problem, ReconcilerError, brief, describe, one_line
from reconciler.model import AccountSpec, Desired
from reconciler.secrets import SENSITIVE
from reconciler.secrets.redaction import Redactor, redaction_pattern
from reconciler.secrets.references import referenced_names
from reconciler.suggestions import closest

__all__ = ["load_config", "config_files", "name_in_messages", "schema_subject", "STDIN", "STDIN_NAME"]

#: The CONFIG that means standard input, and the name every message gives it (docs/configuration.md).
STDIN = "-"
STDIN_NAME = "<stdin>"


def name_in_messages(config: str) -> str:
    """How messages name CONFIG: as given, but `<stdin>` for `-` (as its problems' `FILE:LINE:COL` do)."""
    return STDIN_NAME if config == STDIN else config


#: Said once when a file could not be parsed: the checks that need the parsed file did not run.
STOPPED_NOTE = "fix this error first: the file could not be parsed, so the other checks did not run"
STOPPED_NOTE_PLURAL = "fix these errors first: the files could not be parsed, so the other checks did not run"


def config_files(config: str) -> list[Path]:
    """The files a CONFIG names: the file itself, or a directory's `*.yaml`/`*.yml` sorted by name."""
    path = Path(config)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir())
        # Each entry must be a regular file (_sources): a FIFO here would block the read for ever, a link to
        # /dev/zero would fill the size limit.
        if not files:
            raise ReconcilerError(f"{config}: the directory holds no *.yaml or *.yml file")
        return files
    if not path.exists():
        raise ReconcilerError(f"{config}: no such file or directory{_closest_file(config)}")
    return [path]


def _closest_file(config: str) -> str:
    """`; did you mean 'accounts.yaml'?`: the YAML file beside a CONFIG that does not exist whose name is
    closest to it (`acounts.yaml`, `accounts.yml`, `accounts`), written in the same directory as CONFIG; or ""."""
    directory, name = os.path.split(config)
    try:
        entries = [
            entry.name
            for entry in os.scandir(directory or ".")
            if entry.name.endswith((".yaml", ".yml")) and entry.is_file()
        ]
    except OSError:  # the directory is missing too, or cannot be listed
        return ""
    stems: dict[str, list[str]] = {}
    for entry in entries:
        stems.setdefault(_stem(entry), []).append(entry)
    close = closest(_stem(name), stems, limit=1)
    if not close:
        return ""
    # `accounts.yaml` and `accounts.yml` both there: the one with the suffix written, else `.yaml`.
    written = name.removeprefix(_stem(name))
    chosen = min(stems[close[0]], key=lambda entry: (not entry.endswith(written), entry))
    return f"; did you mean {os.path.join(directory, chosen)!r}?"


def _stem(name: str) -> str:
    """A file name without its `.yaml` or `.yml`: the part a typo is in."""
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _sources(config: str, regular_only: bool = False) -> list[tuple[str, str, Callable[[int], bytes]]]:
    """(name in messages, name in the digest, reader) of each file CONFIG names; `-` is standard input.

    A reader takes the most bytes it may read and raises fsutil.TooLarge past them. A file named directly may
    be a pipe or a device (read up to the limit) unless `regular_only`; a directory's entries must be regular
    files."""
    if config == STDIN:
        return [
            (STDIN_NAME, STDIN_NAME, lambda limit: fsutil.read_at_most(sys.stdin.buffer, limit, STDIN_NAME))
        ]
    files = config_files(config)
    regular_only = regular_only or Path(config).is_dir()
    return [
        (str(path), path.name, functools.partial(fsutil.read_file_at_most, path, regular_only=regular_only))
        for path in files
    ]


def load_config(
    config: str,
    environ: Mapping[str, str] | None = None,
    check_digest: Callable[[str], None] | None = None,
    decrypt: Decrypt = "auto",
    redactor: Redactor | None = None,
) -> Desired:
    """Read, validate and resolve CONFIG (a file, a directory, or `-` for standard input).

    Raises ConfigError listing every problem found, in one pass; when a file cannot be parsed, the pass stops
    after parsing every file, and the error's `note` says the other checks did not run. Needs no secret: a
    value behind an unset `${VAR}` loads as `secrets.Unresolved`, named in `Desired.unset_variables`.

    `check_digest` (apply --plan: a saved plan named CONFIG) is given the digest of the files' bytes once all
    are read, before any is parsed, and raises when it is not the one planned: no line of a file other than
    the one planned is then quoted in a message. Every file is then read only if it is a regular file.

    `decrypt` says how far the secrets files the configuration names are read (config/secretfiles.py): `never`
    (key names only), `auto` (decrypted when a key is offered here) or `always`; a value from a file not
    decrypted loads as `Unresolved` too (`ALIAS.*` in `unset_variables`). A file that must be decrypted and
    cannot be raises reconciler.sops.SopsError, one line.

    `redactor`: the run's, told every secret resolved or decrypted (a command passes its own; without one, the
    secrets are known to a redactor of this load alone).
    """
    environ = os.environ if environ is None else environ
    redactor = Redactor() if redactor is None else redactor
    names, read_files, problems, digest = _read_all(config, regular_only=check_digest is not None)
    if check_digest is not None:
        if problems:  # what could not be read, said before anything is parsed
            raise ConfigError(problems)
        check_digest(digest)
    parsed, stopping = _parse_all(read_files)
    order = {one_line(name): index for index, name in enumerate(names)}  # as a Problem holds it

    def in_order(found: list[Problem]) -> list[Problem]:
        return sorted(found, key=lambda p: (order.get(p.file, len(order)), p.line, p.col))

    if stopping:
        note = STOPPED_NOTE if len(stopping) == 1 else STOPPED_NOTE_PLURAL
        raise ConfigError(in_order(problems + stopping), note=note)
    warnings: list[Problem] = []
    accounts: dict[str, AccountSpec] = {}
    # Declared accounts that have problems, by NFC id: where, and the id as written.
    unbuilt: dict[str, tuple[str, int, int, str]] = {}
    unset: set[str] = set()
    files = _secret_files(parsed, environ, decrypt, redactor)
    problems.extend(files.problems)
    warnings.extend(files.warnings)
    for name, loaded in parsed:
        problems.extend(loaded.duplicates)
        document = loaded.value
        if not isinstance(document, YMap):
            problems.append(Problem(name, *loaded.mark, _not_a_mapping(document)))
            continue
        certainly_valid = document_certainly_valid(document)
        found, bad_paths = ([], set()) if certainly_valid else schema_problems(name, schema_subject(document))
        problems.extend(found)
        builder = AccountBuilder(name, document, environ, redactor, files if files else None)
        _check_accounts(
            name, document, builder, bad_paths, accounts, unbuilt, problems, warnings, certainly_valid
        )
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
        config_digest=digest,
        unset_variables=tuple(sorted(unset)),
        secrets_files=files.described(),
    )


def _read_all(
    config: str, regular_only: bool
) -> tuple[list[str], list[tuple[str, bytes]], list[Problem], str]:
    """Read CONFIG's files (`_sources`), at most MAX_CONFIG_BYTES together: every file's name, the (name, bytes)
    of those read, a problem for each one that could not be, and the hex digest of all that was read."""
    problems: list[Problem] = []
    names: list[str] = []
    digest = hashlib.sha256()
    budget = fsutil.MAX_CONFIG_BYTES  # for all of the CONFIG's files together
    read_files: list[tuple[str, bytes]] = []
    for name, label, read in _sources(config, regular_only=regular_only):
        names.append(name)
        try:
            raw = read(budget)
        except fsutil.TooLarge:
            raise ReconcilerError(_too_large(name, config)) from None
        except OSError as exc:
            problems.append(Problem(name, 1, 1, f"cannot read the file: {exc.strerror or exc}"))
            continue
        budget -= len(raw)
        # The file's own name, not the path as typed: `apply --plan` reloads it by its absolute path.
        digest.update(label.encode() + b"\0" + hashlib.sha256(raw).digest())
        read_files.append((name, raw))
    return names, read_files, problems, digest.hexdigest()


def _parse_all(read_files: list[tuple[str, bytes]]) -> tuple[list[tuple[str, Loaded]], list[Problem]]:
    """Parse every file read (emptying `read_files`: the parsed documents are what is kept): the (name,
    document) of those parsed, and the problems that stopped the others being read at all."""
    parsed: list[tuple[str, Loaded]] = []
    stopping: list[Problem] = []
    for name, raw in read_files:
        try:
            parsed.append((name, load(name, decode(name, raw))))
        except ConfigError as exc:
            stopping.extend(exc.problems)
    read_files.clear()
    return parsed, stopping


def _secret_files(
    parsed: list[tuple[str, Loaded]], environ: Mapping[str, str], decrypt: Decrypt, redactor: Redactor
) -> SecretFiles:
    """The secrets files every document names, opened before any account is built: every reference is looked up
    in what they hold (their `problems` and `warnings` are the caller's to report)."""
    files = SecretFiles(environ, decrypt, redactor)
    for name, loaded in parsed:
        if isinstance(loaded.value, YMap):
            files.declare(name, loaded.value)
    files.open()
    return files


def _too_large(name: str, config: str) -> str:
    limit = fsutil.size_text(fsutil.MAX_CONFIG_BYTES)
    together = f" (the files of {config} together)" if config != STDIN and Path(config).is_dir() else ""
    return f"{name}: the configuration is larger than {limit}{together}, the most reconciler reads"


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
    unbuilt: dict[str, tuple[str, int, int, str]],
    problems: list[Problem],
    warnings: list[Problem],
    ids_checked: bool = False,
) -> None:
    """Check every account of one file (id, then body, whatever the schema found) and keep the valid ones.

    Ids are compared in Unicode NFC (`accounts` and `unbuilt` are keyed by the NFC form; a built account's id
    is its NFC form, since an id not in NFC is an error). `ids_checked`: every id is known to match the schema's
    pattern (the fast schema check passed the whole file); the NFC and script checks run whatever it says."""
    declared = document.get("accounts")
    if not isinstance(declared, YMap):
        return  # the schema's message
    marks = declared.marks
    for account_id, body in declared.items():
        key_mark = marks[account_id][:2]
        ascii_id = account_id.isascii()  # the common case: its own NFC form, one script, nothing invisible
        key = account_id if ascii_id else nfc(account_id)
        previous = accounts.get(key)
        first = (
            (previous.file, previous.line, previous.col, previous.account_id)
            if previous
            else unbuilt.get(key)
        )
        if first is not None:
            if first[3] == account_id:
                message = (
                    f"account {brief(account_id, 260)} is also declared in {first[0]}:{first[1]}:{first[2]}"
                )
            else:  # the same id once in NFC, written differently: say how each is written
                message = (
                    f"account {escaped(account_id)} is also declared in {first[0]}:{first[1]}:{first[2]} as "
                    f"{escaped(first[3])}: the same id in Unicode NFC ({key[:80]!r})"
                )
            problems.append(Problem(name, *key_mark, message, path=f"accounts.{account_id}"))
            continue
        id_problem = None if ids_checked else account_id_problem(account_id)
        if id_problem is None and not ascii_id:
            if key != account_id:
                id_problem = not_nfc_problem(account_id, key)
            else:
                scripts = mixed_scripts(account_id)
                if scripts:
                    warning = mixed_scripts_warning(account_id, scripts)
                    warnings.append(Problem(name, *key_mark, warning, "warning", f"accounts.{account_id}"))
        if id_problem is not None:
            problems.append(Problem(name, *key_mark, id_problem, path=f"accounts.{account_id}"))
        valid = id_problem is None and not (bad_paths and ("accounts", account_id) in bad_paths)
        spec = builder.build(account_id, body, key_mark, valid)
        if spec is not None:
            accounts[key] = spec
        else:
            unbuilt[key] = (name, *key_mark, account_id)


_REFUSED_CHARACTERS = (
    (lambda char: char <= "\x1f" or "\x7f" <= char <= "\x9f", "a control character"),
    (
        lambda char: (
            char in "\u061c\u200e\u200f" or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069"
        ),
        "a bidi control",
    ),
    (lambda char: char.isspace(), "whitespace"),
    (lambda char: char in "\u200b\u200c\u200d\u2060\ufeff", "a zero-width character"),
    (is_default_ignorable, "an invisible (default-ignorable) code point"),
)


def account_id_problem(account_id: str) -> str | None:
    """Why `account_id` is not a valid id (naming the first character refused, and where), or None."""
    if ACCOUNT_ID.fullmatch(account_id):
        return None
    rule = "1-256 characters, no whitespace, control, bidi, zero-width or other invisible characters"
    # Escaped when not ASCII: an invisible code point that is printable to Python (a variation selector) would
    # otherwise show as nothing.
    shown = brief(account_id, 80) if account_id.isascii() else escaped(account_id)
    if not account_id:
        return f"invalid account id '': {rule}"
    for index, char in enumerate(account_id):
        if not ACCOUNT_ID.fullmatch(char):
            kind = next((label for test, label in _REFUSED_CHARACTERS if test(char)), "a refused character")
            if is_default_ignorable(char) and kind.startswith("an invisible"):
                kind += _character_name(char)
            return f"invalid account id {shown}: character {index + 1} is U+{ord(char):04X}, {kind}; {rule}"
    return f"invalid account id {shown}: {len(account_id):,} characters; {rule}"


def _character_name(char: str) -> str:
    """`, NAME` for a character Unicode names (not a reserved code point), else ""."""
    import unicodedata  # only for a refused id: start-up counts (BENCHMARKS.md)

    name = unicodedata.name(char, "")
    return f", {name}" if name else ""


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
            if key == "password" and not shown_variable(value):
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
