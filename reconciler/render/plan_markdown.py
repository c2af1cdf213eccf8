"""The plan as a pull-request comment: marker, counts first, then counts per file, then each file's details folded.

At 100,000 accounts in 50 files the comment reads as 50 lines of counts before any detail; the details that do
not fit the comment are named by file and counted, and the comment says where the whole plan is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.escape import code_span, html_code
from reconciler.model import Change, Plan, Safety, counts_of
from reconciler.render.changes import (
    change_lines,
    safety_lines,
    secret_only_line,
    summary_line,
    unknown_line,
)
from reconciler.render.markdown import LIMIT, CutNote, Section, bounded

if TYPE_CHECKING:
    from reconciler.reference import StateReference

MARKER = "<!-- reconciler-plan -->"
COLUMNS = ("create", "update", "forget", "resync")
_TITLES = {"create": "to create", "update": "to update", "forget": "to forget", "resync": "to resync"}
#: Warnings beyond this many are counted, not listed (the comment stays readable).
MAX_WARNINGS_SHOWN = 10
#: Files beyond this many in the table of counts are counted together in its last row.
MAX_FILES_SHOWN = 200
#: Where the accounts no longer declared (forgets) are grouped: they have no file.
NOT_DECLARED = "(no longer declared)"
#: Room kept for the note of what was cut (its file list stops short of it) and the closing fences.
CUT_RESERVE = 4_000
#: Where the whole plan is when the caller does not say (a plan run outside CI).
WHOLE_PLAN_HERE = "`reconciler plan` prints the whole plan (`--format text` or `--format json`)"
_ORDER = {"create": 0, "update": 1, "forget": 2, "none": 3}


def _callout(kind: str, lines: list[str]) -> list[str]:
    """A GitHub alert (`> [!NOTE]`) holding `lines`, each a paragraph of its own; nothing when none."""
    if not lines:
        return []
    out = ["", f"> [!{kind}]"]
    for index, line in enumerate(lines):
        out += ([">"] if index else []) + [f"> {line}"]
    return out


def _warning_lines(warnings: tuple[str, ...]) -> list[str]:
    if not warnings:
        return []
    lines = ["", "> [!WARNING]"]
    lines += [f"> - {code_span(warning)}" for warning in warnings[:MAX_WARNINGS_SHOWN]]
    if len(warnings) > MAX_WARNINGS_SHOWN:
        lines.append(f"> - ... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings")
    return lines


def by_file(plan: Plan) -> dict[str, list[Change]]:
    """The changes grouped by the file that declares each account (forgets last, under NOT_DECLARED); files
    in name order, and in each, creates, updates, forgets and resyncs, each by account id."""
    groups: dict[str, list[Change]] = {}
    for change in plan.changes:
        groups.setdefault(change.file or NOT_DECLARED, []).append(change)
    ordered = sorted(groups, key=lambda name: (name == NOT_DECLARED, name))
    return {
        name: sorted(groups[name], key=lambda change: (_ORDER[change.action], change.account_id))
        for name in ordered
    }


def _said(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[column]:,} {_TITLES[column]}" for column in COLUMNS if counts[column])


def _file_table(groups: dict[str, list[Change]]) -> list[str]:
    lines = ["", "| file | create | update | forget | resync |", "| --- | ---: | ---: | ---: | ---: |"]
    names = list(groups)
    for name in names[:MAX_FILES_SHOWN]:
        counts = counts_of(groups[name])
        # A `|` ends a table cell even inside a code span, unless escaped (GitHub's tables).
        shown = name if name == NOT_DECLARED else code_span(name).replace("|", "\\|")
        lines.append(f"| {shown} | " + " | ".join(f"{counts[column]:,}" for column in COLUMNS) + " |")
    if len(names) > MAX_FILES_SHOWN:
        rest = counts_of([change for name in names[MAX_FILES_SHOWN:] for change in groups[name]])
        lines.append(
            f"| {len(names) - MAX_FILES_SHOWN:,} more files | "
            + " | ".join(f"{rest[column]:,}" for column in COLUMNS)
            + " |"
        )
    return lines


def cut_note(limit: int, where: str) -> CutNote:
    """The note that names each file whose details were cut and how many accounts of it, within CUT_RESERVE."""

    def note(cut: list[tuple[str, int]]) -> str:
        total = sum(count for _, count in cut)
        head = (
            f"\n**Details of {total:,} account(s) in {len(cut):,} file(s) left out to stay under {limit:,} "
            f"characters**; {where}. Left out:\n"
        )
        lines: list[str] = []
        room = CUT_RESERVE - len(head) - 400  # the closing fences, and the last line below
        for index, (name, count) in enumerate(cut):
            line = f"- {name if name == NOT_DECLARED else code_span(name)}: {count:,}\n"
            if len(line) > room:
                rest = cut[index:]
                lines.append(
                    f"- and {len(rest):,} more file(s): {sum(number for _, number in rest):,} account(s)\n"
                )
                break
            lines.append(line)
            room -= len(line)
        return head + "".join(lines)

    return note


def state_markdown(state: StateReference) -> str:
    """The state as the comment names it: by kind and workspace (`PostgreSQL, workspace `production``), or a
    file state by its path. A comment may be public: the server, database, schema and user are for the text
    output and the verbose log."""
    if state.kind == "file":
        return code_span(state.path or "")
    return f"{state.kind_name}, workspace {code_span(state.workspace or '')}"


def render(
    plan: Plan,
    config: str = "",
    state: StateReference | None = None,
    limit: int = LIMIT,
    safety: Safety | None = None,
    where: str = WHOLE_PLAN_HERE,
) -> str:
    """The comment; `where` (markdown) says where the whole plan is when details are cut."""
    counts = plan.summary
    header = [MARKER, "### reconciler plan", ""]
    header.append(f"**{summary_line(plan)}** {counts['unchanged']:,} unchanged.")
    header.append("")
    header.append("| create | update | forget | resync | unchanged |")
    header.append("| ---: | ---: | ---: | ---: | ---: |")
    header.append(
        f"| {counts['create']:,} | {counts['update']:,} | {counts['forget']:,} | {counts['resync']:,} "
        f"| {counts['unchanged']:,} |"
    )
    header += _callout("CAUTION", safety_lines(safety, code_span, code_span))
    if config or state is not None:
        serial = f"serial {plan.serial}" if plan.lineage else "new state"
        against = f" against state {state_markdown(state)}" if state is not None else ""
        header.append("")
        header.append(f"Config {code_span(config)}{against} ({serial}).")
    header += _callout("NOTE", [line for line in (unknown_line(plan), secret_only_line(plan)) if line])
    header += _warning_lines(plan.warnings)
    groups = by_file(plan)
    if groups:
        header += _file_table(groups)
    sections: list[Section] = []
    for name, changes in groups.items():
        shown = name if name == NOT_DECLARED else html_code(name)
        sections.append((f"{shown}: {_said(counts_of(changes))}", [change_lines(c) for c in changes], name))
    return bounded(header, sections, cut_note(limit, where), limit, reserve=CUT_RESERVE)
