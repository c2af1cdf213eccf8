"""Bounded markdown for pull-request comments and job summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.escape import code_fence, code_line, no_workflow_command

LIMIT = 60_000

#: One `<details>` section: its summary (raw HTML, outside text escaped by the caller), its entries (blocks of
#: lines of outside text, escaped here), and what names it in a note of what was left out.
Section = tuple[str, list[list[str]], str]
#: Given (name, entries left out) of each section that lost entries, the markdown that says so.
CutNote = Callable[[list[tuple[str, int]]], str]


def bounded(
    header: list[str],
    sections: Iterable[Section],
    cut_note: CutNote,
    limit: int = LIMIT,
    reserve: int = 400,
) -> str:
    """Join `header` and `<details>` sections of entries, leaving out whole entries past `limit` characters.

    Each entry is shown in a diff code block whose fence no line can close. When entries are left out,
    `cut_note` says which: it is given `reserve` characters (and must keep to them), kept free for it and the
    closing fences. Once one entry is left out, every later one is too, so that what is shown is a prefix.
    No line of the result begins with a workflow command (`escape.no_workflow_command`).
    """
    out = "\n".join(header) + "\n"
    cut: list[tuple[str, int]] = []
    for summary, entries, name in sections:
        if not entries:
            continue
        if cut:
            cut.append((name, len(entries)))
            continue
        entries = [[code_line(line) for line in entry] for entry in entries]
        fence = code_fence(line for entry in entries for line in entry)
        opening = f"\n<details><summary>{summary}</summary>\n\n{fence}diff\n"
        closing = f"{fence}\n\n</details>\n"
        if len(out) + len(opening) + len(closing) + reserve > limit:
            cut.append((name, len(entries)))
            continue
        out += opening
        for index, entry in enumerate(entries):
            block = "\n".join(entry) + "\n"
            if len(out) + len(block) + len(closing) + reserve > limit:
                cut.append((name, len(entries) - index))
                break
            out += block
        out += closing
    if cut:
        out += cut_note(cut)
    return no_workflow_command(out)


def left_out_line(what: str, limit: int, where: str) -> CutNote:
    """A cut note that counts what was left out, all sections together, and says `where` the rest is."""

    def note(cut: list[tuple[str, int]]) -> str:
        count = sum(number for _, number in cut)
        return f"\n**{count} {what} left out to stay under {limit:,} characters**; {where}.\n"

    return note
