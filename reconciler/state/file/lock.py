"""The file backend's lock: `flock` on `<state>.lock`, which the kernel releases when the process dies (no stale
locks), and the holder's description on the file's first line.

The file is never truncated nor followed through a link: the holder's description (`LockInfo`, as JSON) is
written over its first line, and blanked (same length) on release. The flock counts only while the file holds
the lock's name: a holder that leaves no state removes the file before releasing its flock, so a flock taken on
a file that has lost the name (or whose directory went) is let go and the lock file at the name opened again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from pathlib import Path

from reconciler import fsutil
from reconciler.errors import LockHeld, StateError
from reconciler.state.locking import LockInfo, lock_deadline, wait_for_lock

#: How many times a lock file that lost its name while being locked is opened again before giving up.
_REOPEN_LIMIT = 1000
#: reconciler's own directory (the default state's): made here, it gets a `.gitignore` that ignores it whole, as
#: pytest, ruff and mypy do for their caches, so that the state, its lock and journal stay out of git.
OWN_DIRECTORY = ".reconciler"
GITIGNORE = ".gitignore"
GITIGNORE_TEXT = (
    b"# Written by reconciler with this directory: its state, lock and journal stay out of git.\n*\n"
)


class FileLock:
    """A held flock on the lock file `path` (open as `fd`): `take` one, `release` it.

    `made` are the directories made for it (the deepest first), `created` whether the file was made for it,
    `ignore_file` the `.gitignore` written in the directory made for it, if one was."""

    def __init__(
        self, path: Path, fd: int, made: list[Path], created: bool, ignore_file: Path | None = None
    ) -> None:
        self.path = path
        self.fd = fd
        self.made = made
        self.created = created
        self.ignore_file = ignore_file
        self._line = b""

    @classmethod
    def take(cls, path: Path, timeout: float, shown: str) -> FileLock:
        """Open the lock file `path` (making its directory) and take its flock, within `timeout` seconds; raise
        LockHeld naming the state as `shown` and its holder when it is not free by then."""
        deadline = lock_deadline(timeout)
        for _ in range(_REOPEN_LIMIT):
            made = _missing_directories(path.parent)
            created = bool(made) or not os.path.lexists(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = fsutil.open_lock_file(path)
            except fsutil.LinkRefused as exc:
                raise StateError(
                    f"{path}: the lock file {exc.strerror}; refusing to use it (remove it if it is not "
                    "reconciler's)"
                ) from None
            except FileNotFoundError:
                continue  # its directory was removed between the two (by a holder that left no state)
            except OSError as exc:
                raise StateError(f"{path}: cannot open the lock: {exc.strerror or exc}") from None
            if not wait_for_lock(functools.partial(_try_flock, fd), deadline):
                holder = _read_holder(path)
                os.close(fd)
                raise LockHeld.by(shown, holder, timeout)
            if _names(path, fd):
                return cls(path, fd, made, created, _ignore_in_git(path.parent) if made else None)
            os.close(fd)
        raise StateError(f"{path}: cannot take the lock: the file or its directory keeps being removed")

    def write_holder(self, info: LockInfo) -> None:
        """Write who holds the lock over the file's first line."""
        self._line = json.dumps(info.to_json()).encode() + b"\n"
        os.pwrite(self.fd, self._line, 0)

    def release(self, remove: bool) -> None:
        """Let go of the flock (closing the file), first removing the file and the directories made for it
        (`remove`: the holder left no state), or else blanking the holder's line."""
        try:
            if remove:
                self._remove()
            elif self._line:
                with contextlib.suppress(OSError):
                    os.pwrite(self.fd, b" " * (len(self._line) - 1) + b"\n", 0)
        finally:
            os.close(self.fd)  # closing releases the flock

    def _remove(self) -> None:
        """Remove the lock file (its flock still held), the `.gitignore` written for it and the directories made
        for it. Whoever was waiting on the removed file sees, once it has the flock, that the file is no longer the
        lock (`take`)."""
        with contextlib.suppress(OSError):
            if _names(self.path, self.fd):
                self.path.unlink()
                if self.ignore_file is not None:
                    self.ignore_file.unlink()
        for directory in self.made:  # the deepest first; one that holds anything else stays
            try:
                directory.rmdir()
            except OSError:
                break


def _ignore_in_git(directory: Path) -> Path | None:
    """Write `.gitignore` (`*`) in `directory`, made just now, when it is reconciler's own and has none yet; the
    file written, or None. Not being able to write it is no reason to stop a command."""
    if directory.name != OWN_DIRECTORY:
        return None
    ignore_file = directory / GITIGNORE
    try:
        fd = fsutil.create_exclusive(ignore_file, mode=0o644)
    except (
        OSError
    ):  # there already (written by whoever made the directory at the same moment), or not writable
        return None
    with contextlib.suppress(OSError):  # a full disk: what was written is still the directory's to remove
        fsutil.write_all(fd, GITIGNORE_TEXT)
    os.close(fd)
    return ignore_file


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _names(lock_path: Path, fd: int) -> bool:
    """Whether `lock_path` is (still) the file open as `fd`."""
    try:
        named = os.lstat(lock_path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _missing_directories(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, the deepest first."""
    missing: list[Path] = []
    while directory != directory.parent and not os.path.lexists(directory):
        missing.append(directory)
        directory = directory.parent
    return missing


def _read_holder(lock_path: Path) -> str:
    """Who holds the lock, from the first line of the lock file (its holder writes it there)."""
    try:
        first_line = (fsutil.read_no_follow(lock_path) or b"").split(b"\n", 1)[0]
        holder = json.loads(first_line)
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or not holder:
        return "another process (no details recorded)"
    return LockInfo.from_json(holder).describe()
