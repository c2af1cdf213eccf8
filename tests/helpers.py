"""The test toolkit: builders of inputs and runners of the real code paths, shared by every test module."""

from __future__ import annotations

import base64
import html
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from reconciler.applying import ApplyOptions
from reconciler.config import load_config
from reconciler.runs import ApplyOutcome, ApplyRequest, apply_run
from reconciler.state.file import FileBackend
from tests.conftest import PG_URL, SENTINEL_KEY, SENTINEL_PASSWORD


def fleet(count: int, prefix: str = "acc_", extra: str = "") -> str:
    """A config of `count` managed-proxy accounts `{prefix}0000`..., one per line (line 3 + index)."""
    lines = ["version: 1", "accounts:"]
    lines += [f"  {prefix}{i:04d}: {{country: US, ip: 203.0.113.{i % 250 + 1}{extra}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def run_engine(workdir: Path, server: Any, config: str, **options: Any) -> tuple[ApplyOutcome, FileBackend]:
    """Apply `config` to the sandbox `server` through the application function, with fast backoff and polls
    and no safety bound; the file state lives in `workdir`."""
    desired = load_config(config, {"PROXY_PASSWORD": SENTINEL_PASSWORD})
    backend = FileBackend(workdir / "state.json")
    options.setdefault("sync_poll_interval", 0.01)
    request = ApplyRequest(
        desired=desired,
        backend=backend,
        api_url=server.url,
        api_key=SENTINEL_KEY,
        options=ApplyOptions(backoff_base=0.01, backoff_cap=0.05, **options),
        force=True,
    )
    return apply_run(request), backend


def start_apply(workdir: Path, server: Any, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`reconciler apply a.yaml --yes ARGS` as a real process against the sandbox `server` (output discarded
    unless `stdout`/`stderr` are given)."""
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": server.url}
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes", *args]
    return subprocess.Popen(command, cwd=workdir, env=env, **popen)


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll `condition` every 10 ms until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


# -- the secrets scanner ---------------------------------------------------------------------------------------

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}")
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
    for decoded in _base64_decoded(text):
        yield "base64-decoded", decoded
        yield "base64-decoded, JSON-unescaped", _json_unescaped(decoded)


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
    secrets: Iterable[str],
    texts: Mapping[str, str | bytes] | None = None,
    *,
    files: Path | None = None,
    skip: Iterable[Path] = (),
    postgres: str | None = None,
) -> None:
    """No secret appears in any text, in any file under `files` (but `skip`), or in any PostgreSQL row of the
    state `postgres`: neither raw, nor URL-encoded, HTML- or JSON-escaped, nor base64-encoded at any alignment,
    nor cut in half (a first half of at least 8 characters).

    `texts` names each blob (an output, a captured journal) so that a failure says where the secret was.
    """
    blobs: dict[str, str | bytes] = dict(texts or {})
    if files is not None:
        blobs.update(written_files(files, skip))
    if postgres is not None and postgres.startswith(("postgresql://", "postgres://")):
        blobs.update(_postgres_rows(postgres))
    secrets = [secret for secret in secrets if secret]
    for name, blob in blobs.items():
        for view, text in _views(_blob_text(blob)):
            for secret in secrets:
                half = secret[: max(8, len(secret) // 2)]
                where = f"{secret!r} in {name} ({view})"
                assert secret not in text, where
                assert half not in text, f"the first half of {where}"
