"""desired + recorded -> Plan. Pure: no I/O, no network, no clock."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.errors import UnsafePlan, UsageError
from reconciler.model import (
    AccountRecord,
    AccountSpec,
    Action,
    BoundCheck,
    Change,
    Desired,
    Elsewhere,
    Plan,
    Recorded,
    Safety,
    settings_leaves,
)
from reconciler.secrets import Secret, fingerprinted, keyed_salt, masked, text_of, unresolved_names
from reconciler.state.stored import typed
from reconciler.suggestions import unknown_ids

#: Below this many recorded accounts the safety bounds do not apply (as octoDNS's MIN_EXISTING_RECORDS).
MIN_EXISTING_RECORDS = 10
#: Below this many resyncs of accounts the state does not hold, the resync bound does not apply.
MIN_FRESH_RESYNCS = 10
#: The resync bound's default: resyncs of accounts the state does not hold, in percent of the declared accounts
#: planned. As the update and forget bounds: more than 30% of the fleet at once asks for `--force`, or a bound
#: given; a new fleet seldom asks a resync of so many (docs/apply.md, "Safety bounds").
DEFAULT_MAX_RESYNC_PERCENT = 30.0


def select_accounts(
    account_ids: Iterable[str],
    specs: Mapping[str, AccountSpec],
    targets: Iterable[str],
    selectors: Iterable[tuple[str, str]],
    recorded_ids: Callable[[], Iterable[str]] | None = None,
) -> set[str]:
    """The ids that `--target` and `--select` keep (all when neither is given).

    `--target` names ids exactly; `--select KEY=VALUE` keeps declared accounts whose label matches (all
    selectors must match). An account in the state but no longer declared has no labels: only `--target`
    reaches it, so a `--select` run never forgets accounts by accident. `recorded_ids`: as in `check_targets`.
    """
    targets = set(targets)
    selectors = list(selectors)
    known = set(account_ids) if not isinstance(account_ids, set) else account_ids
    check_targets(targets, known, recorded_ids)
    if not targets and not selectors:
        return set(known)
    chosen = set()
    for account_id in account_ids:
        if targets and account_id not in targets:
            continue
        if selectors:
            spec = specs.get(account_id)
            if spec is None or any(spec.labels.get(key) != value for key, value in selectors):
                continue
        chosen.add(account_id)
    if selectors and not chosen:
        raise UsageError(unmatched_selection(selectors, specs, bool(targets)))
    return chosen


#: Declared labels named in the refusal of a `--select` that matches nothing; the rest are counted.
MAX_LABELS_SHOWN = 10


def unmatched_selection(
    selectors: list[tuple[str, str]], specs: Mapping[str, AccountSpec], targeted: bool = False
) -> str:
    """Why `--select` chose nothing, naming the declared labels (`KEY=VALUE`), the closest to the first selector
    that matches nothing first: a typo (`team=emae`) is an error, not a silent "No changes" in CI."""
    import difflib

    said = " ".join(f"--select {key}={value}" for key, value in selectors)
    matches = "matches" if len(selectors) == 1 else "match"
    counts: dict[tuple[str, str], int] = {}
    for spec in specs.values():
        for pair in spec.labels.items():
            counts[pair] = counts.get(pair, 0) + 1
    alone = [pair for pair in selectors if pair not in counts]
    if not alone:  # each matches some declared account
        if targeted:
            return f"{said} {matches} none of the accounts that --target names"
        return f"{said} match no declared account together (each alone matches some)"
    if not counts:
        return f"{said} {matches} no declared account: no declared account has labels"
    key, value = alone[0]
    wanted = f"{key}={value}"

    def closeness(pair: tuple[str, str]) -> tuple[float, float, str, str]:
        return (
            -difflib.SequenceMatcher(None, wanted, f"{pair[0]}={pair[1]}").ratio(),
            -float(pair[0] == key),
            *pair,
        )

    ordered = sorted(counts, key=closeness)
    shown = ", ".join(f"{k}={v} ({counts[(k, v)]})" for k, v in ordered[:MAX_LABELS_SHOWN])
    more = f" and {len(ordered) - MAX_LABELS_SHOWN} more" if len(ordered) > MAX_LABELS_SHOWN else ""
    return (
        f"{said} {matches} no declared account; declared labels (accounts), the closest first: {shown}{more}"
    )


def check_targets(
    targets: set[str], known: set[str], recorded_ids: Callable[[], Iterable[str]] | None = None
) -> None:
    """A `--target` that is neither declared nor recorded is a typo, not "no changes": refuse it, naming the
    closest ids.

    `known` may hold only the targets' own records when the state was read for them alone (`read_accounts`):
    then `recorded_ids` gives every recorded id, asked only on this error's path to name the close ones.
    """
    unknown = sorted(targets - known)
    if not unknown:
        return
    if recorded_ids is not None:
        known = known | set(recorded_ids())
        unknown = sorted(targets - known)
        if not unknown:  # recorded since the targets were read (plan takes no lock): planned as read
            return
    raise UsageError(f"--target names no declared or recorded account: {unknown_ids(unknown, known)}")


def shard_of(account_id: str, shard_count: int) -> int:
    """The shard (1..shard_count) an account belongs to: a stable hash of its id, the same on every runner."""
    digest = hashlib.sha256(account_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count + 1


def desired_digest(desired: Desired) -> str:
    """A digest of everything apply would send apart from secrets (those are `(sensitive)` here): settings,
    resync wishes and providers. The secrets have their own digest (`secrets.secrets_digest`)."""
    digest = hashlib.sha256()
    for account_id in sorted(desired.accounts):
        spec = desired.accounts[account_id]
        entry = [
            account_id,
            masked(spec.settings),
            spec.resync.as_dict() if spec.resync else None,
            spec.provider,
        ]
        digest.update(json.dumps(entry, sort_keys=True, default=text_of).encode())
    return digest.hexdigest()


def _same(left: Any, right: Any) -> bool:
    """Equal and of one type: a port of 1 is not `true`, and `8080` is not `"8080"`."""
    return type(left) is type(right) and left == right


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str, ...]:
    """Dotted paths of the leaves that differ (`proxy.host`), present on one side only included.

    Switching a custom proxy for a managed one lists every `proxy.*` leaf and `country`/`ip`: setting each
    listed leaf of `before` to its value in `after` (or removing it) gives `after`.
    """
    old, new = settings_leaves(before), settings_leaves(after)
    return tuple(
        sorted(
            path
            for path in old.keys() | new.keys()
            if path not in old or path not in new or not _same(old[path], new[path])
        )
    )


def make_plan(
    desired: Desired,
    recorded: Recorded,
    targets: Iterable[str] = (),
    selectors: Iterable[tuple[str, str]] = (),
    shard: tuple[int, int] | None = None,
    fingerprint_key: str | None = None,
    recorded_ids: Callable[[], Iterable[str]] | None = None,
) -> Plan:
    """Compare what is declared with what was recorded; one Change per account with something to do.

    With `shard=(K, N)`, only the accounts of shard K of N are considered. `fingerprint_key` is the optional
    key mixed into the state's salt (`secrets.keyed_salt`); the fingerprints of `after` are made with it.
    With `targets`, `recorded` may hold only the targets' records (`Backend.read_accounts`): the plan is the
    same, and `recorded_ids` (every recorded id) names close ids when a target is neither declared nor recorded.
    """
    salt = keyed_salt(recorded.salt, fingerprint_key)
    chosen = _chosen(desired, recorded, targets, selectors, shard, recorded_ids)
    changes: list[Change] = []
    unchanged = 0
    unset: set[str] = set()
    specs, records, some_unset = desired.accounts, recorded.accounts, bool(desired.unset_variables)
    for account_id in sorted(chosen):
        spec = specs.get(account_id)
        record = records.get(account_id)
        if spec is None:
            assert record is not None
            changes.append(_forget(account_id, record))
            continue
        # A value behind an unset variable is a NotKnown that equals no fingerprint: never claimed unchanged.
        after = fingerprinted(spec.settings, salt)
        if some_unset:  # the file names none: no account's settings wait for one
            unset |= unresolved_names(spec.settings)
        action: Action
        fields: tuple[str, ...] = ()
        if record is None:  # never applied: the common case of a first apply, decided at once
            before, recorded_generation = None, 0
            if after is not None:
                action, fields = "create", tuple(sorted(settings_leaves(after)))  # every leaf
            else:
                action = "none"  # resync-only account: nothing to PATCH
        else:
            before, recorded_generation = record.settings, record.resync_generation
            action, fields = _against_record(record, after)
        resync = bool(spec.resync and spec.resync.generation > recorded_generation)
        if action == "none" and not resync:
            unchanged += 1
            continue
        generation = spec.resync.generation if spec.resync else None
        # Positional: keywords cost twice as much here, once per account (the order is Change's). The stored
        # fingerprints of `before` are typed for the changes alone, in place (reconciler.state.stored).
        changes.append(
            Change(
                account_id,
                action,
                resync,
                fields,
                before if fields else typed(before),  # with fields, typed above
                after,
                generation,
                recorded_generation,
                spec.file,
            )
        )
    return Plan(
        changes=changes,
        unchanged=unchanged,
        lineage=recorded.lineage,
        serial=recorded.serial,
        config_digest=desired.config_digest,
        digest_of_desired=functools.cache(lambda: desired_digest(desired)),
        files=tuple(desired.files),
        warnings=tuple(str(warning) for warning in desired.warnings),
        unset_variables=tuple(sorted(unset)),
    )


def _chosen(
    desired: Desired,
    recorded: Recorded,
    targets: Iterable[str],
    selectors: Iterable[tuple[str, str]],
    shard: tuple[int, int] | None,
    recorded_ids: Callable[[], Iterable[str]] | None,
) -> set[str]:
    """The accounts a plan considers: declared or recorded, as `--target` and `--select` choose, in the shard."""
    chosen = select_accounts(
        desired.accounts.keys() | recorded.accounts.keys(), desired.accounts, targets, selectors, recorded_ids
    )
    if shard is not None:
        chosen = {account_id for account_id in chosen if shard_of(account_id, shard[1]) == shard[0]}
    return chosen


def _forget(account_id: str, record: AccountRecord) -> Change:
    """The change for an account recorded and no longer declared: forgotten (nothing is sent for it)."""
    return Change(
        account_id=account_id,
        action="forget",
        resync=False,
        fields=changed_fields(record.settings, None),
        before=typed(record.settings),  # the stored fingerprints typed, in place
        after=None,
        resync_generation=None,
        recorded_generation=record.resync_generation,
    )


def _against_record(record: AccountRecord, after: dict[str, Any] | None) -> tuple[Action, tuple[str, ...]]:
    """What to do with the settings `after` of an account the state holds, and the fields that change: create
    (no settings recorded), update (settings that differ, or a last PATCH that failed), or none."""
    before = record.settings
    failed_patch = bool(record.last_failure and record.last_failure.get("operation") == "patch")
    fields: tuple[str, ...] = ()
    # `!=` first: at 100,000 accounts flattening every unchanged account would cost seconds.
    if after is not None and before != after:  # a Fingerprint equals its stored text
        typed(before)  # its stored fingerprints typed, in place (reconciler.state.stored)
        fields = changed_fields(before, after)  # with no settings recorded: every leaf of `after`
    if after is None:
        return "none", fields
    if before is None:
        return "create", fields
    if fields or failed_patch:
        return "update", fields
    return "none", fields


def weigh(
    plan: Plan,
    existing: int,
    max_update_percent: float = 30.0,
    max_forget_percent: float = 30.0,
    max_resync_percent: float | None = DEFAULT_MAX_RESYNC_PERCENT,
    elsewhere: Elsewhere | None = None,
) -> Safety:
    """The safety bounds against `plan`, for a state of `existing` recorded accounts: what `apply` refuses
    without `--force`, and what `plan` says it would. Updates that depend only on secrets not known here are
    weighed apart: they may or may not be changes.

    The resync bound weighs the resyncs of accounts the state holds nothing for against the declared accounts
    planned (`max_resync_percent` None: not known, a saved plan of an earlier version). `elsewhere`: another state holds
    most of the accounts to create (`state.look_elsewhere`), which apply refuses too."""
    uncertain = len(plan.secret_only)
    applies = existing >= MIN_EXISTING_RECORDS
    checks = [
        BoundCheck("update", plan.count("update"), existing, max_update_percent, uncertain, applies),
        BoundCheck("forget", plan.count("forget"), existing, max_forget_percent, applies=applies),
    ]
    if max_resync_percent is not None:
        fresh = plan.fresh_resyncs
        checks.append(
            BoundCheck(
                "resync",
                fresh,
                plan.declared,
                max_resync_percent,
                applies=fresh >= MIN_FRESH_RESYNCS,
            )
        )
    return Safety(existing, MIN_EXISTING_RECORDS, tuple(checks), elsewhere)


def to_create(plan: Plan) -> list[str]:
    """The accounts the plan acts on that the state holds nothing for: what another state may hold."""
    return [
        change.account_id
        for change in plan.changes
        if change.action == "create" or (change.before is None and change.recorded_generation == 0)
    ]


def raise_if_unsafe(safety: Safety) -> None:
    """Refuse a plan that another state holds, or that passes a bound: updates or forgets of too large a share of
    a state of 10 or more recorded accounts, or too many resyncs of accounts the state does not hold."""
    if safety.elsewhere is not None:
        raise UnsafePlan(f"{safety.elsewhere.refusal()}; --force applies to this state anyway")
    refused = safety.refused
    if refused:
        raise UnsafePlan(f"{refused[0].refusal()}; {refused[0].way_past()}")


#: The most secrets `unkeyed_secrets` checks: enough to tell, at the cost of one HMAC each.
UNKEYED_CHECKS = 100


def unkeyed_secrets(plan: Plan, desired: Desired, recorded: Recorded, fingerprint_key: str | None) -> int:
    """With `fingerprint_key` set: how many of the secrets the plan updates (the first UNKEYED_CHECKS) match
    their recorded fingerprints once made without the key, when every one checked does; 0 otherwise. Not 0: the
    state was made without RECONCILER_FINGERPRINT_KEY and those values did not change (an exact test, one HMAC
    per secret checked, never a guess)."""
    if not fingerprint_key:
        return 0
    checked = 0
    for change in plan.changes:
        spec = desired.accounts.get(change.account_id)
        if change.action != "update" or spec is None:
            continue
        before, desired_leaves = settings_leaves(change.before), settings_leaves(spec.settings)
        for field in change.fields:
            secret = desired_leaves.get(field)
            if not isinstance(secret, Secret):
                continue
            if secret.fingerprint(recorded.salt) != before.get(field):
                return 0
            checked += 1
            if checked >= UNKEYED_CHECKS:
                return checked
    return checked
