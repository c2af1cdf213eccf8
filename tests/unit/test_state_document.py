"""The state's plain-Python check agrees with its JSON Schema: it never accepts what the schema rejects, and a
document the schema rejects always gets a message."""

from __future__ import annotations

import json

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.state.document import record_ok, state_problem, state_schema
from tests.soak import scale

VALIDATOR = jsonschema.Draft202012Validator(state_schema())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 5),
    st.just(2**63),
    st.floats(allow_nan=True),
    st.sampled_from(["", "x", "patch", "resync", "delete", "sha256:" + "0" * 64]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["a", "operation"]), inner)
    ),
    max_leaves=4,
)
failures = st.one_of(
    st.none(),
    values,
    st.fixed_dictionaries(
        {"operation": st.sampled_from(["patch", "resync", "x"])},
        optional={"error_type": values, "http_status": values, "message": values, "at": values},
    ),
)
records = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "settings": st.one_of(st.none(), values),
            "applied_at": values,
            "resync_generation": values,
            "resynced_at": values,
            "last_failure": failures,
            "provider": values,
            "extra": values,
        },
    ),
    st.fixed_dictionaries(
        {
            "settings": st.one_of(st.none(), st.just({"country": "US"})),
            "applied_at": st.one_of(st.none(), st.just("t")),
            "resync_generation": st.integers(-1, 3),
            "resynced_at": st.none(),
            "last_failure": failures,
            "provider": st.one_of(st.none(), st.just("LINKEDIN")),
        }
    ),
)
documents = st.one_of(
    values,
    st.fixed_dictionaries(
        {"accounts": st.dictionaries(st.sampled_from(["a", "b\n", "c d"]), records, max_size=3)},
        optional={
            "format_version": st.one_of(st.just(1), values),
            "lineage": st.one_of(st.just("l"), values),
            "serial": st.one_of(st.integers(0, 3), values),
            "salt": st.one_of(st.just("s"), values),
        },
    ),
)


@settings(max_examples=scale(200, 5000), deadline=None)
@given(documents)
def test_state_problem_agrees_with_the_schema(document) -> None:
    problem = state_problem(document)
    valid = VALIDATOR.is_valid(document)
    assert (problem is None) == valid, problem
    if problem:
        assert "\n" not in problem and len(problem) < 500


@settings(max_examples=scale(200, 5000), deadline=None)
@given(records)
def test_record_check_never_accepts_what_the_schema_rejects(record) -> None:
    if record_ok(record):
        assert VALIDATOR.is_valid(
            {"format_version": 1, "lineage": "l", "serial": 0, "salt": "s", "accounts": {"a": record}}
        )


def test_the_schema_is_a_valid_json_schema_and_accepts_what_the_backend_writes(tmp_path) -> None:
    from reconciler.model import AccountRecord, Recorded
    from reconciler.state.file.backend import FileBackend

    jsonschema.Draft202012Validator.check_schema(state_schema())
    recorded = Recorded(
        "l",
        4,
        "salt",
        {
            "a": AccountRecord(settings={"proxy": {"host": "h", "password": "sha256:" + "0" * 64}}),
            "b": AccountRecord(
                last_failure={"operation": "patch", "error_type": "x", "http_status": 502, "at": "t"}
            ),
        },
    )
    FileBackend(tmp_path / "state.json").write(recorded)
    document = json.loads((tmp_path / "state.json").read_text("utf-8"))
    assert VALIDATOR.is_valid(document) and state_problem(document) is None
