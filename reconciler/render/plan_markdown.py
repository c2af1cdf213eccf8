"""The plan as a pull-request comment: marker, counts first, warnings, details folded."""

from __future__ import annotations

from reconciler.model import Plan
from reconciler.render.changes import change_lines, summary_line, unknown_line
from reconciler.render.escape import code_span
from reconciler.render.markdown import LIMIT, bounded

MARKER = "<!-- reconciler-plan -->"
_TITLES = {"create": "to create", "update": "to update", "forget": "to forget", "resync": "to resync"}
#: Warnings beyond this many are counted, not listed (the comment stays readable).
MAX_WARNINGS_SHOWN = 10


def _warning_lines(warnings: tuple[str, ...]) -> list[str]:
    if not warnings:
        return []
    lines = ["", "> [!WARNING]"]
    lines += [f"> - {code_span(warning)}" for warning in warnings[:MAX_WARNINGS_SHOWN]]
    if len(warnings) > MAX_WARNINGS_SHOWN:
        lines.append(f"> - ... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings")
    return lines


def render(plan: Plan, config: str = "", state: str = "", limit: int = LIMIT) -> str:
    counts = plan.summary
    header = [MARKER, "### reconciler plan", ""]
    header.append(f"**{summary_line(plan)}** {counts['unchanged']} unchanged.")
    header.append("")
    header.append("| create | update | forget | resync | unchanged |")
    header.append("| ---: | ---: | ---: | ---: | ---: |")
    header.append(
        f"| {counts['create']} | {counts['update']} | {counts['forget']} | {counts['resync']} "
        f"| {counts['unchanged']} |"
    )
    if config or state:
        serial = f"serial {plan.serial}" if plan.lineage else "new state"
        against = f" against state {code_span(state)}" if state else ""
        header.append("")
        header.append(f"Config {code_span(config)}{against} ({serial}).")
    unknown = unknown_line(plan)
    if unknown:
        header += ["", "> [!NOTE]", f"> {unknown}"]
    header += _warning_lines(plan.warnings)
    sections = []
    for action in ("create", "update", "forget"):
        entries = [change_lines(c) for c in plan.changes if c.action == action]
        sections.append((f"{len(entries)} {_TITLES[action]}", entries))
    resync_only = [change_lines(c) for c in plan.changes if c.action == "none"]
    sections.append((f"{len(resync_only)} to resync only", resync_only))
    return bounded(header, sections, "changes", limit)
