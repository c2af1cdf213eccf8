"""Every rule of the configuration format: bad input in, exit 1 with the message and its position out."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import load_config
from reconciler.config.yamlpos import decode, load
from reconciler.errors import ConfigError
from reconciler.secrets import Secret
from tests.soak import scale

HEADER = "version: 1\naccounts:\n"


def problems_of(write, text: str, name: str = "a.yaml") -> list[str]:
    path = write(name, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"SET": "value"})
    return [str(p) for p in caught.value.problems]


def test_the_example_loads(workdir) -> None:
    from pathlib import Path

    example = Path(__file__).parents[2] / "examples" / "accounts.yaml"
    desired = load_config(str(example), {"PROXY_PASSWORD": "x"})
    assert len(desired.accounts) == 4
    assert desired.accounts["acc_03WHATSAPPSUPPORT"].settings == {"country": "DE"}


def test_the_example_models_only_proxy_updates_the_api_accepts() -> None:
    """The API answers 501 to a proxy update for providers that do not support one (which ones is not
    published; the sandbox refuses the mail-type ones): the example's custom proxies are on LinkedIn and
    Telegram accounts, and nothing it PATCHes is of a provider the sandbox refuses."""
    from pathlib import Path

    from reconciler.model import SYNC_PROVIDERS
    from reconciler.sandbox.accounts import MAIL_PROVIDERS

    example = Path(__file__).parents[2] / "examples" / "accounts.yaml"
    accounts = load_config(str(example), {"PROXY_PASSWORD": "x"}).accounts.values()
    custom = {spec.provider for spec in accounts if spec.settings and "proxy" in spec.settings}
    patched = {spec.provider for spec in accounts if spec.settings}
    assert custom and custom <= set(SYNC_PROVIDERS)
    assert not patched & MAIL_PROVIDERS


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '  a:\n    proxy: {host: h, port: "8080"}\n',
            "a.yaml:4:28: accounts.a.proxy.port: expected an integer, got a string; write the number without quotes",
        ),
        (
            "  a:\n    proxy: {host: h, port: 70000}\n",
            "a.yaml:4:28: accounts.a.proxy.port: must be at most 65535",
        ),
        (
            "  a:\n    proxy: {host: h, port: 1, protocl: http}\n",
            "a.yaml:4:31: unknown key 'protocl' in accounts.a.proxy; did you mean 'protocol'?",
        ),
        (
            "  a:\n    proxy: {host: h, port: 1, protocol: ftp}\n",
            "a.yaml:4:41: accounts.a.proxy.protocol: value is not one of: http, https, socks5",
        ),
        (
            "  a:\n    country: uk\n",
            "a.yaml:4:14: account 'a': country 'uk' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' "
            "(United Kingdom)?",
        ),
        (
            "  a:\n    country: USA\n",
            "a.yaml:4:14: account 'a': country 'USA' is not an ISO 3166-1 alpha-2 code; did you mean 'US' "
            "(United States)?",
        ),
        ("  a:\n    ip: 300.1.1.1\n", "a.yaml:4:9: account 'a': ip '300.1.1.1' is not a valid IP address"),
        (
            "  a:\n    proxy: {host: h, port: 1}\n    country: US\n",
            "a.yaml:5:5: account 'a': declares both a custom proxy and a managed one ('country'); keep one",
        ),
        (
            "  a:\n    labels: {x: y}\n",
            "a.yaml:3:3: account 'a': declares nothing; give it a proxy, a country/ip or a resync",
        ),
        ("  a:\n    proxy: {port: 1}\n", "a.yaml:4:5: account 'a': proxy needs 'host'"),
        (
            "  a:\n    proxy: {host: h, port: 1, password: 'x${1BAD}'}\n",
            "a.yaml:4:41: account 'a': proxy.password: malformed reference at character 2",
        ),
        (
            "  a:\n    proxy: {host: h, port: 1, password: '${UNTERMINATED'}\n",
            "a.yaml:4:41: account 'a': proxy.password: unterminated '${'",
        ),
        (
            "  a:\n    country: US\n    resync: {generation: 1}\n",
            "a.yaml:5:5: account 'a': resync needs 'provider: LINKEDIN' or 'provider: TELEGRAM'",
        ),
        (
            "  a:\n    provider: WHATSAPP\n    resync: {generation: 1}\n",
            "a.yaml:5:5: account 'a': the sync route does not support WHATSAPP accounts (LinkedIn and Telegram only)",
        ),
        (
            "  a:\n    provider: INSTAGRAM\n    resync: {generation: 1}\n",
            "the sync route does not support INSTAGRAM accounts",
        ),
        (
            "  a:\n    provider: TELEGRAM\n    resync: {generation: 1, partial: true}\n",
            "a.yaml:5:29: account 'a': resync.partial is LinkedIn only",
        ),
        (
            "  a:\n    provider: TELEGRAM\n    resync: {generation: 1, linkedin_product: classic}\n",
            "resync.linkedin_product is LinkedIn only",
        ),
        (
            "  a:\n    provider: LINKEDIN\n    resync: {generation: 0}\n",
            "accounts.a.resync.generation: must be at least 1",
        ),
        (
            "  a:\n    provider: LINKEDIN\n    resync: {chunk_size: 5}\n",
            "accounts.a.resync: missing required key 'generation'",
        ),
        (
            "  a:\n    provider: LINKEDIN\n    resync: {generation: 1, after: '2026-01-01T00:00:00'}\n",
            "has no time zone",
        ),
        (
            "  a:\n    provider: LINKEDIN\n    resync: {generation: 1, after: 2026-02-01, before: 2026-01-01}\n",
            "resync.before must be later than resync.after",
        ),
        (
            "  a:\n    provider: LINKEDIN\n    resync: {generation: 1, partial: yes}\n",
            "accounts.a.resync.partial: expected true or false, got a string 'yes'",
        ),
        ("  a:\n    provider: NOKIA\n    country: US\n", "accounts.a.provider: 'NOKIA' is not one of"),
        (
            "  a:\n    labels: {team: 1}\n    country: US\n",
            "accounts.a.labels.team: expected a string, got an integer 1",
        ),
        ('  "has space":\n    country: US\n', "a.yaml:3:3: invalid account id 'has space'"),
        ('  "newline\\n":\n    country: US\n', "a.yaml:3:3: invalid account id 'newline\\n'"),
    ],
)
def test_each_rule_reports_message_and_position(write, body: str, expected: str) -> None:
    problems = problems_of(write, HEADER + body)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    "where",
    [
        "defaults:\n  proxy: {protocol: {}}\naccounts: {}\n",
        "accounts:\n  a: {provider: [x], country: US}\n",
        "accounts:\n  a: {provider: LINKEDIN, resync: {generation: 1, linkedin_product: {}}}\n",
    ],
)
def test_unhashable_values_are_errors_not_crashes(write, where: str) -> None:
    problems = problems_of(write, "version: 1\n" + where)
    assert len(problems) == 1 and "is not one of" in problems[0]


def test_version_must_be_the_integer_1(write) -> None:
    assert problems_of(write, "version: '1'\naccounts: {}\n") == ["a.yaml:1:10: version: must be 1, got '1'"]


def test_unknown_top_level_key_and_missing_accounts(write) -> None:
    problems = problems_of(write, "version: 1\naccount: {}\n")
    assert "a.yaml:1:1: (document): missing required key 'accounts'" in problems
    assert "a.yaml:2:1: unknown key 'account' in (document); did you mean 'accounts'?" in problems


def test_duplicate_keys_name_both_lines(write) -> None:
    problems = problems_of(write, HEADER + "  a:\n    country: US\n    country: DE\n")
    assert problems == ["a.yaml:5:5: duplicate key 'country' (first defined at line 4, column 5)"]


def test_duplicate_account_ids_across_files(write) -> None:
    write("conf/1.yaml", HEADER + "  a:\n    country: US\n")
    write("conf/2.yml", HEADER + "  b:\n    country: US\n  a:\n    country: DE\n")
    with pytest.raises(ConfigError) as caught:
        load_config("conf", {})
    assert [str(p) for p in caught.value.problems] == [
        "conf/2.yml:5:3: account 'a' is also declared in conf/1.yaml:3:3"
    ]


def test_all_problems_in_one_pass(write) -> None:
    problems = problems_of(
        write, HEADER + "  a:\n    country: XX\n  b:\n    proxy: {host: h, port: '1'}\n  c:\n    ip: nope\n"
    )
    assert len(problems) == 3
    assert [p.split(":")[1] for p in problems] == ["4", "6", "8"]


def test_secret_values_are_never_echoed_in_messages(write) -> None:
    problems = problems_of(write, HEADER + "  a:\n    proxy: {host: h, port: 1, password: 123456789}\n")
    assert problems and not any("123456789" in p for p in problems)


def test_country_is_upper_cased_and_defaults_merged(write) -> None:
    path = write(
        "a.yaml",
        """
        version: 1
        defaults:
          proxy: {protocol: socks5, port: 1080, username: u}
        accounts:
          a: {country: us}
          b:
            proxy: {host: h, port: 9, password: "${SET}"}
    """,
    )
    desired = load_config(path, {"SET": "s3"})
    assert desired.accounts["a"].settings == {"country": "US"}
    proxy = desired.accounts["b"].settings["proxy"]
    assert proxy["protocol"] == "socks5" and proxy["port"] == 9 and proxy["username"] == "u"
    assert isinstance(proxy["password"], Secret) and proxy["password"].reveal() == "s3"


def test_literal_dollar_brace_and_reference_in_username(write) -> None:
    path = write(
        "a.yaml", HEADER + "  a:\n    proxy: {host: h, port: 1, password: 'p$${x}', username: '${SET}'}\n"
    )
    proxy = load_config(path, {"SET": "user"}).accounts["a"].settings["proxy"]
    assert proxy["password"].reveal() == "p${x}"
    assert isinstance(proxy["username"], Secret)


def test_plaintext_password_is_a_warning(write) -> None:
    path = write("a.yaml", HEADER + "  a:\n    proxy: {host: h, port: 1, password: hunter2}\n")
    desired = load_config(path, {})
    assert [str(w) for w in desired.warnings] == [
        "a.yaml:4:41: warning: account 'a': plaintext proxy password; use ${VAR} instead"
    ]
    assert "hunter2" not in str(desired.warnings)


def test_anchors_aliases_and_merge_keys(write) -> None:
    path = write(
        "a.yaml",
        """
        version: 1
        accounts:
          a:
            proxy: &base {host: h, port: 1, protocol: http}
          b:
            proxy:
              <<: *base
              port: 2
          c:
            proxy: *base
    """,
    )
    desired = load_config(path, {})
    assert desired.accounts["b"].settings["proxy"] == {"protocol": "http", "host": "h", "port": 2}
    assert desired.accounts["c"].settings == desired.accounts["a"].settings


def test_alias_bomb_is_refused_fast(write) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 12):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    lines.append("accounts: {}")
    started = time.monotonic()
    problems = problems_of(write, "\n".join(lines) + "\n")
    assert time.monotonic() - started < 1.0
    assert "aliases expand past" in problems[0]


def test_malformed_yaml_is_one_positioned_line(write) -> None:
    assert problems_of(write, "version: 1\naccounts: [a,\n") == [
        "a.yaml:2:11: invalid YAML: this '[' is never closed (the file ends inside it): close it with ']'"
    ]


def test_non_utf8_bytes(workdir) -> None:
    (workdir / "a.yaml").write_bytes(b"version: 1\naccounts:\n  a\xff: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config("a.yaml", {})
    assert str(caught.value.problems[0]) == "a.yaml:3:4: not valid UTF-8 (byte 0xff)"


def test_empty_file_and_second_document(write) -> None:
    assert problems_of(write, "") == ["a.yaml:1:1: the file is empty"]
    assert problems_of(write, "version: 1\n---\nversion: 1\n")[0].startswith(
        "a.yaml:2:1: a configuration file holds one"
    )


def test_deep_nesting_is_refused(write) -> None:
    assert "nesting deeper than" in problems_of(write, "a: " + "[" * 200 + "]" * 200 + "\n")[0]


def test_norway_stays_a_country(write) -> None:
    path = write("a.yaml", HEADER + "  a: {country: NO}\n")
    assert load_config(path, {}).accounts["a"].settings == {"country": "NO"}


def test_times_become_epoch_milliseconds(write) -> None:
    path = write(
        "a.yaml",
        HEADER + "  a:\n    provider: LINKEDIN\n    resync: {generation: 2, after: "
        "2026-01-01T00:00:00Z, before: 1767312000000}\n",
    )
    resync = load_config(path, {}).accounts["a"].resync
    assert resync.query() == {"after": "1767225600000", "before": "1767312000000"}


def test_validate_command_annotations(run, write, monkeypatch) -> None:
    write("a.yaml", HEADER + "  a:\n    country: uk\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert "a.yaml:4:14: account 'a': country 'uk'" in result.err
    assert "::error file=a.yaml,line=4,col=14::account 'a': country 'uk'" in result.err
    assert "Traceback" not in result.err


def test_validate_ok_and_missing_file(run, write) -> None:
    write("a.yaml", HEADER + "  a: {country: US}\n")
    assert run("validate", "a.yaml").code == 0
    missing = run("validate", "nope.yaml")
    assert missing.code == 1 and "nope.yaml: no such file or directory" in missing.err


EXAMPLE_LINES = (
    HEADER + "  a:\n    provider: LINKEDIN\n    proxy: {host: h, port: 8080, password: '${SET}'}\n"
    "    resync: {generation: 1, partial: true}\n  b: {country: US, ip: 203.0.113.1}\n"
)


@settings(
    max_examples=scale(150, 3000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=300))
def test_random_documents_only_raise_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        load("f.yaml", text)


@settings(
    max_examples=scale(200, 4000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, len(EXAMPLE_LINES) - 1), st.integers(0, len(EXAMPLE_LINES)), st.text(max_size=8))
def test_mutated_example_only_raises_config_error(
    tmp_path_factory, start: int, length: int, insert: str
) -> None:
    mutated = EXAMPLE_LINES[:start] + insert + EXAMPLE_LINES[start + length % 12 :]
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_bytes(mutated.encode("utf-8", "surrogatepass"))
    try:
        load_config(str(path), {"SET": "v"})
    except ConfigError as exc:
        for problem in exc.problems:
            assert problem.line >= 1 and problem.col >= 1 and "\n" not in problem.message


def test_decode_strips_bom() -> None:
    assert decode("f", b"\xef\xbb\xbfa: 1") == "a: 1"


@pytest.mark.parametrize(
    ("account_id", "kind"),
    [
        ("acc\x85x", "U+0085, a control character"),
        ("acc\x9fx", "U+009F, a control character"),
        ("acc\u202ex", "U+202E, a bidi control"),
        ("acc\u200fx", "U+200F, a bidi control"),
        ("acc\u061cx", "U+061C, a bidi control"),
        ("acc\u202ax", "U+202A, a bidi control"),
        ("acc\u2066x", "U+2066, a bidi control"),
        ("acc\u2069x", "U+2069, a bidi control"),
        ("acc\u200bx", "U+200B, a zero-width character"),
        ("acc\u200dx", "U+200D, a zero-width character"),
        ("acc\u2060x", "U+2060, a zero-width character"),
        ("acc\ufeffx", "U+FEFF, a zero-width character"),
    ],
)
def test_look_alike_account_ids_are_refused_with_their_position(write, account_id: str, kind: str) -> None:
    escaped = account_id.encode("unicode_escape").decode()
    problems = problems_of(write, HEADER + f'  ok: {{country: US}}\n  "{escaped}":\n    country: US\n')
    assert problems == [
        f"a.yaml:4:3: invalid account id {account_id!r}: character 4 is {kind}; "
        "1-256 characters, no whitespace, control, bidi, zero-width or other invisible characters"
    ]
    assert problems[0].isprintable()


def test_problem_path_is_the_dotted_path_of_the_value(write) -> None:
    path = write(
        "a.yaml",
        HEADER + "  acc_1:\n    proxy: {host: h, port: 70000}\n  acc_2:\n    country: uk\n"
        "  acc_3:\n    provider: LINKEDIN\n    resync: {generation: 1, after: '2026-01-01T00:00:00'}\n"
        "  acc_4: {country: US, country: DE}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [(p.line, p.path) for p in caught.value.problems] == [
        (4, "accounts.acc_1.proxy.port"),
        (6, "accounts.acc_2.country"),
        (9, "accounts.acc_3.resync.after"),
        (10, "accounts.acc_4.country"),
    ]
    file_level = problems_of(write, "- a list\n", "b.yaml")
    assert file_level == ["b.yaml:1:1: the file must be a mapping with 'version' and 'accounts', not a list"]


def test_a_document_that_is_not_a_mapping_is_reported_where_it_starts(write) -> None:
    assert problems_of(write, "# the accounts\n\n---\n- version: 1\n") == [
        "a.yaml:4:1: the file must be a mapping with 'version' and 'accounts', not a list"
    ]
    assert problems_of(write, "# nothing but a comment and a marker\n---\n") == [
        "a.yaml:2:1: the document is empty: the file must be a mapping with 'version' and 'accounts'"
    ]


def test_an_empty_value_is_called_nothing_once(write) -> None:
    assert problems_of(write, "version: 1\naccounts:\n") == [
        "a.yaml:2:10: accounts: expected a mapping, got nothing"
    ]
    assert problems_of(write, "version:\naccounts: {}\n") == ["a.yaml:1:9: version: must be 1, got nothing"]


def test_an_unclosed_quote_points_where_it_opened(write) -> None:
    text = HEADER + '  a: {country: "US}\n' + "".join(f"  b{i}: {{country: US}}\n" for i in range(30))
    assert problems_of(write, text) == [
        "a.yaml:3:16: invalid YAML: this quote is never closed (the file ends inside it)"
    ]
    assert problems_of(write, HEADER + "  a: {country: 'US}\n  b: x\n")[0].startswith("a.yaml:3:16: ")


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "\ta: {country: US}\n",
        HEADER + "  a:\n\t  country: US\n",
        HEADER + "  a:\n  \tcountry: US\n",
        "a: 1\n\t\nb: 2\n",
        "version: 1\n \taccounts: {}\n",
        "a:\n\t- x\n",
    ],
)
def test_tab_errors_name_the_tab(workdir, text: str) -> None:
    (workdir / "a.yaml").write_text(text)  # as written: `write` would dedent a line holding only a tab
    with pytest.raises(ConfigError) as caught:
        load_config("a.yaml", {})
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1 and "a tab character where YAML expects spaces" in problems[0], problems


def test_a_construct_left_open_says_where_it_started(write) -> None:
    problems = problems_of(write, "version: 1\naccounts: {a: 1\n\nfoo: 2\n")
    assert problems == [
        "a.yaml:4:4: invalid YAML: the '{' at line 2, column 11 is still open here: close it with '}', or separate "
        "its entries with ','"
    ]


def test_a_control_character_in_the_text_is_positioned(write) -> None:
    problems = problems_of(write, HEADER + "  ü: {country: US}\n  a\x01: {country: US}\n")
    assert problems == ["a.yaml:4:4: invalid YAML: the control character U+0001 is not allowed"]


def test_standard_input_is_read_as_stdin(monkeypatch) -> None:
    import io
    import sys

    text = HEADER + "  a: {country: us}\n  b: {country: uk}\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    with pytest.raises(ConfigError) as caught:
        load_config("-", {})
    assert [str(p) for p in caught.value.problems] == [
        "<stdin>:4:16: account 'b': country 'uk' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' (United Kingdom)?"
    ]
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO((HEADER + "  a: {country: us}\n").encode()))
    )
    desired = load_config("-", {})
    assert desired.files == ["<stdin>"] and desired.accounts["a"].settings == {"country": "US"}


def test_validate_reads_standard_input(run, monkeypatch) -> None:
    import io
    import sys

    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(b"version: 1\naccounts:\n  a: {ip: nope}\n"))
    )
    result = run("validate", "-")
    assert result.code == 1
    assert "<stdin>:3:11: account 'a': ip 'nope' is not a valid IP address" in result.err


def test_defaults_are_checked_once_not_once_per_account(write) -> None:
    body = "".join(f"  a{i}: {{proxy: {{host: h}}}}\n" for i in range(5))
    path = write(
        "a.yaml", "version: 1\ndefaults:\n  proxy: {port: 1, password: 'plain${1x}'}\naccounts:\n" + body
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:3:30: defaults: proxy.password: malformed reference at character 6: '${...}' takes a variable "
        "name (letters, digits and '_', not starting with a digit)"
    ]
    path = write("b.yaml", "version: 1\ndefaults:\n  proxy: {port: 1, password: plain}\naccounts:\n" + body)
    assert [str(w) for w in load_config(path, {}).warnings] == [
        "b.yaml:3:30: warning: defaults: plaintext proxy password; use ${VAR} instead"
    ]


# -- suggestions: whatever the case, and a country by its alpha-3 code or its English name -----------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  a: {provider: linkedin, country: US}\n",
            "accounts.a.provider: 'linkedin' is not one of: LINKEDIN, TELEGRAM, WHATSAPP, INSTAGRAM, MESSENGER, "
            "TWITTER, SLACK, MAIL, GOOGLE_OAUTH, ICLOUD, OUTLOOK, EXCHANGE, GOOGLE_CALENDAR, MOBILE; "
            "did you mean 'LINKEDIN'?",
        ),
        ("  a: {provider: Telegram, country: US}\n", "'Telegram' is not one of: LINKEDIN,"),
        (
            "  a: {Provider: LINKEDIN, country: US}\n",
            "unknown key 'Provider' in accounts.a; did you mean 'provider'?",
        ),
        (
            "  a: {proxy: {Host: h, port: 1}}\n",
            "unknown key 'Host' in accounts.a.proxy; did you mean 'host'?",
        ),
        (
            "  a: {resync: {generation: 1, linkedin_product: Classic}, provider: LINKEDIN}\n",
            "accounts.a.resync.linkedin_product: 'Classic' is not one of: classic, recruiter, sales_navigator; "
            "did you mean 'classic'?",
        ),
    ],
)
def test_a_name_in_another_case_is_suggested(write, body: str, expected: str) -> None:
    problems = problems_of(write, HEADER + body)
    assert any(expected in problem for problem in problems), problems
    if "Telegram" in body:
        assert problems[0].endswith("; did you mean 'TELEGRAM'?")


@pytest.mark.parametrize(
    ("written", "suggested"),
    [("HTTPS", "https"), ("httpz", "https"), ("socks", "socks5"), ("SOCKS5", "socks5"), ("htp", "http")],
)
def test_a_protocol_near_an_option_is_suggested_without_quoting_it(
    write, written: str, suggested: str
) -> None:
    """A value under proxy is never quoted; the option suggested is one of the enum's, which says nothing of it."""
    assert problems_of(write, HEADER + f"  a: {{proxy: {{host: h, port: 1, protocol: {written}}}}}\n") == [
        "a.yaml:3:43: accounts.a.proxy.protocol: value is not one of: http, https, socks5; "
        f"did you mean {suggested!r}?"
    ]


def test_a_protocol_far_from_every_option_suggests_nothing(write) -> None:
    assert problems_of(write, HEADER + "  a: {proxy: {host: h, port: 1, protocol: ftp}}\n") == [
        "a.yaml:3:43: accounts.a.proxy.protocol: value is not one of: http, https, socks5"
    ]


@pytest.mark.parametrize(
    ("written", "code", "name"),
    [
        ("GER", "DE", "Germany"),
        ("DEU", "DE", "Germany"),
        ("Germany", "DE", "Germany"),
        ("germany", "DE", "Germany"),
        ("Germny", "DE", "Germany"),
        ("GBR", "GB", "United Kingdom"),
        ("United Kingdom", "GB", "United Kingdom"),
        ("Great Britain", "GB", "United Kingdom"),
        ("USA", "US", "United States"),
        ("usa", "US", "United States"),
        ("United States", "US", "United States"),
        ("United States of America", "US", "United States"),
        ("Cote d'Ivoire", "CI", "Côte d'Ivoire"),
        ("South Korea", "KR", "Korea, Republic of"),
        ("The Netherlands", "NL", "Netherlands"),
        ("SUI", "CH", "Switzerland"),
    ],
)
def test_a_country_by_alpha3_code_or_name_suggests_its_alpha2_code(
    write, written: str, code: str, name: str
) -> None:
    [problem] = problems_of(write, HEADER + f'  a: {{country: "{written}"}}\n')
    assert problem == (
        f"a.yaml:3:16: account 'a': country {written!r} is not an ISO 3166-1 alpha-2 code; "
        f"did you mean {code!r} ({name})?"
    )


def test_a_country_nobody_has_suggests_nothing(write) -> None:
    assert problems_of(write, HEADER + "  a: {country: Narnia}\n") == [
        "a.yaml:3:16: account 'a': country 'Narnia' is not an ISO 3166-1 alpha-2 code"
    ]
    assert problems_of(write, HEADER + "  a: {country: UK}\n") == [
        "a.yaml:3:16: account 'a': country 'UK' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' (United Kingdom)?"
    ]


def test_the_country_table_is_iso_3166_1() -> None:
    """The suggestions' table holds the same 249 alpha-2 codes as the list the loader checks against, each
    alpha-3 code once, and aliases that point at real codes without shadowing another country's alpha-3."""
    from reconciler.config.accounts import iso_countries
    from reconciler.config.countries import ALIASES, COUNTRIES

    alpha2 = [row[0] for row in COUNTRIES]
    alpha3 = [row[1] for row in COUNTRIES]
    assert len(COUNTRIES) == 249
    assert set(alpha2) == iso_countries() and len(set(alpha2)) == 249
    assert len(set(alpha3)) == 249 and all(len(code) == 3 and code.isupper() for code in alpha3)
    assert set(ALIASES.values()) <= iso_countries()
    assert not set(ALIASES) & set(alpha3)
    assert all(names and all(names) for _, _, names in COUNTRIES)
