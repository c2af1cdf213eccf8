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

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "US", "us", "USA", "https", "ftp", "classic", "LINKEDIN", "1", "a b",
                                     "a\n", "2026-01-01T00:00:00Z"]))
keys = st.sampled_from(["host", "port", "protocol", "username", "password", "provider", "labels", "proxy",
                        "country", "ip", "resync", "generation", "chunk_size", "partial", "linkedin_product",
                        "after", "before", "extra", "team"])
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=5), max_leaves=12)
account_ids = st.sampled_from(["acc_1", "a b", "", "x" * 257, "acc\n", "ok-2", "\x7f"])
documents = st.fixed_dictionaries(
    {"version": st.sampled_from([1, True, "1", 2, 1.0])},
    optional={"accounts": st.dictionaries(account_ids, values, max_size=4),
              "defaults": st.one_of(values, st.fixed_dictionaries({"proxy": values})),
              "extra": scalars})


@pytest.mark.timeout(scale(120, 1800))
@settings(max_examples=scale(3000, 30000), deadline=None)
@given(documents)
def test_fast_check_is_sound(document) -> None:
    if document_certainly_valid(document):
        assert VALIDATOR.is_valid(document), document


def test_fast_check_accepts_a_typical_document() -> None:
    document = {"version": 1, "defaults": {"proxy": {"protocol": "https"}},
                "accounts": {"a": {"provider": "LINKEDIN", "labels": {"t": "x"},
                                   "proxy": {"host": "h", "port": 1, "password": "p"},
                                   "resync": {"generation": 1, "partial": True, "after": 5}},
                             "b": {"country": "us", "ip": "1.2.3.4"}}}
    assert document_certainly_valid(document) and VALIDATOR.is_valid(document)
