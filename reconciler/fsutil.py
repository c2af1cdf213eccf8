"""Writing files without following links someone else planted; reading files without reading without end.

A repository can commit a symbolic link where reconciler writes (`.reconciler/state.json.lock` pointing at a
file of the user's, say). Every file reconciler creates is therefore opened with `O_NOFOLLOW`; temporaries get
a unique name and `O_EXCL`, so an existing file or link is never written through; and a file is replaced by
renaming a temporary over it, which replaces a link rather than its target.

A file reconciler reads may be anything: a link to `/dev/zero`, a pipe from `yes`, a sparse file of a terabyte.
Every read of a whole file is therefore bounded (`read_at_most`): it reads a chunk at a time and stops at the
first byte past its limit, so memory never grows past the limit whatever the input.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets as random_tokens
import stat
from pathlib import Path
from typing import Protocol

#: Flags of every open: never through a link, never inherited by a child process.
_SAFE = os.O_NOFOLLOW | os.O_CLOEXEC
#: What `open(..., O_NOFOLLOW)` fails with on a symbolic link (Linux gives ELOOP, FreeBSD EMLINK).
LINK_ERRNOS = frozenset((errno.ELOOP, errno.EMLINK))

#: The largest configuration read (all of a CONFIG's files together; docs/configuration.md). A configuration of
#: 100,000 accounts is about 15 MB; loading one costs about 33 times its size in memory (BENCHMARKS.md), so
#: 128 MiB (some 850,000 such accounts) is about the most a 7 GB CI runner can load at all.
MAX_CONFIG_BYTES = 128 << 20
#: The largest state file, journal or saved plan read: files reconciler writes itself, about 300 bytes per
#: account (29 MB and 33 MB at 100,000 accounts), so 512 MiB holds the state or the plan of any configuration
#: under MAX_CONFIG_BYTES about twice over.
MAX_RECORD_BYTES = 512 << 20
#: How much one read asks for.
_CHUNK = 1 << 20


class Readable(Protocol):
    """A binary stream: a file object, standard input's buffer, a raw descriptor's FileIO."""

    def read(self, size: int = -1, /) -> bytes | None: ...


class TooLarge(OSError):
    """A file or stream holds more than the limit its reader allows (it was not read past it)."""

    def __init__(self, limit: int, filename: str | None = None) -> None:
        super().__init__(errno.EFBIG, f"larger than {size_text(limit)}, the most reconciler reads", filename)
        self.limit = limit


def size_text(size: int) -> str:
    """`128 MiB`, `1 GiB`, `1,024 bytes`: a limit as the docs write it."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift:,} {unit}"
    return f"{size:,} bytes"


def read_at_most(stream: Readable, limit: int, filename: str | None = None, expected: int = 0) -> bytes:
    """Everything `stream` holds; TooLarge as soon as it holds more than `limit` bytes, having read no more than
    `limit + 1` of them (a stream that never ends, `/dev/zero` or `yes |`, costs at most `limit` of memory).

    `expected`: the size a regular file says it has, read in one go (and one more read to see its end)."""
    chunks: list[bytes] = []
    size = 0
    want = expected + 1 if expected else _CHUNK
    while True:
        chunk = stream.read(min(want, limit + 1 - size))
        want = _CHUNK
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit, filename)
        chunks.append(chunk)


def read_file_at_most(path: Path | str, limit: int, flags: int = 0, regular_only: bool = False) -> bytes:
    """The content of `path` (read_at_most); a regular file larger than `limit` is refused before it is read.

    `regular_only`: anything but a regular file (a FIFO, a device, a socket) is refused before it is read, with
    OSError(EINVAL, "not a regular file"); the open does not wait for a FIFO's writer. Otherwise a FIFO or a
    device is read like a file, up to the limit. `flags` are added to the open's (`O_NOFOLLOW`, say)."""
    flags |= os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if regular_only else 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb", buffering=0) as stream:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            if regular_only:
                raise OSError(errno.EINVAL, "not a regular file", str(path))
        elif status.st_size > limit:
            raise TooLarge(limit, str(path))
        return read_at_most(stream, limit, str(path), status.st_size)


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


def read_no_follow(path: Path, limit: int = MAX_RECORD_BYTES) -> bytes | None:
    """The content of the regular file `path` (one reconciler wrote), None if it does not exist; LinkRefused if
    it is a symbolic link; OSError if it is not a regular file (a FIFO, /dev/zero); TooLarge past `limit` bytes."""
    try:
        return read_file_at_most(path, limit, _SAFE, regular_only=True)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in LINK_ERRNOS:
            raise LinkRefused(exc.errno, "is a symbolic link", str(path)) from None
        raise


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
