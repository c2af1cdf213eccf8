"""The postpress HTTP client: one request in, one `Answer` out, never an exception for an API failure.

Concurrency: findings.md measured one shared httpx.AsyncClient pool collapsing under concurrency (11x under the
ideal at 64 in flight), and httpx over the aiohttp transport near the latency bound. So requests go through
httpx's API on aiohttp's pool, and a queue of N slots bounds what is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport

from reconciler.api.catalogue import ErrorKind, classify


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange's outcome. `error` is None on success."""

    status: int | None
    body: Any
    error: ErrorKind | None
    message: str | None = None
    retry_after: float | None = None


def account_path(account_id: str) -> str:
    """The account id as one percent-encoded path segment (dots too, so `..` can never climb)."""
    return quote(account_id, safe="").replace(".", "%2E")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _error_answer(response: httpx.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = None
    error_type = body.get("type") if isinstance(body, dict) and isinstance(body.get("type"), str) else None
    kind = classify(error_type, response.status_code)
    detail = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
    message = f"HTTP {response.status_code}" + (f": {detail}" if isinstance(detail, str) else "")
    return Answer(response.status_code, body, kind, message[:300], parse_retry_after(response.headers.get("retry-after")))


#: What a request answers when the run stopped early while it waited for a slot: it was never sent.
NOT_SENT = Answer(None, None, None, "not sent: the run stopped early")


class ApiClient:
    """A bounded pool of HTTP clients for the postpress API.

    Setting `stopped` makes every request that would start an operation, still waiting for a slot, answer
    `NOT_SENT` instead of being sent. Polls of a sync already started are always sent: stopping them would
    lose track of a sync running upstream.
    """

    def __init__(self, base_url: str, api_key: str, concurrency: int = 8, timeout: float = 30.0,
                 ca_bundle: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        headers = {"X-API-KEY": api_key, "accept": "application/json", "content-type": "application/json"}
        self._clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._all = _make_clients(concurrency, headers, timeout, verify)
        for index in range(concurrency):
            self._clients.put_nowait(self._all[index % len(self._all)])
        self.in_flight = 0
        self.stopped = False

    async def close(self) -> None:
        for client in set(self._all):
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._clients.get()
        self.in_flight += 1
        try:
            yield client
        finally:
            self.in_flight -= 1
            self._clients.put_nowait(client)

    async def _send(self, method: str, url: str, starts: bool,
                    **kwargs: Any) -> tuple[httpx.Response | None, Answer | None]:
        async with self._slot() as client:
            if starts and self.stopped:
                return None, NOT_SENT
            try:
                return await client.request(method, url, **kwargs), None
            except httpx.TimeoutException as exc:
                # The aiohttp transport reports a refused connection as ConnectTimeout: trust the cause.
                if exc.__cause__ is None or isinstance(exc.__cause__, TimeoutError):
                    return None, Answer(None, None, classify("client_timeout", None), "no answer within --timeout")
                return None, Answer(None, None, classify("network_error", None), _network_message(exc.__cause__))
            except httpx.HTTPError as exc:
                return None, Answer(None, None, classify("network_error", None), _network_message(exc))

    async def _call(self, method: str, url: str, success_object: str,
                    is_success: Callable[[dict[str, Any]], bool], starts: bool = True, **kwargs: Any) -> Answer:
        """Send one request; a 2xx counts only when its JSON body is the documented `success_object`."""
        response, failure = await self._send(method, url, starts, **kwargs)
        if failure:
            return failure
        assert response is not None
        if not response.is_success:
            return _error_answer(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not (isinstance(payload, dict) and payload.get("object") == success_object and is_success(payload)):
            return Answer(response.status_code, payload, classify("unexpected_response", None),
                          f"HTTP {response.status_code} without the documented {success_object} answer")
        return Answer(response.status_code, payload, None)

    async def patch_account(self, account_id: str, body: dict[str, Any]) -> Answer:
        url = f"{self.base_url}/accounts/{account_path(account_id)}"
        return await self._call("PATCH", url, "AccountPatched",
                                lambda payload: payload.get("account_id") == account_id, json=body)

    async def sync_account(self, account_id: str, params: dict[str, str], poll: bool = False) -> Answer:
        """One call of the sync route (`poll` once the sync started); on success `body["status"]` is its status."""
        url = f"{self.base_url}/accounts/{account_path(account_id)}/sync"
        return await self._call("GET", url, "AccountResync",
                                lambda payload: isinstance(payload.get("status"), str), starts=not poll,
                                params=params)


def _make_clients(concurrency: int, headers: dict[str, str], timeout: float,
                  verify: ssl.SSLContext | bool) -> list[httpx.AsyncClient]:
    """One httpx client over aiohttp's connection pool.

    It keeps httpx's API; a single stock httpx pool collapses under concurrency while the aiohttp transport
    measured near the latency bound (shared/findings.md). The slot queue enforces the concurrency bound.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = AiohttpTransport(verify=verify, limits=limits)
    return [httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout), transport=transport,
                              follow_redirects=False)]


def _network_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate verification failed (use --ca-bundle for a private CA)"
    return f"{type(exc).__name__}: {text}"[:300]
