"""The written-out value classes (reconciler/plain.py) behave as the dataclasses they replaced."""

from __future__ import annotations

import math

import pytest

from reconciler.errors import Problem
from reconciler.model import AccountSpec, Change, Plan, ResyncSpec


def _plan(digest: str) -> Plan:
    return Plan([], 0, None, 0, "c" * 64, lambda: digest, warnings=("w",))


def test_equal_when_every_slot_is_and_only_within_one_class() -> None:
    spec = AccountSpec("acc_1", "LINKEDIN", {"team": "a"}, {"country": "US"}, ResyncSpec(1), "a.yaml", 3, 3)
    same = AccountSpec("acc_1", "LINKEDIN", {"team": "a"}, {"country": "US"}, ResyncSpec(1), "a.yaml", 3, 3)
    assert spec == same  # and `!=` follows: Python derives it from `==`
    assert spec != AccountSpec(
        "acc_1", "LINKEDIN", {"team": "a"}, {"country": "US"}, ResyncSpec(2), "a.yaml", 3, 3
    )
    assert spec != ("acc_1",) and spec != None  # noqa: E711  (another class: never equal)
    with pytest.raises(TypeError):
        hash(spec)  # mutable values: unhashable, as a dataclass with eq


def test_a_value_that_is_not_equal_to_itself_still_compares_as_the_same_object() -> None:
    nan = math.nan
    change = Change("acc_1", "create", False, (), None, {"x": nan})
    assert change == change
    assert change == Change("acc_1", "create", False, (), None, change.after)


def test_a_plans_digest_function_is_neither_compared_nor_shown() -> None:
    assert _plan("one") == _plan("two")
    assert _plan("one") != Plan([], 1, None, 0, "c" * 64, lambda: "one", warnings=("w",))
    shown = repr(_plan("one"))
    assert (
        shown.startswith("Plan(changes=[], secret_only=[], unchanged=0,") and "digest_of_desired" not in shown
    )


def test_a_problem_is_one_line_hashable_and_remade_with_a_new_message() -> None:
    problem = Problem("a\nb.yaml", 2, 5, "bad\x1b[31m value", "warning", "accounts.x\ny")
    assert {problem, Problem("a\nb.yaml", 2, 5, "bad\x1b[31m value", "warning", "accounts.x\ny")} == {problem}
    assert (problem.file, problem.message, problem.path) == (
        "a\\nb.yaml",
        "bad\\x1b[31m value",
        "accounts.x\\ny",
    )
    assert str(problem) == "a\\nb.yaml:2:5: warning: bad\\x1b[31m value"
    redacted = problem.with_message("(sensitive)")
    assert (redacted.file, redacted.line, redacted.col, redacted.severity, redacted.path) == (
        problem.file,
        2,
        5,
        "warning",
        problem.path,
    )
    assert redacted.message == "(sensitive)" and redacted != problem


def test_an_apply_request_never_shows_its_key(tmp_path) -> None:
    from reconciler.runs import ApiAccess, ApplyRequest, ApplyScope, StateAccess
    from reconciler.state.file.backend import FileBackend

    request = ApplyRequest(
        scope=ApplyScope(None),  # type: ignore[arg-type]
        state=StateAccess(FileBackend(tmp_path / "s.json")),
        api=ApiAccess("http://127.0.0.1:1/api/v1", "sentinel-key-0123"),
        fingerprint_key="sentinel-fingerprint-key",
    )
    shown = repr(request)
    assert "sentinel" not in shown and "url='http://127.0.0.1:1/api/v1'" in shown


def test_error_kinds_compare_by_value_as_before() -> None:
    from reconciler.api.catalogue import classify

    unknown = classify("errors/never_heard_of", 418)
    again = classify("errors/never_heard_of", 418)
    assert unknown == again and hash(unknown) == hash(again) and len({unknown, again}) == 1
    assert classify("errors/invalid_parameters", 400) == classify("errors/invalid_parameters", 400)
