"""Bounded markdown for pull-request comments and job summaries."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.render.escape import code_fence, code_line

LIMIT = 60_000


def bounded(
    header: list[str], sections: Iterable[tuple[str, list[list[str]]]], what: str, limit: int = LIMIT
) -> str:
    """Join `header` and `<details>` sections of entries, leaving out whole entries past `limit` characters.

    Each section is (summary, entries) and each entry a block of lines shown in a diff code block. `summary` is
    raw HTML (outside text in it escaped by the caller); every line of an entry is outside text, escaped here,
    in a block whose fence no line can close. When entries are left out, a last line says how many.
    """
    out = "\n".join(header) + "\n"
    reserve = 400  # room for closing fences and the truncation line
    left_out = 0
    for summary, entries in sections:
        if not entries:
            continue
        if left_out:
            left_out += len(entries)
            continue
        entries = [[code_line(line) for line in entry] for entry in entries]
        fence = code_fence(line for entry in entries for line in entry)
        opening = f"\n<details><summary>{summary}</summary>\n\n{fence}diff\n"
        closing = f"{fence}\n\n</details>\n"
        if len(out) + len(opening) + len(closing) + reserve > limit:
            left_out += len(entries)
            continue
        out += opening
        for index, entry in enumerate(entries):
            block = "\n".join(entry) + "\n"
            if len(out) + len(block) + len(closing) + reserve > limit:
                left_out += len(entries) - index
                break
            out += block
        out += closing
    if left_out:
        out += f"\n**{left_out} {what} left out to stay under {limit:,} characters**; see the JSON output.\n"
    return out
