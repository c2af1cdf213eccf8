"""A fast, conservative stand-in for the JSON Schema on valid documents.

Profiling `plan` at 10,000 accounts showed jsonschema taking ~60% of the time, almost all of it on documents
that are valid. `document_certainly_valid` mirrors `schemas/accounts.schema.json` in plain Python and only ever
answers True for a document the schema accepts (tests/unit/test_fastcheck.py checks that against jsonschema with
hypothesis); when it answers False, the loader runs jsonschema for the positioned messages, as before.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.config.schema import accounts_schema

#: The schema's account id pattern, anchored by `fullmatch` (its `$` would let a trailing newline through).
ACCOUNT_ID = re.compile(
    accounts_schema()["$defs"]["accountId"]["pattern"].removeprefix("^").removesuffix("$")
)
_ACCOUNT_ID_MATCH = ACCOUNT_ID.fullmatch
_ALIAS = re.compile(
    accounts_schema()["properties"]["secrets"]["propertyNames"]["pattern"].strip("^$")
).fullmatch


def _enum(*path: str) -> frozenset[str]:
    node: Any = accounts_schema()["$defs"]
    for part in path:
        node = node[part]
    return frozenset(node["enum"])


PROVIDERS = _enum("account", "properties", "provider")
_PROTOCOLS = _enum("protocol")
_PRODUCTS = _enum("resync", "properties", "linkedin_product")
ACCOUNT_KEYS = frozenset(("provider", "labels", "proxy", "country", "ip", "resync"))
_PROXY_KEYS = frozenset(("host", "port", "protocol", "username", "password"))
_RESYNC_KEYS = frozenset(("generation", "chunk_size", "partial", "linkedin_product", "after", "before"))


def _one_of(value: Any, options: frozenset[str]) -> bool:
    return type(value) is str and value in options  # a mapping or list value is unhashable: test type first


def _proxy_ok(proxy: Any, host_min_length: int) -> bool:
    if not isinstance(proxy, dict) or not proxy.keys() <= _PROXY_KEYS:
        return False
    host = proxy.get("host", "x")
    port = proxy.get("port", 1)
    return (
        type(host) is str
        and len(host) >= host_min_length
        and type(port) is int
        and 1 <= port <= 65535
        and _one_of(proxy.get("protocol", "http"), _PROTOCOLS)
        and type(proxy.get("username", "")) is str
        and type(proxy.get("password", "")) is str
    )


def _resync_ok(resync: Any) -> bool:
    if not isinstance(resync, dict) or not resync.keys() <= _RESYNC_KEYS:
        return False
    generation = resync.get("generation")
    chunk_size = resync.get("chunk_size", 1)
    return (
        type(generation) is int
        and generation >= 1
        and type(chunk_size) is int
        and chunk_size >= 1
        and type(resync.get("partial", True)) is bool
        and _one_of(resync.get("linkedin_product", "classic"), _PRODUCTS)
        and type(resync.get("after", "")) in (str, int)
        and type(resync.get("before", "")) in (str, int)
    )


def _id_ok(account_id: str) -> bool:
    """The schema's account id pattern. An ASCII id is checked without the regular expression (a third of the
    time): for ASCII, the pattern refuses exactly the control characters, DEL and whitespace."""
    if account_id.isascii():
        return 0 < len(account_id) <= 256 and account_id.isprintable() and " " not in account_id
    return _ACCOUNT_ID_MATCH(account_id) is not None


def account_certainly_valid(account_id: Any, body: Any) -> bool:
    """True only if the schema accepts this entry of `accounts` (no rule of the schema spans accounts).

    Runs for every account of every file before anything else: each key present is looked at once, and an
    unknown key refuses."""
    if type(account_id) is not str or not _id_ok(account_id) or not isinstance(body, dict):
        return False
    for key, value in body.items():
        if key == "country":
            # The schema's pattern [A-Za-z]{2}, without a regular expression.
            if not (type(value) is str and len(value) == 2 and value.isascii() and value.isalpha()):
                return False
        elif key == "proxy":
            if not _proxy_ok(value, 1):
                return False
        elif key == "provider":
            if not _one_of(value, PROVIDERS):
                return False
        elif key == "labels":
            if not isinstance(value, dict) or any(type(label) is not str for label in value.values()):
                return False
        elif key == "resync":
            if not _resync_ok(value):
                return False
        elif key != "ip" or type(value) is not str:  # an unknown key, or an ip that is not a string
            return False
    return True


def document_certainly_valid(document: Any) -> bool:
    """True only if the schema accepts `document`; False means "ask jsonschema"."""
    if not isinstance(document, dict) or not document.keys() <= {
        "version",
        "defaults",
        "secrets",
        "accounts",
    }:
        return False
    if "secrets" in document:
        secrets = document["secrets"]
        if not isinstance(secrets, dict) or not all(
            type(alias) is str and _ALIAS(alias) is not None and type(name) is str and name
            for alias, name in secrets.items()
        ):
            return False
    version = document.get("version")
    if type(version) is not int or version != 1:
        return False
    if "defaults" in document:
        defaults = document["defaults"]
        if not isinstance(defaults, dict) or not defaults.keys() <= {"proxy"}:
            return False
        if "proxy" in defaults and not _proxy_ok(defaults["proxy"], 0):
            return False
    accounts = document.get("accounts")
    if not isinstance(accounts, dict):
        return False
    return all(account_certainly_valid(account_id, body) for account_id, body in accounts.items())
