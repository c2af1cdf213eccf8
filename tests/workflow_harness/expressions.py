"""GitHub Actions expressions: `${{ }}` substitution and `if:` conditions, with GitHub's operators, loose equality
and functions (contains, startsWith, endsWith, format, join, toJSON, fromJSON and the status functions)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tests.workflow_harness.errors import HarnessError

STATUS_FUNCTIONS = re.compile(r"\b(success|failure|always|cancelled)\s*\(", re.IGNORECASE)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,])
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise HarnessError(f"cannot read the expression {text!r} at {position}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over GitHub's expression grammar; produces a small tuple tree."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def parse(self) -> tuple[Any, ...]:
        tree = self._or()
        if self.index != len(self.tokens):
            raise HarnessError(f"unexpected {self.tokens[self.index][1]!r} in {self.text!r}")
        return tree

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise HarnessError(f"the expression {self.text!r} ends early")
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise HarnessError(f"expected {expected!r}, found {token[1]!r} in {self.text!r}")
        self.index += 1
        return token

    def _or(self) -> tuple[Any, ...]:
        left = self._and()
        while self._peek() == "||":
            self._take()
            left = ("or", left, self._and())
        return left

    def _and(self) -> tuple[Any, ...]:
        left = self._equality()
        while self._peek() == "&&":
            self._take()
            left = ("and", left, self._equality())
        return left

    def _equality(self) -> tuple[Any, ...]:
        left = self._comparison()
        while self._peek() in ("==", "!="):
            operator = self._take()[1]
            left = ("compare", operator, left, self._comparison())
        return left

    def _comparison(self) -> tuple[Any, ...]:
        left = self._unary()
        while self._peek() in ("<", "<=", ">", ">="):
            operator = self._take()[1]
            left = ("compare", operator, left, self._unary())
        return left

    def _unary(self) -> tuple[Any, ...]:
        if self._peek() == "!":
            self._take()
            return ("not", self._unary())
        return self._postfix()

    def _postfix(self) -> tuple[Any, ...]:
        node = self._primary()
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                kind, name = self._take()
                if kind != "name":
                    raise HarnessError(f"a property name must follow '.' in {self.text!r}")
                node = ("property", node, name)
            else:
                node = ("index", node, self._or())
                self._take("]")
        return node

    def _primary(self) -> tuple[Any, ...]:
        kind, value = self._take()
        if kind == "string":
            return ("literal", value[1:-1].replace("''", "'"))
        if kind == "number":
            return ("literal", float(int(value, 16)) if value.lower().startswith("0x") else float(value))
        if value == "(":
            node = self._or()
            self._take(")")
            return node
        if kind != "name":
            raise HarnessError(f"unexpected {value!r} in {self.text!r}")
        lowered = value.lower()
        if lowered in ("true", "false"):
            return ("literal", lowered == "true")
        if lowered == "null":
            return ("literal", None)
        if self._peek() == "(":
            self._take()
            arguments = []
            while self._peek() != ")":
                arguments.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take(")")
            return ("call", lowered, arguments)
        return ("context", lowered)


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def _compare(operator: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    elif type(left) is type(right) and isinstance(left, dict | list):
        same = left is right
        return same if operator == "==" else not same if operator == "!=" else False
    elif type(left) is type(right) and not isinstance(left, str):
        a, b = left, right
    else:
        a, b = _number(left), _number(right)
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return operator == "!="
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[operator]


def as_text(value: Any) -> str:
    """A value as GitHub substitutes it into text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def _member(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        wanted = as_text(key).casefold()
        for name, value in container.items():
            if str(name).casefold() == wanted:
                return value
        return None
    if isinstance(container, list) and isinstance(key, float) and key.is_integer():
        index = int(key)
        return container[index] if 0 <= index < len(container) else None
    return None


@dataclass
class Scope:
    """What an expression can see: the contexts, and the status of the steps (or jobs) before it."""

    contexts: dict[str, Any]
    status: str = "success"  # success | failure | cancelled

    def evaluate(self, text: str) -> Any:
        return self._eval(_Parser(text).parse())

    def _eval(self, node: tuple[Any, ...]) -> Any:
        kind = node[0]
        if kind == "literal":
            return node[1]
        if kind == "context":
            if node[1] not in self.contexts:
                raise HarnessError(f"unknown context {node[1]!r}")
            return self.contexts[node[1]]
        if kind == "property":
            return _member(self._eval(node[1]), node[2])
        if kind == "index":
            return _member(self._eval(node[1]), self._eval(node[2]))
        if kind == "not":
            return not _truthy(self._eval(node[1]))
        if kind == "and":
            left = self._eval(node[1])
            return self._eval(node[2]) if _truthy(left) else left
        if kind == "or":
            left = self._eval(node[1])
            return left if _truthy(left) else self._eval(node[2])
        if kind == "compare":
            return _compare(node[1], self._eval(node[2]), self._eval(node[3]))
        return self._call(node[1], [self._eval(argument) for argument in node[2]])

    def _call(self, name: str, arguments: list[Any]) -> Any:
        if name == "success":
            return self.status == "success"
        if name == "failure":
            return self.status == "failure"
        if name == "always":
            return True
        if name == "cancelled":
            return self.status == "cancelled"
        if name == "contains":
            haystack, needle = arguments
            if isinstance(haystack, list):
                return any(_compare("==", item, needle) for item in haystack)
            return as_text(needle).casefold() in as_text(haystack).casefold()
        if name == "startswith":
            return as_text(arguments[0]).casefold().startswith(as_text(arguments[1]).casefold())
        if name == "endswith":
            return as_text(arguments[0]).casefold().endswith(as_text(arguments[1]).casefold())
        if name == "format":
            template = as_text(arguments[0]).replace("{{", "\0").replace("}}", "\1")
            for index, value in enumerate(arguments[1:]):
                template = template.replace(f"{{{index}}}", as_text(value))
            return template.replace("\0", "{").replace("\1", "}")
        if name == "join":
            separator = as_text(arguments[1]) if len(arguments) > 1 else ","
            items = arguments[0] if isinstance(arguments[0], list) else [arguments[0]]
            return separator.join(as_text(item) for item in items)
        if name == "tojson":
            return json.dumps(arguments[0], indent=2)
        if name == "fromjson":
            return json.loads(as_text(arguments[0]))
        raise HarnessError(f"the function {name}() is not modelled")

    def interpolate(self, text: Any) -> str:
        """Substitute every `${{ expression }}` in `text`."""
        if not isinstance(text, str):
            return as_text(text)
        return re.sub(
            r"\$\{\{(.*?)\}\}", lambda match: as_text(self.evaluate(match.group(1))), text, flags=re.S
        )

    def condition(self, when: Any) -> bool:
        """An `if:`: `success() && (...)` unless it calls a status function itself."""
        if when is None:
            return self.status == "success"
        if isinstance(when, bool):
            return when and self.status == "success"
        text = str(when).strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        if not STATUS_FUNCTIONS.search(text):
            text = f"success() && ({text})"
        return _truthy(self.evaluate(text))
