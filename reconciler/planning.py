"""desired + recorded -> Plan. Pure: no I/O, no network, no clock."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.errors import UnsafePlan
from reconciler.model import AccountSpec, Change, Desired, Plan, Recorded
from reconciler.secrets import fingerprinted

#: Below this many recorded accounts the safety bounds do not apply (as octoDNS's MIN_EXISTING_RECORDS).
MIN_EXISTING_RECORDS = 10


def select_accounts(
    account_ids: Iterable[str],
    specs: Mapping[str, AccountSpec],
    targets: Iterable[str],
    selectors: Iterable[tuple[str, str]],
) -> set[str]:
    """The ids that `--target` and `--select` keep (all when neither is given).

    `--target` names ids exactly; `--select KEY=VALUE` keeps declared accounts whose label matches (all
    selectors must match). An account in the state but no longer declared has no labels: only `--target`
    reaches it, so a `--select` run never forgets accounts by accident.
    """
    targets = set(targets)
    selectors = list(selectors)
    chosen = set()
    for account_id in account_ids:
        if targets and account_id not in targets:
            continue
        if selectors:
            spec = specs.get(account_id)
            if spec is None or any(spec.labels.get(key) != value for key, value in selectors):
                continue
        chosen.add(account_id)
    return chosen


def shard_of(account_id: str, shard_count: int) -> int:
    """The shard (1..shard_count) an account belongs to: a stable hash of its id, the same on every runner."""
    digest = hashlib.sha256(account_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count + 1


def desired_digest(desired: Desired, fingerprinted_settings: dict[str, dict[str, Any] | None]) -> str:
    """A digest of everything apply would send: settings (secrets as fingerprints) and resync wishes."""
    digest = hashlib.sha256()
    for account_id in sorted(desired.accounts):
        spec = desired.accounts[account_id]
        entry = [
            account_id,
            fingerprinted_settings[account_id],
            spec.resync.as_dict() if spec.resync else None,
            spec.provider,
        ]
        digest.update(json.dumps(entry, sort_keys=True).encode())
    return digest.hexdigest()


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str, ...]:
    """Dotted paths of the leaves that differ (`proxy.host`), via deepdiff."""
    if before is None or after is None:
        return tuple(sorted(_leaves(after if before is None else before)))
    from deepdiff import DeepDiff  # imported on first use: ~45 ms of start-up, needed only for updates

    diff = DeepDiff(before, after)
    paths = set()
    for path in diff.affected_paths:
        parts = [part.strip("'\"") for part in path.removeprefix("root[").rstrip("]").split("][")]
        paths.add(".".join(parts))
    return tuple(sorted(paths))


def _leaves(settings: dict[str, Any] | None, prefix: str = "") -> list[str]:
    leaves: list[str] = []
    for key, value in (settings or {}).items():
        if isinstance(value, dict):
            leaves.extend(_leaves(value, f"{prefix}{key}."))
        else:
            leaves.append(prefix + key)
    return leaves


def make_plan(
    desired: Desired,
    recorded: Recorded,
    targets: Iterable[str] = (),
    selectors: Iterable[tuple[str, str]] = (),
    shard: tuple[int, int] | None = None,
) -> Plan:
    """Compare what is declared with what was recorded; one Change per account with something to do.

    With `shard=(K, N)`, only the accounts of shard K of N are considered.
    """
    salt = recorded.salt
    chosen = select_accounts(
        desired.accounts.keys() | recorded.accounts.keys(), desired.accounts, targets, selectors
    )
    if shard is not None:
        chosen = {account_id for account_id in chosen if shard_of(account_id, shard[1]) == shard[0]}
    desired_settings = {
        account_id: fingerprinted(spec.settings, salt) for account_id, spec in desired.accounts.items()
    }
    changes: list[Change] = []
    unchanged = 0
    for account_id in sorted(chosen):
        spec = desired.accounts.get(account_id)
        record = recorded.accounts.get(account_id)
        if spec is None:
            assert record is not None
            changes.append(
                Change(
                    account_id,
                    "forget",
                    False,
                    tuple(sorted(_leaves(record.settings))),
                    record.settings,
                    None,
                    None,
                    record.resync_generation,
                )
            )
            continue
        after = desired_settings[account_id]
        before = record.settings if record else None
        recorded_generation = record.resync_generation if record else 0
        failed_patch = bool(
            record and record.last_failure and record.last_failure.get("operation") == "patch"
        )
        if after is None:
            action = "none"  # resync-only account: nothing to PATCH
        elif record is None or record.settings is None:
            action = "create"
        elif before != after or failed_patch:
            action = "update"
        else:
            action = "none"
        resync = bool(spec.resync and spec.resync.generation > recorded_generation)
        if action == "none" and not resync:
            unchanged += 1
            continue
        fields = changed_fields(before, after) if action != "none" else ()
        changes.append(
            Change(
                account_id,
                action,
                resync,
                fields,
                before,
                after,
                spec.resync.generation if spec.resync else None,
                recorded_generation,
            )
        )
    return Plan(
        changes=changes,
        unchanged=unchanged,
        lineage=recorded.lineage,
        serial=recorded.serial,
        salt=salt,
        config_digest=desired.config_digest,
        digest_of_desired=functools.cache(lambda: desired_digest(desired, desired_settings)),
        files=tuple(desired.files),
    )


def raise_if_unsafe(
    plan: Plan, recorded: Recorded, max_update_percent: float, max_forget_percent: float
) -> None:
    """Refuse a plan that updates or forgets too large a share of a state of 10 or more accounts."""
    existing = len(recorded.accounts)
    if existing < MIN_EXISTING_RECORDS:
        return
    for action, bound in (("update", max_update_percent), ("forget", max_forget_percent)):
        count = plan.count(action)
        percent = 100.0 * count / existing
        if percent > bound:
            raise UnsafePlan(
                f"too many {action}s: {percent:.2f}% is over {bound:.2f}% ({count}/{existing}); "
                "--force required"
            )
