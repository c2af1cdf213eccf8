"""Saved plans (`plan --out`): what `apply --plan` needs to apply exactly that plan, and to refuse a stale one.

A saved plan holds fingerprints, never secrets. Apply reloads the configuration it names (secrets come from the
environment again) and refuses when the state's lineage or serial moved, or the configuration or the resolved
secrets differ from what was planned.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

from reconciler import fsutil
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Change, Plan

KIND = "reconciler-saved-plan"


class SavedChange(TypedDict):
    account_id: str
    action: str
    resync: bool
    fields: list[str]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    resync_generation: int | None
    recorded_generation: int


class SavedPlanDocument(TypedDict):
    """The JSON document `plan --out` writes."""

    kind: str
    format_version: int
    config: str
    targets: list[str]
    selectors: list[list[str]]
    lineage: str | None
    serial: int
    salt: str
    config_digest: str
    desired_digest: str
    unchanged: int
    changes: list[SavedChange]


def save(plan: Plan, config: str, targets: list[str], selectors: list[tuple[str, str]], path: str) -> None:
    document: SavedPlanDocument = {
        "kind": KIND,
        "format_version": 1,
        "config": os.path.abspath(config),
        "targets": targets,
        "selectors": [list(pair) for pair in selectors],
        "lineage": plan.lineage,
        "serial": plan.serial,
        "salt": plan.salt,
        "config_digest": plan.config_digest,
        "desired_digest": plan.desired_digest,
        "unchanged": plan.unchanged,
        "changes": [
            {
                "account_id": c.account_id,
                "action": c.action,
                "resync": c.resync,
                "fields": list(c.fields),
                "before": c.before,
                "after": c.after,
                "resync_generation": c.resync_generation,
                "recorded_generation": c.recorded_generation,
            }
            for c in plan.changes
        ],
    }
    # A new temporary (unique name, O_EXCL | O_NOFOLLOW) renamed over the target: never written through a link.
    fsutil.replace_atomically(Path(path), json.dumps(document).encode(), 0o600)


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A loaded saved plan: what to plan again (config, targets, selectors) and what it must equal."""

    path: str
    document: SavedPlanDocument

    @property
    def config(self) -> str:
        return self.document["config"]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.document["targets"])

    @property
    def selectors(self) -> tuple[tuple[str, str], ...]:
        return tuple((key, value) for key, value in self.document["selectors"])

    @property
    def salt(self) -> str:
        return self.document["salt"]

    def check_fresh(self, current: Plan) -> None:
        check_fresh(self.document, current)


def load(path: str) -> SavedPlan:
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ReconcilerError(f"{path}: cannot read the saved plan ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ReconcilerError(f"{path}: not a saved reconciler plan")
    return SavedPlan(path, cast(SavedPlanDocument, document))


def changes_of(document: SavedPlanDocument) -> list[Change]:
    return [
        Change(
            account_id=c["account_id"],
            action=c["action"],  # type: ignore[arg-type]
            resync=c["resync"],
            fields=tuple(c["fields"]),
            before=c["before"],
            after=c["after"],
            resync_generation=c["resync_generation"],
            recorded_generation=c["recorded_generation"],
        )
        for c in document["changes"]
    ]


def check_fresh(document: SavedPlanDocument, current: Plan) -> None:
    """Raise StalePlan unless `current` (planned now from the same inputs) is the saved plan."""
    if document["lineage"] != current.lineage or document["serial"] != current.serial:
        raise StalePlan(
            f"saved plan is stale: the state moved since it was made (lineage/serial "
            f"{document['lineage']}/{document['serial']} -> {current.lineage}/{current.serial}); "
            "run plan again"
        )
    if document["config_digest"] != current.config_digest:
        raise StalePlan("saved plan is stale: the configuration changed since it was made; run plan again")
    if document["desired_digest"] != current.desired_digest:
        raise StalePlan(
            "saved plan is stale: the secrets resolved now differ from those planned; run plan again"
        )
    if changes_of(document) != current.changes:
        raise StalePlan("saved plan is stale: planning again gives different changes; run plan again")
