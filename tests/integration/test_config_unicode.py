"""Account ids that look the same are refused: compared in Unicode NFC, no invisible code point, a warning for
mixed scripts. A pull-request comment must never show two lines that read alike for two different accounts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from reconciler.config import load_config
from reconciler.config.fastcheck import ACCOUNT_ID, document_certainly_valid
from reconciler.config.ids import DEFAULT_IGNORABLE
from reconciler.config.yamlpos import decode, load
from reconciler.errors import ConfigError

HEADER = "version: 1\naccounts:\n"
POSITIONED = re.compile(r"^a\.yaml:\d+:\d+: ", re.MULTILINE)


def accounts(*ids: str) -> str:
    """A config declaring each id (double-quoted) on lines 3, 4, ..."""
    return HEADER + "".join(f"  {json.dumps(i, ensure_ascii=False)}: {{country: US}}\n" for i in ids)


def problems_of(write, text: str) -> list[str]:
    path = write("a.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\ufe0f", "VARIATION SELECTOR-16"),
        ("\ufe00", "VARIATION SELECTOR-1"),
        ("\U000e0100", "VARIATION SELECTOR-17"),
        ("\U000e01ef", "VARIATION SELECTOR-256"),
        ("\u115f", "HANGUL CHOSEONG FILLER"),
        ("\u1160", "HANGUL JUNGSEONG FILLER"),
        ("\u3164", "HANGUL FILLER"),
        ("\uffa0", "HALFWIDTH HANGUL FILLER"),
        ("\u034f", "COMBINING GRAPHEME JOINER"),
        ("\u00ad", "SOFT HYPHEN"),
        ("\u180e", "MONGOLIAN VOWEL SEPARATOR"),
        ("\u2061", "FUNCTION APPLICATION"),
        ("\U000e0001", "LANGUAGE TAG"),
        ("\U000e0041", "TAG LATIN CAPITAL LETTER A"),
        ("\U000e007f", "CANCEL TAG"),
        ("\U0001d173", "MUSICAL SYMBOL BEGIN BEAM"),
    ],
)
def test_an_id_with_an_invisible_code_point_beside_its_look_alike_is_refused(
    run, write, char: str, name: str
) -> None:
    write("a.yaml", accounts("acc_1", "acc_1" + char))
    result = run("validate", "a.yaml")
    assert result.code == 1
    escaped = f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}"
    if ord(char) < 0x100:
        escaped = f"\\x{ord(char):02x}"
    assert POSITIONED.findall(result.err) == ["a.yaml:4:3: "], result.err
    assert (
        f"a.yaml:4:3: invalid account id 'acc_1{escaped}': character 6 is U+{ord(char):04X}, an invisible "
        f"(default-ignorable) code point, {name}; 1-256 characters, no whitespace, control, bidi, zero-width "
        "or other invisible characters"
    ) in result.err
    assert result.err.isascii()  # the invisible character is shown escaped, never as itself


def test_every_default_ignorable_code_point_is_refused_by_the_schema_pattern() -> None:
    for first, last in DEFAULT_IGNORABLE:
        for code in range(first, last + 1):
            assert not ACCOUNT_ID.fullmatch("acc" + chr(code)), hex(code)
    for allowed in ("acc_1", "café", "账户", "emoji🙂", "\u1161", "\ufe10", "\U000e1000", "\U0001bca4"):
        assert ACCOUNT_ID.fullmatch(allowed), allowed


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
def test_the_ranges_are_unicodes_default_ignorable_code_points() -> None:
    """Perl carries the Unicode database: its `\\p{Default_Ignorable_Code_Point}` is the same list, where its
    Unicode version is the one the ranges were written from (14.0) or a later one that did not change them."""
    script = (
        "my @r; my $s = -2; my $p = -2;"
        "for my $c (0 .. 0x10FFFF) { next if $c >= 0xD800 && $c <= 0xDFFF;"
        " next unless chr($c) =~ /\\p{Default_Ignorable_Code_Point}/;"
        " if ($c != $p + 1) { push @r, [$s, $p] if $s >= 0; $s = $c } $p = $c }"
        'push @r, [$s, $p]; print join(\',\', map { "$_->[0]-$_->[1]" } @r), "\\n";'
    )
    output = subprocess.run(["perl", "-e", script], capture_output=True, text=True, check=True).stdout
    perl = [tuple(int(number) for number in pair.split("-")) for pair in output.strip().split(",")]
    ours = []
    for first, last in DEFAULT_IGNORABLE:  # adjacent ranges (split only for their comments) as one
        if ours and ours[-1][1] + 1 == first:
            ours[-1] = (ours[-1][0], last)
        else:
            ours.append((first, last))
    assert perl == ours


def test_composed_and_decomposed_ids_are_one_id_declared_twice(run, write) -> None:
    write("a.yaml", accounts("café", "cafe\u0301"))
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert POSITIONED.findall(result.err) == ["a.yaml:4:3: "], result.err
    assert (
        "a.yaml:4:3: account 'cafe\\u0301' is also declared in a.yaml:3:3 as 'caf\\xe9': the same id in "
        "Unicode NFC ('café')"
    ) in result.err


def test_decomposed_first_then_composed_in_another_file(run, write) -> None:
    write("conf/1.yaml", accounts("cafe\u0301"))
    write("conf/2.yaml", accounts("café"))
    result = run("validate", "conf")
    assert result.code == 1
    assert (
        "conf/1.yaml:3:3: account id 'cafe\\u0301' is not in Unicode NFC; write it as 'caf\\xe9'"
        in result.err
    )
    assert (
        "conf/2.yaml:3:3: account 'caf\\xe9' is also declared in conf/1.yaml:3:3 as 'cafe\\u0301': the same id "
        "in Unicode NFC"
    ) in result.err


def test_an_id_not_in_nfc_is_an_error_that_shows_its_nfc_form(run, write) -> None:
    write("a.yaml", accounts("acc_re\u0301sume\u0301"))  # decomposed, alone
    result = run("validate", "a.yaml")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "a.yaml:3:3: account id 'acc_re\\u0301sume\\u0301' is not in Unicode NFC; write it as "
        "'acc_r\\xe9sum\\xe9' (the same text in NFC: 'acc_résumé')"
    )
    assert run("plan", "a.yaml").code == 1


def test_the_nfc_check_runs_on_the_fast_path(write) -> None:
    """The fast schema check vouches for a document with a decomposed id (the schema cannot see NFC); the
    loader must still refuse it."""
    text = accounts(*(f"acc_{i}" for i in range(50)), "cafe\u0301")
    assert document_certainly_valid(load("a.yaml", decode("a.yaml", text.encode())).value)
    assert problems_of(write, text) == [
        "a.yaml:53:3: account id 'cafe\\u0301' is not in Unicode NFC; write it as 'caf\\xe9' (the same text in "
        "NFC: 'café')"
    ]


def test_a_single_non_nfc_character_is_named_too(write) -> None:
    """U+212B ANGSTROM SIGN is its own decomposition's look-alike: NFC makes it U+00C5."""
    assert problems_of(write, accounts("acc_\u212b")) == [
        "a.yaml:3:3: account id 'acc_\\u212b' is not in Unicode NFC; write it as 'acc_\\xc5' (the same text in "
        "NFC: 'acc_Å')"
    ]


@pytest.mark.parametrize(
    ("account_id", "scripts"),
    [
        ("p\u0430ypal", "Latin and Cyrillic"),  # a Cyrillic а in a Latin id
        ("acc_\u03bf1", "Latin and Greek"),  # a Greek omicron
        ("\u0430\u03b1", "Cyrillic and Greek"),
    ],
)
def test_an_id_that_mixes_scripts_is_a_warning(
    run, write, monkeypatch, account_id: str, scripts: str
) -> None:
    write("a.yaml", accounts("paypal", account_id))
    result = run("validate", "a.yaml")
    assert result.code == 0, result.err
    escaped = account_id.encode("ascii", "backslashreplace").decode()
    line = f"a.yaml:4:3: warning: account id '{escaped}' mixes {scripts} letters, which look alike"
    assert line in result.err
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    annotated = run("validate", "a.yaml")
    assert annotated.code == 0
    assert (
        f"::warning file=a.yaml,line=4,col=3::account id '{escaped}' mixes {scripts} letters" in annotated.err
    )
    assert run("plan", "a.yaml").code == 0


@pytest.mark.parametrize(
    "account_id", ["café", "账户", "Ελλάδα_1", "москва-2", "acc_ß", "emoji🙂", "x\u0301"]
)
def test_ids_in_one_script_are_fine(write, account_id: str) -> None:
    path = write("a.yaml", accounts(account_id))
    desired = load_config(path, {})
    assert list(desired.accounts) == [account_id] and desired.warnings == []
