"""The Terraform-like text plan."""

from __future__ import annotations

from reconciler.model import Plan
from reconciler.render.changes import change_lines, summary_line, unknown_line
from reconciler.render.escape import terminal


def render(plan: Plan) -> str:
    if plan.empty:
        return f"No changes. {plan.unchanged} account(s) match the recorded state.\n"
    out = ["Reconciler will perform the following actions:", ""]
    for change in plan.changes:
        out.extend("  " + terminal(line) for line in change_lines(change))
    out.append("")
    unknown = unknown_line(plan)
    if unknown:
        out.append(terminal(unknown))
    out.extend([f"{plan.unchanged} account(s) unchanged, not shown.", summary_line(plan)])
    return "\n".join(out) + "\n"
