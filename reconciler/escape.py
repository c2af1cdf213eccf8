"""One escaping function per medium for text that came from outside: account ids, labels, hosts, file names,
state locations and the API's answers.

- `terminal`: every character a terminal (or a CI log viewer) could act on is written as a visible escape
  (`\\x1b`, `\\u202e`): C0 and C1 controls, DEL, bidi and other format characters, line and paragraph
  separators, lone surrogates. Applied to every line of text output, error lines and log lines.
- `json_document`: the same characters as JSON `\\uXXXX` escapes, in an already serialised document (the
  meaning of the JSON does not change).
- `code_span`, `code_line` and `code_fence`: markdown code, whose fence is longer than any backtick run in it,
  so that nothing in it can close it; newlines and controls escaped as for the terminal.
- `html_code`: HTML-escaped text inside `<code>`, for places where markdown is not parsed (`<summary>`).
- `no_workflow_command`: applied where lines are emitted (the text and markdown renderers, warnings and
  configuration problems): a line whose first characters but spaces are `::` is written `\\x3a:`, so that no
  line from outside text is a GitHub Actions workflow command (`::error::...`). The runner reads one from any
  line of a step's output, after leading whitespace, and the action's own `grep '^::'` passes them on; only
  reconciler's own annotations (`render/github.py`) begin so.

In markdown, an HTML comment opener (`<!--`) from outside is written `<\\x21--`: the comment's marker
(`<!-- reconciler-plan -->`), which finds the comment to update, then appears exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_BACKTICKS = re.compile(r"`+")
_COMMENT_OPENER = "<!--"
_COMMENT_OPENER_ESCAPED = "<\\x21--"


def _escaped(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal(text: str) -> str:
    """`text` with every non-printable character (all but letters, marks, numbers, punctuation, symbols and the
    plain space) written as a visible escape, so that it can neither move the cursor, recolour, retitle nor
    reorder what a terminal shows, nor start a new line."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(character if character.isprintable() else _escaped(character) for character in text)


#: A line that the Actions runner would read as a workflow command: `::` after leading whitespace (it trims all
#: of it; after `terminal`, only plain spaces are left unescaped).
_WORKFLOW_COMMAND = re.compile(r"^([ \t]*):(?=:)", re.MULTILINE)


def no_workflow_command(text: str) -> str:
    """`text` (one or more lines, already escaped for the terminal or for markdown code) with a `::` that
    begins a line, after any spaces, written `\\x3a:`: no line of it can be a workflow command."""
    if "::" not in text:  # the common case, at C speed
        return text
    return _WORKFLOW_COMMAND.sub(r"\1\\x3a", text)


def terminal_line(text: str) -> str:
    """`terminal(text)`, which cannot be a workflow command either: for a line that begins with outside text."""
    return no_workflow_command(terminal(text))


def _json_escaped(character: str) -> str:
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_document(serialised: str) -> str:
    """A JSON document (from `json.dumps(..., ensure_ascii=False)`) with every non-printable character but its
    own newlines as a `\\uXXXX` escape: the same JSON, safe to print. Such characters can only be inside
    strings (JSON's own layout is spaces and newlines), where the escape means the same character."""
    if serialised.replace("\n", "").isprintable():
        return serialised
    return "".join(
        character if character == "\n" or character.isprintable() else _json_escaped(character)
        for character in serialised
    )


def _markdown_literal(text: str) -> str:
    return terminal(text).replace(_COMMENT_OPENER, _COMMENT_OPENER_ESCAPED)


def code_span(text: str) -> str:
    """`text` as one markdown code span: shown literally, never a link, a mention, HTML or a line break."""
    body = _markdown_literal(text)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each end of a span that starts and ends with one (unless it is all
    # spaces): pad to keep them, and to keep a backtick at either end from joining the fence.
    spaced = body.startswith(" ") and body.endswith(" ") and body.strip(" ")
    if not body or body.startswith("`") or body.endswith("`") or spaced:
        body = f" {body} "
    return f"{fence}{body}{fence}"


def code_line(text: str) -> str:
    """One line of a fenced markdown code block (see `code_fence`)."""
    return _markdown_literal(text)


def code_fence(lines: Iterable[str]) -> str:
    """The backtick fence for a code block holding `lines` (as `code_line` wrote them): longer than any
    backtick run in them, so that no line can close the block."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def html_code(text: str) -> str:
    """`text` as HTML `<code>`, for markdown's raw-HTML places (a `<summary>`): nothing in it is a tag, and
    GitHub links no mention inside code."""
    return f"<code>{html_text(text)}</code>"


def html_text(text: str) -> str:
    """`text` HTML-escaped, for our own text (a hint) that sits beside `html_code` in raw HTML."""
    import html  # here: html.entities comes with it, and only markdown output needs it (start-up counts)

    return html.escape(terminal(text), quote=True)
