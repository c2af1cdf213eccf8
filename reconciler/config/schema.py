"""JSON Schema validation of a loaded file, with every error placed at its line and column."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reconciler import packaged
from reconciler.config.yamlpos import Mark, YMap, YSeq
from reconciler.errors import Problem, brief, describe

if TYPE_CHECKING:
    import jsonschema

_TYPE_NAMES = {
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "number": "a number",
    "null": "nothing",
}


@functools.cache
def accounts_schema() -> dict[str, Any]:
    """The public JSON Schema of the desired-state file (`schemas/accounts.schema.json`)."""
    text = packaged.read_text("schemas/accounts.schema.json")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    # Imported here: valid documents never reach jsonschema (fastcheck.py), and importing it costs ~45 ms
    # of every command's start-up.
    import jsonschema

    schema = accounts_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def dotted(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path) or "(document)"


def _is_sensitive(path: list[Any]) -> bool:
    """Values under `proxy` may be secrets: never echo them in a message."""
    return "proxy" in path or "password" in path


def locate(root: Any, path: Iterable[Any]) -> tuple[Mark, Mark]:
    """The (key, value) marks of the node at `path`; the key mark is the value mark for list items and the root."""
    node = root
    key_mark = value_mark = getattr(root, "pos", (1, 1))
    for part in path:
        if type(node) is YMap and part in node:
            key_mark, value_mark = node.key_mark(part), node.value_mark(part)
        elif type(node) is YSeq and isinstance(part, int):
            key_mark = value_mark = node.value_mark(part)
        else:
            break
        node = node[part]
    return key_mark, value_mark


def schema_problems(file: str, root: Any) -> tuple[list[Problem], set[tuple[Any, ...]]]:
    """Every schema violation of one file, each placed at the most useful position.

    Also returns the paths (at most two levels deep, e.g. `("accounts", "acc_1")`) that hold a violation,
    so later checks know which accounts the schema refused. Account ids are left to the loader, which checks
    every id itself and says which character is wrong.
    """
    problems: list[Problem] = []
    bad_paths: set[tuple[Any, ...]] = set()
    for error in _validator().iter_errors(root):
        problems.extend(_problems_for(file, root, error))
        bad_paths.add(tuple(error.absolute_path)[:2])
    return problems, bad_paths


def _problems_for(file: str, root: Any, error: jsonschema.ValidationError) -> list[Problem]:
    path = list(error.absolute_path)
    where = dotted(path)
    at = ".".join(str(part) for part in path)
    key_mark, value_mark = locate(root, path)
    # jsonschema types these as unions of what any keyword could hold; each branch below knows its keyword.
    kind: Any = error.validator
    schema: Any = error.schema
    validator_value: Any = error.validator_value
    instance = error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        problems = []
        for key in instance:
            if key in allowed:
                continue
            line, col = instance.key_mark(key) if isinstance(instance, YMap) else key_mark
            hint = _close_matches(key, allowed)
            if hint:
                message = f"unknown key {brief(key)} in {where}; did you mean {hint[0]!r}?"
            elif _is_sensitive(path):
                # `proxy: {host: h, hunter2}` makes a password a key: an unknown key here is not quoted.
                message = f"unknown key in {where} (expected one of: {', '.join(allowed)})"
            else:
                message = f"unknown key {brief(key)} in {where} (expected one of: {', '.join(allowed)})"
            key_path = (
                at if _is_sensitive(path) and not hint else ".".join(str(part) for part in [*path, key])
            )
            problems.append(Problem(file, line, col, message, path=key_path))
        return problems
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Problem(file, *key_mark, f"{where}: missing required key {missing!r}", path=at)]
    if "propertyNames" in error.schema_path:
        return []
    # Scalars only: a mapping or list given in the wrong place may hold anything, a password included.
    hidden = _is_sensitive(path) or instance is None or isinstance(instance, dict | list)
    shown = "" if hidden else f" {brief(instance)}"
    if kind == "type":
        expected: Any = validator_value
        expected_names = " or ".join(
            _TYPE_NAMES.get(t) or str(t) for t in (expected if isinstance(expected, list) else [expected])
        )
        message = f"{where}: expected {expected_names}, got {describe(instance)}{shown}"
        if expected == "integer" and isinstance(instance, str) and instance.strip().isdigit():
            message += "; write the number without quotes"
        elif (
            expected == "integer" and isinstance(instance, str) and "${" in instance and path[-1:] == ["port"]
        ):
            message += "; a port is a number written in the file, never read from ${VAR}"
        return [Problem(file, *value_mark, message, path=at)]
    if kind == "enum":
        options = [str(option) for option in validator_value]
        message = f"{where}: {shown.strip() or 'value'} is not one of: {', '.join(options)}"
        hint = _close_matches(instance, options) if isinstance(instance, str) and shown else []
        if hint:
            message += f"; did you mean {hint[0]!r}?"
        return [Problem(file, *value_mark, message, path=at)]
    if kind == "const":
        return [
            Problem(
                file,
                *value_mark,
                f"{where}: must be {validator_value!r}, got{shown or ' ' + describe(instance)}",
                path=at,
            )
        ]
    if kind in ("minimum", "maximum"):
        bounds = {
            "minimum": f"at least {validator_value}",
            "maximum": f"at most {validator_value}",
        }
        got = f", got{shown}" if shown else ""
        return [Problem(file, *value_mark, f"{where}: must be {bounds[kind]}{got}", path=at)]
    if kind == "pattern" and path and path[-1] == "country":
        return [
            Problem(
                file,
                *value_mark,
                f"{where}: {brief(instance)} is not a two-letter ISO 3166-1 country code",
                path=at,
            )
        ]
    if kind == "minLength":
        return [Problem(file, *value_mark, f"{where}: must not be empty", path=at)]
    return [
        Problem(
            file,
            *value_mark,
            f"{where}: {error.message if not _is_sensitive(path) else 'invalid value'}",
            path=at,
        )
    ]


def _close_matches(word: str, possibilities: Iterable[str]) -> list[str]:
    """The one closest possibility, if any is close: for "did you mean" (difflib is imported only then)."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=1)
