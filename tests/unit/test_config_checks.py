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


# -- a host written in the file is checked as one read from ${VAR} ---------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ('"proxy.example.com:8080"', "ends in a port: write host: proxy.example.com and port: 8080"),
        ('"10.0.0.1:3128"', "ends in a port: write host: 10.0.0.1 and port: 3128"),
        (
            '"proxy example.com"',
            "holds a space, which no host has: write a host name (letters, digits, '-', '_' and dots) or an IP "
            "address",
        ),
        ('"[::1]"', "is an address in brackets: write host: ::1"),
        ('"[2001:db8::1]:3128"', "is an address in brackets: write host: 2001:db8::1 and port: 3128"),
        ("1.2.3.999", "is not a valid host name or IP address"),
        (
            "http://proxy.example.com:3128",
            "is a URL: write host: proxy.example.com and port: 3128 (the protocol goes in protocol:)",
        ),
    ],
)
def test_a_host_written_in_the_file_is_a_host(run, workdir: Path, host: str, expected: str) -> None:
    text = HEADER + f"  a:\n    proxy:\n      host: {host}\n      port: 8080\n"
    assert validate_lines(run, workdir, text) == [
        f"a.yaml:5:13: account 'a': proxy.host {expected}",
        "1 error(s) in a.yaml",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("proxy.example.com:8080", "ends in a port: write the host alone and its port as port:"),
        ("[::1]", "is an address in brackets: write the address without them"),
        (
            "http://h.example:1",
            "is a URL: write the host alone, its port as port: and its scheme as protocol:",
        ),
        ("s3cr3t value", "is not a valid host name or IP address"),
    ],
)
def test_a_host_from_a_variable_gets_the_same_check_without_its_value(
    write, value: str, expected: str
) -> None:
    path = write("a.yaml", HEADER + '  a: {proxy: {host: "${PROXY_HOST}", port: 1}}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"PROXY_HOST": value})
    assert [str(p) for p in caught.value.problems] == [
        f"a.yaml:3:21: account 'a': proxy.host, filled in from the variable PROXY_HOST, {expected} "
        "(the value is not shown: it may be secret)"
    ]


@pytest.mark.parametrize("host", ["proxy.example.com", "10.0.0.7", "2001:db8::1", "münchen.example", "h"])
def test_a_valid_host_written_in_the_file_passes(write, host: str) -> None:
    path = write("a.yaml", HEADER + f"  a: {{proxy: {{host: '{host}', port: 1}}}}\n")
    assert load_config(path, {}).accounts["a"].settings["proxy"]["host"] == host


# -- one shape for a country, YAML's spelling of a boolean, a label that is not text ---------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("germany", "country 'germany' is not an ISO 3166-1 alpha-2 code; did you mean 'DE' (Germany)?"),
        ("UK", "country 'UK' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' (United Kingdom)?"),
        (
            "${COUNTRY}",
            "country '${COUNTRY}' is not an ISO 3166-1 alpha-2 code; ${...} is read only in the strings of proxy: "
            "write the code itself",
        ),
    ],
)
def test_a_country_that_is_no_code_has_one_message_shape(
    run, workdir: Path, value: str, expected: str
) -> None:
    text = HEADER + f"  acc_1:\n    country: {value}\n"
    assert validate_lines(run, workdir, text) == [
        f"a.yaml:4:14: account 'acc_1': {expected}",
        "1 error(s) in a.yaml",
    ]


def test_a_label_that_is_not_text_is_shown_as_written_and_told_to_quote(run, workdir: Path) -> None:
    text = HEADER + "  a:\n    country: US\n    labels: {env: true, tier: 1}\n"
    assert validate_lines(run, workdir, text) == [
        'a.yaml:5:19: accounts.a.labels.env: expected a string, got a boolean true; labels are text: quote it ("true")',
        'a.yaml:5:31: accounts.a.labels.tier: expected a string, got an integer 1; labels are text: quote it ("1")',
        "2 error(s) in a.yaml",
    ]


def test_a_number_for_a_proxy_password_is_told_to_quote_without_being_shown(run, workdir: Path) -> None:
    text = HEADER + "  a:\n    proxy: {host: h, port: 1, password: 123456}\n"
    lines = validate_lines(run, workdir, text)
    assert lines == [
        "a.yaml:4:41: accounts.a.proxy.password: expected a string, got an integer; quote it to make it text",
        "1 error(s) in a.yaml",
    ]
