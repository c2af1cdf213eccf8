"""The machine-readable plan (`schemas/plan.schema.json`). Secrets appear as `(sensitive)`."""

from __future__ import annotations

import json
from typing import Any

from reconciler.model import Plan
from reconciler.render.escape import json_document
from reconciler.secrets import masked


def document(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": 1,
        "summary": plan.summary,
        "unset_variables": list(plan.unset_variables),
        "changes": [
            {
                "account_id": change.account_id,
                "action": change.action,
                "resync": change.resync,
                "fields": list(change.fields),
                "before": masked(change.before),
                "after": masked(change.after),
            }
            for change in plan.changes
        ],
    }


def render(plan: Plan) -> str:
    return json_document(json.dumps(document(plan), indent=2, ensure_ascii=False)) + "\n"
