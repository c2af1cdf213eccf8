"""The state file itself: read into a `Recorded` (checked), and written whole, atomically, as JSON.

The file is only ever replaced atomically (write a new temporary file, fsync, rename, fsync the directory), with
mode 0600, so whatever kills the process the file is either the old or the new state; it is never opened
through a symbolic link (reconciler.fsutil).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
from collections.abc import Callable
from pathlib import Path

from reconciler import fsutil, logs
from reconciler.errors import StateError, brief
from reconciler.model import AccountRecord, Recorded
from reconciler.state.base import new_salt
from reconciler.state.document import state_problem

log = logs.get("state")

FORMAT_VERSION = 1
#: What a file of the state's that is a symbolic link is refused with (after its name).
LINK_REFUSED = "is a symbolic link; refusing to follow it (remove it if it is not reconciler's)"


class StateFile:
    """The JSON document at `path` (a link there is refused: the backend has resolved the one the user named)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Recorded:
        """The state the file holds (its journal aside); an empty one, with a new salt, where there is none."""
        try:
            raw = fsutil.read_no_follow(self.path)
        except fsutil.LinkRefused:
            raise StateError(f"{self.path}: the state file {LINK_REFUSED}") from None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state: {exc.strerror or exc}") from None
        if raw is None:
            return Recorded(lineage=None, serial=0, salt=new_salt())
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise StateError(f"{self.path}: the state file is not a reconciler state ({exc})") from None
        if isinstance(document, dict) and document.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise StateError(
                f"{self.path}: unsupported state format_version {brief(document['format_version'])}"
            )
        problem = state_problem(document)
        if problem:
            raise StateError(f"{self.path}: the state file is not a valid reconciler state: {problem}")
        accounts = {key: AccountRecord.from_json(value) for key, value in document["accounts"].items()}
        return Recorded(
            lineage=document["lineage"],
            serial=int(document["serial"]),
            salt=document["salt"],
            accounts=accounts,
        )

    def write(self, recorded: Recorded) -> None:
        """Replace the file with `recorded`, atomically; StateError if it cannot be (the old file stays)."""
        payload = serialise(recorded)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.replace_atomically(self.path, payload, 0o600)
        except OSError as exc:  # a full disk, say: the old state file stays as it was
            raise StateError(f"{self.path}: cannot write the state: {exc.strerror or exc}") from None
        log.debug("wrote %s: %d account(s), serial %d", self.path, len(recorded.accounts), recorded.serial)

    def remove_torn_writes(self) -> None:
        """Delete temporary files of state writes killed before their rename (only the lock holder writes)."""
        for temporary in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()  # a link is removed, never followed


@functools.cache
def compact_encoder() -> Callable[[object], bytes]:
    """Compact JSON exactly as `json.JSONEncoder(separators=(",", ":"))` writes it, every character outside
    printable ASCII escaped: one encoder for the journal's lines and the state's, so that no file the reconciler
    writes carries a character a terminal would act on.

    orjson takes a third of the json module's time (measured: a journal line per success, and the state write of
    10,000 accounts ends every apply), and writes the same bytes for what a state holds but for three things,
    left to the json module: text outside ASCII or with DEL (written raw), floats (written in another form, NaN
    and infinities as null; a state edited by hand may hold them) and integers beyond 64 bits (refused)."""
    import orjson  # imported where a state or journal is written, not by every command that reads one

    dumps, fallback = orjson.dumps, json.JSONEncoder(separators=(",", ":")).encode

    def compact(value: object) -> bytes:
        if _holds_float(value):
            return fallback(value).encode()
        try:
            text = dumps(value)
        except orjson.JSONEncodeError:
            return fallback(value).encode()
        return text if text.isascii() and b"\x7f" not in text else fallback(value).encode()

    return compact


def _holds_float(value: object) -> bool:
    if type(value) is dict:
        for item in value.values():
            if type(item) is float or ((type(item) is dict or type(item) is list) and _holds_float(item)):
                return True
        return False
    if type(value) is list:
        return any(_holds_float(item) for item in value)
    return type(value) is float


def serialise(recorded: Recorded) -> bytes:
    """The state document, one account per line (sorted), so a state kept in git diffs by account.

    Written by hand around the C JSON encoder: `json.dumps(indent=...)` takes the pure-Python encoder, which
    measured 0.44 s for 10,000 accounts, against ~0.05 s this way.
    """
    head = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "lineage": recorded.lineage,
            "serial": recorded.serial,
            "salt": recorded.salt,
        }
    )
    compact = compact_encoder()
    rows = b",\n".join(
        b"  %s: %s" % (compact(key), compact(recorded.accounts[key].to_json()))
        for key in sorted(recorded.accounts)
    )
    if not rows:
        return f'{head[:-1]}, "accounts": {{}}}}\n'.encode()
    return head[:-1].encode() + b',\n "accounts": {\n' + rows + b"\n }\n}\n"
