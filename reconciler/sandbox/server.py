"""A local postpress API: the two routes of the reference, its error envelope, scripted sync and faults.

Routing reads the raw request path, so a percent-encoded account id (`a%2Fb`) stays one path segment. Counters
(`Sandbox.stats`) let tests assert what reached the server: PATCHes per account, syncs started, requests sent
after a terminal sync status, and the most requests ever in flight at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from reconciler.api.catalogue import CATALOGUE
from reconciler.secrets import masked

API_PREFIX = "/api/v1/accounts/"
INTROSPECTION_PREFIX = "/_sandbox/"
DROP = object()  # a handler's payload meaning "close the connection mid-answer"
MAIL_PROVIDERS = frozenset(("MAIL", "GOOGLE_OAUTH", "ICLOUD", "OUTLOOK", "EXCHANGE"))
SYNC_PROVIDERS = frozenset(("LINKEDIN", "TELEGRAM"))
PROTOCOLS = frozenset(("http", "https", "socks5"))
#: Faults that are not an error envelope: the network or a broken API answering something undocumented.
BAD_ANSWERS = ("hang", "drop", "garbage", "html", "truncated", "huge", "wrong_account", "wrong_object")


@dataclass(slots=True)
class SandboxAccount:
    provider: str = "LINKEDIN"
    sync_polls: int | None = None  # SYNC_RUNNING answers before the terminal one
    sync_result: str | None = None  # SYNC_ERROR to script a failing sync


@dataclass(slots=True)
class Fault:
    """Answer `error_type` to a share `rate` of requests, or to every request of the named accounts."""

    error_type: str
    rate: float = 1.0
    accounts: frozenset[str] = frozenset()
    retry_after: str | None = None
    route: str | None = None  # "patch", "sync" or None for both
    times: int | None = None  # answer only this many matching requests, then let them through
    echo: bool = False  # the error's detail quotes the request, as a careless API might

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """`TYPE[:RATE][@ID,ID...][;retry_after=N][;route=patch|sync][;times=N][;echo]`.

        TYPE is a catalogued error type or one of BAD_ANSWERS: `hang` (no answer for a long time), `drop` (the
        connection closes mid-answer), `garbage` (a 502 whose body is an HTML page), `html` (a 200 HTML page, as
        from a captive portal), `truncated` (a 200 whose JSON is cut short), `huge` (a 200 of 4 MiB),
        `wrong_account` (a 200 naming another account), `wrong_object` (a 200 with another `object`).
        `echo` puts the request's X-API-KEY header and body, raw and base64, in the error's `detail`.
        """
        head, *options = spec.split(";")
        accounts: frozenset[str] = frozenset()
        if "@" in head:
            head, names = head.split("@", 1)
            accounts = frozenset(names.split(","))
        error_type, _, rate = _split_rate(head)
        fault = cls(error_type, float(rate) if rate else 1.0, accounts)
        for option in options:
            key, _, value = option.partition("=")
            if key == "retry_after":
                fault.retry_after = value
            elif key == "route":
                fault.route = value
            elif key == "times" and value.isdigit():
                fault.times = int(value)
            elif key == "echo" and not value:
                fault.echo = True
            else:
                raise ValueError(f"unknown fault option {key!r}")
        if fault.error_type not in CATALOGUE and fault.error_type not in BAD_ANSWERS:
            raise ValueError(f"unknown error type {fault.error_type!r}")
        return fault


def _bad_answer(kind: str, route: str, account_id: str) -> bytes:
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


def _echo(headers: dict[str, str], body: bytes) -> str:
    """The request's key and body quoted back, raw and base64: what an API that echoes its input would leak."""
    key = headers.get("x-api-key", "")
    key_base64 = base64.b64encode(key.encode("latin-1")).decode()
    body_base64 = base64.b64encode(body).decode()
    return (
        f"Injected by the sandbox; X-API-KEY {key} ({key_base64}); "
        f"the request {body.decode('utf-8', 'replace')} ({body_base64})"
    )


def _split_rate(head: str) -> tuple[str, str, str]:
    name, sep, rate = head.rpartition(":")
    if sep and rate.replace(".", "", 1).isdigit():
        return name, sep, rate
    return head, "", ""


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
    request_times: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, route, account)
    log: list[dict[str, Any]] = field(default_factory=list)  # every request: method, path, account, status


class Sandbox:
    """The server's behaviour, independent of the HTTP machinery."""

    def __init__(
        self,
        api_key: str,
        accounts: dict[str, SandboxAccount] | None = None,
        accept_any_account: bool = False,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        faults: list[Fault] | None = None,
        rate_limit: float | None = None,
        seed: int | None = None,
        sync_polls: int = 2,
        unsupported_providers: frozenset[str] = MAIL_PROVIDERS,
        hang_seconds: float = 3600.0,
    ) -> None:
        self.api_key = api_key
        self.accounts = accounts or {}
        self.accept_any_account = accept_any_account
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.faults = faults or []
        self.rate_limit = rate_limit
        self.random = random.Random(seed)
        self.sync_polls = sync_polls
        self.unsupported_providers = unsupported_providers
        self.hang_seconds = hang_seconds
        self.stats = Stats()
        self._syncs: dict[
            str, list[Any]
        ] = {}  # id -> [status, polls_left, result]; terminal when status final
        self._window: list[float] = []

    def reset_stats(self) -> None:
        self.stats = Stats()

    # -- the ASGI application --------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            status, payload, headers = await self.handle(scope, body)
        finally:
            stats.in_flight -= 1
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if not path.startswith(INTROSPECTION_PREFIX):
            stats.log.append({"method": scope["method"], "path": path, "status": status})
        if payload is DROP:
            # Promise a body, then end the response early: the server closes the connection mid-answer.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
            )
            await send({"type": "http.response.body", "body": b"{"})
            return
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header_list = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        header_list += [(name.encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": header_list})
        await send({"type": "http.response.body", "body": raw})

    async def handle(self, scope: dict[str, Any], body: bytes) -> tuple[int, Any, dict[str, str]]:
        if self.latency_ms or self.jitter_ms:
            await asyncio.sleep((self.latency_ms + self.random.uniform(0, self.jitter_ms)) / 1000)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        method = scope["method"]
        headers = {name.decode().lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if path.startswith(INTROSPECTION_PREFIX):
            return self._introspect(method, path[len(INTROSPECTION_PREFIX) :])
        if not path.startswith(API_PREFIX):
            return error("errors/resource_not_found", "No such route.")
        segments = path[len(API_PREFIX) :].split("/")
        if len(segments) == 1 and method == "PATCH":
            route = "patch"
        elif len(segments) == 2 and segments[1] == "sync" and method == "GET":
            route = "sync"
        else:
            return error("errors/resource_not_found", "No such route.")
        account_id = unquote(segments[0])
        self.stats.request_times.append((time.monotonic(), route, account_id))
        (self.stats.patches if route == "patch" else self.stats.sync_calls)[account_id] += 1
        key = headers.get("x-api-key")
        if not key:
            return error(
                "errors/missing_credentials", "Some credentials are necessary to perform the request."
            )
        if not secrets.compare_digest(key, self.api_key):
            return error("errors/invalid_credentials", "The provided credentials are invalid.")
        if self.rate_limit and self._over_rate():
            return error("errors/too_many_requests", "Too many requests.", {"retry-after": "1"})
        fault = self._fault(route, account_id)
        if fault is not None:
            if fault.error_type == "hang":  # a gateway that gives up: nothing is applied
                await asyncio.sleep(self.hang_seconds)
                return error("errors/request_timeout", "Injected by the sandbox: the request hung.")
            if fault.error_type == "drop":
                return 200, DROP, {}
            elif fault.error_type == "garbage":
                return 502, b"<html>bad gateway</html>", {}
            elif fault.error_type in BAD_ANSWERS:
                return 200, _bad_answer(fault.error_type, route, account_id), {}
            else:
                extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
                detail = _echo(headers, body) if fault.echo else "Injected by the sandbox."
                return error(fault.error_type, detail, extra)
        account = self.accounts.get(account_id)
        if account is None:
            if not self.accept_any_account:
                return error("errors/resource_not_found", "The requested resource was not found.")
            account = self.accounts.setdefault(account_id, SandboxAccount())
        if route == "patch":
            return self._patch(account_id, account, body)
        query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
        return self._sync(account_id, account, {name: values[-1] for name, values in query.items()})

    # -- introspection (no API key: a local test server's own counters) --------------------------------------
    def _introspect(self, method: str, rest: str) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and rest == "requests":
            return 200, {"requests": self.stats.log}, {}
        if method == "POST" and rest == "reset":
            self.reset_stats()
            self._syncs.clear()
            return 200, {"reset": True}, {}
        if method == "GET" and rest.startswith("accounts/"):
            account_id = unquote(rest[len("accounts/") :])
            patched = self.stats.patched.get(account_id)
            sync = self._syncs.get(account_id)
            return (
                200,
                {
                    "account_id": account_id,
                    "known": account_id in self.accounts,
                    "current": masked(patched) if patched else None,
                    "patches": self.stats.patches[account_id],
                    "sync_status": sync[0] if sync else None,
                    "syncs_started": self.stats.syncs_started[account_id],
                    "requests_after_terminal": self.stats.after_terminal[account_id],
                },
                {},
            )
        return error("errors/resource_not_found", "No such sandbox route.")

    def _over_rate(self) -> bool:
        now = time.monotonic()
        self._window = [moment for moment in self._window if now - moment < 1.0]
        self._window.append(now)
        return len(self._window) > (self.rate_limit or 0)

    def _fault(self, route: str, account_id: str) -> Fault | None:
        for fault in self.faults:
            if (fault.route and fault.route != route) or fault.times == 0:
                continue
            if account_id in fault.accounts if fault.accounts else self.random.random() < fault.rate:
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    # -- PATCH -----------------------------------------------------------------------------------------------
    def _patch(
        self, account_id: str, account: SandboxAccount, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return error("errors/malformed_request", "The request body is not JSON.")
        problem = validate_patch(request)
        if problem:
            return error("errors/invalid_parameters", problem)
        if account.provider in self.unsupported_providers:
            return error(
                "errors/feature_not_implemented",
                "Proxy update is not supported for this account provider yet.",
            )
        proxy = request.get("proxy")
        if proxy:
            if str(proxy["host"]).endswith(".invalid"):
                return error("errors/proxy_error", "The proxy in use is not working. Please try again.")
            if proxy.get("username") == "bad" or proxy.get("password") == "bad":
                return error(
                    "errors/invalid_proxy_credentials", "The provided proxy credentials are invalid."
                )
        self.stats.patched[account_id] = request
        return 200, {"object": "AccountPatched", "account_id": account_id}, {}

    # -- sync ------------------------------------------------------------------------------------------------
    def _sync(
        self, account_id: str, account: SandboxAccount, params: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if account.provider not in SYNC_PROVIDERS:
            return error("errors/feature_not_implemented", f"Sync is not supported for {account.provider}.")
        problem = validate_sync_params(params, account.provider)
        if problem:
            return error("errors/invalid_parameters", problem)
        current = self._syncs.get(account_id)
        if current is not None and current[0] in ("SYNC_DONE", "CHUNK_DONE", "SYNC_ERROR"):
            self.stats.after_terminal[account_id] += 1
            current = None  # a request after a terminal status starts a fresh sync, as the reference warns
        if current is None:
            polls = account.sync_polls if account.sync_polls is not None else self.sync_polls
            result = account.sync_result or ("CHUNK_DONE" if params.get("partial") == "true" else "SYNC_DONE")
            self._syncs[account_id] = ["SYNC_STARTED", polls, result]
            self.stats.syncs_started[account_id] += 1
            self.stats.sync_params[account_id] = params
            return 200, {"object": "AccountResync", "status": "SYNC_STARTED"}, {}
        if current[1] > 0:
            current[1] -= 1
            current[0] = "SYNC_RUNNING"
        else:
            current[0] = current[2]
        return 200, {"object": "AccountResync", "status": current[0]}, {}


def error(
    error_type: str, detail: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """The reference's error envelope for a catalogued type."""
    kind = CATALOGUE[error_type]
    status = kind.status or 500
    title = error_type.removeprefix("errors/").replace("_", " ").capitalize()
    return status, {"status": status, "type": error_type, "title": title, "detail": detail}, headers or {}


def validate_patch(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "The body must be a JSON object."
    unknown = set(request) - {"proxy", "country", "ip"}
    if unknown:
        return f"Unknown fields: {', '.join(sorted(unknown))}."
    proxy = request.get("proxy")
    if proxy is not None:
        if "country" in request or "ip" in request:
            return "Give either proxy, or country/ip."
        if not isinstance(proxy, dict) or "host" not in proxy or "port" not in proxy:
            return "proxy needs host and port."
        if not isinstance(proxy["port"], int) or isinstance(proxy["port"], bool):
            return "proxy.port must be a number."
        if "protocol" in proxy and proxy["protocol"] not in PROTOCOLS:
            return "proxy.protocol must be http, https or socks5."
        return None
    if "country" in request and not (isinstance(request["country"], str) and len(request["country"]) == 2):
        return "country must be two letters."
    if "country" not in request and "ip" not in request:
        return "Give a proxy, or a country and/or an ip."
    return None


def validate_sync_params(params: dict[str, str], provider: str) -> str | None:
    for name in ("chunk_size", "after", "before"):
        if name in params and not params[name].isdigit():
            return f"{name} must be an integer."
    if "partial" in params and params["partial"] not in ("true", "false"):
        return "partial must be true or false."
    if ("partial" in params or "linkedin_product" in params) and provider != "LINKEDIN":
        return "partial and linkedin_product are LinkedIn only."
    if params.get("linkedin_product", "classic") not in ("classic", "recruiter", "sales_navigator"):
        return "linkedin_product must be classic, recruiter or sales_navigator."
    return None


def load_accounts_file(path: str) -> dict[str, SandboxAccount]:
    """`--accounts FILE`: YAML or JSON `{accounts: {ID: {provider, sync_polls, sync_result}}}`."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    entries = document.get("accounts", document)
    return {str(key): SandboxAccount(**(value or {})) for key, value in entries.items()}


class ServerThread:
    """Runs a Sandbox under uvicorn in a background thread on a loopback port (0 = ephemeral)."""

    def __init__(
        self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        """`tls` is (certificate file, key file) to serve HTTPS."""
        import uvicorn

        self.sandbox = sandbox
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, the response's headers and body go out as two
        # segments and the second waits ~40 ms for the client's delayed ACK (Nagle), capping throughput.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.bind((host, port))
        self.port = self.socket.getsockname()[1]
        self.host = host
        certfile, keyfile = tls or (None, None)
        config = uvicorn.Config(
            sandbox,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=30,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self.scheme = "https" if tls else "http"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True, name="reconciler-sandbox")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/api/v1"

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=_fastest_loop()) as runner:
            runner.run(self.server.serve(sockets=[self.socket]))

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def _fastest_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (the sandbox extra brings it on Linux and macOS), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error log for the `drop` fault: ending a response early is what the fault is for."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, RuntimeError) and "shorter than Content-Length" in str(error))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def random_api_key() -> str:
    return "sandbox_" + secrets.token_urlsafe(18)
