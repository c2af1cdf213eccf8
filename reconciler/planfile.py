"""Saved plans (`plan --out`): what `apply --plan` needs to apply exactly that plan, and to refuse a stale one.

A saved plan holds fingerprints, never secrets. Apply reloads the configuration it names (secrets come from the
environment again) and refuses when the state's lineage or serial moved, or the configuration or the resolved
secrets differ from what was planned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler import fsutil
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Change, Plan

KIND = "reconciler-saved-plan"


def save(plan: Plan, config: str, targets: list[str], selectors: list[tuple[str, str]], path: str) -> None:
    document = {
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


def load(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ReconcilerError(f"{path}: cannot read the saved plan ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ReconcilerError(f"{path}: not a saved reconciler plan")
    return document


def changes_of(document: dict[str, Any]) -> list[Change]:
    return [
        Change(
            c["account_id"],
            c["action"],
            c["resync"],
            tuple(c["fields"]),
            c["before"],
            c["after"],
            c["resync_generation"],
            c["recorded_generation"],
        )
        for c in document["changes"]
    ]


def check_fresh(document: dict[str, Any], current: Plan) -> None:
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
