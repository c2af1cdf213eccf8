"""Start-up: what apply computes before its first request is only what that request needs (BENCHMARKS.md)."""

from __future__ import annotations

from reconciler import planning
from tests.helpers import fleet


def test_apply_without_a_saved_plan_computes_no_desired_digest(run, write, api, monkeypatch) -> None:
    def refuse(*args: object) -> str:
        raise AssertionError("the desired digest was computed")

    monkeypatch.setattr(planning, "desired_digest", refuse)
    write("a.yaml", fleet(20))
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 0, result.err
    assert len(api.stats.patched) == 20


def test_a_saved_plan_still_has_its_digest_checked(run, write, api, monkeypatch) -> None:
    write("a.yaml", fleet(3))
    assert run("plan", "a.yaml", "--out", "p.plan").code == 0
    computed: list[str] = []
    real = planning.desired_digest

    def counted(*args: object) -> str:
        computed.append("digest")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(planning, "desired_digest", counted)
    assert run("apply", "--plan", "p.plan", "--yes").code == 0
    assert computed == ["digest"]  # once, for the freshness check
    assert len(api.stats.patched) == 3
