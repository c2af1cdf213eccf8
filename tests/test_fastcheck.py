"""The fast check never accepts what the JSON Schema rejects."""

from __future__ import annotations

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
keys = st.sampled_from(
    [
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
    ]
)
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=5), max_leaves=12)
#: Ids on both sides of every rule, the look-alike characters (C1, bidi, zero-width) and their neighbours included.
REFUSED_ID_CHARACTERS = "\x80\x85\x9f\u200b\u200c\u200d\u2060\ufeff\u061c\u200e\u200f\u202a\u202e\u2066\u2069"
NEIGHBOUR_CHARACTERS = "\xa1\u00e9\u061b\u200a\u2061\u2065\u2029\u202f\ufefe\U0001f642"
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


@pytest.mark.timeout(scale(120, 1800))
@settings(max_examples=scale(3000, 30000), deadline=None)
@given(documents)
def test_fast_check_is_sound(document) -> None:
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
    from reconciler.config import _schema_subject
    from reconciler.config.schema import schema_problems

    tree = _positioned(document)
    whole, whole_paths = schema_problems("f.yaml", tree)
    subject, subject_paths = schema_problems("f.yaml", _schema_subject(tree))
    assert sorted(map(str, subject)) == sorted(map(str, whole))
    assert subject_paths == whole_paths


@pytest.mark.parametrize("char", REFUSED_ID_CHARACTERS)
def test_the_schema_and_the_fast_check_refuse_look_alike_ids(char: str) -> None:
    document = {"version": 1, "accounts": {f"acc{char}1": {"country": "US"}}}
    assert not VALIDATOR.is_valid(document)
    assert not document_certainly_valid(document)
    assert document_certainly_valid({"version": 1, "accounts": {"acc1": {"country": "US"}}})
