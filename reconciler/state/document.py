"""The state's shape, checked when it is loaded: a damaged or hand-edited state is one line saying what is
wrong, never a traceback and never a half-read state.

`schemas/state.schema.json` defines the shape. A state can hold 100,000 accounts: measured at that size (2-core
machine under load), jsonschema took 44 s, this module's plain-Python check 0.3 s and `json.loads` itself 1.3 s;
importing jsonschema also costs every command ~45 ms. So the plain check, which only ever accepts what the schema
accepts (tests/unit/test_state_document.py checks that against jsonschema with hypothesis), runs first; jsonschema
runs only on the parts it refused (the envelope, or one account), to say precisely what is wrong.
"""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

from reconciler import packaged
from reconciler.errors import brief, describe

if TYPE_CHECKING:
    import jsonschema

#: The largest value PostgreSQL's bigint (the serial's column) holds.
MAX_BIGINT = 2**63 - 1
RECORD_KEYS = frozenset(
    ("settings", "applied_at", "resync_generation", "resynced_at", "last_failure", "provider")
)
ENVELOPE_KEYS = frozenset(("format_version", "lineage", "serial", "salt", "accounts"))
OPERATIONS = frozenset(("patch", "resync"))

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@functools.cache
def state_schema() -> dict[str, Any]:
    """The JSON Schema of a state file (`schemas/state.schema.json`)."""
    schema: dict[str, Any] = json.loads(packaged.read_text("schemas/state.schema.json"))
    return schema


# -- the fast check: True only for what the schema accepts ------------------------------------------------------
def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_BIGINT


def _text_or_null(value: Any) -> bool:
    return value is None or type(value) is str


def failure_ok(failure: Any) -> bool:
    """True only if a `last_failure` value (null or a failure) is valid under the schema."""
    if failure is None:
        return True
    if type(failure) is not dict:
        return False
    operation = failure.get("operation")
    status = failure.get("http_status")
    return (
        type(operation) is str
        and operation in OPERATIONS
        and _text_or_null(failure.get("error_type"))
        and (status is None or type(status) is int)
        and _text_or_null(failure.get("message"))
        and type(failure.get("at", "")) is str
    )


def record_ok(record: Any) -> bool:
    """True only if one account's record is valid under the schema (False may still be valid)."""
    if type(record) is not dict or not record.keys() >= RECORD_KEYS:
        return False
    settings = record["settings"]
    return (
        (settings is None or type(settings) is dict)
        and _text_or_null(record["applied_at"])
        and _count(record["resync_generation"])
        and _text_or_null(record["resynced_at"])
        and _text_or_null(record["provider"])
        and failure_ok(record["last_failure"])
    )


def _envelope_ok(document: Any) -> bool:
    if type(document) is not dict or not document.keys() >= ENVELOPE_KEYS:
        return False
    format_version, lineage, salt = document["format_version"], document["lineage"], document["salt"]
    return (
        type(format_version) is int
        and format_version == 1
        and type(lineage) is str
        and lineage != ""
        and _count(document["serial"])
        and type(salt) is str
        and salt != ""
        and type(document["accounts"]) is dict
    )


# -- what is wrong -----------------------------------------------------------------------------------------------
def state_problem(document: Any) -> str | None:
    """None if `document` is a valid state; else one line saying what is wrong and where."""
    if not _envelope_ok(document):
        # Accounts are checked one by one below: the envelope alone keeps jsonschema's work small.
        accounts_valid = isinstance(document, dict) and isinstance(document.get("accounts"), dict)
        envelope = {**document, "accounts": {}} if accounts_valid else document
        problem = _schema_problem(envelope, "state")
        if problem:
            return problem
    for account_id, record in document["accounts"].items():
        if not record_ok(record):
            problem = _schema_problem({account_id: record}, "accounts", ("accounts",))
            if problem:
                return problem
    return None


def record_problem(account_id: str, record: Any) -> str | None:
    """None if one account's record is valid; else one line saying what is wrong (for a database row)."""
    if record_ok(record):
        return None
    return _schema_problem({account_id: record}, "accounts", ("accounts",))


@functools.cache
def _accounts_schema() -> dict[str, Any]:
    schema = state_schema()
    return {**schema["properties"]["accounts"], "$defs": schema["$defs"]}


@functools.cache
def _validator(which: str) -> jsonschema.protocols.Validator:
    """The validator of the whole state (`state`) or of the accounts mapping alone (`accounts`)."""
    import jsonschema  # here: a valid state never needs it (see the module docstring)

    schema = state_schema() if which == "state" else _accounts_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_problem(instance: Any, which: str, prefix: tuple[str, ...] = ()) -> str | None:
    """What jsonschema finds wrong with `instance` (at `prefix` in the document), as one line; None if valid."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(which).iter_errors(instance))
    if error is None:
        return None
    where = _where(prefix + tuple(error.absolute_path))
    value = error.instance
    if error.validator == "required":
        missing = sorted(set(error.validator_value) - set(value))
        return f"{where or 'the document'} has no {', '.join(json.dumps(key) for key in missing)}"
    if error.validator == "type":
        expected = (
            error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        )
        wanted = " or ".join(_TYPE_NAMES.get(str(name), str(name)) for name in expected)
        return f"{where or 'the document'} must be {wanted}, not {_describe(value)}"
    if error.validator == "const":
        return f"{where} must be {json.dumps(error.validator_value)}, not {brief(value)}"
    if error.validator == "enum":
        options = ", ".join(json.dumps(option) for option in error.validator_value)
        return f"{where} must be one of {options}, not {brief(value)}"
    if error.validator in ("minimum", "maximum"):
        bound = "at least" if error.validator == "minimum" else "at most"
        return f"{where} must be {bound} {error.validator_value}, not {brief(value)}"
    if error.validator == "minLength":
        return f"{where} must not be empty"
    return f"{where or 'the document'}: {' '.join(error.message.split())[:200]}"


def _where(path: tuple[str | int, ...]) -> str:
    """A readable location: `accounts["acc_1"].last_failure` (keys quoted, escaped and cut when needed)."""
    text = ""
    for index, part in enumerate(path):
        if (index == 1 and path[0] == "accounts") or not isinstance(part, str) or not part.isidentifier():
            shown = json.dumps(part) if isinstance(part, str) else str(part)
            text += f"[{shown if len(shown) <= 80 else shown[:79] + '…'}]"
        else:
            text += f".{part}" if text else part
    return text


def _describe(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} (not a finite number)"
    return describe(value, null="null")
