"""What the API reference promises, as the sandbox needs it: each route's error types and the error envelope.

The OpenAPI document (`schemas/openapi.yaml`) says the same; a test holds the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from reconciler.api.catalogue import CATALOGUE

Route = Literal["patch", "sync"]
ROUTES: tuple[Route, ...] = ("patch", "sync")

#: Every type an API answers with (the catalogue also holds the client's own types, which have no status).
API_ERROR_TYPES = frozenset(name for name, kind in CATALOGUE.items() if kind.status is not None)
_FORBIDDEN = frozenset(name for name in API_ERROR_TYPES if CATALOGUE[name].status == 403)

#: The types each route's reference page lists, plus `errors/too_many_requests`, which exists on every route.
#: The PATCH page lists no 403 and no `invalid_url`; the sync page has no `invalid_request` and no 502.
ROUTE_ERROR_TYPES: Mapping[Route, frozenset[str]] = {
    "patch": API_ERROR_TYPES - _FORBIDDEN - {"errors/invalid_url"},
    "sync": API_ERROR_TYPES - {"errors/invalid_request", "errors/proxy_error"},
}

PROTOCOLS = ("http", "https", "socks5")
LINKEDIN_PRODUCTS = ("classic", "recruiter", "sales_navigator")
SYNC_PROVIDERS = frozenset(("LINKEDIN", "TELEGRAM"))
TERMINAL_SYNC_STATUSES = frozenset(("SYNC_DONE", "CHUNK_DONE", "SYNC_ERROR"))


class Reply(NamedTuple):
    """An answer before it is written: status, a JSON-able payload (or raw bytes), extra headers."""

    status: int
    payload: Any
    headers: Mapping[str, str] = {}


def error_reply(error_type: str, detail: str, headers: Mapping[str, str] | None = None) -> Reply:
    """The reference's error envelope for an API error type: `status`, `type`, `title`, `detail`."""
    status = CATALOGUE[error_type].status or 500
    title = error_type.removeprefix("errors/").replace("_", " ").capitalize()
    return Reply(
        status, {"status": status, "type": error_type, "title": title, "detail": detail}, headers or {}
    )
