"""Loading needs no secret: a value behind an unset `${VAR}` is `Unresolved`, named once in
`Desired.unset_variables`; only a malformed reference is an error."""

from __future__ import annotations

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.secrets import Secret, Unresolved, resolve_or_mark

CONFIG = """
version: 1
defaults:
  proxy: {port: 8080, password: "${PROXY_PASSWORD}"}
accounts:
  a: {proxy: {host: h1, username: "${PROXY_USER}"}}
  b: {proxy: {host: "${PROXY_HOST}.example.com"}}
  c: {proxy: {host: h3, password: "${OWN_PASSWORD}"}}
  d: {country: US}
"""


def test_unset_variables_load_as_unresolved_and_are_listed_once(write) -> None:
    path = write("a.yaml", CONFIG)
    desired = load_config(path, {"PROXY_USER": "user"})
    # PROXY_PASSWORD is needed by a and b (through the defaults): listed once, sorted with the others.
    assert desired.unset_variables == ("OWN_PASSWORD", "PROXY_HOST", "PROXY_PASSWORD")
    a = desired.accounts["a"].settings["proxy"]
    assert isinstance(a["username"], Secret) and a["username"].reveal() == "user"
    assert isinstance(a["password"], Unresolved) and a["password"].names == ("PROXY_PASSWORD",)
    b = desired.accounts["b"].settings["proxy"]
    assert isinstance(b["host"], Unresolved) and b["host"].names == ("PROXY_HOST",)
    assert desired.accounts["d"].settings == {"country": "US"}


def test_with_every_variable_set_nothing_is_unresolved(write) -> None:
    path = write("a.yaml", CONFIG)
    environ = {"PROXY_USER": "u", "PROXY_PASSWORD": "p1", "PROXY_HOST": "h2", "OWN_PASSWORD": "p3"}
    desired = load_config(path, environ)
    assert desired.unset_variables == ()
    assert desired.accounts["b"].settings["proxy"]["host"] == Secret("h2.example.com")
    assert desired.accounts["c"].settings["proxy"]["password"] == Secret("p3")


def test_a_default_that_every_account_overrides_is_not_needed(write) -> None:
    path = write(
        "a.yaml",
        "version: 1\ndefaults:\n  proxy: {password: '${UNUSED}'}\naccounts:\n"
        "  a: {proxy: {host: h, port: 1, password: '${USED}'}}\n",
    )
    assert load_config(path, {}).unset_variables == ("USED",)


def test_the_marker_holds_no_text_and_equals_nothing() -> None:
    marker, used = resolve_or_mark("pw-${SET}-${B_UNSET}-${A_UNSET}-${B_UNSET}", {"SET": "hunter2"})
    assert used and isinstance(marker, Unresolved)
    assert marker.names == ("A_UNSET", "B_UNSET")
    assert repr(marker) == str(marker) == "Unresolved(A_UNSET, B_UNSET)"
    assert "hunter2" not in repr(marker) and not hasattr(marker, "__dict__")
    assert marker != marker and (marker == Unresolved(["A_UNSET", "B_UNSET"])) is False
    assert marker != "pw-hunter2--" and marker != Secret("x")
    assert resolve_or_mark("h-${SET}", {"SET": "x"}) == ("h-x", True)
    assert resolve_or_mark("plain $${NOT} text", {}) == ("plain ${NOT} text", False)


NAME_RULE = ": '${...}' takes a variable name (letters, digits and '_', not starting with a digit)"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("${UNSET}-${1BAD}", "malformed reference at character 10" + NAME_RULE),
        ("${UNSET}-${", "unterminated '${' (write '$${' for a literal '${')"),
        ("${}", "malformed reference at character 1" + NAME_RULE),
    ],
)
def test_a_malformed_reference_is_still_an_error_when_another_is_unset(
    write, written: str, message: str
) -> None:
    path = write(
        "a.yaml", f"version: 1\naccounts:\n  a: {{proxy: {{host: h, port: 1, username: '{written}'}}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [str(p) for p in caught.value.problems] == [f"a.yaml:3:43: account 'a': proxy.username: {message}"]
    assert caught.value.problems[0].path == "accounts.a.proxy.username"


def test_validate_needs_no_secret(run, write, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    for name in ("PROXY_PASSWORD", "PROXY_USER", "PROXY_HOST", "OWN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    result = run("validate", "a.yaml")
    assert result.code == 0, result.err
    assert "a.yaml: valid (4 accounts)" in result.err
    write("b.yaml", "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${NOT A NAME}'}}\n")
    result = run("validate", "b.yaml")
    assert result.code == 1 and "b.yaml:3:43: account 'a': proxy.password: malformed reference" in result.err
