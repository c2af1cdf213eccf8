"""The Terraform-like text plan."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.escape import no_workflow_command, terminal
from reconciler.model import Plan, Safety
from reconciler.render.changes import change_lines, safety_lines, secret_only_line, summary_line, unknown_line


def render(plan: Plan, safety: Safety | None = None, not_decrypted: Mapping[str, str] | None = None) -> str:
    """The text plan; `not_decrypted`: why each secrets file (`vault.*`) was not decrypted, said on the `Not
    known here` line."""
    if plan.empty:
        return f"No changes. {plan.unchanged} account(s) match the recorded state.\n"
    out = ["Reconciler will perform the following actions:", ""] if plan.changes else []
    for change in plan.changes:
        out.extend("  " + terminal(line) for line in change_lines(change))
    if plan.changes:
        out.append("")
    for line in (unknown_line(plan, not_decrypted), secret_only_line(plan)):
        if line:
            out.append(terminal(line))
    out.extend([f"{plan.unchanged} account(s) unchanged, not shown.", summary_line(plan)])
    out.extend(safety_lines(safety))
    return no_workflow_command("\n".join(out)) + "\n"
