"""Bounded markdown for pull-request comments and job summaries."""

from __future__ import annotations

from collections.abc import Iterable

LIMIT = 60_000


def bounded(
    header: list[str], sections: Iterable[tuple[str, list[list[str]]]], what: str, limit: int = LIMIT
) -> str:
    """Join `header` and `<details>` sections of entries, leaving out whole entries past `limit` characters.

    Each section is (summary, entries) and each entry a block of lines shown in a diff code block. When entries
    are left out, a last line says how many.
    """
    out = "\n".join(header) + "\n"
    reserve = 400  # room for closing fences and the truncation line
    left_out = 0
    for summary, entries in sections:
        if not entries:
            continue
        opening = f"\n<details><summary>{summary}</summary>\n\n```diff\n"
        closing = "```\n\n</details>\n"
        if left_out or len(out) + len(opening) + len(closing) + reserve > limit:
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
