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


# -- indentation: keys one level too shallow, and YAML's syntax errors said as what was written --------------


def validate_lines(run, workdir: Path, text: str) -> list[str]:
    (workdir / "a.yaml").write_text(text, encoding="utf-8")  # as written: indentation is the point
    result = run("validate", "a.yaml")
    assert result.code == 1
    return result.err.splitlines()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEADER
            + "  acc_a:\n    provider: LINKEDIN\n    proxy:\n    host: proxy.example.com\n    port: 8080\n"
            "    username: u\n",
            "a.yaml:6:5: accounts.acc_a.proxy is empty: 'host', 'port' and 'username' below it are indented level "
            "with 'proxy:' (line 5), not under it; indent them further",
        ),
        (
            HEADER + "  acc_a:\n    provider: LINKEDIN\n    country: US\n    resync:\n    generation: 2\n",
            "a.yaml:7:5: accounts.acc_a.resync is empty: 'generation' below it is indented level with 'resync:' "
            "(line 6), not under it; indent it further",
        ),
        (
            "version: 1\ndefaults:\n  proxy:\n  protocol: https\n  port: 8080\naccounts:\n  acc_a: {country: US}\n",
            "a.yaml:4:3: defaults.proxy is empty: 'protocol' and 'port' below it are indented level with 'proxy:' "
            "(line 3), not under it; indent them further",
        ),
        (
            HEADER
            + "  acc_a:\n    proxy:\n      host: proxy.example.com\n    port: 8080\n    protocol: https\n",
            "a.yaml:6:5: accounts.acc_a.proxy: 'port' and 'protocol' below it are indented level with 'proxy:' "
            "(line 4), not under it; indent them like the proxy keys above",
        ),
        (
            HEADER + "  acc_a:\n  provider: LINKEDIN\n  country: US\n  acc_b: {country: DE}\n",
            "a.yaml:4:3: accounts.acc_a is empty: 'provider' and 'country' below it are indented level with "
            "'acc_a:' (line 3), not under it; indent them further",
        ),
        (
            HEADER + "acc_a:\n  country: US\nacc_b: {country: DE}\n",
            "a.yaml:3:1: accounts is empty: 'acc_a' and 'acc_b' below it are indented level with 'accounts:' "
            "(line 2), not under it; indent them further",
        ),
    ],
)
def test_sub_mapping_keys_indented_one_level_too_shallow_are_one_line(
    run, workdir: Path, text: str, expected: str
) -> None:
    """Not `proxy: expected a mapping, got nothing` and an `unknown key` line per key (nor `proxy needs
    'port'`): one line at the first misplaced key, saying to indent them."""
    assert validate_lines(run, workdir, text) == [expected, "1 error(s) in a.yaml"]


def test_a_key_of_proxy_written_before_it_is_still_an_unknown_key(run, workdir: Path) -> None:
    lines = validate_lines(run, workdir, HEADER + "  acc_a:\n    host: h\n    proxy: {host: h, port: 1}\n")
    assert lines[0].startswith("a.yaml:4:5: unknown key 'host' in accounts.acc_a (expected one of:")


ONE_SPACE_LESS = HEADER + "  acc_a:\n    proxy:\n      host: proxy.example.com\n     port: 8080\n"

#: (what the user wrote, the line that says so): each of PyYAML's and libyaml's common syntax errors.
SYNTAX_ERRORS = {
    "one space too few": (
        ONE_SPACE_LESS,
        "a.yaml:6:6: invalid YAML: this line is indented differently from the keys above it (spaces: 5 here; "
        "the keys from line 4 have 4, line 5 has 6); indent it like the keys it belongs with",
    ),
    "the first key under proxy one space short": (
        HEADER
        + "  acc_a:\n    proxy:\n     host: proxy.example.com\n      port: 8080\n      protocol: http\n",
        "a.yaml:5:6: invalid YAML: this line, the first key under line 4, is indented less than the keys below it "
        "(spaces: 5 here, 6 from line 6); indent it like them",
    ),
    "the first key under proxy one space short, one key after it": (
        HEADER + "  acc_a:\n    proxy:\n     host: proxy.example.com\n      port: 8080\n",
        "a.yaml:5:6: invalid YAML: this line, the first key under line 4, is indented less than the keys below it "
        "(spaces: 5 here, 6 from line 6); indent it like them",
    ),
    "the first key and the next both off the file's step": (
        HEADER + "  acc_a:\n    proxy:\n       host: proxy.example.com\n        port: 8080\n",
        "a.yaml:6:9: invalid YAML: this line is indented more than line 5 above it (spaces: 8 here, 7 there), the "
        "first key under line 4: one of the two is off; indent both alike",
    ),
    "one space too many": (
        HEADER + "  acc_a:\n    proxy:\n      host: proxy.example.com\n       port: 8080\n",
        "a.yaml:6:12: invalid YAML: this line is indented more than line 5 above it, so it reads as the rest of "
        "that line's value; indent it like the keys it belongs with",
    ),
    "no space after the colon": (
        HEADER + "  acc_a:\n    country:US\n    ip: 192.0.2.1\n",
        "a.yaml:5:7: invalid YAML: line 4 has no ': ' (a colon and a space) after its key, so this line reads as "
        "part of it; write 'key: value' on line 4",
    ),
    "': ' in a value": (
        HEADER + "  acc_a:\n    country: US\n    labels: {team: a}\n    provider: LINKEDIN: x\n",
        "a.yaml:6:23: invalid YAML: a second ': ' on this line: quote a value that holds ': ' (note: \"a: b\"), "
        "or put each key on a line of its own",
    ),
    "a key without a colon": (
        HEADER + "  acc_a:\n    country: US\n  acc_b\n",
        "a.yaml:5:3: invalid YAML: this line has no ':' after its key; write 'key: value'",
    ),
    "a list item among keys": (
        HEADER + "  acc_a:\n    country: US\n    - ip: 192.0.2.1\n",
        "a.yaml:5:5: invalid YAML: a '- ' list item among the keys of a mapping (from line 4); the accounts "
        "format has no lists: write 'key: value'",
    ),
    "text after a closing quote": (
        HEADER + '  acc_a:\n    country: "US" x\n',
        "a.yaml:4:19: invalid YAML: more text after a closing quote: a quoted value ends at its quote; quote all "
        "of the value, or move the rest to a line of its own",
    ),
    "a brace that closes nothing": (
        HEADER + "  acc_a: {country: US}}\n",
        "a.yaml:3:23: invalid YAML: this '}' closes nothing that is open: remove it",
    ),
    "an unclosed brace": (
        HEADER + "  acc_a: {country: US\n  acc_b: {country: US}\n",
        "a.yaml:4:8: invalid YAML: the '{' at line 3, column 10 is still open here: close it with '}', or "
        "separate its entries with ','",
    ),
    "a missing comma": (
        HEADER + "  acc_a: {country: US ip: 192.0.2.1}\n",
        "a.yaml:3:25: invalid YAML: expected ',' or '}' here, inside the '{' at column 10: separate its entries "
        "with ', ' and close it with '}'; write 'key: value'",
    ),
    "an unclosed bracket at the end": (
        "version: 1\naccounts: {}\nlabels: [a,\n",
        "a.yaml:3:9: invalid YAML: this '[' is never closed (the file ends inside it): close it with ']'",
    ),
    "an unclosed quote": (
        HEADER + "  acc_a:\n    country: 'US\n    ip: x\n",
        "a.yaml:4:14: invalid YAML: this quote is never closed (the file ends inside it)",
    ),
    "a tab": (
        HEADER + "\tacc_a: {country: US}\n",
        "a.yaml:3:1: invalid YAML: a tab character where YAML expects spaces: indent with spaces only",
    ),
    "a value starting with @": (
        HEADER + "  acc_a: {country: @US}\n",
        "a.yaml:3:20: invalid YAML: a value cannot start with '@' in YAML (quote a value that starts with '@' or "
        "'`')",
    ),
    "a list after a key": (
        HEADER + "  acc_a:\n    country: - US\n",
        "a.yaml:4:14: invalid YAML: a '- ' list item on the same line as its key; the accounts format has no "
        "lists (quote a value that starts with '- ')",
    ),
    "an empty entry": (
        HEADER + "  acc_a: {country: US,, ip: 192.0.2.1}\n",
        "a.yaml:3:23: invalid YAML: an empty entry: a ',' with no value before it; remove the extra ','",
    ),
    "an unknown escape": (
        HEADER + '  acc_a: {country: "U\\qS"}\n',
        "invalid YAML: an unknown escape: in double quotes a backslash starts an escape",
    ),
    "an anchor without a name": (
        HEADER + "  acc_a: {country: & US}\n",
        "a.yaml:3:21: invalid YAML: '&' starts an anchor, and no name follows it: quote a value that starts with "
        "'&'",
    ),
}


@pytest.mark.parametrize("loader", ["libyaml", "pure Python"])
@pytest.mark.parametrize("case", list(SYNTAX_ERRORS))
def test_yaml_syntax_errors_say_what_was_written(
    run, workdir: Path, monkeypatch, loader: str, case: str
) -> None:
    """The same words from libyaml (the loader used when PyYAML has it) and from PyYAML's own parser, whose
    problem texts differ; never the parser's `did not find expected key (while parsing a block mapping)`."""
    import yaml

    from reconciler.config import yamlpos

    if loader == "pure Python":
        monkeypatch.setattr(yamlpos, "Loader", yaml.SafeLoader)
    else:
        monkeypatch.setattr(yamlpos, "Loader", yaml.CSafeLoader)
    text, expected = SYNTAX_ERRORS[case]
    lines = validate_lines(run, workdir, text)
    if expected.startswith("a.yaml:"):
        assert lines[0] == expected
    else:  # the position is the parser's own (libyaml and PyYAML differ by one column)
        assert lines[0].split(": ", 1)[1].startswith(expected), lines
    assert lines[1:] == [
        "fix this error first: the file could not be parsed, so the other checks did not run",
        "1 error(s) in a.yaml",
    ]
    for raw in (
        "did not find expected",
        "while parsing",
        "while scanning",
        "expected <block end>",
        "not allowed",
    ):
        assert raw not in lines[0]
