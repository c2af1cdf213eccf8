"""One behaviour suite for every state backend (file and PostgreSQL)."""

from __future__ import annotations

import pytest

from reconciler.errors import LockHeld
from reconciler.install import extra_command
from reconciler.state import events as recording
from reconciler.state import open_backend
from tests.helpers import (
    PG_URL,
    SENTINEL_PASSWORD,
    assert_no_secrets,
    fleet,
    modules_after,
    start_apply,
    wait_until,
)


def test_apply_plan_state_commands(run, write, api, state_url) -> None:
    write("a.yaml", fleet(5))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    assert len(run("state", "list", "--state", state_url).out.splitlines()) == 5
    assert run("state", "show", "acc_0001", "--state", state_url).json["settings"] == {
        "country": "US",
        "ip": "203.0.113.2",
    }
    assert run("state", "forget", "acc_0001", "--state", state_url).code == 0
    plan = run("plan", "a.yaml", "--state", state_url, "--format", "json").json
    assert [(c["account_id"], c["action"]) for c in plan["changes"]] == [("acc_0001", "create")]


def test_serial_lineage_and_recording(state_url) -> None:
    backend = open_backend(state_url)
    assert not backend.read().exists
    with backend.lock():
        recorded, journal = backend.open_journal(salt="s")
        lineage = recorded.lineage
        journal.append(recording.applied("a", {"country": "US"}, "LINKEDIN"))
        journal.append(recording.failed("b", {"operation": "patch", "error_type": "errors/proxy_error"}))
        journal.append(recording.resynced("a", 3))
        journal.close()
    snapshot = backend.read()
    assert (snapshot.lineage, snapshot.serial, snapshot.salt) == (lineage, 1, "s")
    assert (
        snapshot.accounts["a"].settings == {"country": "US"} and snapshot.accounts["a"].resync_generation == 3
    )
    assert snapshot.accounts["b"].settings is None and snapshot.accounts["b"].last_failure["error_type"]
    with backend.lock():
        recorded, journal = backend.open_journal()
        journal.append(recording.forgotten("b"))
        journal.close()
    assert set(backend.read().accounts) == {"a"} and backend.read().serial == 2


def test_reading_some_accounts_gives_their_records_as_a_whole_read_does(state_url) -> None:
    """`read_accounts` (and the other partial reads) answer as `read()` for the accounts they hold; ids no state
    can hold (NUL, a lone surrogate: a saved plan's targets come from a file) are simply not recorded."""
    backend = open_backend(state_url)
    nothing = backend.read_accounts(["a"])
    assert (nothing.exists, nothing.serial, nothing.accounts) == (False, 0, {})
    assert (backend.account_ids(), backend.count_accounts(), backend.read_failed().accounts) == (set(), 0, {})
    with backend.lock():
        _, journal = backend.open_journal(salt="s")
        journal.append(recording.applied("a", {"country": "US"}, "LINKEDIN"))
        journal.append(recording.applied("b", {"proxy": {"host": "h", "port": 1}}, None))
        journal.append(recording.resynced("b", 3))
        for account_id, message in (("c", "HTTP 502: no route"), ("d", None)):
            failure = {"operation": "patch", "error_type": "x", "http_status": 502, "message": message}
            journal.append(recording.failed(account_id, failure))
        journal.close()
    whole = backend.read()
    some = backend.read_accounts(["b", "c", "b", "nope", "a\0", "\ud800"])
    assert (
        (some.lineage, some.serial, some.salt)
        == (whole.lineage, whole.serial, whole.salt)
        == (
            whole.lineage,
            1,
            "s",
        )
    )
    assert some.accounts == {"b": whole.accounts["b"], "c": whole.accounts["c"]}
    assert backend.read_accounts([]).accounts == {}
    assert backend.read_failed().accounts == {"c": whole.accounts["c"]}
    assert (backend.account_ids(), backend.count_accounts()) == ({"a", "b", "c", "d"}, 4)
    # A write of some accounts changes those alone (and moves the serial by one), whatever the backend read.
    with backend.lock():
        edited, journal = backend.open_journal(accounts=["a", "e"])
        journal.close()
        assert set(edited.accounts) == ({"a"} if backend.partial_reads else {"a", "b", "c", "d"})
        del edited.accounts["a"]
        edited.accounts["e"] = whole.accounts["b"]
        backend.write(edited, accounts=["a", "e"])
    after = backend.read()
    assert (after.lineage, after.serial, after.salt) == (whole.lineage, 2, "s")
    assert after.accounts == {**{i: whole.accounts[i] for i in "bcd"}, "e": whole.accounts["b"]}


def test_creating_the_state_keeps_the_first_creation(state_url) -> None:
    """What apply does before recording on a state that does not exist yet: create it, or read the one that
    another lock holder (a shard) created first, never replacing its lineage or salt."""
    backend = open_backend(state_url)
    with backend.lock():
        first = backend.create_if_absent(salt="first")
        again = backend.create_if_absent(salt="second")
        recorded, journal = backend.open_journal(salt="third")
        journal.close()
    assert first.exists and first.salt == "first" and first.serial == 0
    assert (again.lineage, again.salt) == (recorded.lineage, recorded.salt) == (first.lineage, "first")
    assert (open_backend(state_url).read().lineage, open_backend(state_url).read().salt) == (
        first.lineage,
        "first",
    )


def test_lock_is_exclusive_and_names_the_holder(state_url) -> None:
    with (
        open_backend(state_url).lock(command="apply"),
        pytest.raises(LockHeld) as caught,
        open_backend(state_url).lock(timeout=0.2),
    ):
        pass
    assert "apply" in str(caught.value) and "pid" in str(caught.value)
    with open_backend(state_url).lock():
        pass  # released


def test_stale_plan_refused(run, write, api, state_url) -> None:
    write("a.yaml", fleet(2))
    run("plan", "a.yaml", "--state", state_url, "--out", "p.plan")
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--target", "acc_0000").code == 0
    result = run("apply", "--plan", "p.plan", "--yes", "--state", state_url)
    assert result.code == 1 and "saved plan is stale" in result.err


def test_postgres_workspaces_are_independent(run, write, api, state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    other = state_url.replace("workspace=test", "workspace=other")
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--state", other, "--format", "json").json["summary"]["create"] == 2


def test_postgres_connection_failure_is_one_line_without_password(run, write) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", "postgresql://postgres:hunter2-SECRET@127.0.0.1:1/test")
    assert result.code == 1
    assert result.err.startswith(
        "Error: cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/test:"
    )
    assert "hunter2-SECRET" not in result.err and len(result.err.strip().splitlines()) == 1
    # libpq's lines are sentences: joined as such, not run together.
    assert result.err.endswith(
        "port 1 failed: Connection refused. Is the server running on that host and accepting TCP/IP connections?\n"
    ), result.err


def test_state_migrate_round_trip(run, write, api, state_url, workdir) -> None:
    write(
        "a.yaml",
        "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
        "  b: {country: US}\n",
    )
    source = str(workdir / "source.json")
    assert run("apply", "a.yaml", "--yes", "--state", source).code == 0
    assert run("state", "migrate", "--from", source, "--to", state_url).code == 0
    migrated, original = open_backend(state_url).read(), open_backend(source).read()
    assert migrated.lineage == original.lineage and migrated.salt == original.salt
    assert migrated.accounts == original.accounts
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    refused = run("state", "migrate", "--from", source, "--to", state_url)
    assert refused.code == 1 and "already holds 2 account(s); --force overwrites" in refused.err
    back = str(workdir / "back.json")
    assert run("state", "migrate", "--from", state_url, "--to", back).code == 0
    assert open_backend(back).read().accounts == original.accounts
    assert run("state", "migrate", "--from", source, "--to", state_url, "--force").code == 0


def test_two_shards_apply_at_once_and_a_whole_apply_is_refused(
    run, write, api, server, state_url, workdir, monkeypatch
) -> None:
    if not state_url.startswith("postgresql://"):
        write("a.yaml", fleet(2))
        result = run("apply", "a.yaml", "--yes", "--state", state_url, "--shard", "1/2")
        assert result.code == 1 and "--shard needs the PostgreSQL state backend" in result.err
        from reconciler.sandbox import ServerThread

        started: list[ServerThread] = []
        monkeypatch.setattr(ServerThread, "start", lambda thread: started.append(thread) or thread)
        in_sandbox = run("apply", "a.yaml", "--yes", "--sandbox", "--shard", "1/2")
        assert in_sandbox.code == 1 and in_sandbox.err.strip() == (
            "Error: --shard needs the PostgreSQL state backend (--state postgresql://...), "
            "where shards can apply at once"
        )
        assert not started  # refused before a sandbox starts
        return
    api.latency_ms = 20
    write("a.yaml", fleet(120))
    shards = [
        start_apply(workdir, server, "--shard", f"{k}/2", "--concurrency", "2", state=state_url)
        for k in (1, 2)
    ]
    wait_until(lambda: api.stats.patched, timeout=20, fail_on_timeout=False)
    whole = run("apply", "a.yaml", "--yes", "--state", state_url)
    assert whole.code == 1 and "is locked by apply shard" in whole.err
    assert [process.wait(timeout=60) for process in shards] == [0, 0]
    assert set(api.stats.patched) == {f"acc_{i:04d}" for i in range(120)}
    assert max(api.stats.patches.values()) == 1
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--shard", "3/2").code == 1


def test_no_secret_reaches_any_backend(run, write, api, state_url, workdir) -> None:
    import psycopg

    write(
        "a.yaml",
        "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
        "  b: {proxy: {host: x.invalid, port: 1, password: '${PROXY_PASSWORD}'}}\n",
    )
    outcome = run("apply", "a.yaml", "--yes", "--state", state_url, "--max-attempts", "1")
    assert outcome.code == 3 and api.stats.patched["a"]["proxy"]["password"] == SENTINEL_PASSWORD
    assert_no_secrets(outcome.out + outcome.err)
    if state_url.startswith("postgresql://"):
        schema = state_url.split("schema=")[1].split("&")[0]
        with psycopg.connect(PG_URL) as connection:
            stored = " ".join(
                str(row)
                for table in ("accounts", "workspaces")
                for row in connection.execute(f'select * from "{schema}".{table}').fetchall()
            )
        assert "sha256:" in stored
    else:
        stored = "".join(p.read_text() for p in (workdir / "state").iterdir() if p.is_file())
    assert_no_secrets(stored)


# -- PostgreSQL: reading creates nothing, every failure is one line, names PostgreSQL can hold ----------------------
DB_SECRET = "dbpw-SENTINEL-61be"


def _schema_of(state_url: str) -> str:
    return state_url.split("schema=")[1].split("&")[0]


def _as_role(state_url: str, role: str) -> str:
    """The state URL for another role, with a password (the test server trusts loopback: any password works)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(state_url)
    return urlunsplit(parts._replace(netloc=f"{role}:{DB_SECRET}@{parts.netloc.rpartition('@')[2]}"))


@pytest.fixture
def reader_role(state_url):
    """A role that may connect and read the test schema's tables, nothing more."""
    import uuid

    import psycopg

    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    role = f"reader_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f"create role {role} login")
    yield role
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f"drop owned by {role}")
        connection.execute(f"drop role {role}")


def _grant_reading(state_url: str, role: str) -> None:
    import psycopg

    schema = _schema_of(state_url)
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'grant usage on schema "{schema}" to {role}')
        connection.execute(f'grant select on all tables in schema "{schema}" to {role}')


def _schema_exists(schema: str) -> bool:
    import psycopg

    with psycopg.connect(PG_URL) as connection:
        return (
            connection.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone()
            is not None
        )


def test_plan_creates_nothing_and_a_read_only_role_can_plan(run, write, api, state_url, reader_role) -> None:
    write("a.yaml", fleet(3))
    reader = _as_role(state_url, reader_role)
    first = run("plan", "a.yaml", "--state", reader, "--format", "json")
    assert first.code == 0, first.err
    assert first.json["summary"]["create"] == 3
    assert run("plan", "a.yaml", "--state", state_url).code == 0 and not _schema_exists(_schema_of(state_url))
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--target", "acc_0000").code == 0
    _grant_reading(state_url, reader_role)
    planned = run("plan", "a.yaml", "--state", reader, "--format", "json")
    assert planned.code == 0, planned.err
    assert planned.json["summary"] == {"create": 2, "update": 0, "forget": 0, "resync": 0, "unchanged": 1}
    assert run("state", "list", "--state", reader).out.startswith("acc_0000\tok")


def test_every_postgres_failure_is_one_line_without_the_password(
    run, write, api, state_url, reader_role
) -> None:
    write("a.yaml", fleet(3))
    reader = _as_role(state_url, reader_role)
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--target", "acc_0000").code == 0
    unreadable = run("plan", "a.yaml", "--state", reader)  # no grant on the schema yet
    _grant_reading(state_url, reader_role)
    unwritable = run("apply", "a.yaml", "--yes", "--state", reader)
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:  # may lock, not write
        connection.execute(
            f'grant insert, update, delete on "{_schema_of(state_url)}".lock_holders to {reader_role}'
        )
    forgetting = run("state", "forget", "acc_0000", "--state", reader)
    for result, doing in (
        (unreadable, "cannot read the state: permission denied for schema"),
        (unwritable, "cannot lock the state: permission denied for table lock_holders"),
        (forgetting, "cannot write the state: permission denied for table workspaces"),
    ):
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
        assert result.err.startswith(f"Error: postgresql://{reader_role}:***@") and doing in result.err, (
            result.err
        )
        assert DB_SECRET not in result.err and "Traceback" not in result.err
    assert api.stats.requests == 1  # the refused apply sent nothing


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ("s" * 64, "this one: 64 bytes"),
        ("é" * 32, "this one: 64 bytes"),
        ("a%00b", "with NUL"),
        ("", "this one: 0"),
    ],
)
def test_schema_names_postgresql_cannot_hold_are_refused(run, write, schema: str, why: str) -> None:
    write("a.yaml", fleet(1))
    from urllib.parse import quote

    encoded = schema if "%" in schema else quote(schema)
    result = run("plan", "a.yaml", "--state", f"postgresql://postgres@127.0.0.1:1/test?schema={encoded}")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
    assert "names a schema PostgreSQL cannot hold: a schema name is 1 to 63 bytes without NUL" in result.err
    assert why in result.err and "cannot connect" not in result.err  # refused before connecting


@pytest.mark.parametrize(
    ("query", "named", "close"),
    [
        ("shema=prod_state", "shema", "schema"),
        ("schema=prod_state&workspce=production", "workspce", "workspace"),
        ("Schema=prod_state", "Schema", "schema"),
        ("sslmod=require", "sslmod", "sslmode"),
        ("schema=prod_state&pasword=" + DB_SECRET, "pasword", "password"),
        ("colour=blue", "colour", None),
    ],
)
def test_an_unknown_url_parameter_is_named_before_connecting(
    run, write, query: str, named: str, close: str | None
) -> None:
    """A misspelt parameter of the state URL: one line naming it and the closest known one, before libpq (which
    would refuse it as "cannot connect"); never the password, nor the value of a misspelt password parameter."""
    write("a.yaml", fleet(1))
    url = f"postgresql://postgres:{DB_SECRET}@127.0.0.1:1/test?{query}"
    hint = f" (did you mean {close!r}?)" if close else ""
    for command in (("plan", "a.yaml"), ("apply", "a.yaml", "--yes"), ("state", "list")):
        result = run(*command, "--state", url)
        assert result.code == 1, result.err
        assert result.err == (
            f"Error: the state URL postgresql://postgres:***@127.0.0.1:1/test has an unknown parameter {named!r}"
            f"{hint}: it takes schema, workspace and libpq's connection parameters (sslmode, connect_timeout, "
            "application_name, ...)\n"
        )


def test_libpq_parameters_pass_through_the_state_url(run, write, api, state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    write("a.yaml", fleet(2))
    url = state_url + "&sslmode=disable&connect_timeout=5&application_name=ci"
    assert run("apply", "a.yaml", "--yes", "--state", url).code == 0
    assert run("plan", "a.yaml", "--state", url).out.startswith("No changes.")


def test_a_63_byte_schema_name_is_used_whole(state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    import psycopg

    schema = "t" + "x" * 62
    backend = open_backend(state_url.replace(_schema_of(state_url), schema))
    try:
        with backend.lock():
            backend.open_journal()[1].close()
        assert _schema_exists(schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute(f'drop schema if exists "{schema}" cascade')


def test_the_lock_holder_description_is_kept_whole(state_url, monkeypatch) -> None:
    """A long host name (as CI runners have) no longer cuts the holder's start time off."""
    import socket

    host = "runner-" + "x" * 80 + ".ci.example"
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    with (
        open_backend(state_url).lock(command="apply shard-like long command"),
        pytest.raises(LockHeld) as caught,
        open_backend(state_url).lock(timeout=0.2),
    ):
        pass
    import re

    message = str(caught.value)
    holder = rf"apply shard-like long command \(pid \d+ on {re.escape(host)}\)"
    assert re.search(
        rf"is still locked by {holder} since \d{{4}}-\d\d-\d\dT[\d:]+Z after waiting 0.2 s", message
    ), message


def test_a_damaged_postgres_row_is_one_line(run, write, api, state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    import psycopg

    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(
            f"""update "{_schema_of(state_url)}".accounts set record = jsonb_set(record, '{{last_failure}}', '"x"')
            where account_id = 'acc_0001'"""
        )
    result = run("plan", "a.yaml", "--state", state_url)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
    assert (
        'an account row is not a valid reconciler record: accounts["acc_0001"].last_failure must be a mapping'
        in (result.err)
    )


def test_postgresql_without_its_extra_says_which_to_install(run, write, monkeypatch) -> None:
    import sys

    write("a.yaml", fleet(1))
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    for name in [name for name in sys.modules if name.startswith("reconciler.state.postgres")]:
        monkeypatch.delitem(sys.modules, name)  # the backend's modules, imported again without psycopg
    result = run("plan", "a.yaml", "--state", f"postgresql://u:{DB_SECRET}@127.0.0.1/db")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
    assert extra_command("postgres") in result.err and DB_SECRET not in result.err


def test_the_file_backend_never_imports_psycopg(run, write, api, workdir) -> None:
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes").code == 0
    imported = modules_after(workdir, ["plan", "a.yaml"], ["state", "list"], ["import", "a.yaml"])
    assert sorted(m for m in imported if m.split(".")[0] == "psycopg") == []
