"""Start-up: what apply computes before its first request is only what that request needs (BENCHMARKS.md)."""

from __future__ import annotations

import gc

from reconciler import collector, planning
from reconciler.applying import Engine
from reconciler.sandbox import Fault, Sandbox, ServerThread
from tests.helpers import SENTINEL_KEY, fleet, modules_after, run_engine


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


#: What an apply of a config file has no use for: other commands, saved plans, JSON Schema (a valid file skips
#: it), package metadata and resources, aiohttp, the sandbox. Each once cost start-up time (BENCHMARKS.md).
NOT_FOR_APPLY = (
    "reconciler.cli.plan",
    "reconciler.cli.state",
    "reconciler.cli.sandbox",
    "reconciler.planfile",
    "reconciler.sandbox",
    "jsonschema",
    "importlib.metadata",
    "importlib.resources",
    "aiohttp",
    "email.utils",
)


def test_apply_imports_only_what_it_uses(workdir, write, api) -> None:
    write("a.yaml", fleet(5))
    imported = modules_after(workdir, ["apply", "a.yaml", "--yes"])
    assert len(api.stats.patched) == 5
    assert "reconciler.cli.apply" in imported and "pycurl" in imported
    assert [name for name in NOT_FOR_APPLY if name in imported] == []


def test_apply_runs_with_the_collector_paused_and_restores_it(run, write, api, monkeypatch) -> None:
    """The cyclic collector walked the whole configuration and plan several times per apply (BENCHMARKS.md)."""
    seen: list[bool] = []
    real = Engine.run

    async def watched(self: Engine, changes: list) -> list:
        seen.append(gc.isenabled())
        return await real(self, changes)

    monkeypatch.setattr(Engine, "run", watched)
    assert gc.isenabled()
    write("a.yaml", fleet(5))
    assert run("apply", "a.yaml", "--yes").code == 0
    assert seen == [False]
    assert gc.isenabled()
    assert run("apply", "missing.yaml", "--yes").code == 1
    assert gc.isenabled()
    assert run("plan", "a.yaml").code == 0
    assert run("validate", "a.yaml").code == 0
    assert gc.isenabled()


def test_failed_exchanges_leave_no_garbage_for_the_paused_collector(workdir, write) -> None:
    """With the collector paused for a whole apply, cyclic garbage would pile up until the end: a request that got
    no answer once left ten objects in a cycle (its future, the error, the traceback and its frames)."""
    sandbox = Sandbox(SENTINEL_KEY, accept_any_account=True, faults=[Fault("drop", 0.5)])
    server = ServerThread(sandbox).start()
    gc.collect()
    try:
        with collector.paused():
            outcome, _ = run_engine(
                workdir, server, write("a.yaml", fleet(200)), concurrency=8, max_consecutive_failures=0
            )
            failed = sum(result.outcome == "failed" for result in outcome.results) + sum(
                result.attempts - 1 for result in outcome.results if result.attempts
            )
            left = gc.collect()
    finally:
        server.stop()
    assert failed >= 50  # the drops happened: each is a request that got no answer
    # What is left is the session's own teardown (a handle and its buffers per connection, the loop), whatever
    # the failures; each failed exchange used to add ten.
    assert left < 150, f"{left} objects of cyclic garbage after {failed} failed exchanges"


def test_apply_imports_no_dataclass_of_its_own(workdir, write, api) -> None:
    """Each dataclass compiled its methods from source at import: ~25 ms of start-up for twenty (plain.py)."""
    import dataclasses
    import importlib

    write("a.yaml", fleet(5))
    imported = modules_after(workdir, ["apply", "a.yaml", "--yes"])
    assert len(api.stats.patched) == 5
    ours = sorted(name for name in imported if name == "reconciler" or name.startswith("reconciler."))
    assert "reconciler.model" in ours and "reconciler.runs" in ours
    made = [
        f"{name}.{attribute}"
        for name in ours
        for attribute, value in vars(importlib.import_module(name)).items()
        if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value)
    ]
    assert made == []
    # Imported where they are used: "did you mean" (and its table of countries), markdown and redaction.
    for late in ("difflib", "reconciler.config.countries", "html"):
        assert late not in imported, late
