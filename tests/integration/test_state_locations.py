"""A state location or an API URL is never shown with its password: in messages, plans, apply's lines and logs."""

from __future__ import annotations

import logging
import os
import re
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
        # The password ends at the last '@', whatever it holds ('/' is common in base64 passwords).
        (
            f"postgresql://reconciler:Ab3/{DB_SECRET}+z9Q==@127.0.0.1/db",
            "postgresql://reconciler:***@127.0.0.1/db",
        ),
        (f"postgresql://ops:a/b?c#d@{DB_SECRET}@db/x?schema=s", "postgresql://ops:***@db/x?schema=s"),
        (f"postgresql://ops:{DB_SECRET}/x@db", "postgresql://ops:***@db"),
        # Password parameters however spelled: any case, percent-escaped name or value, libpq's other keywords.
        (f"postgresql://db/x?PassWord={DB_SECRET}&schema=s", "postgresql://db/x?PassWord=***&schema=s"),
        (f"postgresql://db/x?pass%77ord={DB_SECRET}", "postgresql://db/x?pass%77ord=***"),
        (f"postgresql://db/x?%70ASSWORD={DB_SECRET}", "postgresql://db/x?%70ASSWORD=***"),
        (f"postgresql://db/x?password=%41{DB_SECRET}%2F", "postgresql://db/x?password=***"),
        (f"postgresql://db/x?password={DB_SECRET}#x&schema=s", "postgresql://db/x?password=***&schema=s"),
        (f"postgresql://db/x?oauth_client_secret={DB_SECRET}", "postgresql://db/x?oauth_client_secret=***"),
        (f"postgresql://db/x?scram_client_key={DB_SECRET}", "postgresql://db/x?scram_client_key=***"),
        (f"postgresql://db/x?SSLPassword={DB_SECRET}", "postgresql://db/x?SSLPassword=***"),
        ("postgresql://db/x?passfile=/home/u/.pgpass", "postgresql://db/x?passfile=/home/u/.pgpass"),
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


def test_redact_credentials_whatever_the_spelling() -> None:
    text = (
        f"state postgresql://ops:Ab3/{DB_SECRET}@db/x, then postgresql://db/x?pass%77ord={DB_SECRET}#y&a=b "
        f"and https://h/p?PASSWORD=%41{DB_SECRET} end"
    )
    assert redact_credentials(text) == (
        "state postgresql://ops:***@db/x, then postgresql://db/x?pass%77ord=***&a=b and https://h/p?PASSWORD=*** end"
    )


def test_url_passwords_lists_every_spelling() -> None:
    from reconciler.urls import url_passwords

    url = f"postgresql://ops:Ab/{DB_SECRET}@db/x?pass%77ord=%41{DB_SECRET}&sslpassword=s-{DB_SECRET}&user=u"
    assert set(url_passwords(url)) == {
        f"Ab/{DB_SECRET}",
        f"%41{DB_SECRET}",
        f"A{DB_SECRET}",
        f"s-{DB_SECRET}",
    }


def test_the_password_keywords_cover_libpq() -> None:
    """Every keyword the installed libpq marks as a password ('*') is redacted as one."""
    psycopg = pytest.importorskip("psycopg")
    from reconciler.urls import PASSWORD_KEYWORDS

    marked = {
        option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults() if option.dispchar == b"*"
    }
    assert "password" in marked and marked <= PASSWORD_KEYWORDS


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
    assert re.fullmatch(  # where it records, before the first request: server, database, schema, workspace
        r"Applying to http://127\.0\.0\.1:\d+/api/v1; state postgresql 127\.0\.0\.1:\d+, database \w+, "
        r"schema \w+, workspace test\.",
        applied.err.splitlines()[0],
    )
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
    from reconciler.secrets import Redactor

    record = logging.LogRecord(
        "x", logging.DEBUG, __file__, 1, "GET %s", (f"https://u:{DB_SECRET}@h/p",), None
    )
    RedactingFilter(Redactor()).filter(record)
    assert record.getMessage() == "GET https://u:***@h/p"


def test_libpq_text_never_carries_the_password(workdir) -> None:
    """The message of any database error has every form of the URL's password replaced."""
    backend = open_backend(f"postgresql://ops:{DB_SECRET}%21@127.0.0.1:1/x?sslpassword=ssl-{DB_SECRET}")
    error = RuntimeError(f'could not "{DB_SECRET}!"\n\tfor "ssl-{DB_SECRET}"  and {DB_SECRET}%21')
    message = backend.message_of(error)
    assert DB_SECRET not in message and "\n" not in message and "\t" not in message
    assert message == 'could not "***"; for "***" and ***'  # its lines joined as libpq's sentences are


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


# -- every spelling of a password in the state URL, through every command and output ---------------------------
def _spelled(url: str, spelling: str) -> str:
    """PG_URL's `postgresql://postgres@HOST/DB?...` with DB_SECRET given in `spelling`."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    if spelling.startswith("userinfo:"):
        password = spelling.removeprefix("userinfo:").replace("SECRET", DB_SECRET)
        return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
    parameter = spelling.replace("SECRET", DB_SECRET)
    return urlunsplit(parts._replace(query=f"{parameter}&{parts.query}"))


#: spelling -> whether libpq takes the URL (the test server trusts loopback: any password connects)
SPELLINGS = {
    "userinfo:SECRET": True,
    "userinfo:Ab3/SECRET+z9Q==": False,  # a '/': libpq would read 'Ab3' as the port
    "userinfo:p@ss@SECRET": False,  # the last '@' ends it; libpq would end it at the first
    "password=SECRET": True,
    "pass%77ord=SECRET": True,  # libpq decodes the name
    "%70assword=%41SECRET": True,  # and the value
    "sslpassword=SECRET": True,
    "PassWord=SECRET": False,  # libpq's names are case-sensitive: refused, and still not shown
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_a_state_password_in_any_spelling_is_never_shown(run, write, api, workdir, spelling: str) -> None:
    from tests.helpers import assert_no_secrets, fresh_postgres_state

    with fresh_postgres_state("spelled") as base:
        url = _spelled(base, spelling)
        write("a.yaml", fleet(2))
        outcomes = {
            "plan text": run("-v", "plan", "a.yaml", "--state", url),
            "plan markdown": run("-v", "plan", "a.yaml", "--state", url, "--format", "markdown"),
            "plan json": run("plan", "a.yaml", "--state", url, "--format", "json"),
            "apply": run("-v", "apply", "a.yaml", "--yes", "--state", url, "--report", "r.json"),
            "state list": run("state", "list", "--state", url),
            "state show": run("state", "show", "acc_0000", "--state", url),
        }
    codes = {name: outcome.code for name, outcome in outcomes.items()}
    if SPELLINGS[spelling]:
        assert set(codes.values()) == {0}, {name: o.err[-300:] for name, o in outcomes.items()}
        header = outcomes["plan markdown"].out
        # The comment's header names the state by kind and workspace only: no host, user or database at all.
        assert "against state PostgreSQL, workspace `spelled`" in header and "postgres@" not in header, header
        assert "; state postgresql://postgres" in outcomes["apply"].err
    else:
        assert set(codes.values()) == {1}, {name: o.err[-300:] for name, o in outcomes.items()}
        for outcome in outcomes.values():
            lines = [
                line
                for line in outcome.err.splitlines()
                if not re.match(r"\d\d:\d\d:\d\d\.\d+ [A-Z]+ ", line)
            ]
            assert len(lines) == 1 and "Traceback" not in outcome.err, outcome.err
    texts = {
        f"{name} {stream}": getattr(o, stream) for name, o in outcomes.items() for stream in ("out", "err")
    }
    assert_no_secrets(secrets=[DB_SECRET], texts=texts, files=workdir)


@pytest.mark.parametrize("spelling", ["userinfo:SECRET", "userinfo:Ab3/SECRET", "password=SECRET"])
def test_a_connection_error_never_shows_the_password(run, write, spelling: str) -> None:
    """A database that cannot be reached: libpq's text, and ours around it, name no password."""
    from tests.helpers import assert_no_secrets

    url = _spelled("postgresql://postgres@127.0.0.1:1/test?schema=s", spelling)
    write("a.yaml", fleet(1))
    outcomes = [run("-v", "plan", "a.yaml", "--state", url), run("state", "list", "--state", url)]
    assert [outcome.code for outcome in outcomes] == [1, 1]
    assert all("Traceback" not in outcome.err for outcome in outcomes)
    assert_no_secrets(secrets=[DB_SECRET], texts={str(i): o.out + o.err for i, o in enumerate(outcomes)})


@pytest.mark.parametrize(
    "userinfo",
    [f"user:Ab3/{DB_SECRET}+z9Q==@", f"user:p@{DB_SECRET}@", f"u:{DB_SECRET}?x#y@", f"{DB_SECRET}@"],
)
def test_an_api_url_with_a_password_in_any_spelling_is_refused_unshown(
    run, write, userinfo: str, monkeypatch
) -> None:
    from tests.helpers import assert_no_secrets

    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    write("a.yaml", fleet(1))
    result = run(
        "-v",
        "apply",
        "a.yaml",
        "--yes",
        "--state",
        "s.json",
        "--api-url",
        f"https://{userinfo}127.0.0.1:9/api/v1",
    )
    assert result.code == 1 and "--api-url must not hold a user or password" in result.err, result.err
    assert "Traceback" not in result.err
    assert_no_secrets(secrets=[DB_SECRET], texts={"out": result.out, "err": result.err})


def test_an_api_url_password_parameter_is_never_shown(run, write, server, workdir, monkeypatch) -> None:
    """`?password=` on the API URL is no user or password of the URL: it is sent, and shown nowhere."""
    from tests.helpers import assert_no_secrets

    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    write("a.yaml", fleet(1))
    for spelling in ("password", "pass%77ord", "PASSWORD"):
        result = run(
            "-v",
            "apply",
            "a.yaml",
            "--yes",
            "--state",
            "s.json",
            "--max-attempts",
            "1",
            "--report",
            "r.json",
            "--api-url",
            f"{server.url}?{spelling}={DB_SECRET}",
        )
        assert result.code in (0, 3) and "Traceback" not in result.err, result.err
        assert_no_secrets(secrets=[DB_SECRET], texts={"out": result.out, "err": result.err}, files=workdir)
