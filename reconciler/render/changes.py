"""How one change reads in text: shared by the text and markdown plans so they never drift apart."""

from __future__ import annotations

import json
from typing import Any

from reconciler.model import Change, Plan
from reconciler.secrets import SENSITIVE, is_fingerprint

SYMBOLS = {"create": "+", "update": "~", "forget": "-", "none": "⟳"}


def show(value: Any) -> str:
    if is_fingerprint(value):
        return SENSITIVE
    if value is None:
        return "(none)"
    return json.dumps(value, ensure_ascii=False)


def lookup(settings: dict[str, Any] | None, dotted_path: str) -> Any:
    node: Any = settings
    for part in dotted_path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def change_lines(change: Change) -> list[str]:
    """The header line and the detail lines of one change, without indentation."""
    symbol = SYMBOLS[change.action]
    title = change.action if change.action != "none" else "resync"
    lines = [f"{symbol} {change.account_id} ({title})"]
    width = max((len(field) for field in change.fields), default=0)
    for field in change.fields:
        before, after = lookup(change.before, field), lookup(change.after, field)
        if change.action == "create":
            lines.append(f"    {field.ljust(width)} = {show(after)}")
        elif change.action == "forget":
            lines.append(f"    {field.ljust(width)} = {show(before)}")
        else:
            lines.append(f"    {field.ljust(width)} : {show(before)} -> {show(after)}")
    if change.action == "update" and not change.fields:
        lines.append("    (the last apply failed: applying again)")
    if change.action == "forget":
        lines.append("    (leaves the state; no API call is made)")
    if change.resync:
        prefix = "    ⟳ " if change.action != "none" else "    "
        lines.append(f"{prefix}resync generation {change.recorded_generation} -> {change.resync_generation}")
    return lines


def summary_line(plan: Plan) -> str:
    if plan.empty:
        return "No changes."
    counts = plan.summary
    return (
        f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['forget']} to forget, "
        f"{counts['resync']} to resync."
    )
