"""Loading the desired-state file: YAML with positions, the schema, the semantic rules, environment references."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.config.accounts import AccountBuilder
from reconciler.config.fastcheck import ACCOUNT_ID, account_certainly_valid, document_certainly_valid
from reconciler.config.schema import schema_problems
from reconciler.config.yamlpos import YMap, decode, load
from reconciler.errors import ConfigError, Problem, ReconcilerError
from reconciler.model import AccountSpec, Desired
from reconciler.secrets import SENSITIVE, redaction_pattern, referenced_names

__all__ = ["load_config", "config_files"]


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


def load_config(config: str, environ: Mapping[str, str] | None = None) -> Desired:
    """Read, validate and resolve CONFIG. Raises ConfigError listing every problem found, in one pass."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    warnings: list[Problem] = []
    accounts: dict[str, AccountSpec] = {}
    digest = hashlib.sha256()
    files = config_files(config)
    documents: list[YMap] = []
    from_directory = Path(config).is_dir()
    for path in files:
        name = str(path)
        try:
            raw = _read_regular(path) if from_directory else path.read_bytes()
        except OSError as exc:
            problems.append(Problem(name, 1, 1, f"cannot read the file: {exc.strerror or exc}"))
            continue
        # The file's own name, not the path as typed: `apply --plan` reloads it by its absolute path.
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(raw).digest())
        try:
            document, duplicates = load(name, decode(name, raw))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(duplicates)
        if not isinstance(document, YMap):
            problems.append(Problem(name, 1, 1, "the file must be a mapping with 'version' and 'accounts'"))
            continue
        documents.append(document)
        found, bad_paths = (
            ([], set())
            if document_certainly_valid(document)
            else schema_problems(name, _schema_subject(document))
        )
        problems.extend(found)
        _build_accounts(name, document, environ, bad_paths, accounts, problems, warnings)
    if problems:
        problems.sort(key=lambda p: (files_index(files, p.file), p.line, p.col))
        raise ConfigError(_redacted(problems, documents, environ), warnings)
    return Desired(
        accounts=accounts, warnings=warnings, files=[str(p) for p in files], config_digest=digest.hexdigest()
    )


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
    return [dataclasses.replace(p, message=pattern.sub(SENSITIVE, p.message)) for p in problems]


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


def _schema_subject(document: YMap) -> YMap:
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


def files_index(files: list[Path], name: str) -> int:
    for index, path in enumerate(files):
        if str(path) == name:
            return index
    return len(files)


def _build_accounts(
    name: str,
    document: YMap,
    environ: Mapping[str, str],
    bad_paths: set[tuple[Any, ...]],
    accounts: dict[str, AccountSpec],
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    declared = document.get("accounts")
    if not isinstance(declared, YMap):
        return
    # Semantic checks run only where the schema found nothing, so one mistake gives one message.
    if any(path[:1] in (("defaults",), ()) or path == ("accounts",) for path in bad_paths):
        return
    builder = AccountBuilder(name, document, environ)
    for account_id, body in declared.items():
        key_mark = declared.key_mark(account_id)
        previous = accounts.get(account_id)
        if previous is not None:
            problems.append(
                Problem(
                    name,
                    key_mark[0],
                    key_mark[1],
                    f"account {account_id!r} is also declared in "
                    f"{previous.file}:{previous.line}:{previous.col}",
                )
            )
            continue
        if not isinstance(body, YMap) or ("accounts", account_id) in bad_paths:
            continue
        if not ACCOUNT_ID.fullmatch(account_id):  # the schema's `$` lets a trailing newline through
            problems.append(
                Problem(
                    name,
                    key_mark[0],
                    key_mark[1],
                    f"invalid account id {account_id[:80]!r}: "
                    "1-256 characters, no whitespace or control characters",
                )
            )
            continue
        spec = builder.build(account_id, body, key_mark)
        if spec is not None:
            accounts[account_id] = spec
    problems.extend(builder.problems)
    warnings.extend(builder.warnings)
