"""A state location or an API URL is never shown with its password: in messages, plans, apply's lines and logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from reconciler.state import display_location, open_backend
from reconciler.urls import redact_credentials
from tests.helpers import SENTINEL_KEY, fleet

DB_SECRET = "dbpw-SENTINEL-93c1"


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (".reconciler/state.json", ".reconciler/state.json"),
        ("file:///srv/state.json", "file:///srv/state.json"),
        ("postgresql://ops@db:5432/x?schema=s", "postgresql://ops@db:5432/x?schema=s"),
        (f"postgresql://ops:{DB_SECRET}@db:5432/x?schema=s", "postgresql://ops:***@db:5432/x?schema=s"),
        (f"postgres://ops:{DB_SECRET}@db/x", "postgres://ops:***@db/x"),
        (f"postgresql://ops:{DB_SECRET}@db", "postgresql://ops:***@db"),
        (f"postgresql://ops:p@ss{DB_SECRET}@db/x", "postgresql://ops:***@db/x"),  # an unencoded '@'
        (f"postgresql://ops:{DB_SECRET}?x@db/x", "postgresql://ops:***@db/x"),  # an unencoded '?'
        (f"postgresql://db/x?password={DB_SECRET}&schema=s", "postgresql://db/x?password=***&schema=s"),
        (
            f"postgresql://db/x?sslmode=require&sslpassword={DB_SECRET}",
            "postgresql://db/x?sslmode=require&sslpassword=***",
        ),
        # A malformed escape anywhere: which part is the password is a guess, so no userinfo at all.
        (f"postgresql://ops:{DB_SECRET}%zz@db/x", "postgresql://db/x"),
        (f"postgresql://ops:{DB_SECRET}@db/x%g1", "postgresql://db/x%g1"),
    ],
)
def test_display_location(location: str, shown: str) -> None:
    assert display_location(location) == shown


def test_redact_credentials_in_running_text() -> None:
    text = (
        f"API https://u:{DB_SECRET}@api.example/api/v1, "
        f"state postgresql://ops:{DB_SECRET}@db/x?password={DB_SECRET} ok"
    )
    assert (
        redact_credentials(text)
        == "API https://u:***@api.example/api/v1, state postgresql://ops:***@db/x?password=*** ok"
    )
    assert redact_credentials("GET /accounts/a:b@c -> 200") == "GET /accounts/a:b@c -> 200"


def test_every_backend_describes_itself_without_the_password(workdir) -> None:
    backend = open_backend(f"postgresql://ops:{DB_SECRET}@127.0.0.1:1/x?schema=s&workspace=w")
    assert backend.describe() == "postgresql://ops:***@127.0.0.1:1/x?schema=s&workspace=w"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{DB_SECRET}%zz@127.0.0.1:1/test",  # libpq's message would quote the password
        f"postgresql://postgres:{DB_SECRET[:4]}@{DB_SECRET[4:]}@127.0.0.1:1/test",  # libpq would cut it at '@'
        f"postgresql://postgres:{DB_SECRET}@[::1/test",
    ],
)
def test_a_malformed_url_is_one_line_without_its_userinfo(run, write, url: str) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", url)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
    assert "is malformed" in result.err
    for part in (DB_SECRET, DB_SECRET[:4], DB_SECRET[4:]):
        assert part not in result.err


def _with_password(url: str) -> str:
    """PG_URL with DB_SECRET as its password (the test server trusts loopback, so any password connects)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{DB_SECRET}@{host}"))


def test_plan_header_and_apply_line_show_the_location_redacted(run, write, api, state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    url = _with_password(state_url)
    write("a.yaml", fleet(2))
    planned = run("plan", "a.yaml", "--state", url, "--format", "markdown")
    assert planned.code == 0, planned.err
    assert "against state PostgreSQL, workspace `test`" in planned.out  # a comment names no server or user
    assert "postgresql://" not in planned.out and DB_SECRET not in planned.out + planned.err
    applied = run("apply", "a.yaml", "--yes", "--state", url)
    assert applied.code == 0, applied.err
    assert "; state postgresql://postgres:***@" in applied.err
    assert DB_SECRET not in applied.out + applied.err
    assert run("state", "list", "--state", url).code == 0


def test_verbose_logs_show_no_url_password(write, server, workdir) -> None:
    """An API URL with a user and password is refused (the key travels in X-API-KEY), without showing them,
    even under `-v`."""
    write("a.yaml", fleet(2))
    parts = urlsplit(server.url)
    api_url = urlunsplit(parts._replace(netloc=f"user:{DB_SECRET}@{parts.netloc}"))
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": api_url}
    env.pop("RECONCILER_STATE", None)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "-v", "apply", "a.yaml", "--yes", "--state", "s.json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "--api-url must not hold a user or password" in result.stderr
    assert DB_SECRET not in result.stdout + result.stderr


def test_verbose_logs_redact_a_url_password(workdir) -> None:
    """The log filter hides the password of any URL a log line carries (a library's, say)."""
    from reconciler.logs import RedactingFilter

    record = logging.LogRecord(
        "x", logging.DEBUG, __file__, 1, "GET %s", (f"https://u:{DB_SECRET}@h/p",), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "GET https://u:***@h/p"


def test_libpq_text_never_carries_the_password(workdir) -> None:
    """The message of any database error has every form of the URL's password replaced."""
    backend = open_backend(f"postgresql://ops:{DB_SECRET}%21@127.0.0.1:1/x?sslpassword=ssl-{DB_SECRET}")
    error = RuntimeError(f'could not "{DB_SECRET}!"\n\tfor "ssl-{DB_SECRET}"  and {DB_SECRET}%21')
    message = backend.message_of(error)
    assert DB_SECRET not in message and "\n" not in message and "\t" not in message
    assert message == 'could not "***" for "***" and ***'


def test_the_sandbox_note_only_when_the_default_state_is_empty_beside_a_sandbox_state(
    tmp_path, monkeypatch
) -> None:
    from reconciler.state import DEFAULT_STATE, SANDBOX_STATE, sandbox_state_note

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".reconciler").mkdir()
    assert sandbox_state_note(DEFAULT_STATE) is None  # no sandbox state either
    (tmp_path / SANDBOX_STATE).write_text("{}")
    assert sandbox_state_note(DEFAULT_STATE) is not None
    assert sandbox_state_note(SANDBOX_STATE) is None and sandbox_state_note("elsewhere.json") is None
    (tmp_path / (DEFAULT_STATE + ".journal")).write_text(
        ""
    )  # a first apply cut short still recorded something
    assert sandbox_state_note(DEFAULT_STATE) is None
    (tmp_path / (DEFAULT_STATE + ".journal")).unlink()
    (tmp_path / DEFAULT_STATE).write_text("{}")
    assert sandbox_state_note(DEFAULT_STATE) is None
