"""YAML to plain Python values that remember where every key and value came from.

Built on libyaml's event stream (the C parser's events, read one by one) rather than `yaml.load`, for four reasons:

* every mapping records the line and column of each key and value, so any later check can say `FILE:LINE:COL`;
* duplicate keys are errors naming both lines (PyYAML silently keeps the last one);
* aliases are shared, not copied, and their expanded size is counted, so an alias bomb is refused at once;
* the garbage collector is paused while the tree is built: measured, most of a stock load's
  time at 100,000 accounts is the collector walking young objects, not parsing.

Scalars follow the YAML 1.2 core schema: only `true`/`false` are booleans (so `country: NO` stays Norway),
timestamps stay strings, and mapping keys are always the key's text.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Any

import yaml
from yaml import events

from reconciler import collector
from reconciler.errors import ConfigError, Problem, brief
from reconciler.plain import Plain

#: The parser whose events are read: libyaml's where PyYAML was built with it (tests run PyYAML's own too).
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 64
#: Bound on the number of nodes a document may expand to through aliases, beyond what it spells out.
MAX_ALIAS_EXPANSION = 1_000_000
#: The accounts format has no lists (merge keys take short ones): a long list is refused while it is parsed,
#: rather than built (a 50 MB flow list measured 81 s and 3 GB before this bound).
MAX_LIST_ITEMS = 10_000
#: The longest number accepted, in characters. The format's largest number is epoch milliseconds (13 digits);
#: the bound keeps far clear of that, and of Python's own limit on converting long integers to text.
MAX_NUMBER_LENGTH = 1_000
#: Keys whose values (and everything under them) may be secret: a message never quotes what is written there.
SECRET_KEYS = frozenset(("proxy", "password"))

_INT = re.compile(r"[-+]?[0-9]+\Z")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_INT_OCT = re.compile(r"0o[0-7]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUES = frozenset(("true", "True", "TRUE"))
_FALSES = frozenset(("false", "False", "FALSE"))
_TAG_PREFIX = "tag:yaml.org,2002:"
#: Plain scalars that are not text; with the first characters a number can start with (an empty scalar is one).
_WORDS = _NULLS | _TRUES | _FALSES
_NUMERIC_START = frozenset("0123456789-+.")

Mark = tuple[int, int]  # 1-based line, column


class YMap(dict[str, Any]):
    """A mapping with the position of itself and of each key and value.

    `marks[key]` is `(key_line, key_col, value_line, value_col)`.
    """

    __slots__ = ("pos", "marks")

    def __init__(self, pos: Mark) -> None:  # dict's own __init__ has nothing to do for an empty mapping
        self.pos = pos
        self.marks: dict[str, tuple[int, int, int, int]] = {}

    def key_mark(self, key: str) -> Mark:
        line, col, _, _ = self.marks.get(key, (*self.pos, 0, 0))
        return line, col

    def value_mark(self, key: str) -> Mark:
        mark = self.marks.get(key)
        return (mark[2], mark[3]) if mark else self.pos


class YSeq(list[Any]):
    """A sequence with the position of itself and of each item."""

    __slots__ = ("pos", "item_pos")

    def __init__(self, pos: Mark) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[Mark] = []

    def value_mark(self, index: int) -> Mark:
        return self.item_pos[index] if 0 <= index < len(self.item_pos) else self.pos


class Loaded(Plain):
    """One parsed document: its value, where that value starts, and the duplicate keys found on the way."""

    __slots__ = ("value", "mark", "duplicates")

    def __init__(self, value: Any, mark: Mark, duplicates: list[Problem]) -> None:
        self.value = value
        self.mark = mark
        self.duplicates = duplicates


class _Abort(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _BadScalar(Exception):
    """A scalar that cannot be read. `shown` quotes it; `hidden` says the same without it, for secret places."""

    def __init__(self, shown: str, hidden: str | None = None) -> None:
        self.shown = shown
        self.hidden = hidden if hidden is not None else shown


_MERGE = object()


class _Frame(Plain):
    """A mapping or list being read."""

    __slots__ = ("container", "anchor", "size", "key", "key_mark", "merges")

    def __init__(self, container: YMap | YSeq, anchor: str | None) -> None:
        self.container = container
        self.anchor = anchor
        self.size = 1
        self.key: Any = None  # pending key text, _MERGE, or None when a key is expected
        self.key_mark: Mark = (0, 0)
        self.merges: list[tuple[Any, Mark]] | None = None


def _mark(event: Any) -> Mark:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _resolve_scalar(event: events.ScalarEvent) -> Any:
    value: str = event.value
    tag = event.tag
    if tag and tag != "!":
        name = tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else None
        if name == "str":
            return value
        if name in ("int", "float", "bool", "null"):
            resolved = _resolve_plain(value)
            expected = {"int": int, "float": float, "bool": bool, "null": type(None)}[name]
            if name == "float" and type(resolved) is int:
                return _as_float(value, resolved)
            if type(resolved) is expected:
                return resolved
            raise _BadScalar(f"{brief(value)} is not a valid !!{name}", f"the value is not a valid !!{name}")
        raise _BadScalar(
            f"unsupported YAML tag {brief(tag)}; quote a value that starts with '!'",
            "unsupported YAML tag (not shown: the value may be secret); quote a value that starts with '!'",
        )
    if event.implicit[0]:
        return _resolve_plain(value)
    return value


def _resolve_plain(value: str) -> Any:
    if value in _NULLS:
        return None
    if value in _TRUES:
        return True
    if value in _FALSES:
        return False
    first = value[0]
    if first.isdigit() or first in "-+.":
        if len(value) > MAX_NUMBER_LENGTH and (
            _INT.match(value) or _INT_HEX.match(value) or _INT_OCT.match(value) or _FLOAT.match(value)
        ):
            raise _BadScalar(
                f"a number of {len(value):,} characters; a number here has at most {MAX_NUMBER_LENGTH:,}"
            )
        if _INT.match(value):
            return int(value, 10)
        if _INT_HEX.match(value):
            return int(value, 16)
        if _INT_OCT.match(value):
            return int(value[2:], 8)
        if _FLOAT.match(value):
            return _as_float(value, float(value))
        special = _SPECIAL_FLOATS.get(value.lower())
        if special is not None:
            return special
    return value


def _as_float(text: str, number: int | float) -> float:
    """`number` as a float; a finite literal too large for one is an error, not infinity or OverflowError."""
    try:
        result = float(number)
    except OverflowError:
        result = math.inf
    if math.isinf(result):
        raise _BadScalar(
            f"{brief(text)} is too large for a floating-point number",
            "a number too large for a floating-point number",
        )
    return result


def decode(file: str, raw: bytes) -> str:
    """Decode a configuration file as UTF-8, with the position of the first invalid byte on failure."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [Problem(file, line, col, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})")]
        ) from None


def _line_text(text: str, line: int) -> str:
    """Line `line` (0-based) of `text`, without its end."""
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def yaml_error_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    """One positioned line for a YAML syntax error, saying what was written rather than what the parser
    expected (libyaml's `did not find expected key` is, for a user, a line indented differently from its
    neighbours), and pointing at the cause where the parser knows it."""
    if isinstance(exc, yaml.reader.ReaderError):
        # `position` counts UTF-8 bytes; the character is a control character, never worth quoting.
        before = text.encode("utf-8", "surrogatepass")[: exc.position].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        return Problem(
            file, line, col, f"invalid YAML: the control character U+{exc.character:04X} is not allowed"
        )
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    context: str | None = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if problem is None or mark is None:
        return Problem(file, 1, 1, "invalid YAML: " + " ".join(str(exc).split()))
    syntax = _Syntax(text, problem, context, (mark.line, mark.column), context_mark)
    at, message = syntax.worded()
    return Problem(file, at[0] + 1, at[1] + 1, "invalid YAML: " + " ".join(message.split()))


_KEY_COLON = re.compile(r":(?:[ \t]|$)")


class _Syntax:
    """A YAML syntax error as the user made it: libyaml's and PyYAML's own problem texts (they differ) mapped
    to what was written, from the text around the marks. Marks here are 0-based (line, column)."""

    def __init__(
        self, text: str, problem: str, context: str | None, mark: tuple[int, int], context_mark: Any
    ) -> None:
        self.text = text
        self.problem = problem
        self.context = context or ""
        self.mark = mark
        self.opened: tuple[int, int] | None = (
            (context_mark.line, context_mark.column) if context_mark is not None else None
        )
        self.line_text = _line_text(text, mark[0])
        self.at = self.line_text[mark[1] : mark[1] + 1]
        self.indent = len(self.line_text) - len(self.line_text.lstrip(" "))

    def worded(self) -> tuple[tuple[int, int], str]:
        """(where, what) for the message; the parser's own words (with its context) for what is not mapped."""
        problem, context = self.problem, self.context
        leading = self.line_text[: len(self.line_text) - len(self.line_text.lstrip(" \t"))]
        if problem == "found unexpected end of stream" and self.opened is not None:
            # The end of the file is where the parser noticed; the cause is where the construct opened.
            if "quoted scalar" in context:
                return self.opened, "this quote is never closed (the file ends inside it)"
            construct = context.removeprefix("while scanning ").removeprefix("while parsing ")
            return self.opened, f"the file ends inside this {construct}"
        if "tab" in problem or self.at == "\t" or "\t" in leading:
            return self.mark, "a tab character where YAML expects spaces: indent with spaces only"
        worded = self._mapped()
        if worded is not None:
            return worded
        message = problem
        if context:
            where = ""
            if self.opened is not None and self.opened[0] != self.mark[0]:
                where = f" that starts at line {self.opened[0] + 1}, column {self.opened[1] + 1}"
            message += f" ({context}{where})"
        return self.mark, message

    def _mapped(self) -> tuple[tuple[int, int], str] | None:
        problem, context = self.problem, self.context
        if problem.startswith("mapping values are not allowed"):
            return _first_key_slip(self.text, self.mark, self.indent) or (self.mark, self._stray_colon())
        if problem == "did not find expected key" or problem.startswith("expected <block end>, but found"):
            if "block collection" in context:
                return self.mark, self._not_a_list_item()
            return self.mark, self._not_a_key()
        if problem == "did not find expected '-' indicator":
            return self.mark, self._not_a_list_item()
        if problem == "could not find expected ':'" and self.opened is not None:
            return self.opened, "this line has no ':' after its key; write 'key: value'"
        if "that cannot start any token" in problem:
            return self.mark, self._cannot_start()
        for open_, close in (("{", "}"), ("[", "]")):
            if problem == f"did not find expected ',' or '{close}'" or problem.startswith(
                f"expected ',' or '{close}'"
            ):
                return self._unclosed(open_, close)
        if problem == "did not find expected node content" or problem.startswith("expected the node content"):
            if _at_end(self.text, self.mark):
                opened = _unclosed_bracket(self.text)
                if opened is not None:
                    at, char = opened
                    close = "}" if char == "{" else "]"
                    return (
                        at,
                        f"this '{char}' is never closed (the file ends inside it): close it with '{close}'",
                    )
                return self.mark, (
                    "the file ends inside a {...} or [...] that is never closed: close it with '}' or ']'"
                )
            if self.at == ",":
                return self.mark, "an empty entry: a ',' with no value before it; remove the extra ','"
            return self.mark, "a value is missing here"
        if "sequence entries are not allowed" in problem:
            return self.mark, (
                "a '- ' list item on the same line as its key; the accounts format has no lists "
                "(quote a value that starts with '- ')"
            )
        if problem.startswith("found unknown escape character"):
            return self.mark, (
                "an unknown escape: in double quotes a backslash starts an escape (\\n, \\t, \\\\); "
                "write '\\\\' for a backslash, or use single quotes, where a backslash is itself"
            )
        if "alphabetic or numeric character" in problem and ("anchor" in context or "alias" in context):
            sign, name = ("&", "an anchor") if "anchor" in context else ("*", "an alias")
            return self.mark, (
                f"'{sign}' starts {name}, and no name follows it: quote a value that starts with '{sign}'"
            )
        if problem.startswith("found unexpected document"):
            return self.mark, (
                "a '---' or '...' line inside a quoted value ends the document: close the quote before it"
            )
        if "<document start>" in problem:
            return self.mark, (
                "more after the end of the document ('...'): a configuration file holds one document"
            )
        if problem.startswith("found incompatible YAML document"):
            return self.mark, "only YAML 1.x is read: remove the %YAML line, or make it %YAML 1.2"
        return None

    def _stray_colon(self) -> str:
        """`mapping values are not allowed here`: a ':' the scanner met inside a plain value."""
        before = self.line_text[: self.mark[1]]
        if _KEY_COLON.search(before):
            return (
                "a second ': ' on this line: quote a value that holds ': ' (note: \"a: b\"), "
                "or put each key on a line of its own"
            )
        if len(before.strip()) > 1024:
            return "a key of more than 1,024 characters, more than YAML allows"
        previous = _previous_line(self.text, self.mark[0])
        if previous is None:
            return "a ':' where YAML cannot read it as a key's; quote a value that holds ': '"
        number, text = previous
        indent = len(text) - len(text.lstrip(" "))
        body = text.strip()
        if not _KEY_COLON.search(body) and not body.startswith(("-", "{", "[")):
            return (
                f"line {number + 1} has no ': ' (a colon and a space) after its key, so this line reads as "
                f"part of it; write 'key: value' on line {number + 1}"
            )
        if self.indent > indent:
            return (
                f"this line is indented more than line {number + 1} above it, so it reads as the rest of that "
                "line's value; indent it like the keys it belongs with"
            )
        return "a ':' where YAML cannot read it as a key's; quote a value that holds ': '"

    def _not_a_key(self) -> str:
        """`did not find expected key` in a block mapping: what stands where the next key should."""
        start = f" (from line {self.opened[0] + 1})" if self.opened is not None else ""
        if self.mark[1] == self.indent:  # the line itself starts where no key of an open mapping does
            if self.at == "-":
                return (
                    f"a '- ' list item among the keys of a mapping{start}; the accounts format has no lists: "
                    "write 'key: value'"
                )
            details = f"{self.indent} here"
            if self.opened is not None:
                details += f"; the keys from line {self.opened[0] + 1} have {self.opened[1]}"
            previous = _previous_line(self.text, self.mark[0])
            if previous is not None and (self.opened is None or previous[0] != self.opened[0]):
                number, text = previous
                details += f", line {number + 1} has {len(text) - len(text.lstrip(' '))}"
            return (
                f"this line is indented differently from the keys above it (spaces: {details}); "
                "indent it like the keys it belongs with"
            )
        before = self.line_text[: self.mark[1]].rstrip()
        if self.at in ("}", "]"):
            return f"this '{self.at}' closes nothing that is open: remove it"
        if before.endswith(('"', "'")):
            return (
                "more text after a closing quote: a quoted value ends at its quote; "
                "quote all of the value, or move the rest to a line of its own"
            )
        if before.endswith(("}", "]")):
            return f"more text after the closing '{before[-1]}'; start a new line for the next key"
        return "this cannot follow the value before it on the same line; start a new line for the next key"

    def _not_a_list_item(self) -> str:
        start = f" from line {self.opened[0] + 1}" if self.opened is not None else ""
        return (
            f"this line is indented like the '- ' items of the list{start}, but is not one; the accounts "
            "format has no lists: write 'key: value' lines"
        )

    def _cannot_start(self) -> str:
        if self.at in ("@", "`"):
            return (
                f"a value cannot start with '{self.at}' in YAML (quote a value that starts with '@' or '`')"
            )
        if self.at == "%":
            return "a value cannot start with '%' in YAML: quote it"
        return "a value cannot start with this character in YAML: quote it"

    def _unclosed(self, open_: str, close: str) -> tuple[tuple[int, int], str]:
        """`did not find expected ',' or '}'`: an entry of a flow mapping or list that does not end there."""
        if self.opened is None:
            return self.mark, f"expected ',' or '{close}' here"
        line, col = self.opened[0] + 1, self.opened[1] + 1
        if _at_end(self.text, self.mark):
            return (
                self.opened,
                f"this '{open_}' is never closed (the file ends inside it): close it with '{close}'",
            )
        if self.opened[0] == self.mark[0]:
            return self.mark, (
                f"expected ',' or '{close}' here, inside the '{open_}' at column {col}: separate its entries "
                f"with ', ' and close it with '{close}'" + ("; write 'key: value'" if open_ == "{" else "")
            )
        return self.mark, (
            f"the '{open_}' at line {line}, column {col} is still open here: close it with '{close}', or "
            "separate its entries with ','"
        )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _opens_block(line: str) -> bool:
    """Whether `line` is a key with nothing after its ':' but a comment (`proxy:`): its keys follow, indented."""
    return bool(re.search(r":\s*(?:#.*)?$", line.strip())) and not line.strip().startswith("#")


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(0-based number, text) of the lines that hold more than blanks and a comment."""
    return [
        (number, line)
        for number, line in enumerate(text.split("\n"))
        if line.strip() and not line.strip().startswith("#")
    ]


def _first_key_slip(text: str, mark: tuple[int, int], indent: int) -> tuple[tuple[int, int], str] | None:
    """`mapping values are not allowed` on a line (at `mark`, indented `indent`) indented more than the line
    above it, where that line is the first key under a `key:`: either may be the one off. The first key is off
    when the keys after it are all indented like this line, or when this line's indentation is the file's usual
    step under the `key:`; this line is off (None: the usual message) when a later key or the step agrees with
    the first key; otherwise the message names both lines."""
    lines = _content_lines(text)
    numbers = [number for number, _ in lines]
    if mark[0] not in numbers or _KEY_COLON.search(lines[numbers.index(mark[0])][1][: mark[1]].strip()):
        return None
    here = numbers.index(mark[0])
    if here < 2:
        return None
    (first_number, first), (parent_number, parent) = lines[here - 1], lines[here - 2]
    first_indent, parent_indent = _indent(first), _indent(parent)
    if not (parent_indent < first_indent < indent and _opens_block(parent) and _KEY_COLON.search(first)):
        return None
    later = []
    for _, line in lines[here + 1 :]:
        if _indent(line) <= parent_indent:
            break
        later.append(_indent(line))
    steps = Counter(
        _indent(line) - _indent(above)
        for (_, above), (_, line) in itertools.pairwise(lines)
        if _opens_block(above) and _indent(line) > _indent(above)
    )
    step = steps.most_common(1)[0][0] if steps else None
    if first_indent in later or (not later and step == first_indent - parent_indent):
        return None
    first_at = (first_number, first_indent)
    if later or step == indent - parent_indent:
        return first_at, (
            f"this line, the first key under line {parent_number + 1}, is indented less than the keys below it "
            f"(spaces: {first_indent} here, {indent} from line {mark[0] + 1}); indent it like them"
        )
    return (mark[0], indent), (
        f"this line is indented more than line {first_number + 1} above it (spaces: {indent} here, "
        f"{first_indent} there), the first key under line {parent_number + 1}: one of the two is off; "
        "indent both alike"
    )


def _previous_line(text: str, line: int) -> tuple[int, str] | None:
    """The nearest line above line `line` (0-based) of `text` that holds more than blanks and a comment:
    (0-based number, text)."""
    lines = text.split("\n", line)[:line]
    for number in range(len(lines) - 1, -1, -1):
        stripped = lines[number].strip()
        if stripped and not stripped.startswith("#"):
            return number, lines[number]
    return None


def _at_end(text: str, mark: tuple[int, int]) -> bool:
    """Whether nothing but blanks and comments follows `mark` (0-based): the parser reached the end of the file."""
    offset = sum(len(line) + 1 for line in text.split("\n", mark[0])[: mark[0]])
    rest = text[offset + mark[1] :]
    return all(not line.strip() or line.strip().startswith("#") for line in rest.split("\n"))


def _unclosed_bracket(text: str) -> tuple[tuple[int, int], str] | None:
    """The innermost `{` or `[` of a flow collection still open at the end of `text`: (0-based (line, column),
    the bracket), or None. A light scan, for a message only: quotes and comments are skipped, and outside a flow
    collection a bracket opens one only where a value starts (after `:`, `-`, `?` or at a line's start), so
    `host: a[1]` opens nothing."""
    stack: list[tuple[int, int, str]] = []
    line = column = 0
    quote = ""
    comment = False
    last = "\n"  # the last character other than a blank on this line, "\n" at its start
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char == "\n":
            line, column, comment, last = line + 1, 0, False, "\n"
            continue
        column += 1
        if comment:
            continue
        if quote:
            if char == "\\" and quote == '"':
                index += 1
                column += 1
            elif char == quote:
                if quote == "'" and text[index : index + 1] == "'":
                    index += 1
                    column += 1
                else:
                    quote = ""
                    last = char
            continue
        if char in " \t":
            continue
        if char == "#" and text[index - 2 : index - 1] in ("", " ", "\t", "\n"):
            comment = True
            continue
        starts_value = last in "\n:-?" or (bool(stack) and last in "[{,")
        if char in "\"'" and starts_value:
            quote = char
        elif char in "[{" and (stack or starts_value):
            stack.append((line, column - 1, char))
        elif char in "]}" and stack:
            stack.pop()
        last = char
    if not stack:
        return None
    line, column, char = stack[-1]
    return (line, column), char


def load(file: str, text: str) -> Loaded:
    """Parse one YAML document: its value, where it starts, and the duplicate-key problems found.

    Raises ConfigError for anything that stops the file being read at all (syntax, bounds, several documents).
    """
    try:
        with collector.paused():
            return _Builder(file).build(text)
    except _Abort as abort:
        raise ConfigError([abort.problem]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_error_problem(file, text, exc)]) from None


def _dotted(parts: list[Any]) -> str:
    return ".".join(str(part) for part in parts)


class _Tree:
    """The tree being read: a `_Frame` for each mapping or list open (`stack`), the document's value once read
    (`root`), the duplicate keys found on the way (`problems`).

    `add` puts a node that is read in its place: an item of its list, a key, a key's value, or a merge key's
    mappings (`merge`, when its mapping ends). A problem names the keys and indexes leading to where the reader
    is (`path`); one that stops the file being read is raised as `_Abort` (`abort`).
    """

    __slots__ = ("file", "stack", "root", "problems")

    def __init__(self, file: str) -> None:
        self.file = file
        self.stack: list[_Frame] = []
        self.root: list[tuple[Any, Mark]] = []  # the document's value and its mark, once read
        self.problems: list[Problem] = []  # duplicate keys: the file is still read to its end

    def path(self) -> list[Any]:
        """The keys and indexes leading to the node being read (computed only for a problem)."""
        parts: list[Any] = []
        for frame in self.stack:
            if type(frame.container) is YSeq:
                parts.append(len(frame.container))
            elif frame.key is not None:
                parts.append("<<" if frame.key is _MERGE else frame.key)
        return parts

    def abort(self, mark: Mark, message: str, path: list[Any] | None = None) -> _Abort:
        parts = self.path() if path is None else path
        return _Abort(Problem(self.file, mark[0], mark[1], message, path=_dotted(parts)))

    def at_secret_place(self) -> bool:
        return any(part in SECRET_KEYS for part in self.path())

    def add(self, value: Any, raw: str | None, mark: Mark, size: int) -> None:
        """Put a node that is read (`raw`: a scalar's text) in the list or mapping open, or make it the value."""
        stack = self.stack
        if not stack:
            self.root.append((value, mark))
            return
        frame = stack[-1]
        frame.size += size
        container: Any = frame.container  # a YSeq, or a YMap below (dispatched by `type() is`, see `_read`)
        if type(container) is YSeq:
            if len(container) >= MAX_LIST_ITEMS:
                stack.pop()  # the path of the list itself
                raise self.abort(
                    container.pos,
                    f"a list of more than {MAX_LIST_ITEMS:,} items; the accounts format has no lists",
                )
            container.append(value)
            container.item_pos.append(mark)
            return
        if frame.key is None:
            if raw is None:
                raise self.abort(mark, "mapping keys must be plain text, not a mapping or list")
            frame.key = _MERGE if raw == "<<" and size == 1 and value == "<<" else raw
            frame.key_mark = mark
            return
        key, frame.key = frame.key, None
        if key is _MERGE:
            if frame.merges is None:
                frame.merges = []
            frame.merges.append((value, mark))
            return
        if key in container:
            first_line, first_col, _, _ = container.marks[key]
            self.problems.append(
                Problem(
                    self.file,
                    frame.key_mark[0],
                    frame.key_mark[1],
                    f"duplicate key {brief(key)} (first defined at line {first_line}, column {first_col})",
                    path=_dotted([*self.path(), key]),
                )
            )
            return
        container[key] = value
        container.marks[key] = (frame.key_mark[0], frame.key_mark[1], mark[0], mark[1])

    def merge(self, frame: _Frame) -> None:
        """Copy into the mapping of `frame`, read to its end, the keys of its merge keys' mappings it lacks."""
        target = frame.container
        assert type(target) is YMap  # only a mapping holds merge keys
        for value, mark in frame.merges or ():
            sources = value if type(value) is YSeq else [value]
            for source in sources:
                if type(source) is not YMap:
                    raise self.abort(
                        mark, "a merge key (<<) needs a mapping or a list of mappings", [*self.path(), "<<"]
                    )
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        target.marks[key] = source.marks[key]


class _Builder:
    """One document's events from libyaml, read into a `_Tree`; the anchors, for the aliases that name them.

    `_read` is the loop over the events (a million at 100,000 accounts). Scalars are most of them: their common
    case is handled inline there; every other event is the method for it.
    """

    __slots__ = ("tree", "anchors", "documents", "document_mark", "expanded")

    def __init__(self, file: str) -> None:
        self.tree = _Tree(file)
        self.anchors: dict[
            str, tuple[Any, int, str | None]
        ] = {}  # name: (value, its size in nodes, raw text)
        self.documents = 0
        self.document_mark: Mark = (1, 1)
        self.expanded = 0  # nodes reached through aliases beyond the first occurrence

    def build(self, text: str) -> Loaded:
        self._read(Loader(text))
        tree = self.tree
        if not tree.root:
            raise _Abort(Problem(tree.file, 1, 1, "the file is empty"))
        value, mark = tree.root[0]
        # An empty document has no node of its own: it starts where its `---` (or its first token) is.
        return Loaded(value, self.document_mark if value is None else mark, tree.problems)

    def _read(self, parser: Any) -> None:
        # What the loop reads is bound to locals first: a local is an index into the frame, an attribute of an
        # object a lookup by name, and the loop runs once per event.
        stack, anchors, add = self.tree.stack, self.anchors, self.tree.add
        scalar_event, mapping_start, mapping_end = (
            events.ScalarEvent,
            events.MappingStartEvent,
            events.MappingEndEvent,
        )
        sequence_start, sequence_end = events.SequenceStartEvent, events.SequenceEndEvent
        # `type(event) is X` is the fastest dispatch but does not narrow for the type checker: `event` is Any
        # here, and each branch reads only what its event type has.
        event: Any
        # `get_event` until it has none, rather than yaml.parse's generator: measured, a tenth of the parse.
        for event in iter(parser.get_event, None):
            kind = type(event)
            if kind is scalar_event:
                raw = event.value
                if (
                    event.tag is None
                    and event.implicit[0]
                    and raw not in _WORDS
                    and raw[0] not in _NUMERIC_START
                ):
                    value = raw  # plain text: most scalars of a file (keys, ids, hosts, countries)
                else:
                    value = self._resolved(event)
                if event.anchor:
                    anchors[event.anchor] = (value, 1, raw)
                start = event.start_mark
                mark = (start.line + 1, start.column + 1)
                if stack:
                    # The common case, inline: a key, or a value under a key not seen before in its mapping.
                    frame = stack[-1]
                    container = frame.container
                    key = frame.key
                    if type(container) is YMap and key is not _MERGE:
                        if key is None:
                            if raw != "<<" or value != "<<":
                                frame.size += 1
                                frame.key = raw
                                frame.key_mark = mark
                                continue
                        elif key not in container:
                            frame.size += 1
                            frame.key = None
                            container[key] = value
                            container.marks[key] = frame.key_mark + mark  # one C-level concatenation
                            continue
                add(value, raw, mark, 1)
            elif kind is mapping_start or kind is sequence_start:
                self._open(event, kind is mapping_start)
            elif kind is mapping_end or kind is sequence_end:
                self._close()
            elif kind is events.AliasEvent:
                self._alias(event)
            elif kind is events.DocumentStartEvent:
                self._document(event)

    def _resolved(self, event: Any) -> Any:
        """A scalar's value, other than plain text (`_resolve_scalar`); a bad one stops the file being read."""
        try:
            return _resolve_scalar(event)
        except _BadScalar as bad:
            message = bad.hidden if self.tree.at_secret_place() else bad.shown
            raise self.tree.abort(_mark(event), message) from None

    def _open(self, event: Any, is_map: bool) -> None:
        """A mapping or list starts: refused nested too deep, or with a tag other than its own."""
        tree = self.tree
        stack = tree.stack
        if len(stack) >= MAX_DEPTH:
            raise tree.abort(_mark(event), f"nesting deeper than {MAX_DEPTH} levels")
        if event.tag and event.tag != "!" and event.tag != _TAG_PREFIX + ("map" if is_map else "seq"):
            raise tree.abort(
                _mark(event),
                "unsupported YAML tag (not shown: the value may be secret); quote a value that starts with '!'"
                if tree.at_secret_place()
                else f"unsupported YAML tag {brief(event.tag)}; quote a value that starts with '!'",
            )
        start = event.start_mark
        mark = (start.line + 1, start.column + 1)
        stack.append(_Frame(YMap(mark) if is_map else YSeq(mark), event.anchor))

    def _close(self) -> None:
        """A mapping or list ends: its merge keys are merged, its anchor kept, and it takes its place."""
        tree = self.tree
        stack = tree.stack
        frame = stack[-1]
        if frame.merges:
            tree.merge(frame)
        stack.pop()
        done = frame.container
        if frame.anchor:
            self.anchors[frame.anchor] = (done, frame.size, None)
        if stack:
            # The common case, inline: the value of a key not seen before in its mapping.
            parent = stack[-1]
            container = parent.container
            key = parent.key
            if type(container) is YMap and key is not None and key is not _MERGE and key not in container:
                parent.size += frame.size
                parent.key = None
                container[key] = done
                container.marks[key] = parent.key_mark + done.pos
                return
        tree.add(done, None, done.pos, frame.size)

    def _alias(self, event: Any) -> None:
        """The anchored node an alias names takes its place, counted against MAX_ALIAS_EXPANSION."""
        mark = _mark(event)
        target = self.anchors.get(event.anchor)
        if target is None:
            raise self.tree.abort(
                mark,
                "unknown alias (not shown: the value may be secret); quote a value that starts with '*'"
                if self.tree.at_secret_place()
                else f"unknown alias *{event.anchor[:60]}; quote a value that starts with '*'",
            )
        value, size, raw = target
        self.expanded += size
        if self.expanded > MAX_ALIAS_EXPANSION:
            raise self.tree.abort(
                mark, f"aliases expand past {MAX_ALIAS_EXPANSION:,} nodes; refusing (alias bomb?)"
            )
        self.tree.add(value, raw, mark, size)

    def _document(self, event: Any) -> None:
        """A document starts: a configuration file holds one."""
        self.documents += 1
        self.document_mark = _mark(event)
        if self.documents > 1:
            raise self.tree.abort(
                _mark(event), "a configuration file holds one YAML document, found a second", []
            )
