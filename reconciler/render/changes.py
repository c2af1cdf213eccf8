"""How one change reads in text: shared by the text and markdown plans so they never drift apart."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.escape import terminal
from reconciler.model import Change, Plan, Safety, settings_leaves
from reconciler.secrets import SENSITIVE, Fingerprint, NotKnown, masked, sources_text

SYMBOLS = {"create": "+", "update": "~", "forget": "-", "none": "⟳"}


#: A leaf that one side of a change does not have (`country` before a switch from a custom proxy).
ABSENT = "(none)"


def show(value: Any) -> str:
    """One leaf as the plan shows it: JSON, `(sensitive)` for a secret."""
    if isinstance(value, Fingerprint) or value == SENSITIVE:
        return SENSITIVE
    if isinstance(value, NotKnown):
        return str(value)  # its text, `(not known here: ...)`, as it is
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


def unknown_line(plan: Plan, not_decrypted: Mapping[str, str] | None = None) -> str | None:
    """The one line naming the variables that were unset (and the secrets files not decrypted) while planning
    (None when every value was known); `not_decrypted` says why of each file (`vault.*` -> `FILE: why`)."""
    if not plan.unset_variables:
        return None
    pronoun = "them" if len(plan.unset_variables) > 1 else "it"
    reasons = [(not_decrypted or {}).get(name) for name in plan.unset_variables]
    why = "; ".join(reason for reason in reasons if reason)
    return (
        f"Not known here: {sources_text(plan.unset_variables)}{f' ({why})' if why else ''}; the fields that "
        f"depend on {pronoun} show as not known until apply."
    )


#: Groups of variables named one by one in the secret-only line; the rest are counted together.
MAX_GROUPS_SHOWN = 10


def secret_only_line(plan: Plan) -> str | None:
    """The line that counts the updates that depend only on secrets not known here, by variable or secrets file
    (None: none)."""
    groups = plan.secret_only_by_variables()
    if not groups:
        return None
    names = sorted({name for variables, _ in groups for name in variables})
    line = (
        f"{len(plan.secret_only):,} more update(s) depend only on "
        f"{sources_text(names, '(not set here)', '(not decrypted here)')} and may change nothing, not listed"
    )
    if len(groups) > 1:
        shown = [f"{count:,} on {', '.join(variables)}" for variables, count in groups[:MAX_GROUPS_SHOWN]]
        rest = sum(count for _, count in groups[MAX_GROUPS_SHOWN:])
        line += ": " + "; ".join(shown) + (f"; {rest:,} on other combinations" if rest else "")
    return line + "."


def _quoted(text: str) -> str:
    return terminal(repr(text))


def safety_lines(
    safety: Safety | None, quote: Callable[[str], str] = _quoted, command: Callable[[str], str] = terminal
) -> list[str]:
    """What apply would make of the plan under its safety bounds, one line per bound passed (none: it passes),
    after the line saying that another state holds the accounts, when one does. `quote` writes the name of that
    state (a workspace read from the database: outside text) for the medium, `command` a command to paste."""
    if safety is None:
        return []
    lines = []
    if safety.elsewhere is not None:
        lines.append(
            f"apply would refuse this plan: {safety.elsewhere.refusal(quote, command)}; apply --force applies "
            "it anyway."
        )
    lines += [
        f"apply would refuse this plan: {check.refusal()}; {check.way_past('apply ')}."
        for check in safety.refused
    ]
    for check in safety.doubtful:
        most = check.count + check.uncertain
        lines.append(
            f"apply may refuse this plan: {check.count}/{check.existing} {check.action}s are within "
            f"{check.bound:.2f}%, but with the {check.uncertain} that depend on values not known here they would be "
            f"{100.0 * most / check.existing:.2f}% ({most}/{check.existing}); apply --force applies it anyway."
        )
    return lines
