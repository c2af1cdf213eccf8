"""Planning without secrets: values behind an unset `${VAR}` are not known here, never claimed unchanged, listed
once; such a plan cannot be applied, and apply without a variable it needs sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import SENTINEL_PASSWORD

SCHEMAS = Path(__file__).parents[2] / "schemas"

CONFIG = """
version: 1
defaults:
  proxy: {port: 8080, password: "${PROXY_PASSWORD}"}
accounts:
  a: {proxy: {host: h1.example, username: "${PROXY_USER}"}}
  b: {proxy: {host: h2.example}}
  c: {country: US}
"""
UNKNOWN_PASSWORD = "proxy.password : (sensitive) -> (not known here: PROXY_PASSWORD unset)"


def _imported(run, write, monkeypatch) -> None:
    monkeypatch.setenv("PROXY_USER", "user-SENTINEL-4411")
    write("a.yaml", CONFIG)
    assert run("import", "a.yaml").code == 0
    monkeypatch.delenv("PROXY_PASSWORD")


def test_plan_with_an_unset_variable_plans_and_says_what_is_not_known(run, write, monkeypatch) -> None:
    _imported(run, write, monkeypatch)
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    result = run("plan", "a.yaml", "--detailed-exitcode")
    assert result.code == 2, result.err
    # a and b differ from the state only through the unknown password: not claimed unchanged, and not listed
    # either (they may change nothing): counted apart, by the variable they wait for.
    assert "~ a (update)" not in result.out and "~ b (update)" not in result.out
    assert '  ~ c (update)\n      country : "US" -> "DE"' in result.out
    output = result.out + result.err
    lines = [line for line in output.splitlines() if "PROXY_PASSWORD" in line]
    assert lines == [
        "Not known here: PROXY_PASSWORD unset; the fields that depend on it show as not known until apply.",
        "2 more update(s) depend only on PROXY_PASSWORD (not set here) and may change nothing, not listed.",
    ]
    assert "Plan: 0 to create, 1 to update, 0 to forget, 0 to resync." in result.out
    assert "user-SENTINEL-4411" not in output

    document = run("plan", "a.yaml", "--format", "json").json
    jsonschema.validate(document, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert document["unset_variables"] == ["PROXY_PASSWORD"]
    assert document["summary"]["update"] == 1 and document["summary"]["unchanged"] == 0
    assert document["secret_only"] == {
        "count": 2,
        "by_variables": [{"variables": ["PROXY_PASSWORD"], "count": 2}],
    }
    assert [change["account_id"] for change in document["changes"]] == ["c"]

    markdown = run("plan", "a.yaml", "--format", "markdown").out
    assert "> [!NOTE]\n> Not known here: PROXY_PASSWORD unset;" in markdown
    assert "> 2 more update(s) depend only on PROXY_PASSWORD (not set here)" in markdown
    assert UNKNOWN_PASSWORD not in markdown


def test_unknown_values_of_a_new_account_and_several_variables(run, write, monkeypatch) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")
    monkeypatch.setenv("PROXY_USER", "user-SENTINEL-4411")
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          n: {proxy: {host: "${PROXY_HOST}.example", port: 1, username: "${PROXY_USER}-${USER_SUFFIX}"}}
          m: {proxy: {host: m.example, port: 1, password: "${PROXY_PASSWORD}"}}
        """,
    )
    result = run("plan", "a.yaml")
    assert result.code == 0, result.err
    assert "proxy.host     = (not known here: PROXY_HOST unset)" in result.out
    assert "proxy.username = (not known here: USER_SUFFIX unset)" in result.out
    assert "proxy.password = (not known here: PROXY_PASSWORD unset)" in result.out
    assert (
        "Not known here: PROXY_HOST, PROXY_PASSWORD, USER_SUFFIX unset; the fields that depend on them"
        in result.out
    )
    assert "user-SENTINEL-4411" not in result.out + result.err


def test_a_plan_saved_with_unset_variables_is_refused_naming_them(run, write, api, monkeypatch) -> None:
    _imported(run, write, monkeypatch)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    assert json.loads(Path("plan.bin").read_text())["unset_variables"] == ["PROXY_PASSWORD"]
    assert "2 more update(s) depend only on PROXY_PASSWORD (not set here)" in run("show", "plan.bin").out
    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)  # set by now: the plan still did not know it
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1
    assert refused.err == (
        "Error: plan.bin was made while PROXY_PASSWORD was unset, so it does not say what apply would send; "
        "run plan again where it is set\n"
    )
    assert api.stats.requests == 0


@pytest.mark.parametrize("command, use", [("apply", "sends"), ("import", "records")])
def test_a_command_without_a_variable_it_needs_writes_nothing_and_names_each_once(
    command, use, run, write, api, monkeypatch
) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")
    write("a.yaml", CONFIG)
    result = run(command, "a.yaml", "--yes")
    assert result.code == 1
    assert result.err == (
        f"Error: environment variables PROXY_PASSWORD, PROXY_USER are not set or empty; {command} needs them for "
        f"the values it {use}\n"
    )
    assert api.stats.requests == 0 and not Path(".reconciler/state.json").exists()
    # An account that needs none of them is applied (imported) and recorded, alone.
    done = run(command, "a.yaml", "--yes", "--target", "c")
    assert done.code == 0, done.err
    assert [line.split("\t")[0] for line in run("state", "list").out.splitlines()] == ["c"]
    assert set(api.stats.patches) == ({"c"} if command == "apply" else set())


def test_import_of_an_undeclared_target_is_refused_as_without_an_unset_variable(
    run, write, monkeypatch
) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")
    write("a.yaml", CONFIG)
    unknown = run("import", "a.yaml", "--yes", "--target", "d")
    assert (unknown.code, unknown.err) == (1, "Error: --target names no declared or recorded account: 'd'\n")


def test_an_empty_variable_counts_as_unset(run, write, api, monkeypatch) -> None:
    """In CI a missing secret arrives as an empty string: an empty password is never sent."""
    monkeypatch.setenv("PROXY_PASSWORD", "")
    monkeypatch.setenv("PROXY_USER", "someone")
    write("a.yaml", CONFIG)
    planned = run("plan", "a.yaml")
    assert planned.code == 0 and "(not known here: PROXY_PASSWORD unset)" in planned.out
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 1
    assert result.err == (
        "Error: environment variable PROXY_PASSWORD is not set or empty; apply needs it for the values it sends\n"
    )
    assert api.stats.requests == 0
