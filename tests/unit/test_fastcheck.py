"""The fast check never accepts what the JSON Schema rejects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.fastcheck import document_certainly_valid
from reconciler.config.schema import accounts_schema
from tests.soak import scale

VALIDATOR = jsonschema.Draft202012Validator(accounts_schema())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "x",
            "US",
            "us",
            "USA",
            "https",
            "ftp",
            "classic",
            "LINKEDIN",
            "1",
            "a b",
            "a\n",
            "2026-01-01T00:00:00Z",
        ]
    ),
)
#: Every key the schema knows, anywhere, and two it does not.
KEY_NAMES = (
    "host",
    "port",
    "protocol",
    "username",
    "password",
    "provider",
    "labels",
    "proxy",
    "country",
    "ip",
    "resync",
    "generation",
    "chunk_size",
    "partial",
    "linkedin_product",
    "after",
    "before",
    "extra",
    "team",
)
keys = st.sampled_from(KEY_NAMES)
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=5), max_leaves=12)
#: Ids on both sides of every rule, the look-alike characters (C1, bidi, zero-width, the other default-ignorable
#: code points: variation selectors, Hangul fillers, tags) and their neighbours included.
REFUSED_ID_CHARACTERS = (
    "\x80\x85\x9f\u200b\u200c\u200d\u2060\ufeff\u061c\u200e\u200f\u202a\u202e\u2066\u2069"
    "\xad\u034f\u115f\u1160\u180e\u2061\u2065\u3164\ufe00\ufe0f\uffa0\U000e0001\U000e007f\U000e0100\U000e0fff"
)
NEIGHBOUR_CHARACTERS = (
    "\xa1\u00e9\u061b\u200a\u2029\u202f\ufefe\U0001f642\u1161\u2070\ufe10\uffa1\U000e1000\u0301"
)
account_ids = st.one_of(
    st.sampled_from(["acc_1", "a b", "", "x" * 257, "acc\n", "ok-2", "\x7f"]),
    st.builds(
        lambda prefix, char, suffix: prefix + char + suffix,
        st.sampled_from(["", "acc"]),
        st.sampled_from(REFUSED_ID_CHARACTERS + NEIGHBOUR_CHARACTERS),
        st.sampled_from(["", "x"]),
    ),
)
documents = st.fixed_dictionaries(
    {"version": st.sampled_from([1, True, "1", 2, 1.0])},
    optional={
        "accounts": st.dictionaries(account_ids, values, max_size=4),
        "defaults": st.one_of(values, st.fixed_dictionaries({"proxy": values})),
        "extra": scalars,
    },
)


#: A document the schema accepts that uses every key it knows, most values at a boundary of their rule.
FULL_DOCUMENT = {
    "version": 1,
    "defaults": {"proxy": {"host": "", "port": 65535, "protocol": "socks5", "username": "", "password": ""}},
    "accounts": {
        "a": {
            "provider": "LINKEDIN",
            "labels": {"team": "x"},
            "proxy": {"host": "h", "port": 1, "protocol": "https", "username": "u", "password": "p"},
            "resync": {
                "generation": 1,
                "chunk_size": 1,
                "partial": False,
                "linkedin_product": "sales_navigator",
                "after": "2026-01-01T00:00:00Z",
                "before": 0,
            },
        },
        "x" * 256: {"country": "us", "ip": "1.2.3.4"},
    },
}
#: What one slip may put in place of a value: every JSON type, and a near miss of each rule.
SLIPS = (
    None,
    True,
    False,
    0,
    -1,
    1,
    1.0,
    1.5,
    65536,
    "",
    "x",
    "USA",
    "US\n",
    "\xe91",
    "HTTPS",
    "Classic",
    "linkedin",
    "1",
    [],
    ["x"],
    {},
    {"generation": 1},
)
#: What a slip may rename a key to: ids on both sides of every rule, and every key in the wrong place.
RENAMES = (
    "",
    "a b",
    "acc\n",
    "x" * 257,
    "ok-2",
    *(f"acc{char}1" for char in REFUSED_ID_CHARACTERS + NEIGHBOUR_CHARACTERS),
    *KEY_NAMES,
)


def single_slips(node: Any) -> Iterator[Any]:
    """Every copy of `node` with one slip: a value replaced, or in a mapping at any depth, a key removed,
    renamed or added."""
    yield from (slip for slip in SLIPS if not (slip == node and type(slip) is type(node)))
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        yield from ({**node, key: variant} for variant in single_slips(value))
        yield {k: v for k, v in node.items() if k != key}
        yield from ({k: v for k, v in node.items() if k != key} | {rename: value} for rename in RENAMES)
    yield from ({**node, key: slip} for key in KEY_NAMES if key not in node for slip in (1, "x", {}))


def test_fast_check_is_sound_on_every_single_slip() -> None:
    """Where a slip of the fast check would hide: a full document with one value, key or id wrong, in every
    way the catalogues above give (a few thousand documents, deterministic), is accepted only if the schema
    accepts it. Each rule of the fast check, loosened by one step, fails this test."""
    assert document_certainly_valid(FULL_DOCUMENT) and VALIDATOR.is_valid(FULL_DOCUMENT)
    accepted = 0
    for document in single_slips(FULL_DOCUMENT):
        if document_certainly_valid(document):
            assert VALIDATOR.is_valid(document), document
            accepted += 1
    assert accepted > 100  # the sweep reaches the accepting path, not only refusals


@pytest.mark.timeout(scale(120, 1800))
@settings(max_examples=scale(300, 30000), deadline=None)
@given(documents)
def test_fast_check_is_sound(document) -> None:
    """Random documents, several slips combined (single slips are swept above; soak mode runs 30,000)."""
    if document_certainly_valid(document):
        assert VALIDATOR.is_valid(document), document


def test_fast_check_accepts_a_typical_document() -> None:
    document = {
        "version": 1,
        "defaults": {"proxy": {"protocol": "https"}},
        "accounts": {
            "a": {
                "provider": "LINKEDIN",
                "labels": {"t": "x"},
                "proxy": {"host": "h", "port": 1, "password": "p"},
                "resync": {"generation": 1, "partial": True, "after": 5},
            },
            "b": {"country": "us", "ip": "1.2.3.4"},
        },
    }
    assert document_certainly_valid(document) and VALIDATOR.is_valid(document)


def _positioned(node, line=[0]):  # noqa: B006 - a counter shared across one conversion
    """The plain document as the loader's YMap tree, each node at its own line."""
    from reconciler.config.yamlpos import YMap

    if not isinstance(node, dict):
        return node
    line[0] += 1
    mapping = YMap((line[0], 1))
    for key, value in node.items():
        line[0] += 1
        mapping[key] = _positioned(value, line)
        mapping.marks[key] = (line[0], 1, line[0], 5)
    return mapping


@settings(max_examples=scale(500, 5000), deadline=None)
@given(documents)
def test_validating_only_suspect_accounts_reports_the_same_problems(document) -> None:
    """The loader validates only the accounts the fast check cannot vouch for: same messages, same places."""
    from reconciler.config import schema_subject
    from reconciler.config.schema import schema_problems

    tree = _positioned(document)
    whole, whole_paths = schema_problems("f.yaml", tree)
    subject, subject_paths = schema_problems("f.yaml", schema_subject(tree))
    assert sorted(map(str, subject)) == sorted(map(str, whole))
    assert subject_paths == whole_paths


@pytest.mark.parametrize("char", REFUSED_ID_CHARACTERS)
def test_the_schema_and_the_fast_check_refuse_look_alike_ids(char: str) -> None:
    document = {"version": 1, "accounts": {f"acc{char}1": {"country": "US"}}}
    assert not VALIDATOR.is_valid(document)
    assert not document_certainly_valid(document)
    assert document_certainly_valid({"version": 1, "accounts": {"acc1": {"country": "US"}}})


def test_ascii_ids_are_judged_as_the_schema_judges_them() -> None:
    """ASCII ids skip the regular expression (fastcheck._id_ok): every ASCII character, and the length bounds."""
    ids = [f"acc{chr(code)}1" for code in range(128)] + ["", "x", "x" * 256, "x" * 257, " ", "\t", "a\x7f"]
    for account_id in ids:
        document = {"version": 1, "accounts": {account_id: {"country": "US"}}}
        assert document_certainly_valid(document) == VALIDATOR.is_valid(document), repr(account_id)
