"""Reads that end: a configuration, a state file or a saved plan that never ends (`/dev/zero`, `yes |`, a link
committed in a pull request) is one line and exit 1 within seconds, with memory bounded whatever the input.

The commands run as real processes under an address-space limit (RLIMIT_AS): an unbounded read there is a
MemoryError and a traceback within a second or two, and a bounded one fits.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler import fsutil

GIB = 1 << 30
CONFIG_LIMIT = fsutil.size_text(fsutil.MAX_CONFIG_BYTES)
RECORD_LIMIT = fsutil.size_text(fsutil.MAX_RECORD_BYTES)
VALID = b"version: 1\naccounts:\n  a: {country: US}\n"


def limited(address_space: int):
    def apply_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return apply_limit


def reconciler(
    workdir: Path, *args: str, stdin: int | None = None, address_space: int = GIB, timeout: float = 60
) -> tuple[int, str, float]:
    """Run `reconciler ARGS` in `workdir` under an address-space limit: (exit code, stderr, seconds taken)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=workdir,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        preexec_fn=limited(address_space),
        timeout=timeout,
        env={**os.environ, "POSTPRESS_API_KEY": "k", "POSTPRESS_API_URL": "http://127.0.0.1:9/api/v1"},
    )
    return done.returncode, done.stderr.decode(errors="replace"), time.monotonic() - started


def assert_one_line(code: int, err: str, seconds: float, *expected: str) -> None:
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    assert code == 1, (code, err[-2000:])
    assert len(err.splitlines()) == 1, err[-2000:]
    for text in expected:
        assert text in err, err
    assert seconds < 20, seconds  # about a second on this machine: reading the limit from /dev/zero


# -- configurations ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_dev_zero_as_the_configuration(workdir, command) -> None:
    code, err, seconds = reconciler(workdir, command, "/dev/zero", *(["--yes"] if command == "apply" else []))
    assert_one_line(code, err, seconds, f"/dev/zero: the configuration is larger than {CONFIG_LIMIT}")


def test_a_committed_link_to_dev_zero_named_directly(workdir) -> None:
    (workdir / "accounts.yaml").symlink_to("/dev/zero")
    for args in (["validate", "accounts.yaml"], ["plan"], ["import"]):
        code, err, seconds = reconciler(workdir, *args)
        assert_one_line(code, err, seconds, f"accounts.yaml: the configuration is larger than {CONFIG_LIMIT}")


def test_yes_piped_into_validate(workdir) -> None:
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        assert yes.stdout is not None
        code, err, seconds = reconciler(workdir, "validate", "-", stdin=yes.stdout.fileno())
    finally:
        yes.kill()
        yes.wait()
        assert yes.stdout is not None
        yes.stdout.close()
    assert_one_line(code, err, seconds, f"<stdin>: the configuration is larger than {CONFIG_LIMIT}")


def test_a_sparse_file_past_the_limit_is_refused_unread(workdir) -> None:
    with open(workdir / "huge.yaml", "wb") as huge:
        huge.truncate(1 << 40)  # a terabyte that takes no room
    code, err, seconds = reconciler(workdir, "validate", "huge.yaml", address_space=GIB)
    assert_one_line(code, err, seconds, f"huge.yaml: the configuration is larger than {CONFIG_LIMIT}")
    assert seconds < 10


def test_a_directory_with_a_link_to_dev_zero_and_a_fifo(workdir) -> None:
    """Entries of a directory must be regular files: refused before a byte is read, each on its own line."""
    conf = workdir / "conf"
    conf.mkdir()
    (conf / "a.yaml").write_bytes(VALID)
    (conf / "b.yaml").symlink_to("/dev/zero")
    os.mkfifo(conf / "c.yaml")  # no writer: a read would wait for ever
    for command in ("validate", "plan"):
        code, err, seconds = reconciler(workdir, command, "conf", timeout=30)
        assert code == 1 and "Traceback" not in err, err
        assert "conf/b.yaml:1:1: cannot read the file: not a regular file" in err
        assert "conf/c.yaml:1:1: cannot read the file: not a regular file" in err
        assert "a.yaml" not in err and seconds < 20


def test_the_files_of_a_directory_count_together(workdir) -> None:
    conf = workdir / "conf"
    conf.mkdir()
    half = fsutil.MAX_CONFIG_BYTES // 2 + 1
    for name in ("a.yaml", "b.yaml"):
        with open(conf / name, "wb") as file:
            file.truncate(half)  # each under the limit, both over it
    code, err, seconds = reconciler(workdir, "validate", "conf")
    assert_one_line(
        code,
        err,
        seconds,
        f"conf/b.yaml: the configuration is larger than {CONFIG_LIMIT} (the files of conf together)",
    )


def test_a_configuration_at_the_limit_is_read(workdir) -> None:
    """Not a byte less than the documented limit is refused (the file fails later, as YAML: it is comments)."""
    line = b"#" + b"c" * 1022 + b"\n"
    body = VALID + line * ((fsutil.MAX_CONFIG_BYTES - len(VALID)) // len(line))
    body += b"#" * (fsutil.MAX_CONFIG_BYTES - len(body))
    assert len(body) == fsutil.MAX_CONFIG_BYTES
    (workdir / "a.yaml").write_bytes(body)
    code, err, _ = reconciler(workdir, "validate", "a.yaml", address_space=8 * GIB, timeout=300)
    assert "larger than" not in err and "Traceback" not in err, err[-2000:]
    assert code == 0, err[-2000:]
    (workdir / "a.yaml").write_bytes(body + b"\n")
    code, err, seconds = reconciler(workdir, "validate", "a.yaml")
    assert_one_line(code, err, seconds, "larger than")


# -- state files and saved plans -----------------------------------------------------------------------------------
def test_a_state_that_is_not_a_regular_file(workdir) -> None:
    code, err, seconds = reconciler(workdir, "state", "list", "--state", "/dev/zero")
    assert_one_line(code, err, seconds, "/dev/zero: cannot read the state: not a regular file")


def test_a_state_file_past_the_limit_is_refused_unread(workdir) -> None:
    (workdir / "state").mkdir()
    with open(workdir / "state" / "state.json", "wb") as huge:
        huge.truncate(fsutil.MAX_RECORD_BYTES + 1)
    code, err, seconds = reconciler(workdir, "state", "list", "--state", "state/state.json")
    assert_one_line(code, err, seconds, f"cannot read the state: larger than {RECORD_LIMIT}")


@pytest.mark.parametrize("source", ["/dev/zero", "link", "sparse"])
def test_a_saved_plan_that_never_ends(workdir, source) -> None:
    if source == "link":
        (workdir / "plan.json").symlink_to("/dev/zero")
    elif source == "sparse":
        with open(workdir / "plan.json", "wb") as huge:
            huge.truncate(1 << 40)
    path = "/dev/zero" if source == "/dev/zero" else "plan.json"
    for args in (["show", path], ["apply", "--plan", path, "--yes"]):
        code, err, seconds = reconciler(workdir, *args, address_space=2 * GIB)
        assert_one_line(code, err, seconds, f"{path}: cannot read the saved plan (larger than {RECORD_LIMIT}")


# -- the reader itself ---------------------------------------------------------------------------------------------
def test_read_at_most_stops_one_byte_past_the_limit() -> None:
    class Endless(io.RawIOBase):
        asked = 0

        def readinto(self, buffer) -> int:  # type: ignore[override]
            self.asked += len(buffer)
            buffer[:] = b"y" * len(buffer)
            return len(buffer)

        def readable(self) -> bool:
            return True

    stream = Endless()
    with pytest.raises(fsutil.TooLarge) as raised:
        fsutil.read_at_most(stream, 10 << 20, "<endless>")
    assert stream.asked == (10 << 20) + 1
    assert str(raised.value) == "[Errno 27] larger than 10 MiB, the most reconciler reads: '<endless>'"
    assert fsutil.read_at_most(io.BytesIO(b"x" * 10), 10) == b"x" * 10
    with pytest.raises(fsutil.TooLarge):
        fsutil.read_at_most(io.BytesIO(b"x" * 11), 10)


@pytest.mark.parametrize(
    ("size", "text"),
    [(128 << 20, "128 MiB"), (512 << 20, "512 MiB"), (1 << 30, "1 GiB"), (1000, "1,000 bytes")],
)
def test_size_text(size, text) -> None:
    assert fsutil.size_text(size) == text
