"""A new team's first week: the mistakes a newcomer makes, and what reconciler now says about them.

Each test is one point of that week, run through the real CLI (in-process), against the sandbox and a real
PostgreSQL where the point needs them: a `--select` that matches nothing, an API URL without `/api/v1`, an empty
workspace beside the one that holds the accounts, a held lock, the slips in messages, and what a pull-request
comment shows of the state.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.state import open_backend
from tests.helpers import fleet, fresh_postgres_state

TEAM = """\
version: 1
accounts:
  acc_01: {country: US, labels: {team: emea, env: prod}}
  acc_02: {country: US, labels: {team: emea, env: prod}}
  acc_03: {country: DE, labels: {team: apac, env: prod}}
  acc_04: {country: DE, labels: {team: apac, env: staging}}
"""


# -- 1. a --select that matches nothing ------------------------------------------------------------------------
def test_a_select_that_matches_nothing_is_an_error_naming_the_labels(run, write, api) -> None:
    write("a.yaml", TEAM)
    planned = run("plan", "a.yaml", "--select", "team=emae")
    assert planned.code == 1 and planned.out == ""
    assert planned.err == (
        "Error: --select team=emae matches no declared account; declared labels (accounts), the closest "
        "first: team=emea (2), team=apac (2), env=prod (3), env=staging (1)\n"
    )
    applied = run("apply", "a.yaml", "--yes", "--select", "team=emae")
    assert applied.code == 1 and "--select team=emae matches no declared account" in applied.err
    assert api.stats.requests == 0 and not Path(".reconciler").exists()
    imported = run("import", "a.yaml", "--yes", "--select", "team=emae")
    assert imported.code == 1 and "team=emea (2)" in imported.err

    together = run("plan", "a.yaml", "--select", "team=emea", "--select", "env=staging")
    assert together.code == 1
    assert "match no declared account together (each alone matches some)" in together.err
    assert run("plan", "a.yaml", "--select", "team=apac", "--select", "env=staging").code == 0


def test_a_select_beside_targets_on_postgres_reads_only_the_targets(run, write, api, monkeypatch) -> None:
    """`plan --target` on PostgreSQL reads only the targets' rows; a `--select` that keeps none of them is refused,
    and one that keeps some plans them."""
    from reconciler.state.postgres.rows import WorkspaceRows

    write("a.yaml", TEAM)
    with fresh_postgres_state("first_week") as state:
        assert run("apply", "a.yaml", "--yes", "--state", state).code == 0
        write("a.yaml", TEAM.replace("country: DE", "country: FR"))
        whole_reads = []
        original = WorkspaceRows.snapshot

        def counting(self, connection, account_ids, failed):  # type: ignore[no-untyped-def]
            if account_ids is None and not failed:
                whole_reads.append(1)
            return original(self, connection, account_ids, failed)

        monkeypatch.setattr(WorkspaceRows, "snapshot", counting)
        kept = run("plan", "a.yaml", "--state", state, "--target", "acc_03", "--target", "acc_01")
        kept_json = run(
            "plan",
            "a.yaml",
            "--state",
            state,
            "--format",
            "json",
            "--target",
            "acc_03",
            "--select",
            "team=apac",
        )
        assert kept.code == 0 and kept_json.code == 0, kept_json.err
        assert [change["account_id"] for change in kept_json.json["changes"]] == ["acc_03"]  # type: ignore[index]
        refused = run("plan", "a.yaml", "--state", state, "--target", "acc_01", "--select", "team=apac")
        assert refused.code == 1
        assert refused.err == "Error: --select team=apac matches none of the accounts that --target names\n"
        applied = run(
            "apply", "a.yaml", "--yes", "--state", state, "--target", "acc_04", "--select", "team=apc"
        )
        assert applied.code == 1 and "team=apac (2)" in applied.err
        assert whole_reads == []


# -- 2. an API URL without /api/v1 ----------------------------------------------------------------------------
def _without_path(url: str) -> str:
    return url.removesuffix("/api/v1")


def test_an_api_url_without_its_path_is_refused_before_anything_is_sent(run, write, api, server) -> None:
    write("a.yaml", fleet(30))
    bare = _without_path(server.url)
    for url in (bare, bare + "/"):
        result = run("apply", "a.yaml", "--yes", "--api-url", url)
        assert result.code == 1
        assert result.err == (
            f"Error: --api-url {url!r} does not end in /api/v1: the API's base URL is {bare}/api/v1 "
            "(--any-api-path accepts another path, for a proxy that rewrites paths)\n"
        )
    other = run("apply", "a.yaml", "--yes", "--api-url", bare + "/api/v2")
    assert other.code == 1
    assert (
        "does not end in /api/v1: the API's base URL is a path that ends in /api/v1, e.g. https://"
        in other.err
    )
    assert api.stats.requests == 0 and not Path(".reconciler").exists()
    assert (
        run("apply", "a.yaml", "--yes", "--api-url", server.url + "/").code == 0
    )  # a trailing slash is fine


def test_404s_for_every_account_blame_the_url_not_the_accounts(run, write, api, server) -> None:
    """Through a proxy that does not rewrite (`--any-api-path`), every account gets a 404: the breaker names the
    URL, and the accounts are reported skipped, with nothing recorded as their failure."""
    write("a.yaml", fleet(30))
    assert run("apply", "a.yaml", "--yes").code == 0
    write("a.yaml", fleet(30, extra=", labels: {team: emea}").replace("country: US", "country: DE"))
    before = open_backend(".reconciler/state.json").read()
    bare = _without_path(server.url)
    sent = api.stats.requests
    result = run(
        "apply", "a.yaml", "--yes", "--force", "--api-url", bare, "--any-api-path", "--report", "r.json"
    )
    assert result.code == 3
    stop = next(line for line in result.out.splitlines() if line.startswith("Stopped early:"))
    assert stop.startswith(
        "Stopped early: the first 8 requests (8 accounts) and 3 probes after them all failed "
    )
    assert f"none succeeded: the API URL {bare} is the likely cause, not the accounts;" in stop
    assert api.stats.requests - sent <= 2 * 8 + 3
    import json

    report = json.loads(Path("r.json").read_text())
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == 30
    assert report["failures_by_type"] == {}
    sent_to = [r for r in report["results"] if r["attempts"]]
    assert 8 <= len(sent_to) <= 2 * 8 + 3
    assert all(r["outcome"] == "skipped" and r["http_status"] == 404 for r in sent_to)
    assert all("the API URL" in r["message"] for r in report["results"])
    after = open_backend(".reconciler/state.json").read()
    assert after.accounts == before.accounts  # no failure recorded, no settings changed
    assert "failed" not in run("state", "list").out


@pytest.mark.parametrize("missing", [3, 6], ids=["below the breaker", "the breaker opens, a probe succeeds"])
def test_404s_of_some_accounts_among_successes_are_their_own_failures(run, write, api, missing) -> None:
    from reconciler.sandbox.faults import Fault

    gone = [f"acc_{i:04d}" for i in range(missing)]  # the first accounts sent: before any success
    api.faults = [Fault.parse(f"errors/resource_not_found@{','.join(gone)}")]
    write("a.yaml", fleet(12))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "1", "--max-consecutive-failures", "5")
    assert result.code == 3
    assert "Stopped early" not in result.out
    assert f"errors/resource_not_found (HTTP 404, {missing} operation(s))" in result.out
    listed = dict(line.split("\t")[:2] for line in run("state", "list").out.splitlines())
    assert [i for i, status in listed.items() if status == "failed"] == gone
    assert len(listed) == 12


def test_404s_for_every_account_with_the_breaker_off_are_the_accounts_failures(
    run, write, api, server
) -> None:
    write("a.yaml", fleet(6))
    bare = _without_path(server.url)
    options = ("--any-api-path", "--max-consecutive-failures", "0", "--api-url", bare)
    result = run("apply", "a.yaml", "--yes", *options)
    assert result.code == 3 and "Stopped early" not in result.out
    assert "errors/resource_not_found (HTTP 404, 6 operation(s))" in result.out
    assert "check --api-url and the key's workspace instead" in result.out


# -- 3. an empty state beside the one that holds the accounts --------------------------------------------------
def _team(count: int = 30, resyncs: int = 4, prefix: str = "acc_") -> str:
    """`count` managed accounts, the first `resyncs` of them LinkedIn accounts that declare a resync."""
    lines = ["version: 1", "accounts:"]
    for i in range(count):
        extra = ", provider: LINKEDIN, resync: {generation: 2}" if i < resyncs else ""
        lines.append(f"  {prefix}{i:02d}: {{country: US{extra}}}")
    return "\n".join(lines) + "\n"


def _plan_schema() -> object:
    import json

    return json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


def test_an_empty_workspace_beside_the_one_that_holds_the_accounts_is_refused(run, write, api) -> None:
    import jsonschema

    write("a.yaml", _team())
    with fresh_postgres_state("production") as production:
        assert run("apply", "a.yaml", "--yes", "--state", production, "--sync-poll-interval", "0").code == 0
        typo = production.replace("workspace=production", "workspace=prod")
        said = (
            "this state holds no accounts, but workspace 'production' of the same schema holds 30 of the 30 "
            "accounts to create: if the workspace is mistyped, use that one ('workspace=production' in the state "
            "URL); if the state moved, copy it here with reconciler state migrate"
        )
        planned = run("plan", "a.yaml", "--state", typo)
        assert planned.code == 0 and planned.err == f"note: {said}\n"
        assert f"apply would refuse this plan: {said}; apply --force applies it anyway." in planned.out
        as_json = run("plan", "a.yaml", "--state", typo, "--format", "json")
        jsonschema.validate(as_json.json, _plan_schema())
        safety = as_json.json["safety"]  # type: ignore[index]
        assert safety["refused"] is True
        assert safety["elsewhere"] == {"kind": "workspace", "name": "production", "holds": 30, "of": 30}
        markdown = run("plan", "a.yaml", "--state", typo, "--format", "markdown", "--out", "p.bin")
        assert "> apply would refuse this plan: this state holds no accounts, but workspace `production`" in (
            markdown.out
        )
        assert "workspace `production` of the same schema" in run("show", "p.bin", "--format", "markdown").out

        sent = api.stats.requests
        refused = run("apply", "a.yaml", "--yes", "--state", typo)
        assert refused.code == 1
        assert refused.err == f"Error: {said}; --force applies to this state anyway\n"
        assert run("apply", "--plan", "p.bin", "--yes", "--state", typo).code == 1
        assert api.stats.requests == sent
        assert open_backend(typo).read().lineage is None  # nothing was created either

        forced = run("apply", "a.yaml", "--yes", "--force", "--state", typo, "--sync-poll-interval", "0")
        assert forced.code == 0 and api.stats.requests > sent
        assert run("plan", "a.yaml", "--state", typo).err == ""  # no longer empty: nothing to say


def test_a_workspace_that_holds_only_some_of_the_accounts_is_no_reason_to_refuse(run, write, api) -> None:
    write("a.yaml", _team(10, resyncs=0))
    with fresh_postgres_state("production") as production:
        assert run("apply", "a.yaml", "--yes", "--state", production).code == 0
        write("b.yaml", _team(10, resyncs=0) + _team(11, resyncs=0, prefix="new_").split("accounts:\n")[1])
        other = production.replace("workspace=production", "workspace=staging")
        planned = run("plan", "b.yaml", "--state", other, "--format", "json")
        assert planned.err == "" and planned.json["safety"]["elsewhere"] is None  # type: ignore[index]
        assert run("apply", "b.yaml", "--yes", "--state", other).code == 0  # 10 of 21: not most


def test_a_file_state_beside_an_empty_postgres_state_is_refused_until_migrated(run, write, api) -> None:
    write("a.yaml", _team(30, resyncs=0))
    assert run("apply", "a.yaml", "--yes").code == 0  # the default file state
    with fresh_postgres_state("production") as pg:
        said = (
            "this state holds no accounts, but the file state '.reconciler/state.json' in the working directory "
            "holds 30 of the 30 accounts to create: copy it here with reconciler state migrate --from "
            f".reconciler/state.json --to '{pg}'"
        )
        assert run("plan", "a.yaml", "--state", pg).err == f"note: {said}\n"
        sent = api.stats.requests
        refused = run("apply", "a.yaml", "--yes", "--state", pg)
        assert refused.code == 1 and refused.err == f"Error: {said}; --force applies to this state anyway\n"
        assert api.stats.requests == sent
        assert run("state", "migrate", "--from", ".reconciler/state.json", "--to", pg).code == 0
        assert run("apply", "a.yaml", "--yes", "--state", pg).err.startswith("No changes.")
    # The other way round: an empty file state elsewhere, the default one beside it.
    refused = run("apply", "a.yaml", "--yes", "--state", "states/new.json")
    assert refused.code == 1 and refused.err == (
        "Error: this state holds no accounts, but the file state '.reconciler/state.json' in the working directory "
        "holds 30 of the 30 accounts to create: copy it here with reconciler state migrate --from "
        ".reconciler/state.json --to states/new.json; --force applies to this state anyway\n"
    )


def test_state_list_of_an_empty_state_says_so_and_where_the_accounts_are(run, write) -> None:
    """`state list` prints nothing for an empty state (scripts read stdout), and says on stderr that nothing is
    recorded, with plan's pointer to another state that holds accounts: a mistyped path, workspace or schema."""
    write("a.yaml", _team(3, resyncs=0))
    listed = run("state", "list", "--state", "nothing.json")
    assert (listed.code, listed.out, listed.err) == (0, "", "nothing recorded in nothing.json\n")
    assert run("import", "a.yaml", "--yes").code == 0  # the default file state
    listed = run("state", "list", "--state", "states/new.json")
    assert (listed.code, listed.out) == (0, "")
    assert listed.err == (
        "nothing recorded in states/new.json; the file state '.reconciler/state.json' in the working directory "
        "holds 3 account(s): copy it here with reconciler state migrate --from .reconciler/state.json --to "
        "states/new.json\n"
    )
    with fresh_postgres_state("production") as production:
        assert run("import", "a.yaml", "--yes", "--state", production).code == 0
        Path(".reconciler/state.json").unlink()
        typo = production.replace("workspace=production", "workspace=prodution")
        listed = run("state", "list", "--state", typo)
        assert (listed.code, listed.out) == (0, "")
        assert listed.err == (
            f"nothing recorded in {typo}; workspace 'production' of the same schema holds 3 account(s): if the "
            "workspace is mistyped, use that one ('workspace=production' in the state URL); if the state moved, "
            "copy it here with reconciler state migrate\n"
        )
        schema = _schema_of(production)
        with fresh_postgres_state("production", schema=schema[:-1]) as other:
            listed = run("state", "list", "--state", other, "--format", "json")
            assert listed.code == 0 and listed.json == {"format_version": 1, "accounts": []}
            assert listed.err == (
                f"nothing recorded in {other}; workspace 'production' of schema '{schema}' of the same database "
                f"holds 3 account(s): if the schema is mistyped, use that one ('schema={schema}&workspace="
                "production' in the state URL); if the state moved, copy it here with reconciler state migrate\n"
            )
        assert run("state", "list", "--state", production).err == ""


def _schema_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["schema"][0]


def _schema_refusal(schema: str, holds: int = 30, of: int = 30) -> str:
    return (
        f"this state holds no accounts, but workspace 'production' of schema '{schema}' of the same database holds "
        f"{holds} of the {of} accounts to create: if the schema is mistyped, use that one "
        f"('schema={schema}&workspace=production' in the state URL); if the state moved, copy it here with "
        "reconciler state migrate"
    )


def test_a_schema_that_does_not_exist_beside_the_one_that_holds_the_accounts_is_refused(
    run, write, api
) -> None:
    """`schema=prod_stat` for `prod_state`: the schema named does not exist, so every account would be created
    in a new one; another schema of the same database holds them, and apply refuses without --force, as for a
    mistyped workspace."""
    import jsonschema

    write("a.yaml", _team())
    with fresh_postgres_state("production") as production:
        assert run("apply", "a.yaml", "--yes", "--state", production, "--sync-poll-interval", "0").code == 0
        schema = _schema_of(production)
        with fresh_postgres_state("production", schema=schema[:-1]) as typo:
            said = _schema_refusal(schema)
            planned = run("plan", "a.yaml", "--state", typo)
            assert planned.code == 0 and planned.err == f"note: {said}\n"
            assert f"apply would refuse this plan: {said}; apply --force applies it anyway." in planned.out
            as_json = run("plan", "a.yaml", "--state", typo, "--format", "json")
            jsonschema.validate(as_json.json, _plan_schema())
            elsewhere = as_json.json["safety"]["elsewhere"]  # type: ignore[index]
            assert elsewhere == {
                "kind": "schema",
                "name": schema,
                "workspace": "production",
                "holds": 30,
                "of": 30,
            }
            markdown = run("plan", "a.yaml", "--state", typo, "--format", "markdown", "--out", "p.bin")
            assert f"workspace `production` of schema `{schema}` of the same database" in markdown.out
            assert f"of schema `{schema}`" in run("show", "p.bin", "--format", "markdown").out

            sent = api.stats.requests
            for _ in range(2):  # the first refusal leaves the schema made (apply locks first), still empty
                refused = run("apply", "a.yaml", "--yes", "--state", typo)
                assert refused.code == 1
                assert refused.err == f"Error: {said}; --force applies to this state anyway\n"
            assert run("apply", "--plan", "p.bin", "--yes", "--state", typo).code == 1
            assert api.stats.requests == sent
            assert open_backend(typo).read().lineage is None

            options = ("--yes", "--force", "--sync-poll-interval", "0")
            assert run("apply", "a.yaml", "--state", typo, *options).code == 0
            assert api.stats.requests > sent
            assert run("plan", "a.yaml", "--state", typo).err == ""  # it holds them now: nothing to say


def test_a_state_url_without_its_schema_is_refused_when_another_schema_holds_the_accounts(
    run, write, api
) -> None:
    """The schema parameter forgotten: the default schema `reconciler`, which does not exist here."""
    write("a.yaml", _team(30, resyncs=0))
    with fresh_postgres_state("production") as production:
        assert run("apply", "a.yaml", "--yes", "--state", production).code == 0
        with fresh_postgres_state("production", schema="reconciler") as default:
            bare = default.replace("schema=reconciler&", "")
            assert "schema=" not in bare
            refused = run("apply", "a.yaml", "--yes", "--state", bare)
            assert refused.code == 1
            said = _schema_refusal(_schema_of(production))
            assert refused.err == f"Error: {said}; --force applies to this state anyway\n"


def test_another_schema_is_looked_at_only_when_the_schema_named_holds_nothing(run, write, api) -> None:
    """A schema that holds accounts (in any workspace) is in use: an empty workspace of it is a new workspace,
    weighed against that schema's other workspaces only; and a schema that holds only some of the accounts is no
    reason to refuse."""
    write("a.yaml", _team(30, resyncs=0))
    write("b.yaml", "version: 1\naccounts:\n  other_01: {country: US}\n")
    with fresh_postgres_state("production") as production, fresh_postgres_state("staging") as staging:
        assert run("apply", "a.yaml", "--yes", "--state", production).code == 0
        assert run("apply", "b.yaml", "--yes", "--state", staging).code == 0
        beside = staging.replace("workspace=staging", "workspace=production")
        planned = run("plan", "a.yaml", "--state", beside, "--format", "json")
        assert planned.err == "" and planned.json["safety"]["elsewhere"] is None  # type: ignore[index]
        assert run("apply", "a.yaml", "--yes", "--state", beside).code == 0
    write("c.yaml", _team(10, resyncs=0) + _team(11, resyncs=0, prefix="new_").split("accounts:\n")[1])
    with fresh_postgres_state("production") as production, fresh_postgres_state("production") as fresh:
        write("d.yaml", _team(10, resyncs=0))
        assert run("apply", "d.yaml", "--yes", "--state", production).code == 0
        planned = run("plan", "c.yaml", "--state", fresh, "--format", "json")  # 10 of 21: not most
        assert planned.json["safety"]["elsewhere"] is None  # type: ignore[index]
        assert run("apply", "c.yaml", "--yes", "--state", fresh).code == 0


def test_a_schema_name_close_to_one_that_holds_state_is_suggested(run, write, api) -> None:
    """The accounts are mostly new, so nothing is refused; but the schema named does not exist and one of a close
    name holds reconciler state: plan says so. A name far from it says nothing."""
    write("a.yaml", _team(4, resyncs=0))
    write("b.yaml", _team(4, resyncs=0) + _team(10, resyncs=0, prefix="new_").split("accounts:\n")[1])
    with fresh_postgres_state("production") as production:
        assert run("apply", "a.yaml", "--yes", "--state", production).code == 0
        schema = _schema_of(production)
        typo = production.replace(f"schema={schema}", f"schema={schema[:-1]}")
        planned = run("plan", "b.yaml", "--state", typo)
        assert planned.code == 0
        assert planned.err == (
            f"note: schema '{schema[:-1]}' holds no accounts; did you mean '{schema}', which holds reconciler "
            f"state? (schema={schema} in the state URL)\n"
        )
        far = production.replace(f"schema={schema}", "schema=elsewhere_entirely")
        assert run("plan", "b.yaml", "--state", far).err == ""


def test_the_resync_bound_keeps_a_lost_state_from_restarting_every_resync(run, write, api) -> None:
    import jsonschema

    write("a.yaml", _team(30, resyncs=12))
    said = (
        "too many resyncs from scratch: 40.00% is over 30.00% (12 of the 30 accounts would start a resync the "
        "state has no record of; a lost state restarts them all)"
    )
    planned = run("plan", "a.yaml", "--format", "json")
    jsonschema.validate(planned.json, _plan_schema())
    resync = planned.json["safety"]["bounds"][2]  # type: ignore[index]
    assert resync == {
        "action": "resync",
        "count": 12,
        "of": 30,
        "applies": True,
        "percent": 40.0,
        "max_percent": 30.0,
        "over": True,
        "may_be_over": False,
    }
    text = run("plan", "a.yaml").out
    assert (
        f"apply would refuse this plan: {said}; apply --force applies it anyway, or --max-resync-percent"
        in text
    )
    refused = run("apply", "a.yaml", "--yes")
    assert (
        refused.code == 1
        and refused.err
        == f"Error: {said}; --force applies it anyway, or --max-resync-percent sets the bound\n"
    )
    assert api.stats.requests == 0
    # A new fleet that means it says so once; then the state holds the resyncs.
    options = ("--sync-poll-interval", "0")
    assert run("apply", "a.yaml", "--yes", "--max-resync-percent", "100", *options).code == 0
    synced = sum(api.stats.sync_calls.values())
    assert run("plan", "a.yaml").out.startswith("No changes.")
    # The state is lost (a file on a CI runner, say): nothing else holds the accounts, the bound refuses.
    Path(".reconciler/state.json").unlink()
    lost = run("apply", "a.yaml", "--yes", *options)
    assert (
        lost.code == 1
        and lost.err == f"Error: {said}; --force applies it anyway, or --max-resync-percent sets the bound\n"
    )
    assert sum(api.stats.sync_calls.values()) == synced


def test_the_sandbox_weighs_no_resync_bound_unless_given_one(run, write) -> None:
    write("a.yaml", _team(30, resyncs=12))
    assert run("plan", "a.yaml", "--sandbox").out.count("refuse") == 0
    assert run("apply", "a.yaml", "--sandbox", "--yes").code == 0
    refused = run("apply", "a.yaml", "--sandbox", "--yes", "--state", "s.json", "--max-resync-percent", "30")
    assert refused.code == 1 and "too many resyncs from scratch" in refused.err


def _more(config: str, count: int, resyncs: int, prefix: str) -> str:
    return config + _team(count, resyncs, prefix).split("accounts:\n")[1]


def test_the_resync_bound_lets_new_and_growing_fleets_through(run, write, api) -> None:
    options = ("--yes", "--sync-poll-interval", "0")
    write("a.yaml", _team(20, resyncs=9))  # fewer than 10 resyncs from scratch: not weighed
    assert run("plan", "a.yaml", "--format", "json").json["safety"]["bounds"][2]["applies"] is False  # type: ignore[index]
    write("a.yaml", _team(40, resyncs=12))  # a new fleet: 12 of 40 accounts ask for a resync, 30%
    bound = run("plan", "a.yaml", "--format", "json").json["safety"]["bounds"][2]  # type: ignore[index]
    assert (bound["applies"], bound["percent"], bound["over"]) == (True, 30.0, False)
    assert run("apply", "a.yaml", *options).code == 0
    grown = _more(_team(40, resyncs=12), 15, 15, "new_")  # 15 new accounts, each with a resync: 15 of 55
    write("a.yaml", grown)
    assert run("apply", "a.yaml", *options).code == 0
    write("a.yaml", _more(grown, 30, 30, "more_"))  # 30 of 85
    refused = run("apply", "a.yaml", *options)
    assert refused.code == 1 and "35.29% is over 30.00% (30 of the 85 accounts would start" in refused.err


# -- 7. the lock says what to do -------------------------------------------------------------------------------
ADVICE = (
    "; wait for it with --lock-timeout SECONDS, or ask whoever runs that command; the lock ends with its "
    "process, so there is nothing to remove\n"
)


def test_the_lock_message_says_what_to_do_in_both_backends(run, write, api, state_url) -> None:
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    with open_backend(state_url).lock(command="apply"):
        refusals = {
            "apply": run("apply", "a.yaml", "--yes", "--state", state_url),
            "import": run("import", "a.yaml", "--yes", "--state", state_url),
            "state forget": run("state", "forget", "acc_0000", "--state", state_url),
            "state migrate": run("state", "migrate", "--from", state_url, "--to", "copy.json"),
        }
        waited = run("state", "forget", "acc_0000", "--state", state_url, "--lock-timeout", "0.3")
    for command, refused in refusals.items():
        assert refused.code == 1, command
        assert re.fullmatch(
            r"Error: the state .* is locked by apply \(pid \d+ on .*\) since \S+Z" + re.escape(ADVICE),
            refused.err,
        ), (command, refused.err)
    assert waited.code == 1 and re.fullmatch(
        r"Error: the state .* is still locked by apply \(pid \d+ on .*\) since \S+Z after waiting 0\.3 s "
        r"\(--lock-timeout\); wait longer with a larger --lock-timeout, or ask whoever runs that command; the lock "
        r"ends with its process, so there is nothing to remove\n",
        waited.err,
    ), waited.err


def test_lock_timeout_waits_for_the_holder_in_every_command_that_locks(run, write, state_url) -> None:
    import threading

    write("a.yaml", fleet(2))
    assert run("import", "a.yaml", "--yes", "--state", state_url).code == 0
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with open_backend(state_url).lock(command="apply"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        threading.Timer(0.5, release.set).start()
        forgotten = run("state", "forget", "acc_0000", "--state", state_url, "--lock-timeout", "20")
    finally:
        release.set()
        holder.join()
    assert forgotten.code == 0, forgotten.err


# -- 8. the slips ----------------------------------------------------------------------------------------------
def test_the_breaker_reason_reads_as_one_sentence_in_the_report(run, write, api, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "a-wrong-key")
    write("a.yaml", fleet(30))
    result = run("apply", "a.yaml", "--yes", "--max-attempts", "1")
    assert result.code == 3
    line = next(line for line in result.out.splitlines() if line.startswith("Stopped early:"))
    assert line.endswith(": check POSTPRESS_API_KEY; the remaining operations were skipped."), line
    assert not re.search(r"[.?!];", result.out), result.out


def test_an_unsupported_state_location_is_shown_as_given(run, write) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", "s3://user:secret-pw@bucket/state.json")
    assert result.err == (
        "Error: unsupported state location s3://user:***@bucket/state.json: use a path, a file:// URL or a "
        "postgresql:// URL\n"
    )


def test_a_missing_accounts_yaml_says_how_to_name_it(run, write, workdir) -> None:
    write("infra/accounts.yaml", fleet(1))
    missing = run("plan")
    assert missing.code == 1
    assert missing.err == (
        "Error: accounts.yaml: no such file or directory (CONFIG defaults to accounts.yaml in the working "
        "directory); give it: reconciler plan PATH, or run in its directory: reconciler -C DIR plan\n"
    )
    assert "reconciler validate PATH" in run("validate").err
    assert run("-C", "infra", "plan").code == 0  # what it suggests works
    named = run("plan", "nope.yaml")
    assert named.err == "Error: nope.yaml: no such file or directory\n"


def test_show_names_the_state_the_saved_plan_was_made_against(run, write) -> None:
    write("a.yaml", fleet(2))
    with fresh_postgres_state("production") as state:
        planned = run("plan", "a.yaml", "--state", state, "--format", "markdown", "--out", "p.bin")
        shown = run("show", "p.bin", "--format", "markdown")
    assert shown.code == 0
    header = "Config `a.yaml` against state PostgreSQL, workspace `production` (new state)."
    assert header in planned.out and header in shown.out


# -- 9. the markdown header names the state by kind and workspace ----------------------------------------------
def test_the_markdown_plan_names_no_host_user_or_database(run, write, caplog) -> None:
    write("a.yaml", fleet(2))
    with fresh_postgres_state("production") as state:
        parts = urlsplit(state)
        schema = parse_qs(parts.query)["schema"][0]
        caplog.set_level(logging.DEBUG, logger="reconciler")
        markdown = run("plan", "a.yaml", "--state", state, "--format", "markdown")
        saved = run("plan", "a.yaml", "--state", state, "--out", "p.bin")
        shown = run("show", "p.bin", "--format", "markdown")
    assert markdown.code == 0 and saved.code == 0
    for out in (markdown.out, shown.out):
        assert "against state PostgreSQL, workspace `production`" in out
        for private in (parts.hostname, parts.username, parts.path.strip("/"), schema, "postgresql://"):
            assert private and private not in out, private
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"read the state {state.split('?')[0]}" in logged  # the verbose log keeps where it is


def test_a_file_state_is_named_by_its_path_in_the_markdown_plan(run, write, workdir) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", str(workdir / "states" / "team.json"), "--format", "markdown")
    assert "Config `a.yaml` against state `states/team.json` (new state)." in result.out


@pytest.fixture(autouse=True)
def _no_stray_state(workdir: Path) -> None:
    """Every test starts in an empty working directory (the `workdir` fixture's own)."""
    assert not (workdir / ".reconciler").exists()


def test_a_proxy_url_pasted_as_a_host_is_refused_with_what_to_write(run, write) -> None:
    """Found trying the first week again: a literal URL as the host passed validate and was sent."""
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          a:
            proxy:
              host: http://proxy.example.com:3128
              port: 8080
          b: {proxy: {host: "socks5://user:pw@h.example", port: 1}}
          c: {proxy: {host: proxy.example.com, port: 3128}}
        """,
    )
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert result.err.splitlines() == [
        "a.yaml:5:13: account 'a': proxy.host is a URL: write host: proxy.example.com and port: 3128 (the "
        "protocol goes in protocol:)",
        "a.yaml:7:21: account 'b': proxy.host is a URL: write host: h.example (the protocol goes in protocol:)",
        "2 error(s) in a.yaml",
    ]
    assert "pw" not in result.err


def test_plan_out_says_at_once_that_a_plan_made_without_its_secrets_cannot_be_applied(
    run, write, monkeypatch
) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")
    write(
        "a.yaml",
        'version: 1\naccounts:\n  a: {proxy: {host: h.example, port: 1, password: "${PROXY_PASSWORD}"}}\n',
    )
    result = run("plan", "a.yaml", "--out", "plan.bin")
    assert result.code == 0
    assert (
        "note: plan.bin cannot be applied (made while PROXY_PASSWORD unset): apply --plan refuses it; plan again "
        "where every value is known"
    ) in result.err


def test_404s_at_the_apis_own_path_name_the_key_not_the_url(run, write, api) -> None:
    """Found trying the first week again: the API knows none of the accounts (the key is another workspace's),
    the URL is right; the stop must not send the user to fix the URL."""
    api.accept_any_account = False
    write("a.yaml", fleet(30))
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 3
    stop = next(line for line in result.out.splitlines() if line.startswith("Stopped early:"))
    assert "none of these accounts is known to the API at" in stop
    assert "check that POSTPRESS_API_KEY is a key of the accounts' workspace" in stop
    assert "is the likely cause" not in stop
