"""Checks of values written directly in the configuration file: a shell-style `$NAME` under `proxy`, a host
that is no host, and the wording of the country, label and indentation messages. Exact lines, through the real
`validate` command where a user sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.secrets import Secret

HEADER = "version: 1\naccounts:\n"


def validate_lines(run, workdir: Path, text: str) -> list[str]:
    (workdir / "a.yaml").write_text(text, encoding="utf-8")
    result = run("validate", "a.yaml")
    assert result.code == 1
    return result.err.splitlines()


# -- a shell-style $NAME is never sent as its own text ---------------------------------------------------------


def test_a_shell_style_password_is_an_error_that_names_the_braced_form(run, workdir: Path) -> None:
    text = (
        HEADER
        + "  acc_1:\n    proxy:\n      host: h.example.com\n      port: 8080\n      password: $PROXY_PW_EU\n"
    )
    assert validate_lines(run, workdir, text) == [
        "a.yaml:7:17: account 'acc_1': proxy.password: $PROXY_PW_EU looks like a shell variable: "
        "write ${PROXY_PW_EU} (or $$PROXY_PW_EU for a literal $)",
        "1 error(s) in a.yaml",
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "username",
            "$PROXY_USER",
            "a.yaml:7:17: account 'a': proxy.username: $PROXY_USER looks like a shell variable: "
            "write ${PROXY_USER} (or $$PROXY_USER for a literal $)",
        ),
        (
            "host",
            "$PROXY_HOST.example.com",
            "a.yaml:6:13: account 'a': proxy.host: $PROXY_HOST looks like a shell variable: "
            "write ${PROXY_HOST} (a host has no $)",
        ),
        (
            "password",
            "$hunter2",
            "a.yaml:7:17: account 'a': proxy.password looks like a shell variable ($ and a name): "
            "write the variable as ${NAME} (or start it with $$ for a literal $)",
        ),
        (
            "port",
            "$PROXY_PORT",
            "a.yaml:6:13: accounts.a.proxy.port: expected an integer, got a string; "
            "a port is a number written in the file, never read from ${VAR}",
        ),
    ],
)
def test_each_proxy_key_written_shell_style_is_one_line(
    run, workdir: Path, key: str, value: str, expected: str
) -> None:
    given = {"host": "h.example.com", "port": "8080", key: value}
    lines = [f"      {name}: {given[name]}\n" for name in ("host", "port") if name != key]
    text = HEADER + "  a:\n    proxy:\n" + "".join(lines) + f"      {key}: {value}\n"
    assert validate_lines(run, workdir, text) == [expected, "1 error(s) in a.yaml"]


def test_a_lower_case_shell_style_password_is_not_shown(run, workdir: Path) -> None:
    text = HEADER + "  a:\n    proxy: {host: h.example.com, port: 1, password: $hunter2}\n"
    lines = validate_lines(run, workdir, text)
    assert "hunter2" not in "\n".join(lines) and len(lines) == 2


def test_a_dollar_elsewhere_in_a_password_and_a_doubled_dollar_are_literal(write) -> None:
    path = write(
        "a.yaml",
        HEADER
        + "  a:\n    proxy: {host: h.example.com, port: 1, username: $$PROXY_USER, password: pa$word}\n"
        + "  b:\n    proxy: {host: h.example.com, port: 1, password: $$PROXY_PW}\n",
    )
    accounts = load_config(path, {}).accounts
    proxy = accounts["a"].settings["proxy"]
    assert proxy["username"] == "$PROXY_USER"
    assert isinstance(proxy["password"], Secret) and proxy["password"].reveal() == "pa$word"
    assert accounts["b"].settings["proxy"]["password"].reveal() == "$PROXY_PW"


def test_a_shell_style_value_in_the_defaults_is_reported_once(write) -> None:
    path = write(
        "a.yaml",
        "version: 1\ndefaults:\n  proxy: {password: $PW}\naccounts:\n"
        "  a: {proxy: {host: h.example.com, port: 1}}\n  b: {proxy: {host: h.example.com, port: 1}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"PW": "secret"})
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:3:21: defaults: proxy.password: $PW looks like a shell variable: write ${PW} (or $$PW for a literal $)"
    ]
