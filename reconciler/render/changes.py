"""How one change reads in text: shared by the text and markdown plans so they never drift apart."""

from __future__ import annotations

import json
from typing import Any

from reconciler.model import Change, Plan, settings_leaves
from reconciler.secrets import SENSITIVE, is_fingerprint, is_unknown, masked

SYMBOLS = {"create": "+", "update": "~", "forget": "-", "none": "⟳"}


#: A leaf that one side of a change does not have (`country` before a switch from a custom proxy).
ABSENT = "(none)"


def show(value: Any) -> str:
    """One leaf as the plan shows it: JSON, `(sensitive)` for a secret."""
    if value == SENSITIVE or is_fingerprint(value):
        return SENSITIVE
    if is_unknown(value):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def field_changes(change: Change) -> list[tuple[str, str, str]]:
    """(dotted path, before, after) as shown, for each field of `change`; a side without it shows `(none)`."""
    before, after = settings_leaves(masked(change.before)), settings_leaves(masked(change.after))
    return [
        (
            field,
            show(before[field]) if field in before else ABSENT,
            show(after[field]) if field in after else ABSENT,
        )
        for field in change.fields
    ]


def change_lines(change: Change) -> list[str]:
    """The header line and the detail lines of one change, without indentation."""
    symbol = SYMBOLS[change.action]
    title = change.action if change.action != "none" else "resync"
    lines = [f"{symbol} {change.account_id} ({title})"]
    width = max((len(field) for field in change.fields), default=0)
    for field, before, after in field_changes(change):
        if change.action == "create":
            lines.append(f"    {field.ljust(width)} = {after}")
        elif change.action == "forget":
            lines.append(f"    {field.ljust(width)} = {before}")
        else:
            lines.append(f"    {field.ljust(width)} : {before} -> {after}")
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


def unknown_line(plan: Plan) -> str | None:
    """The one line naming the variables that were unset while planning (None when every value was known)."""
    if not plan.unset_variables:
        return None
    names = ", ".join(plan.unset_variables)
    pronoun = "them" if len(plan.unset_variables) > 1 else "it"
    maybe_none = sum(1 for change in plan.changes if _only_unknown(change))
    line = f"Not known here: {names} unset; the fields that depend on {pronoun} show as not known until apply"
    if maybe_none:
        line += f" ({maybe_none} update(s) may change nothing)"
    return line + "."


def _only_unknown(change: Change) -> bool:
    """An update whose every shown difference is a value not known here: it may turn out to change nothing."""
    after = settings_leaves(change.after)
    return (
        change.action == "update"
        and bool(change.fields)
        and all(is_unknown(after.get(f)) for f in change.fields)
    )
