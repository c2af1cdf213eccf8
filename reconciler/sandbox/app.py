"""The sandbox application: an ASGI app answering both routes of the reference, with scripted syncs and faults.

Routing reads the raw request path, so a percent-encoded account id (`a%2Fb`) stays one path segment. Counters
(`Sandbox.stats`) let tests assert what reached the server: PATCHes per account, syncs started, requests sent
after a terminal sync status, the most requests ever in flight at once, and requests refused as throttled.

Throttling, as an API may do it: a token bucket (`rate_limit` tokens per second, up to `burst`, one per request)
whose refusal is `throttle_answer`, and a worker pool (`max_in_flight`) that answers 503 at once when full.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from reconciler.sandbox.accounts import MAIL_PROVIDERS, SandboxAccount
from reconciler.sandbox.faults import BAD_ANSWERS, Fault, bad_answer_body, echo_parts, fault_for
from reconciler.sandbox.reference import SYNC_PROVIDERS, TERMINAL_SYNC_STATUSES, Reply, Route, error_reply
from reconciler.sandbox.validation import (
    Receive,
    Refused,
    account_id_from,
    patch_request,
    read_body,
    sync_query,
)
from reconciler.secrets import masked

API_PREFIX = "/api/v1/accounts/"
INTROSPECTION_PREFIX = "/_sandbox/"
#: The largest request body read by default; a larger one answers 400 errors/content_too_large.
DEFAULT_MAX_BODY_BYTES = 1 << 20
DROP = object()  # a reply's payload meaning "close the connection mid-answer"
#: What a request refused by the token bucket is answered, by `Sandbox.throttle_answer`.
THROTTLE_ANSWERS: dict[str, Reply] = {
    "429": error_reply("errors/too_many_requests", "Too many requests."),
    "429-retry-after": error_reply("errors/too_many_requests", "Too many requests.", {"retry-after": "1"}),
    "503": error_reply("errors/service_unavailable", "Too many requests."),
}
#: The answer of a request arriving while `max_in_flight` requests are being served.
POOL_FULL = error_reply("errors/service_unavailable", "Every worker is busy.")
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class SyncState:
    """One account's current sync: the status last answered, the polls left before it ends, and how."""

    status: str
    polls_left: int
    result: str

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_SYNC_STATUSES

    def advance(self) -> str:
        """The status of the next poll: SYNC_RUNNING while polls are left, then the result."""
        if self.polls_left > 0:
            self.polls_left -= 1
            self.status = "SYNC_RUNNING"
        else:
            self.status = self.result
        return self.status


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    patches: Counter[str] = field(default_factory=Counter)
    patched: dict[str, Any] = field(default_factory=dict)  # last successful body per account
    sync_calls: Counter[str] = field(default_factory=Counter)
    syncs_started: Counter[str] = field(default_factory=Counter)
    after_terminal: Counter[str] = field(default_factory=Counter)
    sync_params: dict[str, dict[str, str]] = field(default_factory=dict)
    request_times: list[tuple[float, str, str]] = field(default_factory=list)  # (arrival, route, account)
    throttled: int = 0  # requests refused by the token bucket (rate_limit) or the worker pool (max_in_flight)
    log: list[dict[str, Any]] = field(default_factory=list)  # every request: method, path, status


class _Routes:
    """The two routes of the reference as the sandbox plays them, for a request past the key, the limits and the
    faults: PATCH an account's proxy; start a sync, or poll it through its scripted statuses. The accounts known
    are `accounts` (any account, with `accept_any_account`); `Sandbox` is the server around them."""

    stats: Stats  # the sandbox's counters (`Sandbox.reset_stats` replaces them)

    def __init__(
        self,
        accounts: dict[str, SandboxAccount] | None,
        accept_any_account: bool,
        sync_polls: int,
        unsupported_providers: frozenset[str],
    ) -> None:
        self.accounts = accounts or {}
        self.accept_any_account = accept_any_account
        self.sync_polls = sync_polls
        self.unsupported_providers = unsupported_providers
        self._syncs: dict[str, SyncState] = {}

    def sync_status(self, account_id: str) -> str | None:
        """The status last answered for the account's current sync, or None if none was started."""
        sync = self._syncs.get(account_id)
        return sync.status if sync else None

    def _account(self, account_id: str) -> SandboxAccount:
        account = self.accounts.get(account_id)
        if account is not None:
            return account
        if not self.accept_any_account:
            raise Refused(error_reply("errors/resource_not_found", "The requested resource was not found."))
        return self.accounts.setdefault(account_id, SandboxAccount())

    # -- PATCH -----------------------------------------------------------------------------------------------
    def _patch(self, account_id: str, request: dict[str, Any]) -> Reply:
        account = self._account(account_id)
        if account.provider in self.unsupported_providers:
            return error_reply(
                "errors/feature_not_implemented",
                "Proxy update is not supported for this account provider yet.",
            )
        proxy = request.get("proxy")
        if proxy is not None:
            if proxy["host"].endswith(".invalid"):
                return error_reply("errors/proxy_error", "The proxy in use is not working. Please try again.")
            if proxy.get("username") == "bad" or proxy.get("password") == "bad":
                return error_reply(
                    "errors/invalid_proxy_credentials", "The provided proxy credentials are invalid."
                )
        self.stats.patched[account_id] = request
        return Reply(200, {"object": "AccountPatched", "account_id": account_id})

    # -- sync ------------------------------------------------------------------------------------------------
    def _sync(self, account_id: str, params: dict[str, str]) -> Reply:
        account = self._account(account_id)
        if account.provider not in SYNC_PROVIDERS:
            return error_reply(
                "errors/feature_not_implemented", f"Sync is not supported for {account.provider}."
            )
        sync_query(params, account.provider)
        current = self._syncs.get(account_id)
        if current is not None and current.terminal:
            self.stats.after_terminal[account_id] += 1
            current = None  # a request after a terminal status starts a fresh sync, as the reference warns
        if current is None:
            polls = account.sync_polls if account.sync_polls is not None else self.sync_polls
            result = account.sync_result or ("CHUNK_DONE" if params.get("partial") == "true" else "SYNC_DONE")
            self._syncs[account_id] = SyncState(status="SYNC_STARTED", polls_left=polls, result=result)
            self.stats.syncs_started[account_id] += 1
            self.stats.sync_params[account_id] = params
            return Reply(200, {"object": "AccountResync", "status": "SYNC_STARTED"})
        return Reply(200, {"object": "AccountResync", "status": current.advance()})


class _Bucket:
    """A token bucket: it refills continuously at `rate` tokens per second up to its `size`, and starts full."""

    __slots__ = ("tokens", "refilled_at")

    def __init__(self) -> None:
        self.tokens: float | None = None  # when last looked at; None when full
        self.refilled_at = 0.0

    def take(self, rate: float, size: float, now: float) -> bool:
        """Whether the bucket holds a token for this request, taking it if so; a refusal takes nothing."""
        tokens = self.tokens
        tokens = size if tokens is None else min(size, tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True

    def fill(self) -> None:
        self.tokens = None


class Sandbox(_Routes):
    """The server's behaviour, independent of the HTTP machinery: the routes (`_Routes`) behind the key check,
    the simulated latency, the worker pool, the token bucket and the faults. Attributes may be changed between
    requests."""

    def __init__(
        self,
        api_key: str,
        *,
        accounts: dict[str, SandboxAccount] | None = None,
        accept_any_account: bool = False,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        faults: list[Fault] | None = None,
        rate_limit: float | None = None,
        burst: float | None = None,
        throttle_answer: str = "429-retry-after",
        max_in_flight: int | None = None,
        seed: int | None = None,
        sync_polls: int = 2,
        unsupported_providers: frozenset[str] = MAIL_PROVIDERS,
        hang_seconds: float = 3600.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(accounts, accept_any_account, sync_polls, unsupported_providers)
        self.api_key = api_key
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.faults = faults or []
        if throttle_answer not in THROTTLE_ANSWERS:
            raise ValueError(
                f"throttle_answer {throttle_answer!r} is not one of {', '.join(THROTTLE_ANSWERS)}"
            )
        #: Tokens per second of the bucket (None or 0: no rate limit); `burst` is its size, None meaning
        #: max(1, rate_limit): a second's worth, as the limit of R requests in any second it replaced admitted.
        #: A request the bucket refuses is answered `THROTTLE_ANSWERS[throttle_answer]`.
        self.rate_limit = rate_limit
        self.burst = burst
        self.throttle_answer = throttle_answer
        #: The worker pool: a request arriving while this many API requests are being served answers 503 at once.
        self.max_in_flight = max_in_flight
        #: The bucket's time source (tests replace it with a clock they move).
        self.clock: Callable[[], float] = time.monotonic
        self.random = random.Random(seed)
        self.hang_seconds = hang_seconds
        self.max_body_bytes = max_body_bytes
        self.stats = Stats()
        self._bucket = _Bucket()
        self._serving = 0  # API requests being handled, past the key check and the pool

    def reset_stats(self) -> None:
        self.stats = Stats()

    # -- the ASGI application --------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        if scope["type"] != "http":
            return
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            reply = await self.handle(scope, receive)
        finally:
            stats.in_flight -= 1
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if not path.startswith(INTROSPECTION_PREFIX):
            stats.log.append({"method": scope["method"], "path": path, "status": reply.status})
        await _write(send, reply)

    async def handle(self, scope: dict[str, Any], receive: Receive) -> Reply:
        """The reply to one request; `receive` is called only for a PATCH that passed the key check.

        Every answer comes after the simulated latency (a gateway answers after the network round trip) but the
        worker pool's: a full pool answers at once. The checks, in order: route, key, pool, bucket, faults.
        """
        arrived = time.monotonic()  # before the simulated latency: when the request reached the server
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        method = scope["method"]
        try:
            if path.startswith(INTROSPECTION_PREFIX):  # never limited
                await self._latency()
                self._check_key(scope)
                return self._introspect(method, path[len(INTROSPECTION_PREFIX) :])
            try:
                route, segment = _route(method, path)
                account_id = account_id_from(segment)
                self.stats.request_times.append((arrived, route, account_id))
                (self.stats.patches if route == "patch" else self.stats.sync_calls)[account_id] += 1
                self._check_key(scope)
            except Refused:
                await self._latency()
                raise
            if self.max_in_flight and self._serving >= self.max_in_flight:
                self.stats.throttled += 1
                return POOL_FULL
            self._serving += 1
            try:
                await self._latency()
                return await self._answer(scope, receive, route, account_id)
            finally:
                self._serving -= 1
        except Refused as refused:
            return refused.reply

    async def _latency(self) -> None:
        if self.latency_ms or self.jitter_ms:
            await asyncio.sleep((self.latency_ms + self.random.uniform(0, self.jitter_ms)) / 1000)

    async def _answer(self, scope: dict[str, Any], receive: Receive, route: Route, account_id: str) -> Reply:
        """The answer to an API request past the key check and the pool: the bucket, faults, then the route."""
        if self.rate_limit:
            size = self.burst if self.burst is not None else max(1.0, self.rate_limit)
            if not self._bucket.take(self.rate_limit, size, self.clock()):
                self.stats.throttled += 1
                return THROTTLE_ANSWERS[self.throttle_answer]
        else:
            self._bucket.fill()  # full again when re-enabled
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        fault = fault_for(self.faults, route, account_id, self.random)
        if fault is not None:
            if not fault.echo:
                return await self._injected(fault, route, account_id)
            body = await read_body(headers, receive, self.max_body_bytes)
            detail, type_tail = echo_parts(fault.echo_shapes, headers, body)
            reply = await self._injected(fault, route, account_id, detail)
            if type_tail and isinstance(reply.payload, dict) and "type" in reply.payload:
                reply.payload["type"] += type_tail
            return reply
        if route == "patch":
            body = await read_body(headers, receive, self.max_body_bytes)
            return self._patch(account_id, patch_request(headers, body))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        return self._sync(account_id, {name: values[-1] for name, values in query.items()})

    def _check_key(self, scope: dict[str, Any]) -> None:
        """The X-API-KEY header against the sandbox's key, compared as bytes (any byte may arrive)."""
        keys = [value for name, value in scope["headers"] if name.lower() == b"x-api-key"]
        if not keys or not keys[0]:
            raise Refused(
                error_reply(
                    "errors/missing_credentials", "Some credentials are necessary to perform the request."
                )
            )
        if not secrets.compare_digest(keys[0], self.api_key.encode()):
            raise Refused(error_reply("errors/invalid_credentials", "The provided credentials are invalid."))

    # -- introspection (the sandbox's key required: a local test server's own counters) ----------------------
    def _introspect(self, method: str, rest: str) -> Reply:
        if method == "GET" and rest == "requests":
            return Reply(200, {"requests": self.stats.log})
        if method == "POST" and rest == "reset":
            self.reset_stats()
            self._syncs.clear()
            return Reply(200, {"reset": True})
        if method == "GET" and rest.startswith("accounts/"):
            account_id = unquote(rest[len("accounts/") :])
            patched = self.stats.patched.get(account_id)
            return Reply(
                200,
                {
                    "account_id": account_id,
                    "known": account_id in self.accounts,
                    "current": masked(patched) if patched else None,
                    "patches": self.stats.patches[account_id],
                    "sync_status": self.sync_status(account_id),
                    "syncs_started": self.stats.syncs_started[account_id],
                    "requests_after_terminal": self.stats.after_terminal[account_id],
                },
            )
        return error_reply("errors/resource_not_found", "No such sandbox route.")

    # -- faults ---------------------------------------------------------------------------
    async def _injected(
        self, fault: Fault, route: Route, account_id: str, echoed: str | None = None
    ) -> Reply:
        """The answer a fault gives (`echoed`: the request quoted back in its detail); nothing changes."""
        if fault.error_type == "hang":  # a gateway that gives up
            await asyncio.sleep(self.hang_seconds)
            return error_reply("errors/request_timeout", "Injected by the sandbox: the request hung.")
        if fault.error_type == "drop":
            return Reply(200, DROP)
        if fault.error_type == "garbage":
            return Reply(502, b"<html>bad gateway</html>")
        if fault.error_type in BAD_ANSWERS:
            return Reply(200, bad_answer_body(fault.error_type, route, account_id))
        extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
        return error_reply(fault.error_type, echoed or "Injected by the sandbox.", extra)


def _route(method: str, path: str) -> tuple[Route, str]:
    """Which route a request is for, and its raw account id segment."""
    if path.startswith(API_PREFIX):
        segments = path[len(API_PREFIX) :].split("/")
        if len(segments) == 1 and method == "PATCH":
            return "patch", segments[0]
        if len(segments) == 2 and segments[1] == "sync" and method == "GET":
            return "sync", segments[0]
    raise Refused(error_reply("errors/resource_not_found", "No such route."))


async def _lifespan(receive: Receive, send: Send) -> None:
    """ASGI's lifespan protocol: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _write(send: Send, reply: Reply) -> None:
    if reply.payload is DROP:
        # Promise a body, then end the response early: the server closes the connection mid-answer.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b"{"})
        return
    raw = reply.payload if isinstance(reply.payload, bytes) else json.dumps(reply.payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def random_api_key() -> str:
    """A throwaway key for a sandbox nobody else should call."""
    return "sandbox_" + secrets.token_urlsafe(18)
