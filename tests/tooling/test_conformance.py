"""The OpenAPI document is the oracle: the sandbox answers as it says, and `apply` sends only what it accepts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from reconciler.api.catalogue import CATALOGUE
from reconciler.config import load_config
from reconciler.sandbox import ServerThread
from reconciler.sandbox.reference import ROUTE_ERROR_TYPES, Route
from reconciler.secrets import revealed
from tests.helpers import SENTINEL_KEY

DOCUMENT_PATH = Path(__file__).parents[2] / "schemas" / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
OPERATIONS = {"patch": DOCUMENT["paths"]["/accounts/{account_id}"]["patch"]}
OPERATIONS["sync"] = DOCUMENT["paths"]["/accounts/{account_id}/sync"]["get"]
_REGISTRY = Registry().with_resource("openapi.yaml", Resource.from_contents(DOCUMENT, DRAFT202012))


def validator(pointer: str) -> Draft202012Validator:
    """A JSON Schema validator for the schema at `pointer` in the document (its `$ref`s resolved)."""
    return Draft202012Validator({"$ref": f"openapi.yaml#{pointer}"}, registry=_REGISTRY)


def deref(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `$ref` (inside the document) points at."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def error_types(route: str) -> dict[str, set[str]]:
    """Status -> the error types the document lists for that route."""
    listed: dict[str, set[str]] = {}
    for status, response in OPERATIONS[route]["responses"].items():
        if status.startswith("2"):
            continue
        schema = deref(deref(response)["content"]["application/json"]["schema"])
        (narrowing,) = [part for part in schema["allOf"] if "properties" in part]
        assert narrowing["properties"]["status"] == {"const": int(status)}
        listed[status] = set(narrowing["properties"]["type"]["enum"])
    return listed


def test_document_is_valid_openapi_3_1() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_path(str(DOCUMENT_PATH))
    schema.validate()  # raises on a document that breaks the OpenAPI 3.1 meta-schema
    assert DOCUMENT["openapi"].startswith("3.1")
    assert DOCUMENT["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-KEY",
    }


@pytest.mark.parametrize("route", ["patch", "sync"])
def test_document_lists_each_routes_error_types_as_the_sandbox_does(route: Route) -> None:
    listed = error_types(route)
    assert set().union(*listed.values()) == ROUTE_ERROR_TYPES[route]
    for status, types in listed.items():
        assert {CATALOGUE[name].status for name in types} == {int(status)}
    assert "413" not in listed and "errors/content_too_large" in listed["400"]


def test_schemathesis_finds_nothing(server: ServerThread, tmp_path: Path) -> None:
    """Every check, every phase (stateful included: PATCH then sync, polls past a terminal status), seeded."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", str(DOCUMENT_PATH)),
        *("--url", server.url, "--header", f"X-API-KEY: {SENTINEL_KEY}"),
        *("--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"),
        *("--seed", "18", "--max-examples", "40", "--workers", "1", "--generation-database", "none"),
        *("--request-timeout", "10", "--no-color"),
    ]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=110)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-6000:]
    assert "No issues found" in output
    assert re.search(
        r"API Links: +2 covered / 2 selected / 2 total", output
    )  # the stateful phase walked both links
    assert server.sandbox.stats.syncs_started.total() > 0 and server.sandbox.stats.after_terminal.total() > 0


# -- every body `apply` would send is one the document accepts ---------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="$"), max_size=30)
#: Hosts the loader accepts (a host that is no host is refused before any body is made: tests/unit).
HOSTS = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z][a-z0-9_]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses().map(str),
)
PROXY = st.fixed_dictionaries(
    {"host": HOSTS, "port": st.integers(1, 65535)},
    optional={
        "protocol": st.sampled_from(["http", "https", "socks5"]),
        "username": st.one_of(TEXT, st.just("${PROXY_USER}")),
        "password": st.one_of(TEXT, st.just("${PROXY_PASSWORD}")),
    },
)
MANAGED = st.fixed_dictionaries(
    {},
    optional={"country": st.sampled_from(["US", "GB", "de", "Fr", "JP"]), "ip": st.ip_addresses().map(str)},
).filter(bool)
RESYNC = st.fixed_dictionaries(
    {"generation": st.integers(1, 5)},
    optional={
        "chunk_size": st.integers(1, 10_000),
        "partial": st.booleans(),
        "linkedin_product": st.sampled_from(["classic", "recruiter", "sales_navigator"]),
        "after": st.integers(0, 1_700_000_000_000),  # before every `before` below
        "before": st.sampled_from(["2026-02-01T00:00:00Z", "2026-03-01"]),
    },
)
ACCOUNT = st.one_of(
    st.fixed_dictionaries({"proxy": PROXY}),
    MANAGED,
    st.fixed_dictionaries({"provider": st.just("LINKEDIN"), "resync": RESYNC}),
)
ACCOUNT_IDS = st.from_regex(r"acc_[A-Za-z0-9_.:/%-]{1,20}", fullmatch=True)
CONFIGS = st.fixed_dictionaries(
    {"version": st.just(1), "accounts": st.dictionaries(ACCOUNT_IDS, ACCOUNT, min_size=1, max_size=6)},
    optional={
        "defaults": st.fixed_dictionaries(
            {}, optional={"proxy": st.fixed_dictionaries({}, optional={"port": st.integers(1, 65535)})}
        )
    },
)


def _query_values(query: dict[str, str]) -> dict[str, Any]:
    """The sync query as the document types it (every value is sent as text)."""
    typed: dict[str, Any] = {}
    for parameter in OPERATIONS["sync"]["parameters"]:
        name, kind = parameter["name"], parameter["schema"]["type"]
        if name in query:
            value = query[name]
            typed[name] = (
                int(value) if kind == "integer" else {"true": True, "false": False}.get(value, value)
            )
    return typed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=CONFIGS)
def test_every_body_apply_sends_is_valid(tmp_path: Path, config: dict[str, Any]) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, default_style='"'), encoding="utf-8")
    desired = load_config(str(path), {"PROXY_USER": "user", "PROXY_PASSWORD": "pw-SENTINEL"})
    bodies = validator("/components/schemas/AccountPatch")
    parameters = {p["name"]: p["schema"] for p in OPERATIONS["sync"]["parameters"]}
    for spec in desired.accounts.values():
        if spec.settings is not None:
            body = revealed(spec.settings)
            errors = [error.message for error in bodies.iter_errors(body)]
            assert not errors, (spec.account_id, body, errors)
        if spec.resync is not None:
            for name, value in _query_values(spec.resync.query()).items():
                assert Draft202012Validator(parameters[name]).is_valid(value), (name, value)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"proxy": {"host": "h", "port": "8080"}},
        {"proxy": {"host": "h", "port": 8080}, "country": "US"},
        {"proxy": None},
        {"proxy": {"host": "h", "port": 1, "protocol": "ftp"}},
        {"country": "USA"},
        {"ip": 1},
        {"country": "US", "extra": 1},
    ],
)
def test_the_body_schema_refuses_what_the_api_refuses(body: dict[str, Any]) -> None:
    assert not validator("/components/schemas/AccountPatch").is_valid(body)


def test_the_body_schema_accepts_a_whole_number_port() -> None:
    assert validator("/components/schemas/AccountPatch").is_valid({"proxy": {"host": "h", "port": 8080.0}})
