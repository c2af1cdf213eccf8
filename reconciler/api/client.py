"""The postpress HTTP client: one request in, one `Answer` out, never an exception for an API failure.

Why aiohttp and not httpx here: measured on this machine, one shared httpx.AsyncClient pool collapsed under
concurrency (11x under the ideal at 64 in flight), and httpx's API over the aiohttp transport near the bound but
CPU-bound at ~1,900 requests/s in this engine: httpx's request and response model (headers, URL parsing) cost as
much again as aiohttp's own work (BENCHMARKS.md). This module is the only place that speaks HTTP, so it
uses aiohttp's session directly; its connector holds at most N connections.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from reconciler import logs, secrets
from reconciler.api.answer import Answer, Reply, account_path, error_answer
from reconciler.api.catalogue import classify
from reconciler.api.endpoint import tls_context

log = logs.get("http")

#: The largest answer body read; a bigger one is an unexpected answer, never buffered whole.
MAX_BODY_BYTES = 1 << 20


class ApiClient:
    """A bounded connection pool for the postpress API.

    At most `concurrency` connections, so at most that many requests in flight (the engine admits no more than
    that, so none waits inside aiohttp for a connection; `--timeout` counts from the send). What to send and
    when to stop is the engine's: the client only sends.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        concurrency: int = 8,
        timeout: float = 30.0,
        ca_bundle: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        secrets.register(api_key)  # an answer that echoes the key is redacted (api/answer.py)
        self._headers = {"X-API-KEY": api_key, "Accept": "application/json"}
        self._ssl: ssl.SSLContext | bool = tls_context(ca_bundle) if ca_bundle else True
        self._concurrency = concurrency
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency, ssl=self._ssl, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                auto_decompress=True,
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, url: str, body: bytes | None) -> Reply | Answer:
        sent = time.monotonic()
        try:
            outcome: Reply | Answer = await self._exchange(method, url, body)
        except TimeoutError:
            outcome = Answer(None, None, classify("client_timeout", None), "no answer within --timeout")
        except aiohttp.ClientError as exc:
            outcome = Answer(None, None, classify("network_error", None), _network_message(exc))
        if log.isEnabledFor(logging.DEBUG):  # the route and the outcome; never headers or bodies
            status = outcome.status if isinstance(outcome, Reply) else outcome.message
            log.debug(
                "%s %s -> %s in %.0f ms",
                method,
                url.removeprefix(self.base_url),
                status,
                (time.monotonic() - sent) * 1000,
            )
        return outcome

    async def _exchange(self, method: str, url: str, body: bytes | None) -> Reply:
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self._open().request(
            method, URL(url, encoded=True), data=body, headers=headers, allow_redirects=False
        ) as response:
            raw = b""  # read at most one byte past the limit
            while len(raw) <= MAX_BODY_BYTES and (
                chunk := await response.content.read(MAX_BODY_BYTES + 1 - len(raw))
            ):
                raw += chunk
            retry_after = response.headers.get("Retry-After")
            if len(raw) > MAX_BODY_BYTES:
                return Reply(response.status, None, retry_after, oversized=True)
            try:
                decoded = json.loads(raw) if raw else None
            except ValueError:  # also UnicodeDecodeError
                decoded = None
            return Reply(response.status, decoded, retry_after)

    async def _call(
        self,
        method: str,
        url: str,
        success_object: str,
        is_success: Callable[[dict[str, Any]], bool],
        body: bytes | None = None,
    ) -> Answer:
        """Send one request; a 2xx counts only when its JSON body is the documented `success_object`."""
        reply = await self._send(method, url, body)
        if isinstance(reply, Answer):
            return reply
        if reply.oversized:
            return Answer(
                reply.status,
                None,
                classify("unexpected_response", None),
                f"HTTP {reply.status} with an answer larger than {MAX_BODY_BYTES} bytes",
            )
        if not 200 <= reply.status < 300:
            return error_answer(reply)
        payload = reply.body
        if not (
            isinstance(payload, dict) and payload.get("object") == success_object and is_success(payload)
        ):
            return Answer(
                reply.status,
                payload,
                classify("unexpected_response", None),
                f"HTTP {reply.status} without the documented {success_object} answer",
            )
        return Answer(reply.status, payload, None)

    async def patch_account(self, account_id: str, body: dict[str, Any]) -> Answer:
        url = f"{self.base_url}/accounts/{account_path(account_id)}"
        return await self._call(
            "PATCH",
            url,
            "AccountPatched",
            lambda payload: payload.get("account_id") == account_id,
            body=json.dumps(body, separators=(",", ":")).encode(),
        )

    async def sync_account(self, account_id: str, params: dict[str, str]) -> Answer:
        """One call of the sync route; on success `body["status"]` is the sync's status."""
        url = f"{self.base_url}/accounts/{account_path(account_id)}/sync"
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        return await self._call(
            "GET",
            url,
            "AccountResync",
            lambda payload: isinstance(payload.get("status"), str),
        )


#: OpenSSL's verification codes for a certificate whose issuer is not trusted here.
_UNKNOWN_CA_CODES = frozenset((2, 18, 19, 20, 21))
_EXPIRED_CODE = 10
_NOT_YET_VALID_CODE = 9
_HOSTNAME_MISMATCH_CODE = 62


def _tls_message(exc: aiohttp.ClientConnectorCertificateError) -> str:
    """Name the cause; only an unknown issuer suggests --ca-bundle (it cannot fix the others)."""
    cause = exc.certificate_error
    code = getattr(cause, "verify_code", None)
    where = f"{exc.host}:{exc.port}"
    if code in _UNKNOWN_CA_CODES:
        return (
            f"TLS: {where}'s certificate is signed by an unknown authority (use --ca-bundle for a private CA)"
        )
    if code == _EXPIRED_CODE:
        return f"TLS: {where}'s certificate has expired"
    if code == _NOT_YET_VALID_CODE:
        return f"TLS: {where}'s certificate is not valid yet (check this machine's clock)"
    if code == _HOSTNAME_MISMATCH_CODE:
        return f"TLS: {where}'s certificate does not name the host {exc.host}"
    detail = getattr(cause, "verify_message", None) or str(cause)
    return f"TLS certificate verification failed for {where}: {detail}"[:300]


def _network_message(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _tls_message(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):  # its own text says "ssl:default" even for http://
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"[:300]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
