"""Reading a request as the reference describes it: the account id in the path, the PATCH body, the sync query.

Each check raises `Refused` carrying the error answer, so the application reads as the order of its checks.
Nothing here trusts the request's shape: every value is type-checked before it is compared or hashed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from reconciler.sandbox.reference import LINKEDIN_PRODUCTS, PROTOCOLS, Reply, error_reply

Receive = Callable[[], Awaitable[dict[str, Any]]]

#: One path segment as RFC 3986 allows it: unreserved, sub-delims, ':' and '@', and percent-escapes.
_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")
_DIGITS = re.compile(r"[0-9]+")
_PATCH_FIELDS = ("proxy", "country", "ip")
_PROXY_FIELDS = ("host", "port", "protocol", "username", "password")


class Refused(Exception):
    """A request the API would refuse; `reply` is its answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.payload)
        self.reply = reply


def _refuse(error_type: str, detail: str) -> Refused:
    return Refused(error_reply(error_type, detail))


def account_id_from(segment: str) -> str:
    """The account id a raw (still percent-encoded) path segment names."""
    if not _SEGMENT.fullmatch(segment):
        raise _refuse("errors/unescaped_characters", "The request path contains unescaped characters.")
    try:
        account_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(
            "errors/invalid_resource_identifier", "The account id is not UTF-8 text once unescaped."
        ) from None
    if not account_id:
        raise _refuse("errors/invalid_resource_identifier", "The account id is empty.")
    return account_id


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The request body, read into a buffer that never grows past `limit` bytes.

    A declared Content-Length above the limit is refused before a byte of the body is read.
    """
    too_large = _refuse("errors/content_too_large", f"The request body is larger than {limit} bytes.")
    declared = headers.get("content-length", "")
    if _DIGITS.fullmatch(declared) and int(declared[:30]) > limit:
        raise too_large
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large
        if not message.get("more_body"):
            return bytes(body)


def patch_request(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The PATCH body as a valid request: a JSON object with `proxy`, or `country` and/or `ip`."""
    if not body:
        raise _refuse("errors/missing_parameters", "The request body is missing: send a JSON object.")
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise _refuse("errors/malformed_request", "The request body must be application/json.")
    try:
        request = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _refuse("errors/malformed_request", "The request body is not JSON.") from None
    problem = _patch_problem(request)
    if problem:
        raise _refuse("errors/invalid_parameters", problem)
    checked: dict[str, Any] = request  # _patch_problem refuses anything but a JSON object
    return checked


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _names(fields: list[str]) -> str:
    shown = ", ".join(json.dumps(name[:40]) for name in sorted(fields)[:5])
    return shown + (f" and {len(fields) - 5} more" if len(fields) > 5 else "")


def _patch_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "The body must be a JSON object."
    unknown = [name for name in request if name not in _PATCH_FIELDS]
    if unknown:
        return f"Unknown fields: {_names(unknown)}."
    if "proxy" in request:
        if "country" in request or "ip" in request:
            return "Give either proxy, or country and/or ip, not both."
        return _proxy_problem(request["proxy"])
    if not request:
        return "Give a proxy, or a country and/or an ip."
    country = request.get("country", "US")
    if not (isinstance(country, str) and len(country) == 2):
        return "country must be a string of two characters."
    if not isinstance(request.get("ip", ""), str):
        return "ip must be a string."
    return None


def _proxy_problem(proxy: Any) -> str | None:
    if not isinstance(proxy, dict):
        return "proxy must be an object."
    unknown = [name for name in proxy if name not in _PROXY_FIELDS]
    if unknown:
        return f"Unknown fields in proxy: {_names(unknown)}."
    if "host" not in proxy or "port" not in proxy:
        return "proxy needs host and port."
    for name in ("host", "username", "password"):
        if name in proxy and not isinstance(proxy[name], str):
            return f"proxy.{name} must be a string."
    if whole_number(proxy["port"]) not in range(1, 65536):
        return "proxy.port must be a whole number from 1 to 65535."
    if "protocol" in proxy and not (isinstance(proxy["protocol"], str) and proxy["protocol"] in PROTOCOLS):
        return "proxy.protocol must be http, https or socks5."
    return None


def whole_number(value: Any) -> int | None:
    """`value` as an int when JSON Schema calls it an integer (`8080` or `8080.0`), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def sync_query(params: Mapping[str, str], provider: str) -> None:
    """Check the sync route's query parameters; those the reference does not describe are ignored."""
    problem = _sync_problem(params, provider)
    if problem:
        raise _refuse("errors/invalid_parameters", problem)


def _sync_problem(params: Mapping[str, str], provider: str) -> str | None:
    for name, least in (("chunk_size", 1), ("after", 0), ("before", 0)):  # any length: no int() limit
        value = params.get(name)
        if value is not None and not (_DIGITS.fullmatch(value) and (least == 0 or value.strip("0"))):
            return f"{name} must be a whole number of at least {least}, in ASCII digits."
    if "partial" in params and params["partial"] not in ("true", "false"):
        return "partial must be true or false."
    if "linkedin_product" in params and params["linkedin_product"] not in LINKEDIN_PRODUCTS:
        return "linkedin_product must be classic, recruiter or sales_navigator."
    if ("partial" in params or "linkedin_product" in params) and provider != "LINKEDIN":
        return "partial and linkedin_product are LinkedIn only."
    return None
