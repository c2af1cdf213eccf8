"""The machine-readable plan (`schemas/plan.schema.json`). Secrets appear as `(sensitive)`."""

from __future__ import annotations

import json
from typing import Any

from reconciler.escape import json_document
from reconciler.model import Plan, Safety
from reconciler.secrets import masked


def document(plan: Plan, safety: Safety | None = None) -> dict[str, Any]:
    return {
        "format_version": 1,
        "summary": plan.summary,
        "unset_variables": list(plan.unset_variables),
        "secret_only": {
            "count": len(plan.secret_only),
            "by_variables": [
                {"variables": list(variables), "count": count}
                for variables, count in plan.secret_only_by_variables()
            ],
        },
        "safety": None if safety is None else safety.to_json(),
        "changes": [
            {
                "account_id": change.account_id,
                "action": change.action,
                "resync": change.resync,
                "fields": list(change.fields),
                "before": masked(change.before, text=True),
                "after": masked(change.after, text=True),
            }
            for change in plan.changes
        ],
    }


def render(plan: Plan, safety: Safety | None = None) -> str:
    return json_document(json.dumps(document(plan, safety), indent=2, ensure_ascii=False)) + "\n"
