"""Whether a parsed saved plan is one: bounded, and valid under `schemas/saved-plan.schema.json`.

A saved plan is an artifact that anyone may have made or edited, so nothing in it is trusted before this check:
its nesting and its strings are bounded before jsonschema sees it (jsonschema recurses, and so do the messages
it builds: a mapping nested 900 deep ended `show` in a RecursionError), and the schema names the only variables,
settings and sizes a saved plan may hold.

At 100,000 changes jsonschema alone takes over 20 s, so the large lists (`changes`, `warnings`,
`unset_variables`) are checked item by item by hand, at C speed where it can be; only an item the hand check
refuses goes to jsonschema, for its message. The hand check is the schema's rules, except that it matches a
pattern against the whole string: Python's `re` (jsonschema's) lets `$` match before a final newline, which
ECMA-262, the schema's dialect, does not. An item jsonschema passes but the hand check refuses is refused all
the same, saying so.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from reconciler import packaged
from reconciler.errors import brief
from reconciler.model import Change

#: A real saved plan is at most 5 levels deep (the document, `changes`, a change, `after`, `proxy`).
MAX_DEPTH = 16
#: Longer than any string the schema allows anywhere (its longest is 8,192 characters).
MAX_STRING = 65_536

_COUNT_MAX = 2**63 - 1
_ACTIONS = frozenset(("create", "update", "forget", "none"))
_CHANGE_KEYS = frozenset(Change.__slots__)  # what a saved change holds: a Change's fields
_REQUIRED = _CHANGE_KEYS - {"file"}
_PROXY_KEYS = frozenset(("protocol", "host", "port", "username", "password"))
_SETTINGS_KEYS = frozenset(("proxy", "country", "ip"))
#: A source a value may wait for: an environment variable, or a secrets file not decrypted (`vault.*`).
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[a-z][a-z0-9_]*\.\*")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_NOT_KNOWN = "(not known here"
_ENV = r"[A-Za-z_][A-Za-z0-9_]{0,255}"
_FILE = r"[a-z][a-z0-9_]{0,253}\.\*"
#: As secrets.unknown_marker writes a NotKnown: `(not known here: A, B unset)`, `(... vault.* not decrypted)`, or both.
_MARKER = re.compile(
    rf"\(not known here: (?:{_ENV}(?:, {_ENV})* unset(?:; {_FILE}(?:, {_FILE})* not decrypted)?"
    rf"|{_FILE}(?:, {_FILE})* not decrypted)\)"
)


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(packaged.read_text("schemas/saved-plan.schema.json"))
    return schema


@functools.cache
def _validator(key: str | None = None) -> Any:
    """The schema's validator: of the whole document, or of one item of the list `key`."""
    import jsonschema  # imported here: only apply --plan and show read saved plans

    schema = _schema()
    if key is not None:
        item = schema["properties"][key]["items"]
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], **item}
    return jsonschema.validators.validator_for(schema)(schema)


def where(path: Any) -> str:
    """A JSON path as `changes[0].fields`, or `the document`."""
    said = ""
    for part in path:
        said += f"[{part}]" if isinstance(part, int) else f".{part}"
    return said.lstrip(".") or "the document"


def beyond_bounds(value: Any, prefix: tuple[Any, ...] = ()) -> str | None:
    """Where `value` (at `prefix`) is nested deeper than MAX_DEPTH or holds a string or key longer than
    MAX_STRING, with what is wrong; None when it is within bounds. Iterative: nothing here recurses."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_STRING:
                return f"{where(path)}: a string of {len(item):,} characters (at most {MAX_STRING:,})"
            continue
        if not isinstance(item, dict | list):
            continue
        if len(path) >= MAX_DEPTH:
            return f"{where(path)}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, list):
            stack.extend((member, (*path, index)) for index, member in enumerate(item))
            continue
        for key, member in item.items():
            if len(key) > MAX_STRING:
                return f"{where(path)}: a key of {len(key):,} characters (at most {MAX_STRING:,})"
            stack.append((member, (*path, key)))
    return None


def _schema_message(instance: Any, key: str | None = None, prefix: tuple[Any, ...] = ()) -> str | None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator(key).iter_errors(instance))
    if error is None:
        return None
    message = " ".join(error.message.split())
    message = message if len(message) <= 160 else message[:160] + "…"
    return f"{where((*prefix, *error.absolute_path))}: {message}"


# -- the hand checks: True only if the item is valid under the schema -----------------------------------------
def _text(value: Any, longest: int) -> bool:
    return type(value) is str and len(value) <= longest


def _count(value: Any, least: int = 0) -> bool:
    return type(value) is int and least <= value <= _COUNT_MAX


def is_marker(text: str) -> bool:
    """Whether `text` is a value not known here as a saved plan holds it (`secrets.unknown_marker`)."""
    return _MARKER.fullmatch(text) is not None


def _value(value: Any) -> bool:
    if type(value) is str:
        return len(value) <= 4096 and (not value.startswith(_NOT_KNOWN) or is_marker(value))
    return value is None or type(value) in (int, float, bool)


def _settings(settings: Any) -> bool:
    if settings is None:
        return True
    if type(settings) is not dict or not settings.keys() <= _SETTINGS_KEYS:
        return False
    proxy = settings.get("proxy", {})
    if type(proxy) is not dict or not proxy.keys() <= _PROXY_KEYS or not all(map(_value, proxy.values())):
        return False
    return _value(settings.get("country")) and _value(settings.get("ip"))


def _change(change: Any) -> bool:
    if type(change) is not dict or not _REQUIRED <= change.keys() <= _CHANGE_KEYS:
        return False
    file, account_id, fields = change.get("file"), change["account_id"], change["fields"]
    generation = change["resync_generation"]
    return (
        (file is None or (_text(file, 4096) and "\0" not in file))
        and _text(account_id, 1024)
        and account_id != ""
        and type(change["action"]) is str
        and change["action"] in _ACTIONS
        and type(change["resync"]) is bool
        and type(fields) is list
        and len(fields) <= 64
        and all(_text(field, 256) and _FIELD.fullmatch(field) is not None for field in fields)
        and _settings(change["before"])
        and _settings(change["after"])
        and (generation is None or _count(generation, 1))
        and _count(change["recorded_generation"])
    )


def _warning(warning: Any) -> bool:
    return _text(warning, 8192)


def _variable(name: Any) -> bool:
    return _text(name, 256) and _VARIABLE.fullmatch(name) is not None


#: The lists a saved plan may hold 100,000 items of, and the hand check of one item.
_LISTS = {"changes": _change, "warnings": _warning, "unset_variables": _variable}


def problem(document: dict[str, Any]) -> str | None:
    """What makes `document` (parsed JSON) not a saved plan, as `where: what` (None: it is one)."""
    lists = {key: document.get(key) for key in _LISTS}
    envelope = {**document, **{key: [] for key, value in lists.items() if type(value) is list}}
    said = beyond_bounds(envelope) or _schema_message(envelope)
    if said:
        return said
    for key, valid in _LISTS.items():
        items: list[Any] = lists[key]  # type: ignore[assignment]  # a list: the envelope passed
        for index, item in enumerate(items):
            if valid(item):
                continue
            path = (key, index)
            return (
                beyond_bounds(item, path)
                or _schema_message(item, key, path)
                or f"{where(path)}: {brief(item)} is not valid under the saved plan's schema"
            )
    return None
