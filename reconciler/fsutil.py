"""Writing files without following links someone else planted.

A repository can commit a symbolic link where reconciler writes (`.reconciler/state.json.lock` pointing at a
file of the user's, say). Every file reconciler creates is therefore opened with `O_NOFOLLOW`; temporaries get
a unique name and `O_EXCL`, so an existing file or link is never written through; and a file is replaced by
renaming a temporary over it, which replaces a link rather than its target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets as random_tokens
import stat
from pathlib import Path

#: Flags of every open: never through a link, never inherited by a child process.
_SAFE = os.O_NOFOLLOW | os.O_CLOEXEC
#: What `open(..., O_NOFOLLOW)` fails with on a symbolic link (Linux gives ELOOP, FreeBSD EMLINK).
LINK_ERRNOS = frozenset((errno.ELOOP, errno.EMLINK))


class LinkRefused(OSError):
    """The path is a symbolic link (or not a regular file) and was not followed."""


def temporary_name(path: Path) -> Path:
    """A fresh, hidden name beside `path`: `.NAME.PID.RANDOM.tmp` (the pattern `.NAME.*.tmp` finds leftovers)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{random_tokens.token_hex(6)}.tmp")


def write_all(fd: int, data: bytes) -> None:
    """Write every byte or raise: a nearly full disk takes part of a write, then refuses the rest."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_atomically(path: Path, payload: bytes, mode: int = 0o600) -> None:
    """Make `path` hold `payload`: the old content or the new one survives a kill, never a mix.

    The payload goes to a new temporary file (unique name, `O_EXCL | O_NOFOLLOW`, `mode`), is fsynced, and is
    renamed over `path` (a link at `path` is replaced, its target untouched); then the directory is fsynced.
    On failure the temporary is removed and OSError names `path`. A path that names a directory by itself (`/`,
    `.`, `..`) is an OSError too, before anything is written.
    """
    if path.name in ("", ".."):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    temporary = temporary_name(path)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _SAFE, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask
            write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def create_exclusive(path: Path, flags: int = os.O_WRONLY, mode: int = 0o600) -> int:
    """Create `path`, which must not exist (not even as a link), and return its descriptor."""
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | _SAFE, mode)


def open_lock_file(path: Path) -> int:
    """Open (or create) a lock file for reading and writing, never through a link and never truncating it.

    Raises LinkRefused when `path` is a symbolic link, not a regular file, or a file with other hard links.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _SAFE, 0o600)
    except OSError as exc:
        if exc.errno in LINK_ERRNOS:
            raise LinkRefused(exc.errno, "is a symbolic link", str(path)) from None
        raise
    status = os.fstat(fd)
    problem = (
        "is not a regular file"  # a FIFO or a device planted under the lock's name
        if not stat.S_ISREG(status.st_mode)
        else "has other hard links"  # another file, which writing the holder would change
        if status.st_nlink > 1
        else None
    )
    if problem:
        os.close(fd)
        raise LinkRefused(errno.EINVAL, problem, str(path))
    return fd


def read_no_follow(path: Path) -> bytes | None:
    """The content of `path`, None if it does not exist; LinkRefused if it is a symbolic link."""
    try:
        fd = os.open(path, os.O_RDONLY | _SAFE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in LINK_ERRNOS:
            raise LinkRefused(exc.errno, "is a symbolic link", str(path)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
