"""JSON Schema validation of a loaded file, with every error placed at its line and column."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reconciler import packaged
from reconciler.config.yamlpos import Mark, YMap, YSeq
from reconciler.errors import Problem, brief, describe
from reconciler.suggestions import closest

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
    errors = list(_validator().iter_errors(root))
    misplaced = _misindented(root, errors)
    for error in errors:
        if not _said_by(error, misplaced):
            problems.extend(_problems_for(file, root, error, misplaced))
        bad_paths.add(tuple(error.absolute_path)[:2])
    for (path, mapping_key), (mapping, keys) in misplaced.items():
        problems.append(_misindented_problem(file, path, mapping, mapping_key, keys))
    return problems, bad_paths


#: The keys whose value is a mapping of known keys: keys of theirs one level up are indented too little.
_SUB_MAPPINGS = ("proxy", "resync")

#: (path of a mapping, its key `proxy` or `resync`) -> (that mapping, its keys that belong under that key).
Misplaced = dict[tuple[tuple[Any, ...], str], tuple[YMap, list[str]]]


def _misindented(root: Any, errors: list[jsonschema.ValidationError]) -> Misplaced:
    """Keys written one level too shallow, beside the empty key they belong under:

    - keys of a `proxy:` or `resync:` written above them in the same mapping (`proxy:` followed by `host: ...`
      at the same indentation; also after a `proxy:` that has keys of its own);
    - an account's keys level with its id, after the id left empty (they read as more accounts);
    - accounts level with `accounts:`, left empty (they read as unknown keys of the file)."""
    found: Misplaced = {}
    for error in errors:
        instance: Any = error.instance
        schema: Any = error.schema
        if error.validator != "additionalProperties" or type(instance) is not YMap:
            continue
        properties = schema.get("properties", {})
        for mapping_key in _SUB_MAPPINGS:
            if mapping_key not in instance or mapping_key not in properties:
                continue
            below = _resolved(properties[mapping_key]).get("properties", {})
            line = instance.key_mark(mapping_key)[0]
            keys = [
                key
                for key in instance
                if key not in properties and key in below and instance.key_mark(key)[0] > line
            ]
            if keys:
                found[(tuple(error.absolute_path), mapping_key)] = (instance, keys)
    if type(root) is not YMap:
        return found
    accounts = root.get("accounts")
    if type(accounts) is YMap:
        account_keys = accounts_schema()["$defs"]["account"]["properties"]
        empty: str | None = None
        for key, value in accounts.items():
            if empty is not None and key in account_keys:
                found.setdefault((("accounts",), empty), (accounts, []))[1].append(key)
                continue
            empty = key if value is None else None
    elif "accounts" in root and accounts is None:
        line = root.key_mark("accounts")[0]
        known = accounts_schema()["properties"]
        keys = [key for key in root if key not in known and root.key_mark(key)[0] > line]
        if keys:
            found[((), "accounts")] = (root, keys)
    return found


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """A subschema with its local `$ref` (`#/$defs/proxy`) followed."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return schema
    return _resolved(accounts_schema()["$defs"][ref.removeprefix("#/$defs/")])


def _said_by(error: jsonschema.ValidationError, misplaced: Misplaced) -> bool:
    """Whether the misindentation message says all this error would: `proxy: expected a mapping, got nothing`
    when the keys meant for it follow at its own level, and what is wrong with those keys where they landed."""
    path = tuple(error.absolute_path)
    for (parent, key), (_, keys) in misplaced.items():
        if path[: len(parent)] != parent:
            continue
        rest = path[len(parent) :]
        if rest == (key,) and error.validator == "type" and error.instance is None:
            return True
        if rest and rest[0] in keys:
            return True
    return False


def _misindented_problem(
    file: str, path: tuple[Any, ...], mapping: YMap, key: str, keys: list[str]
) -> Problem:
    quoted = [repr(name) for name in keys]
    names = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    verb, them = ("is", "it") if len(keys) == 1 else ("are", "them")
    line = mapping.key_mark(key)[0]
    where = dotted([*path, key])
    if mapping[key] is None:
        message = (
            f"{where} is empty: {names} below it {verb} indented level with '{key}:' (line {line}), "
            f"not under it; indent {them} further"
        )
    else:
        message = (
            f"{where}: {names} below it {verb} indented level with '{key}:' (line {line}), not under it; "
            f"indent {them} like the {key} keys above"
        )
    return Problem(file, *mapping.key_mark(keys[0]), message, path=where)


def _problems_for(
    file: str, root: Any, error: jsonschema.ValidationError, misplaced: Misplaced | None = None
) -> list[Problem]:
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
        return _unknown_keys(file, instance, sorted(schema.get("properties", {})), path, key_mark, misplaced)
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Problem(file, *key_mark, f"{where}: missing required key {missing!r}", path=at)]
    if "propertyNames" in error.schema_path:
        return []
    # Scalars only: a mapping or list given in the wrong place may hold anything, a password included.
    hidden = _is_sensitive(path) or instance is None or isinstance(instance, dict | list)
    shown = "" if hidden else f" {_as_written(instance)}"
    if kind == "type":
        return [
            Problem(file, *value_mark, _wrong_type(where, path, instance, validator_value, shown), path=at)
        ]
    if kind == "enum":
        options = [str(option) for option in validator_value]
        return [Problem(file, *value_mark, _not_one_of(where, instance, options, shown), path=at)]
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
    if kind == "pattern" and path[:1] == ["accounts"] and path[-1:] == ["country"] and len(path) == 3:
        from reconciler.config.countries import not_a_code  # only for this message

        # Worded as the check of the list of codes words it (accounts.py): one mistake, one shape.
        message = f"account {brief(path[1], 260)}: {not_a_code(instance)}"
        return [Problem(file, *value_mark, message, path=at)]
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


def _unknown_keys(
    file: str,
    instance: dict[str, Any],
    allowed: list[str],
    path: list[Any],
    key_mark: Mark,
    misplaced: Misplaced | None,
) -> list[Problem]:
    """`additionalProperties`: a problem for each key of `instance` (at `path`) that is not `allowed`, but for
    the keys that `misplaced` already says are indented level with their mapping's key."""
    where = dotted(path)
    at = ".".join(str(part) for part in path)
    said = {
        key for (parent, _), (_, keys) in (misplaced or {}).items() if parent == tuple(path) for key in keys
    }
    problems = []
    for key in instance:
        if key in allowed or key in said:
            continue
        line, col = instance.key_mark(key) if isinstance(instance, YMap) else key_mark
        hint = closest(key, allowed, limit=1)
        if hint:
            message = f"unknown key {brief(key)} in {where}; did you mean {hint[0]!r}?"
        elif _is_sensitive(path):
            # `proxy: {host: h, hunter2}` makes a password a key: an unknown key here is not quoted.
            message = f"unknown key in {where} (expected one of: {', '.join(allowed)})"
        else:
            message = f"unknown key {brief(key)} in {where} (expected one of: {', '.join(allowed)})"
        key_path = at if _is_sensitive(path) and not hint else ".".join(str(part) for part in [*path, key])
        problems.append(Problem(file, line, col, message, path=key_path))
    return problems


def _wrong_type(where: str, path: list[Any], instance: Any, expected: Any, shown: str) -> str:
    """`type`: what was expected and what was written (`shown`: the value quoted, or nothing where it is
    secret), with the fix for a quoted number or a port read from a variable."""
    expected_names = " or ".join(
        _TYPE_NAMES.get(t) or str(t) for t in (expected if isinstance(expected, list) else [expected])
    )
    message = f"{where}: expected {expected_names}, got {describe(instance)}{shown}"
    if expected == "integer" and isinstance(instance, str) and instance.strip().isdigit():
        message += "; write the number without quotes"
    elif expected == "integer" and isinstance(instance, str) and "$" in instance and path[-1:] == ["port"]:
        message += "; a port is a number written in the file, never read from ${VAR}"
    elif expected == "string" and isinstance(instance, int | float) and path[-2:-1] == ["labels"]:
        message += f'; labels are text: quote it ("{_as_written(instance)}")'
    elif expected == "string" and isinstance(instance, int | float) and _is_sensitive(path):
        message += "; quote it to make it text"
    return message


def _as_written(value: Any) -> str:
    """A scalar as a message shows it: a boolean as YAML writes it (`true`, not Python's `True`), anything else
    quoted briefly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return brief(value)


def _not_one_of(where: str, instance: Any, options: list[str], shown: str) -> str:
    """`enum`: the value is none of `options`; the closest one suggested. At a secret position (`proxy.protocol`)
    the value is not quoted, but the suggestion is one of the options, which tells nothing of it."""
    message = f"{where}: {shown.strip() or 'value'} is not one of: {', '.join(options)}"
    suggested = closest(instance, options, limit=1) if isinstance(instance, str) else []
    if suggested:
        message += f"; did you mean {suggested[0]!r}?"
    return message
