"""Injected faults: what `--fault SPEC` asks for, and the undocumented answers the sandbox can give."""

from __future__ import annotations

import base64
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.api.catalogue import CATALOGUE
from reconciler.sandbox.reference import API_ERROR_TYPES, ROUTE_ERROR_TYPES, ROUTES, Route
from reconciler.suggestions import suggestion

#: Faults that are not an error envelope: the network, or a broken API answering something undocumented.
BAD_ANSWERS = ("hang", "drop", "garbage", "html", "truncated", "huge", "wrong_account", "wrong_object")
SPEC_SYNTAX = (
    "TYPE[:RATE][@ID,ID...][;retry_after=N][;route=patch|sync][;times=N][;unlisted][;echo[=SHAPE,SHAPE...]]"
)
#: How an echoing fault quotes the request (`;echo=cut,hex`); `;echo` alone is `raw`.
ECHO_SHAPES = ("raw", "cut", "upper", "hex", "split")
#: A header value the sandbox may send: visible ASCII and spaces (seconds, or an HTTP date).
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


@dataclass(slots=True)
class Fault:
    """Answer `error_type` to a share `rate` of requests, or to every request of the named `accounts`.

    An API error type is answered only on the routes whose reference page lists it (a 403 only on the sync
    route, a 502 only on PATCH), unless `unlisted` is set. `times`, when set, is how many more matching
    requests get the fault; it counts down, then the fault lets requests through. Invalid values raise
    ValueError with a message meant for the user.
    """

    error_type: str
    rate: float = 1.0
    accounts: frozenset[str] = frozenset()
    retry_after: str | None = None
    route: Route | None = None
    times: int | None = None
    unlisted: bool = False
    #: The error's `detail` quotes the request's X-API-KEY and body, raw and base64, as a careless API might.
    echo: bool = False
    #: The shapes of that quote (ECHO_SHAPES; none is `raw`): see `echo_parts`.
    echo_shapes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.error_type not in API_ERROR_TYPES and self.error_type not in BAD_ANSWERS:
            raise ValueError(_unknown_type_message(self.error_type))
        if not (isinstance(self.rate, int | float) and math.isfinite(self.rate) and 0 <= self.rate <= 1):
            raise ValueError(f"the rate {self.rate!r} is not a number from 0 to 1")
        if self.route is not None and self.route not in ROUTES:
            raise ValueError(f"route={self.route!r}: the route is patch or sync")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times={self.times!r}: the count is a whole number of at least 1")
        if self.retry_after is not None and not _HEADER_VALUE.fullmatch(self.retry_after):
            raise ValueError(f"retry_after={self.retry_after!r}: seconds or an HTTP date, in plain ASCII")
        unknown_shapes = [shape for shape in self.echo_shapes if shape not in ECHO_SHAPES]
        if unknown_shapes:
            raise ValueError(f"echo={unknown_shapes[0]!r}: the shapes are {', '.join(ECHO_SHAPES)}")
        if "" in self.accounts:
            raise ValueError("an empty account id after '@': list ids separated by commas")
        if self.route is not None and not self.unlisted and not self.listed_on(self.route):
            raise ValueError(
                f"the reference page of the {self.route} route does not list {self.error_type}; "
                "add ;unlisted to answer it there anyway"
            )

    def listed_on(self, route: Route) -> bool:
        """Whether the route's reference page lists this fault's type (undocumented answers fit anywhere)."""
        return self.error_type not in API_ERROR_TYPES or self.error_type in ROUTE_ERROR_TYPES[route]

    def covers(self, route: Route) -> bool:
        """Whether a request of `route` may get this fault (its rate and accounts still decide)."""
        if self.times == 0 or (self.route is not None and self.route != route):
            return False
        return self.unlisted or self.listed_on(route)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Read `TYPE[:RATE][@ID,ID...][;retry_after=N][;route=patch|sync][;times=N][;unlisted][;echo[=SHAPES]]`.

        TYPE is an error type an API answers (`errors/...`), or one of BAD_ANSWERS: `hang` (no answer for a long
        time), `drop` (the connection closes mid-answer), `garbage` (a 502 whose body is an HTML page), `html` (a
        200 HTML page, as from a captive portal), `truncated` (a 200 whose JSON is cut short), `huge` (a 200 of
        4 MiB), `wrong_account` (a 200 naming another account), `wrong_object` (a 200 with another `object`).
        """
        head, *options = spec.split(";")
        accounts: frozenset[str] = frozenset()
        if "@" in head:
            head, names = head.split("@", 1)
            accounts = frozenset(names.split(","))
        error_type, separator, rate_text = head.rpartition(":")
        if not separator:
            error_type = head
        rate = _parse_rate(rate_text) if separator else 1.0
        retry_after: str | None = None
        route: str | None = None
        times: int | None = None
        unlisted = False
        echo = False
        echo_shapes: tuple[str, ...] = ()
        for option in options:
            key, equals, value = option.partition("=")
            if key == "retry_after" and equals:
                retry_after = value
            elif key == "route" and equals:
                route = value
            elif key == "times" and equals:
                times = _parse_times(value)
            elif key == "unlisted" and not equals:
                unlisted = True
            elif key == "echo":
                echo = True
                echo_shapes = tuple(value.split(",")) if equals else ()
            else:
                raise ValueError(f"unknown fault option {option!r} (the syntax is {SPEC_SYNTAX})")
        return cls(
            error_type=error_type,
            rate=rate,
            accounts=accounts,
            retry_after=retry_after,
            route=route,  # type: ignore[arg-type]  # checked in __post_init__
            times=times,
            unlisted=unlisted,
            echo=echo,
            echo_shapes=echo_shapes,
        )


def fault_for(faults: list[Fault], route: Route, account_id: str, draw: random.Random) -> Fault | None:
    """The first of `faults` that answers this request (by its accounts, or by a draw against its rate), its
    count of `times` taken; None when none does."""
    for fault in faults:
        if not fault.covers(route):
            continue
        if account_id in fault.accounts if fault.accounts else draw.random() < fault.rate:
            if fault.times is not None:
                fault.times -= 1
            return fault
    return None


def _parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"the rate {text!r} is not a number from 0 to 1") from None
    if not (math.isfinite(rate) and 0 <= rate <= 1):
        raise ValueError(f"the rate {text!r} is not a number from 0 to 1")
    return rate


def _parse_times(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) < 10 and int(text) >= 1):
        raise ValueError(f"times={text!r}: the count is a whole number of at least 1")
    return int(text)


def _unknown_type_message(error_type: str) -> str:
    if error_type in CATALOGUE:  # one of the client's own types: no API answers it
        return (
            f"{error_type!r} is the client's own name for what it saw, not an answer an API gives "
            "(a hang or a dropped connection produces it)"
        )
    named = f"unknown error type {error_type!r}" + suggestion(error_type, [*API_ERROR_TYPES, *BAD_ANSWERS])
    return f"{named}: an errors/... type of the reference, or one of {', '.join(BAD_ANSWERS)}"


def bad_answer_body(kind: str, route: Route, account_id: str) -> bytes:
    """A 200 body that is not the documented success for `route`; the request changes nothing."""
    success: dict[str, str] = (
        {"object": "AccountPatched", "account_id": account_id}
        if route == "patch"
        else {"object": "AccountResync", "status": "SYNC_DONE"}
    )
    if kind == "html":
        return b"<!doctype html><html><body>Sign in to continue</body></html>"
    if kind == "truncated":
        return json.dumps(success).encode()[:-7]
    if kind == "huge":
        return json.dumps({**success, "padding": "x" * (4 << 20)}).encode()
    if kind == "wrong_account" and route == "patch":  # a sync answer names no account
        return json.dumps({**success, "account_id": account_id + "_other"}).encode()
    return json.dumps({**success, "object": "Account"}).encode()  # wrong_object


def echo(headers: Mapping[str, str], body: bytes) -> str:
    """The request's key and body quoted back, raw and base64: what an API that echoes its input would leak."""
    key = headers.get("x-api-key", "")
    key_base64 = base64.b64encode(key.encode("latin-1", "replace")).decode()
    body_base64 = base64.b64encode(body).decode()
    return (
        f"Injected by the sandbox; X-API-KEY {key} ({key_base64}); "
        f"the request {body.decode('utf-8', 'replace')} ({body_base64})"
    )


def echo_parts(shapes: tuple[str, ...], headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """What an echoing fault quotes: (the `detail`, a tail for the `type`), in each of `shapes`.

    `raw`: the key and body, raw and base64 (`echo`); `cut`: the key's first 16 characters and each string of
    the request's `proxy` cut to its first 8, each followed by `...`, as APIs that shorten what they quote;
    `upper`: the key and body upper-cased; `hex`: the key and body in hex; `split`: the key split in two, its
    first 5 characters ending the `type` (after a space), the rest starting the `detail`.
    """
    key = headers.get("x-api-key", "")
    parts: list[str] = []
    tail = ""
    for shape in shapes or ("raw",):
        if shape == "raw":
            parts.append(echo(headers, body))
        elif shape == "cut":
            parts.append(
                f"bad key {key[:16]}...; bad values {' '.join(v[:8] + '...' for v in _proxy_strings(body))}"
            )
        elif shape == "upper":
            parts.append(f"KEY {key.upper()}; REQUEST {body.decode('utf-8', 'replace').upper()}")
        elif shape == "hex":
            parts.append(f"key {key.encode('latin-1', 'replace').hex()}; request {body.hex()}")
        elif shape == "split":
            tail = " " + key[:5]
            parts.insert(0, key[5:])
    return "; ".join(parts), tail


def _proxy_strings(body: bytes) -> list[str]:
    """The string values of the request's `proxy` (a password among them), or none when the body is not one."""
    try:
        proxy = json.loads(body).get("proxy")
    except (ValueError, AttributeError):
        return []
    return [value for value in proxy.values() if isinstance(value, str)] if isinstance(proxy, dict) else []
