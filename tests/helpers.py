"""The test toolkit: builders of inputs, runners of the real code paths and waits, shared by every test module.

Fixtures live in conftest.py; everything here is a plain function or constant a test module imports.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit, urlunsplit

import pytest

from reconciler.applying import ApplyOptions
from reconciler.config import load_config
from reconciler.runs import (
    ApiAccess,
    ApplyOutcome,
    ApplyRequest,
    ApplyScope,
    SafetyBounds,
    StateAccess,
    apply_run,
)
from reconciler.state.file.backend import FileBackend

#: Planted as the proxy password and the API key: a test fails wherever either shows up.
SENTINEL_PASSWORD = "pw-SENTINEL-7f3a9c"
SENTINEL_KEY = "key-SENTINEL-51d2e8"

#: The secrets every test plants; none may appear in output, logs, state, plans or reports.
SENTINELS = (SENTINEL_PASSWORD, SENTINEL_KEY)

#: The PostgreSQL server the backend tests use, and a database of it that exists (RECONCILER_TEST_PG).
PG_SERVER_URL = os.environ.get("RECONCILER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: This run's own database on that server, made on first use (`postgres_unreachable_reason`) and dropped when
#: the run ends (conftest.py); the processes a test starts inherit its name. A state whose schema holds nothing
#: looks for the accounts in every other schema of its database, and runs of other checkouts on the same server
#: declare the same ids (acc_0000, ...): in a database of its own, a run sees only the schemas of its own tests.
RUN_DATABASE = os.environ.setdefault(
    "RECONCILER_TEST_PG_DATABASE", f"reconciler_test_{uuid.uuid4().hex[:12]}"
)
#: The PostgreSQL the backend tests use: this run's database; each test gets a fresh schema in it.
PG_URL = urlunsplit(urlsplit(PG_SERVER_URL)._replace(path="/" + RUN_DATABASE))


def fleet(count: int, prefix: str = "acc_", extra: str = "") -> str:
    """A config of `count` managed-proxy accounts `{prefix}0000`..., one per line (line 3 + index)."""
    lines = ["version: 1", "accounts:"]
    lines += [f"  {prefix}{i:04d}: {{country: US, ip: 203.0.113.{i % 250 + 1}{extra}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def modules_after(workdir: Path, *commands: list[str]) -> set[str]:
    """The modules a fresh process holds after running each `reconciler` command in turn, in `workdir` with this
    process's environment, less coverage's (what coverage imports to measure the process is not the CLI's). Exit
    codes are not kept: a test asserts what the commands did by their effects."""
    listed = workdir / "modules.txt"
    probe = (
        "import json, sys\nfrom reconciler.cli import main\n"
        "for args in json.loads(sys.argv[2]):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "open(sys.argv[1], 'w').write('\\n'.join(sorted(sys.modules)))\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe, str(listed), json.dumps(commands)],
        cwd=workdir,
        env={name: value for name, value in os.environ.items() if not name.startswith("COVERAGE_PROCESS_")},
        capture_output=True,
        check=True,
        timeout=120,
    )
    return set(listed.read_text().split())


def run_engine(workdir: Path, server: Any, config: str, **options: Any) -> tuple[ApplyOutcome, FileBackend]:
    """Apply `config` to the sandbox `server` through the application function, with fast backoff and polls
    and no safety bound; the file state lives in `workdir`."""
    desired = load_config(config, {"PROXY_PASSWORD": SENTINEL_PASSWORD})
    backend = FileBackend(workdir / "state.json")
    options.setdefault("sync_poll_interval", 0.01)
    request = ApplyRequest(
        scope=ApplyScope(desired),
        state=StateAccess(backend),
        api=ApiAccess(server.url, SENTINEL_KEY),
        options=ApplyOptions(**{"backoff_base": 0.01, "backoff_cap": 0.05, **options}),
        safety=SafetyBounds(force=True),
    )
    return apply_run(request), backend


def start_apply(
    workdir: Path,
    server: Any,
    *args: str,
    state: str | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """`reconciler apply a.yaml --yes [--state STATE] ARGS` as a real process against the sandbox `server`.

    The process inherits the test's environment plus the API key and URL and `env`. Its output is discarded
    unless `stdout`/`stderr` are given; any other keyword (`text`, `stdin`) goes to Popen.
    """
    environment = {
        **os.environ,
        "POSTPRESS_API_KEY": SENTINEL_KEY,
        "POSTPRESS_API_URL": server.url,
        **(env or {}),
    }
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes"]
    if state is not None:
        command += ["--state", state]
    return subprocess.Popen([*command, *args], cwd=workdir, env=environment, **popen)


def wait_until(
    condition: Callable[[], object],
    timeout: float = 30.0,
    what: str = "the condition",
    *,
    stop_if_exited: subprocess.Popen[Any] | None = None,
    fail_on_timeout: bool = True,
    interval: float = 0.01,
) -> bool:
    """Poll `condition` every `interval` seconds until it is true; return True then.

    Waiting also ends, returning False, when the process `stop_if_exited` has ended, and after `timeout`
    seconds: that fails the test unless `fail_on_timeout` is False (then the test proceeds and its own
    assertions judge what happened).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if stop_if_exited is not None and stop_if_exited.poll() is not None:
            return False
        if time.monotonic() > deadline:
            if fail_on_timeout:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            return False
        time.sleep(interval)
    return True


# -- the secrets scanner ---------------------------------------------------------------------------------------

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([\"\\/bfnrt])")
_JSON_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescaped(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return _JSON_SIMPLE.get(match.group(2), match.group(2))

    return _JSON_ESCAPE.sub(one, text)


def _base64_decoded(text: str) -> Iterator[str]:
    """Every run of base64 characters decoded at each of the four alignments it may have started at."""
    for run in _BASE64_RUN.findall(text):
        standard = run.replace("-", "+").replace("_", "/")
        for offset in range(4):
            chunk = standard[offset:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            if chunk:
                yield base64.b64decode(chunk).decode("utf-8", "replace")


def _hex_decoded(text: str) -> Iterator[str]:
    """Every run of 16 or more hex digits decoded at both alignments."""
    for run in _HEX_RUN.findall(text):
        for offset in (0, 1):
            chunk = run[offset:]
            yield bytes.fromhex(chunk[: len(chunk) // 2 * 2]).decode("utf-8", "replace")


def _views(text: str) -> Iterator[tuple[str, str]]:
    """`text` as it would read once decoded in each way an echoed secret could have been encoded."""
    plain = {
        "raw": text,
        "URL-decoded": unquote(text),
        "form-decoded": unquote_plus(text),
        "HTML-unescaped": html.unescape(text),
        "JSON-unescaped": _json_unescaped(text),
    }
    yield from plain.items()
    decoded = list(_base64_decoded(text))
    yield "base64-decoded", "\n".join(decoded)
    yield "base64-decoded, JSON-unescaped", "\n".join(map(_json_unescaped, decoded))
    hexed = list(_hex_decoded(text))
    yield "hex-decoded", "\n".join(hexed)
    yield "hex-decoded, JSON-unescaped", "\n".join(map(_json_unescaped, hexed))


#: A secret this long or longer must not show even in part: no run of this many of its characters, in any case.
PIECE = 8


def secret_pieces(secret: str) -> list[str]:
    """What of `secret` must never show, case-folded: every run of PIECE characters of it, or all of it when
    shorter."""
    folded = secret.lower()
    if len(folded) < PIECE:
        return [folded]
    return sorted({folded[start : start + PIECE] for start in range(len(folded) - PIECE + 1)})


def _blob_text(blob: str | bytes) -> str:
    return blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob


def _postgres_rows(state_url: str) -> dict[str, str]:
    """Every row of every table in the schema a `postgresql://...?schema=S` state uses, as text."""
    import psycopg

    schema = parse_qs(urlsplit(state_url).query)["schema"][0]
    with psycopg.connect(PG_URL) as connection:
        tables = connection.execute(
            "select table_name from information_schema.tables where table_schema = %s", (schema,)
        ).fetchall()
        return {
            f"PostgreSQL {schema}.{table}": repr(
                connection.execute(f'select * from "{schema}"."{table}"').fetchall()
            )
            for (table,) in tables
        }


def written_files(root: Path, skip: Iterable[Path] = ()) -> dict[str, bytes]:
    """Every file under `root` (recursively), but those in `skip` (inputs that hold secrets on purpose)."""
    skipped = {path.resolve() for path in skip}
    return {
        str(path): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.resolve() not in skipped
    }


def assert_no_secrets(
    *places: str | bytes | Path,
    secrets: Iterable[str] = SENTINELS,
    texts: Mapping[str, str | bytes] | None = None,
    files: Path | None = None,
    skip: Iterable[Path] = (),
    postgres: str | None = None,
) -> None:
    """Fail if one of `secrets` appears anywhere given: in `places` (texts, or files read whole), in the named
    `texts`, in every file under `files` (but `skip`), or in every PostgreSQL row of the state `postgres`. Each is
    read raw, URL-decoded, HTML- and JSON-unescaped, and base64- and hex-decoded at every alignment; any run of
    PIECE characters of a secret counts, in any case (a shorter secret counts whole). A failure names the place
    and the decoding, never the secret."""
    blobs: dict[str, str | bytes] = {}
    for index, place in enumerate(places):
        if isinstance(place, Path):
            blobs[str(place)] = place.read_bytes()
        else:
            blobs[f"text #{index + 1}"] = place
    blobs.update(texts or {})
    if files is not None:
        blobs.update(written_files(files, skip))
    if postgres is not None and postgres.startswith(("postgresql://", "postgres://")):
        blobs.update(_postgres_rows(postgres))
    wanted = [secret_pieces(secret) for secret in secrets if secret]
    for name, blob in blobs.items():
        for view, text in _views(_blob_text(blob)):
            folded = text.lower()
            for number, pieces in enumerate(wanted, 1):
                for piece in pieces:
                    at = folded.find(piece)
                    assert at < 0, (
                        f"secret #{number} (a piece of {len(piece)} characters, any case) in {name} ({view}) at "
                        f"offset {at}, after {text[max(0, at - 200) : at]!r}"
                    )


#: The run's database, once this process made it (it drops it at the end: `drop_run_database`).
_MADE: list[str] = []


def postgres_unreachable_reason() -> str | None:
    """Why PostgreSQL at PG_URL cannot be reached (one line), or None when it answers; the run's database is
    made first where it does not exist yet (the role of RECONCILER_TEST_PG needs CREATEDB)."""
    import psycopg

    try:
        with psycopg.connect(PG_SERVER_URL, autocommit=True, connect_timeout=3) as connection:
            exists = connection.execute("select 1 from pg_database where datname = %s", (RUN_DATABASE,))
            if exists.fetchone() is None:
                connection.execute(f'create database "{RUN_DATABASE}"')
                _MADE.append(RUN_DATABASE)
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.errors.DuplicateDatabase:
        return None  # made at the same moment by a process of this run
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def drop_run_database() -> None:
    """Drop the run's database, when this process made it (connections a killed process left included)."""
    if not _MADE:
        return
    import psycopg

    try:
        with psycopg.connect(PG_SERVER_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'drop database if exists "{RUN_DATABASE}" with (force)')
    except psycopg.Error as exc:
        print(f"could not drop the test run's database {RUN_DATABASE}: {' '.join(str(exc).split())}")
    _MADE.clear()


@contextmanager
def fresh_postgres_state(workspace: str, schema: str | None = None) -> Iterator[str]:
    """A `postgresql://` state URL in a schema of its own (`schema`, else a new name), dropped afterwards.

    Unreachable PostgreSQL skips the test with the reason, except under CI=true where it fails it.
    """
    problem = postgres_unreachable_reason()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {problem}")
    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}schema={schema}&workspace={workspace}"
    finally:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute(f'drop schema if exists "{schema}" cascade')


def self_signed_certificate(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate and its key (PEM files in `directory`) for `name`, valid for a day; an
    IP address as `name` is also its subjectAltName. Skips the test when openssl is not installed."""
    import ipaddress
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    command += ["-days", "1", "-subj", f"/CN={name}"]
    try:
        ipaddress.ip_address(name)
        command += ["-addext", f"subjectAltName=IP:{name}"]
    except ValueError:
        pass
    subprocess.run(command, check=True, capture_output=True)
    return cert, key
