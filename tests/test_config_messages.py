"""Configuration messages: exactly one line each, nothing at a secret position quoted, and a positioned line
(never a traceback) for numbers too large to read. Through the real `validate` command where a user would
see them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import load_config
from reconciler.errors import ConfigError, Problem, one_line
from tests.helpers import SENTINEL_PASSWORD
from tests.soak import scale

HEADER = "version: 1\naccounts:\n"


def test_a_problem_is_one_line_whoever_builds_it() -> None:
    problem = Problem(
        "dir\n/a.yaml", 3, 4, "key 'a\nb'\tc\r\x1b[2J\u202eevil\u200b\x85", path="accounts.a\nb"
    )
    assert str(problem) == "dir\\n/a.yaml:3:4: key 'a\\nb'\\tc\\r\\x1b[2J\\u202eevil\\u200b\\x85"
    assert problem.path == "accounts.a\\nb"
    assert one_line(problem.message) == problem.message  # escaping twice changes nothing
    assert one_line("ünïcødé 账户 🙂 C:\\path") == "ünïcødé 账户 🙂 C:\\path"


keys = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(
    max_examples=scale(150, 3000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(account_id=keys, account_key=keys, proxy_key=keys, label_key=keys, value=keys)
def test_keys_and_values_of_any_text_never_split_a_message(
    tmp_path_factory, account_id: str, account_key: str, proxy_key: str, label_key: str, value: str
) -> None:
    """Keys and values from the public YAML test suite's corners (tabs, newlines, controls, bidi) in every
    place a message names them: every message stays one printable line."""

    def q(text: str) -> str:
        return json.dumps(text)  # a JSON string is a YAML double-quoted scalar

    document = (
        HEADER + f"  {q(account_id)}:\n    {q(account_key)}: {q(value)}\n    country: {q(value)}\n"
        f"    labels: {{{q(label_key)}: [{q(value)}]}}\n"
        f"    proxy: {{{q(proxy_key)}: {q(value)}, port: {q(value)}}}\n"
    )
    path = tmp_path_factory.mktemp("k") / "k.yaml"
    path.write_text(document, encoding="utf-8")
    try:
        found = load_config(str(path), {}).warnings
    except ConfigError as exc:
        found = exc.problems + exc.warnings
    for problem in found:
        assert str(problem).isprintable(), str(problem)
        assert problem.path.isprintable()


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            f"*{SENTINEL_PASSWORD}",
            "unknown alias (not shown: the value may be secret); quote a value that starts",
        ),
        (f"!{SENTINEL_PASSWORD}", "unsupported YAML tag (not shown: the value may be secret); quote a value"),
        (f"!{SENTINEL_PASSWORD} rest", "unsupported YAML tag (not shown"),
        (f"!!int {SENTINEL_PASSWORD}", "the value is not a valid !!int"),
        (f"!!float {SENTINEL_PASSWORD}", "the value is not a valid !!float"),
    ],
)
@pytest.mark.parametrize("where", ["account", "defaults", "anchor"])
def test_a_password_read_as_yaml_syntax_is_never_echoed(
    run, workdir, written: str, expected: str, where
) -> None:
    if where == "account":
        text = HEADER + f"  a:\n    proxy:\n      host: h\n      port: 1\n      password: {written}\n"
    elif where == "defaults":
        text = f"version: 1\ndefaults:\n  proxy:\n    password: {written}\naccounts:\n  a: {{country: US}}\n"
    else:
        text = f"version: 1\ncommon: &c\n  password: {written}\naccounts:\n  a: {{country: US}}\n"
    (workdir / "a.yaml").write_text(text)
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert expected in result.err
    assert SENTINEL_PASSWORD not in result.out + result.err
    assert SENTINEL_PASSWORD[3:] not in result.out + result.err  # not even a part of it


def test_outside_secret_positions_the_alias_and_tag_are_named(run, write) -> None:
    write("a.yaml", HEADER + "  a:\n    <<: *bsae\n    country: US\n")
    assert (
        "a.yaml:4:9: unknown alias *bsae; quote a value that starts with '*'" in run("validate", "a.yaml").err
    )
    write("b.yaml", HEADER + "  a: {country: !country US}\n")
    err = run("validate", "b.yaml").err
    assert "b.yaml:3:16: unsupported YAML tag '!country'; quote a value that starts with '!'" in err


def test_a_password_written_as_a_key_is_not_echoed(run, write) -> None:
    write("a.yaml", HEADER + f"  a:\n    proxy: {{host: h, port: 1, {SENTINEL_PASSWORD}}}\n")
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert "a.yaml:4:31: unknown key in accounts.a.proxy (expected one of: host, password" in result.err
    assert SENTINEL_PASSWORD not in result.out + result.err
    with pytest.raises(ConfigError) as caught:
        load_config("a.yaml", {})
    assert [p.path for p in caught.value.problems] == ["accounts.a.proxy"]


def test_a_malformed_reference_in_a_password_is_not_quoted(run, write) -> None:
    write("a.yaml", HEADER + "  a:\n    proxy: {host: h, port: 1, password: 'pw-SENTINEL-${not a name}'}\n")
    result = run("validate", "a.yaml")
    assert result.code == 1 and "proxy.password: malformed reference at character 13" in result.err
    assert "SENTINEL" not in result.err and "not a name" not in result.err


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1" * 5000, "a.yaml:3:21: a number of 5,000 characters; a number here has at most 1,000"),
        ("-" + "9" * 5000, "a.yaml:3:21: a number of 5,001 characters"),
        ("0x" + "f" * 5000, "a.yaml:3:21: a number of 5,002 characters"),
        ("1" * 500 + ".5e3", "a.yaml:3:21: a number too large for a floating-point number"),
        ("!!float " + "1" * 400, "a.yaml:3:21: a number too large for a floating-point number"),
        ("!!float 1e400", "a.yaml:3:21: a number too large for a floating-point number"),
        ("1e400", "a.yaml:3:21: a number too large for a floating-point number"),
    ],
)
def test_numbers_too_large_are_one_positioned_line(run, workdir: Path, value: str, expected: str) -> None:
    (workdir / "a.yaml").write_text(HEADER + f"  a: {{proxy: {{port: {value}, host: h}}}}\n")
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert expected in result.err, result.err
    assert "Traceback" not in result.err and "Error" not in result.err
    assert len(result.err.splitlines()) == 3  # the problem, the note, the count
    assert max(len(line) for line in result.err.splitlines()) < 200  # the number is not echoed


def test_numbers_outside_secret_positions_are_quoted_briefly(run, workdir: Path) -> None:
    (workdir / "a.yaml").write_text(
        HEADER + "  a:\n    provider: LINKEDIN\n    resync: {generation: !!float 1e999}\n"
    )
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert "a.yaml:5:26: '1e999' is too large for a floating-point number" in result.err


def test_a_long_number_within_the_bound_is_read_and_refused_by_the_schema(run, workdir: Path) -> None:
    (workdir / "a.yaml").write_text(
        HEADER + "  a:\n    provider: LINKEDIN\n    resync: {generation: 1, chunk_size: " + "7" * 999 + "}\n"
    )
    result = run("validate", "a.yaml")
    assert result.code == 0, result.err  # a valid (if absurd) chunk size: no traceback converting it
    (workdir / "a.yaml").write_text(HEADER + "  a: {proxy: {host: h, port: " + "7" * 999 + "}}\n")
    result = run("validate", "a.yaml")
    assert result.code == 1 and "accounts.a.proxy.port: must be at most 65535" in result.err
