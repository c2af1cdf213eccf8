"""Shards, imports and migrations that start at the same moment on a fresh PostgreSQL state agree on its
per-workspace values (lineage and fingerprint salt): the state they leave plans no changes.

Each round runs the applies in threads of this process, each with a backend (and connections) of its own, as
many runners would: a barrier lets them go at once. Rounds repeat, each on a fresh schema, since one round may
happen to run the racers one after the other. One test runs the applies as processes, as a CI matrix does.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.applying import ApplyOptions
from reconciler.config import load_config
from reconciler.planning import shard_of
from reconciler.runs import ApiAccess, ApplyOutcome, ApplyRequest, ApplyScope, StateAccess, apply_run
from reconciler.state import open_backend
from reconciler.state.postgres.backend import PostgresBackend
from tests.helpers import SENTINEL_KEY, SENTINEL_PASSWORD, fresh_postgres_state, start_apply

#: A proxy password each account declares: a secret, so its recorded fingerprint depends on the state's salt.
ACCOUNTS = 64
CONFIG = "version: 1\naccounts:\n" + "".join(
    f"  acc_{i:04d}: {{proxy: {{host: h{i}.example, port: 8080, password: '${{PROXY_PASSWORD}}'}}}}\n"
    for i in range(ACCOUNTS)
)
BARRIER_TIMEOUT = 20.0


def _all_at_once(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run each task in a thread of its own, released together by a barrier; their results, or exceptions."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def one(index: int) -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT)
            results[index] = tasks[index]()
        except BaseException as exc:  # reported by the test, not as an unhandled thread exception
            results[index] = exc

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a racer did not end within 60 s"
    return results


def _shard_apply(
    state_url: str, server: Any, shard: tuple[int, int] | None, lock_timeout: float = 0.0
) -> Callable[[], ApplyOutcome]:
    def apply() -> ApplyOutcome:
        request = ApplyRequest(
            scope=ApplyScope(load_config("a.yaml", {"PROXY_PASSWORD": SENTINEL_PASSWORD}), shard=shard),
            state=StateAccess(open_backend(state_url), lock_timeout=lock_timeout),
            api=ApiAccess(server.url, SENTINEL_KEY),
            options=ApplyOptions(concurrency=4, backoff_base=0.01, backoff_cap=0.05),
        )
        return apply_run(request)

    return apply


@contextlib.contextmanager
def _shards_meet_once_locked(count: int) -> Iterator[list[bool]]:
    """Make the `count` shards of a round all hold their locks before any of them goes on: the moment where
    every shard of a matrix started together has its lock and has yet to read the state. Yields a list that
    gets, for each read of the state, whether it found one (the race is real when two reads found none)."""
    barrier = threading.Barrier(count)
    locking, reading = PostgresBackend.lock, PostgresBackend.read
    reads: list[bool] = []

    @contextlib.contextmanager
    def lock(self: PostgresBackend, *args: Any, **kwargs: Any) -> Iterator[None]:
        with locking(self, *args, **kwargs):
            if kwargs.get("shard") is not None:
                barrier.wait(BARRIER_TIMEOUT)
            yield

    def read(self: PostgresBackend) -> Any:
        recorded = reading(self)
        reads.append(recorded.exists)
        return recorded

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PostgresBackend, "lock", lock)
        patch.setattr(PostgresBackend, "read", read)
        yield reads


def _assert_plans_no_changes(run, state_url: str) -> None:
    plan = run("plan", "a.yaml", "--state", state_url, "--format", "json")
    assert plan.code == 0, plan.err
    changed = sorted(f"{c['account_id']} {c['action']} {c['fields']}" for c in plan.json["changes"])
    assert not changed, f"{len(changed)} change(s) planned after the race, e.g. {changed[:3]}"


@pytest.mark.parametrize(("shards", "rounds"), [(2, 6), (4, 5), (16, 3)])
def test_shards_started_at_once_on_a_fresh_state_agree_on_its_salt(
    run, write, api, server, shards: int, rounds: int
) -> None:
    write("a.yaml", CONFIG)
    every_id = {f"acc_{i:04d}" for i in range(ACCOUNTS)}
    assert {shard_of(i, shards) for i in every_id} == set(range(1, shards + 1))  # each shard has accounts
    raced = 0
    for round_number in range(rounds):
        with fresh_postgres_state("race") as state_url:
            api.stats.patched.clear()
            with _shards_meet_once_locked(shards) as reads:
                outcomes = _all_at_once(
                    [_shard_apply(state_url, server, (k, shards)) for k in range(1, shards + 1)]
                )
            raced += reads.count(False) >= 2
            failed = [outcome for outcome in outcomes if not isinstance(outcome, ApplyOutcome)]
            assert not failed, f"round {round_number}: {failed[0]!r}"
            assert all(outcome.complete for outcome in outcomes)
            assert set(api.stats.patched) == every_id
            state = open_backend(state_url).read()
            assert set(state.accounts) == every_id
            _assert_plans_no_changes(run, state_url)
            again = run("apply", "a.yaml", "--yes", "--state", state_url)
            assert again.code == 0 and "No changes. Nothing to apply." in again.err, again.err
            assert open_backend(state_url).read().salt == state.salt
    assert raced, "in no round did two shards find no state: the test did not race them"


def test_the_documented_four_runner_matrix_on_a_fresh_state(run, write, api, server, workdir) -> None:
    """As CI runs it: four `apply --shard K/4` processes started together, each planning on its own."""
    write("a.yaml", CONFIG)
    for _ in range(2):
        with fresh_postgres_state("race") as state_url:
            runners = [
                start_apply(
                    workdir, server, "--shard", f"{k}/4", state=state_url, stderr=subprocess.PIPE, text=True
                )
                for k in range(1, 5)
            ]
            errors = [runner.communicate(timeout=60)[1] for runner in runners]
            assert [runner.returncode for runner in runners] == [0] * 4, errors
            assert all("Traceback" not in error for error in errors)
            _assert_plans_no_changes(run, state_url)


def test_import_racing_a_sharded_apply_on_a_fresh_state(run, write, api, server) -> None:
    """`import` holds the whole state's lock: it runs before the shards (which wait for it and then have
    nothing to do) or after them, or is refused while they hold it; the state is one state in every case."""
    write("a.yaml", CONFIG)
    for _ in range(6):
        with fresh_postgres_state("race") as state_url:

            def import_() -> Any:
                return run("import", "a.yaml", "--yes", "--state", state_url)

            racers = [_shard_apply(state_url, server, (k, 4), lock_timeout=30) for k in range(1, 5)]
            *outcomes, imported = _all_at_once([*racers, import_])
            failed = [outcome for outcome in outcomes if not isinstance(outcome, ApplyOutcome)]
            assert not failed, repr(failed[0])
            assert all(outcome.complete for outcome in outcomes)
            assert not isinstance(imported, BaseException), repr(imported)
            assert imported.code == 0 or (
                imported.code == 1 and "is locked by apply shard" in imported.err
            ), imported.err
            assert len(open_backend(state_url).read().accounts) == ACCOUNTS
            _assert_plans_no_changes(run, state_url)


def test_state_migrate_racing_a_sharded_apply_on_a_fresh_state(run, write, api, server, workdir) -> None:
    """`state migrate` to a fresh PostgreSQL state while shards apply to it: the migrated state (its lineage
    and salt kept) or the shards' own, never a mixture; either plans no changes."""
    write("a.yaml", CONFIG)
    source = str(workdir / "source.json")
    assert run("apply", "a.yaml", "--yes", "--state", source).code == 0
    original = open_backend(source).read()
    for _ in range(6):
        with fresh_postgres_state("race") as state_url:

            def migrate() -> Any:
                return run("state", "migrate", "--from", source, "--to", state_url)

            racers = [_shard_apply(state_url, server, (k, 4), lock_timeout=30) for k in range(1, 5)]
            *outcomes, migrated = _all_at_once([*racers, migrate])
            failed = [outcome for outcome in outcomes if not isinstance(outcome, ApplyOutcome)]
            assert not failed, repr(failed[0])
            assert all(outcome.complete for outcome in outcomes)
            assert not isinstance(migrated, BaseException), repr(migrated)
            state = open_backend(state_url).read()
            if migrated.code == 0:
                assert (state.lineage, state.salt) == (original.lineage, original.salt)
            else:
                assert "is locked by apply shard" in migrated.err or "already holds" in migrated.err, (
                    migrated.err
                )
                assert state.salt != original.salt
            assert len(state.accounts) == ACCOUNTS
            _assert_plans_no_changes(run, state_url)
