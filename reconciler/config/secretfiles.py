"""Secrets files in the configuration: `secrets: {vault: secrets.sops.yaml}` and `${vault.proxy_passwords.acc_1}`.

A file's `secrets` mapping gives aliases to SOPS-encrypted files (YAML, JSON or dotenv), relative to itself. In a
proxy string, `${ALIAS.KEY...}` is a dotted path into the file of that alias; `${NAME}` without a dot stays the
environment. A path segment `$account` is the id of the account the value ends up in, so that one line in
`defaults` names every account's own entry: `password: ${vault.proxy_passwords.$account}`.

How far a file is read depends on the command (`Decrypt`):
- `never` (validate): the encrypted file is parsed without any key (SOPS keeps key names readable): it must be
  SOPS's, and every reference must name a key it holds; values are not known.
- `auto` (plan): decrypted when a key is offered here (reconciler.sops.key_offered, or a master key of a kind other
  than age in the file); otherwise as `never`, and what depends on it shows as not known, as behind an unset
  variable. A key that is offered and fails is an error.
- `always` (apply, import): decrypted, or one line and exit 1.

Every decrypted value is registered with the run's redactor in one place (`_register`), with the age key SOPS is given.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from reconciler import fsutil, sops
from reconciler.config.yamlpos import Mark, YMap
from reconciler.errors import Problem, brief
from reconciler.secrets.redaction import Redactor
from reconciler.secrets.references import (
    ACCOUNT_SEGMENT,
    ALIAS,
    FileReference,
    ReferenceError_,
    Resolver,
    parse_reference,
    per_account,
    references,
)

# The `${...}` grammar lives in reconciler.secrets.references; these names are used with the secrets files.
__all__ = [
    "ACCOUNT_SEGMENT",
    "ALIAS",
    "FileReference",
    "ReferenceError_",
    "Resolver",
    "SecretFiles",
    "parse_reference",
    "per_account",
    "references",
]

Decrypt = Literal["never", "auto", "always"]

_FORMATS_TEXT = ".yaml, .yml, .json or .env"


class _Source:
    """One secrets file of the run, however many aliases name it."""

    __slots__ = ("path", "shown", "fmt", "alias", "values", "shape", "broken", "decrypted", "why_not")

    def __init__(self, path: Path, shown: str, fmt: str, alias: str) -> None:
        self.path = path
        self.shown = shown
        self.fmt = fmt
        self.alias = alias
        self.values: dict[str, Any] | None = None  # decrypted
        self.shape: dict[str, Any] | None = None  # key names only
        self.broken = False  # a problem of the file itself was reported: references to it say nothing more
        self.decrypted = False
        self.why_not = ""


# long: the secrets files of one configuration, declared, opened and looked up: one life cycle, one class
class SecretFiles:
    """The secrets files of one configuration: declared file by file, opened once, looked up per reference.

    `problems` are positioned findings (a file that is not SOPS's, cannot be read, an alias given two files);
    decryption failures raise reconciler.sops.SopsError at `open`.
    """

    def __init__(self, environ: Mapping[str, str], decrypt: Decrypt, redactor: Redactor) -> None:
        self.environ = environ
        self.redactor = redactor
        self.decrypt = decrypt
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._sources: dict[Path, _Source] = {}
        #: (config file, alias) -> the source; and alias -> (source, where first declared) across files.
        self._visible: dict[tuple[str, str], _Source] = {}
        self._by_alias: dict[str, tuple[_Source, str, Mark]] = {}
        self._declared_at: dict[Path, tuple[str, Mark]] = {}

    def __bool__(self) -> bool:
        return bool(self._sources)

    def declare(self, file: str, document: YMap) -> None:
        """Take in the `secrets` mapping of one configuration file (its problems go to `problems`)."""
        declared = document.get("secrets")
        if not isinstance(declared, YMap):
            return  # absent, or the schema's message
        base = Path.cwd() if file.startswith("<") else Path(file).resolve().parent
        for alias, name in declared.items():
            mark = declared.value_mark(alias)
            if not isinstance(alias, str) or not ALIAS.match(alias):
                lower = alias.lower() if isinstance(alias, str) and ALIAS.match(alias.lower()) else None
                self._problem(
                    file,
                    declared.key_mark(alias),
                    f"secrets: the alias {brief(alias)} is not lower-case letters, digits and '_' starting with "
                    "a letter" + (f"; did you mean {lower!r}?" if lower else ""),
                    f"secrets.{alias}",
                )
                continue
            if not isinstance(name, str) or not name:
                continue  # the schema's message
            fmt = sops.file_format(name)
            if fmt is None:
                self._problem(
                    file,
                    mark,
                    f"secrets.{alias}: {brief(name)} is not a {_FORMATS_TEXT} file (SOPS tells a file's format "
                    "by its name)",
                    f"secrets.{alias}",
                )
                continue
            path = Path(os.path.normpath(base / name))
            source = self._sources.get(path)
            if source is None:
                source = self._sources[path] = _Source(path, _shown(path), fmt, alias)
                self._declared_at[path] = (file, mark)
            earlier = self._by_alias.get(alias)
            if earlier is not None and earlier[0] is not source:
                where = f"{earlier[1]}:{earlier[2][0]}:{earlier[2][1]}"
                self._problem(
                    file,
                    mark,
                    f"secrets.{alias}: the alias already names {earlier[0].shown} ({where}); an alias names one "
                    "file in the whole configuration",
                    f"secrets.{alias}",
                )
                continue
            self._by_alias.setdefault(alias, (source, file, mark))
            self._visible[(file, alias)] = source

    def _problem(self, file: str, mark: Mark, message: str, path: str) -> None:
        self.problems.append(Problem(file, mark[0], mark[1], message, path=path))

    def open(self) -> None:
        """Read or decrypt every declared file, as `decrypt` says. Raises sops.SopsError (one line) when a file
        that must be decrypted cannot be."""
        if not self._sources:
            return
        if self.decrypt == "never":
            for source in self._sources.values():
                self._read_shape(source)
            return
        offered = sops.key_offered(self.environ)
        to_decrypt = list(self._sources.values())
        if self.decrypt == "auto" and not offered:
            # Read the key names first: a file that lists a key of another kind (PGP, a cloud KMS) is tried.
            to_decrypt = []
            for source in self._sources.values():
                encrypted = self._read_shape(source)
                if encrypted is not None and encrypted.key_kinds - {"age"}:
                    to_decrypt.append(source)
                elif encrypted is not None:
                    source.why_not = "no SOPS key given here"
        for source in to_decrypt:
            if source.shape is None:  # not read yet: it must at least be there, and not too large
                self._check_file(source)
        _register_key(
            self.environ, self.redactor
        )  # before sops runs: what it says about a failure may quote the key
        results = sops.decrypt_all(
            ((s.path, s.fmt, f"{s.shown} ({s.alias})") for s in to_decrypt if not s.broken),
            self.environ,
            self.redactor,
        )
        for source in to_decrypt:
            if source.broken:
                continue
            result = results[source.path]
            if isinstance(result, sops.NoKey) and self.decrypt == "auto" and not offered:
                source.why_not = "no key here opens it"
                self.warnings.append(self._located(source, f"not decrypted here: {result}"))
                continue
            if isinstance(result, sops.SopsError):
                raise result
            _register(result, self.redactor)
            source.values = result
            source.decrypted = True

    def _located(self, source: _Source, message: str) -> Problem:
        file, mark = self._declared_at[source.path]
        return Problem(file, mark[0], mark[1], message, "warning", f"secrets.{source.alias}")

    def _check_file(self, source: _Source) -> None:
        """A problem (and `broken`) when the file is missing, not a regular file, or larger than the limit."""
        why = _unreadable(source.path, source.shown)
        if why is not None:
            file, mark = self._declared_at[source.path]
            where = f"secrets.{source.alias}"
            self._problem(file, mark, f"{where}: {why}", where)
            source.broken = True

    def _read_shape(self, source: _Source) -> sops.Encrypted | None:
        file, mark = self._declared_at[source.path]
        where = f"secrets.{source.alias}"
        try:
            raw = fsutil.read_file_at_most(source.path, fsutil.MAX_CONFIG_BYTES, regular_only=True)
        except fsutil.TooLarge:
            limit = fsutil.size_text(fsutil.MAX_CONFIG_BYTES)
            self._problem(
                file,
                mark,
                f"{where}: {source.shown} is larger than {limit}, the most reconciler reads",
                where,
            )
            source.broken = True
            return None
        except OSError as exc:
            self._problem(file, mark, f"{where}: cannot read {source.shown}: {exc.strerror or exc}", where)
            source.broken = True
            return None
        try:
            encrypted = sops.read_encrypted(raw, source.fmt)
        except sops.NotSops as exc:
            self._problem(
                file,
                mark,
                f"{where}: {source.shown} is not encrypted with SOPS ({exc}); encrypt it with "
                f"'sops encrypt --in-place {source.shown}' (docs/secrets-in-repository.md)",
                where,
            )
            source.broken = True
            return None
        source.shape = encrypted.tree
        return encrypted

    def source_of(self, file: str, alias: str) -> _Source | None:
        return self._visible.get((file, alias))

    def lookup(self, file: str, reference: FileReference, account_id: str | None) -> str | None:
        """The value `reference` names (None: not decrypted here, or the file has a problem of its own).
        ReferenceError_ when the alias is not declared in `file`, or the file lacks the key."""
        source = self._visible.get((file, reference.alias))
        if source is None:
            known = sorted(alias for (declared_in, alias) in self._visible if declared_in == file)
            said = f" (this file declares {', '.join(known)})" if known else ""
            raise ReferenceError_(
                f"'{reference.alias}' is not an alias of a secrets file{said}: declare it under 'secrets:' "
                "in this file"
            )
        if source.broken:
            return None
        keys = reference.path(account_id)
        node = _node_at(source.values if source.decrypted else source.shape, keys, source, reference.alias)
        if isinstance(node, dict | list):
            kind = "a mapping" if isinstance(node, dict) else "a list"
            raise ReferenceError_(
                f"{brief('.'.join((reference.alias, *keys)), 300)} is {kind} in {source.shown}, not a value"
            )
        if not source.decrypted:
            return None
        if not isinstance(node, str) or not node:
            raise ReferenceError_(
                f"{brief('.'.join((reference.alias, *keys)), 300)} is empty in {source.shown}"
            )
        return node

    def described(self) -> tuple[tuple[str, str, bool, str], ...]:
        """(alias, file as shown, decrypted, why not) of each file, for what a command tells about them."""
        return tuple(
            (source.alias, source.shown, source.decrypted, source.why_not)
            for source in self._sources.values()
            if not source.broken
        )


def _unreadable(path: Path, shown: str) -> str | None:
    """Why a secrets file cannot be read: missing, not a regular file, or larger than the limit; None if it can."""
    try:
        status = path.stat()
    except OSError as exc:
        return f"cannot read {shown}: {exc.strerror or exc}"
    if not stat.S_ISREG(status.st_mode):
        return f"{shown} is not a regular file"
    if status.st_size > fsutil.MAX_CONFIG_BYTES:
        return (
            f"{shown} is larger than {fsutil.size_text(fsutil.MAX_CONFIG_BYTES)}, the most reconciler reads"
        )
    return None


def _node_at(root: Any, keys: tuple[str, ...], source: _Source, alias: str) -> Any:
    """The node at the path `keys` in a file's values (or key names only); ReferenceError_ naming the first key
    that is not there."""
    node = root
    for depth, key in enumerate(keys):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            where = ".".join(keys[:depth]) or "its top level"
            raise ReferenceError_(
                f"{source.shown} ({alias}) has no key {brief('.'.join(keys[: depth + 1]), 300)}"
                + (f" (nothing under {brief(where, 300)} is named {brief(key, 260)})" if depth else "")
            )
    return node


def _shown(path: Path) -> str:
    """A secrets file's name in messages: relative to the working directory when it is inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative


# -- the one place where this module hands secrets to the run's redactor (reconciler.secrets.redaction) --------


def _register(document: Any, redactor: Redactor) -> None:
    """Register every decrypted value of a file as a secret to redact."""
    for value in _leaves(document):
        redactor.register(value)


def _register_key(environ: Mapping[str, str], redactor: Redactor) -> None:
    """Register the age key SOPS is given (each identity line of SOPS_AGE_KEY) as a secret to redact."""
    key = environ.get("SOPS_AGE_KEY")
    if key:
        for line in key.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                redactor.register(line.strip())


def _leaves(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for item in node:
            yield from _leaves(item)
    elif isinstance(node, str):
        yield node
