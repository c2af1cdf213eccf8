"""The "did you mean" of every message: how the closest names are ranked, and the messages that use them (ids
given to --target and to `state show`/`state forget`, a CONFIG that does not exist, enumerated values), and the
name standard input has in messages."""

from __future__ import annotations

import io
import sys

import pytest

from reconciler.config import STDIN_NAME, load_config
from reconciler.config.schema import accounts_schema
from reconciler.errors import ConfigError
from reconciler.suggestions import MAX_SUGGESTED, closest, edits, suggestion, unknown_ids

TEAM_IDS = ["acc_team_01", "acc_team_12", "acc_team_31"]


# -- ranking ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "options", "expected"),
    [
        # case is ignored, and only the same name in another case is suggested
        ("ACC_TEAM_01", TEAM_IDS, ["acc_team_01"]),
        ("Acc_Team_12", TEAM_IDS, ["acc_team_12"]),
        # zeros before a number are ignored too: `1` is `01`, not the ids with another 1 in them
        ("acc_team_1", TEAM_IDS, ["acc_team_01"]),
        ("acc_team_001", TEAM_IDS, ["acc_team_01"]),
        ("ACC_TEAM_0012", TEAM_IDS, ["acc_team_12"]),
        # one edit each (a replaced digit, two digits swapped): the nearer number first; two edits are not shown
        ("acc_team_13", TEAM_IDS, ["acc_team_12", "acc_team_31"]),
        ("acc_team_30", TEAM_IDS, ["acc_team_31"]),
        # a swap of neighbours is one edit
        ("cac_team_12", TEAM_IDS, ["acc_team_12"]),
        # a letter O for a zero
        ("acc_team_O1", TEAM_IDS, ["acc_team_01", "acc_team_31"]),
        # nothing close: nothing
        ("nothing-like-it", TEAM_IDS, []),
        ("x", ["y", "xy"], []),
        ("a", ["b"], []),
        ("", TEAM_IDS, []),
        # values of the configuration
        ("socks", ["http", "https", "socks5"], ["socks5"]),
        ("httpz", ["http", "https", "socks5"], ["https", "http"]),
        ("linkedin", ["LINKEDIN", "TELEGRAM"], ["LINKEDIN"]),
        ("LINKDIN", ["LINKEDIN", "TELEGRAM"], ["LINKEDIN"]),
    ],
)
def test_the_closest_options_come_first_and_only_those(
    word: str, options: list[str], expected: list[str]
) -> None:
    assert closest(word, options) == expected
    assert closest(word, reversed(options)) == expected  # the order given changes nothing


def test_a_few_at_most_in_a_fixed_order() -> None:
    fleet = [f"acc_{i:04d}" for i in range(2000)]
    assert MAX_SUGGESTED == 3
    # acc_0004, acc_0006, acc_0003, ... acc_0015, acc_1005 are one digit from acc_0005: the three nearest in
    # value, the lower first on a tie
    assert closest("acc_0005", [i for i in fleet if i != "acc_0005"]) == ["acc_0004", "acc_0006", "acc_0003"]
    assert closest("acc_0105", fleet[:100] + fleet[106:]) == ["acc_0106", "acc_0107", "acc_0108"]
    # only the closest: acc_1998 is two edits from acc_9999
    assert closest("acc_9999", fleet) == ["acc_1999", "acc_0999"]
    assert closest("acc_0005x", fleet) == ["acc_0005"]
    assert closest("acc_team_13", TEAM_IDS, limit=1) == ["acc_team_12"]


def test_names_in_another_case_that_differ_only_in_case_are_all_named() -> None:
    assert closest("ab_1", ["AB_1", "ab_01", "Ab_1", "ab_2"]) == ["AB_1", "Ab_1", "ab_01"]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [("ab", "ba", 1), ("abc", "acb", 1), ("kitten", "sitting", 3), ("", "abc", 3), ("same", "same", 0)],
)
def test_edits_counts_adds_removes_replacements_and_swaps(first: str, second: str, expected: int) -> None:
    assert edits(first, second, 5) == expected
    if expected:  # past the bound, counting stops at bound + 1
        assert edits(first, second, expected - 1) == expected
    assert edits("abcdefgh", "hgfedcba", 2) == 3


def test_the_suggestion_and_the_list_of_unknown_ids_read_as_one_line() -> None:
    assert suggestion("ACC_TEAM_01", TEAM_IDS) == " (did you mean 'acc_team_01'?)"
    assert suggestion("zzz", TEAM_IDS) == ""
    unknown = ["acc_team_1", "acc_team_13", "w", "x", "y", "z"]
    assert unknown_ids(unknown, TEAM_IDS) == (
        "'acc_team_1' (did you mean 'acc_team_01'?), 'acc_team_13' (did you mean 'acc_team_12', 'acc_team_31'?), "
        "'w', 'x', 'y' and 1 more"
    )


# -- the messages -------------------------------------------------------------------------------------------------

TEAM = """\
version: 1
accounts:
  acc_team_01: {country: de}
  acc_team_12: {country: US}
  acc_team_31: {country: US}
"""


def test_a_target_is_matched_to_the_declared_ids_whatever_its_case_and_zeros(run, write) -> None:
    write("accounts.yaml", TEAM)
    said = "Error: --target names no declared or recorded account: "
    for target, expected in [
        ("ACC_TEAM_01", "'ACC_TEAM_01' (did you mean 'acc_team_01'?)"),
        ("acc_team_1", "'acc_team_1' (did you mean 'acc_team_01'?)"),
        ("acc_team_13", "'acc_team_13' (did you mean 'acc_team_12', 'acc_team_31'?)"),
    ]:
        for command in (["plan"], ["import", "--yes"]):
            refused = run(*command, "accounts.yaml", "--target", target)
            assert (refused.code, refused.err) == (1, f"{said}{expected}\n")


def test_state_show_and_forget_suggest_the_recorded_ids(run, write) -> None:
    write("accounts.yaml", TEAM)
    assert run("import", "accounts.yaml", "--yes").code == 0
    shown = run("state", "show", "ACC_TEAM_01")
    assert (shown.code, shown.err) == (
        1,
        "Error: 'ACC_TEAM_01' is not in the state (did you mean 'acc_team_01'?)\n",
    )
    forgot = run("state", "forget", "acc_team_1", "acc_team_12", "acc_team_13", "zz")
    assert (forgot.code, forgot.err) == (
        1,
        "Error: not in the state: 'acc_team_1' (did you mean 'acc_team_01'?), 'acc_team_13' (did you mean "
        "'acc_team_12', 'acc_team_31'?), 'zz'\n",
    )
    assert run("state", "show", "acc_team_12").code == 0  # nothing was forgotten


def test_a_config_that_does_not_exist_suggests_the_closest_yaml_file_beside_it(run, write) -> None:
    write("accounts.yaml", TEAM)
    write("infra/prod.yaml", TEAM)
    write("infra/prod.yml", TEAM)
    write("infra/notes.txt", "accounts")
    for config, expected in [
        ("acounts.yaml", "; did you mean 'accounts.yaml'?"),
        ("accounts.yml", "; did you mean 'accounts.yaml'?"),
        ("accounts", "; did you mean 'accounts.yaml'?"),
        ("infra/prd.yaml", "; did you mean 'infra/prod.yaml'?"),
        ("infra/prd.yml", "; did you mean 'infra/prod.yml'?"),
        ("infra/note.yaml", ""),
        ("elsewhere.yaml", ""),
        ("nowhere/accounts.yaml", ""),
    ]:
        for command in ("validate", "plan"):
            refused = run(command, config)
            assert (refused.code, refused.err) == (
                1,
                f"Error: {config}: no such file or directory{expected}\n",
            )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("provider: linkedin, country: US", "accounts.a.provider: 'linkedin' is not one of: LINKEDIN,"),
        ("proxy: {host: h, port: 1, protocol: socks}", "accounts.a.proxy.protocol: value is not one of:"),
    ],
)
def test_an_enumerated_value_is_spelled_as_listed_and_the_spelling_suggested(
    run, write, written, expected
) -> None:
    """`provider`, `protocol` and `linkedin_product` are spelled exactly as the schema lists them (another case is
    an error that names the spelling); `country` is the exception the format makes: any case, upper-cased."""
    write("a.yaml", f"version: 1\naccounts:\n  a: {{{written}}}\n  b: {{country: de}}\n")
    refused = run("validate", "a.yaml")
    assert refused.code == 1
    [line] = [line for line in refused.err.splitlines() if line.startswith("a.yaml:")]
    suggested = "LINKEDIN" if "provider" in written else "socks5"
    assert expected in line and line.endswith(f"; did you mean {suggested!r}?")


def test_every_enumerated_value_in_another_case_suggests_its_spelling(write) -> None:
    """The same rule for every enumerated field of the schema."""
    schema = accounts_schema()["$defs"]
    places = {
        "provider": (
            schema["account"]["properties"]["provider"]["enum"],
            "  a: {{provider: {}, country: US}}\n",
        ),
        "protocol": (schema["protocol"]["enum"], "  a: {{proxy: {{host: h, port: 1, protocol: {}}}}}\n"),
        "linkedin_product": (
            schema["resync"]["properties"]["linkedin_product"]["enum"],
            "  a: {{provider: LINKEDIN, resync: {{generation: 1, linkedin_product: {}}}}}\n",
        ),
    }
    for options, body in places.values():
        for option in options:
            write("a.yaml", "version: 1\naccounts:\n" + body.format(option.swapcase()))
            with pytest.raises(ConfigError) as caught:
                load_config("a.yaml", {})
            [problem] = caught.value.problems
            assert str(problem).endswith(f"; did you mean {option!r}?"), problem


def test_a_secrets_alias_in_capitals_suggests_it_in_lower_case(run, write) -> None:
    write("a.yaml", "version: 1\nsecrets: {Vault: s.sops.yaml}\naccounts:\n  a: {country: US}\n")
    refused = run("validate", "a.yaml")
    assert refused.code == 1
    assert (
        "a.yaml:2:11: secrets: the alias 'Vault' is not lower-case letters, digits and '_' starting with a letter; "
        "did you mean 'vault'?"
    ) in refused.err.splitlines()


# -- standard input is `<stdin>` in every message ---------------------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_standard_input_is_named_stdin_in_every_message(run, monkeypatch) -> None:
    assert STDIN_NAME == "<stdin>"
    _stdin(monkeypatch, "version: 1\naccounts:\n  a: {country: uk}\n")
    refused = run("validate", "-")
    assert refused.code == 1
    assert refused.err.splitlines() == [
        "<stdin>:3:16: account 'a': country 'uk' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' "
        "(United Kingdom)?",
        "1 error(s) in <stdin>",
    ]
    _stdin(monkeypatch, "version: [\n")
    assert run("plan", "-").err.splitlines()[-1] == "1 error(s) in <stdin>"
    _stdin(monkeypatch, TEAM)
    assert run("validate", "-").err == "<stdin>: valid (3 accounts)\n"
    _stdin(monkeypatch, TEAM)
    markdown = run("plan", "-", "--format", "markdown").out
    assert "Config `<stdin>` against state `.reconciler/state.json` (new state)." in markdown
    assert "| `<stdin>` | 3 | 0 | 0 | 0 |" in markdown
    assert "`-`" not in markdown


def test_a_saved_plan_of_standard_input_names_it_stdin_when_stale(run, monkeypatch) -> None:
    _stdin(monkeypatch, TEAM)
    assert run("plan", "-", "--out", "p.json").code == 0
    assert "Config `<stdin>`" in run("show", "p.json", "--format", "markdown").out
    _stdin(monkeypatch, TEAM.replace("de", "FR"))
    stale = run("apply", "--plan", "p.json", "--yes")
    assert stale.code == 1
    assert stale.err.startswith(
        "Error: saved plan is stale: the configuration <stdin> differs from the one planned"
    )
