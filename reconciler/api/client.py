"""The postpress HTTP client: one request in, one `Answer` out, never an exception for an API failure.

This module is the only place that knows the API's routes and what a success looks like; the bytes travel on
libcurl (transport.py). History, measured (BENCHMARKS.md): one shared httpx pool collapsed under concurrency;
httpx's API over aiohttp spent half its CPU in httpx's request model; aiohttp alone spent about three times
libcurl's CPU per request and took longer to import than the whole start-up budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from reconciler import logs
from reconciler.api.answer import Answer, account_path, error_answer, failure
from reconciler.api.catalogue import classify
from reconciler.api.transport import (
    MAX_BODY_BYTES,
    CertificateRejected,
    ConnectFailed,
    CurlSession,
    RawAnswer,
    TimedOut,
    TransportError,
)
from reconciler.secrets.redaction import Redactor

log = logs.get("http")


class ApiClient:
    """A bounded connection pool for the postpress API.

    At most `concurrency` connections, so at most that many requests in flight (the engine admits no more than
    that, so none waits for a connection; `--timeout` counts from the send). What to send and when to stop is
    the engine's: the client only sends.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        concurrency: int = 8,
        timeout: float = 30.0,
        ca_bundle: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: The run's: every message built from an answer is redacted by it (api/answer.py `failure`).
        self.redactor = Redactor() if redactor is None else redactor
        self.redactor.register(api_key)  # an answer that echoes the key is redacted
        self._headers = {"X-API-KEY": api_key, "Accept": "application/json"}
        self._ca_bundle = ca_bundle
        self._concurrency = concurrency
        self._timeout = timeout
        self._session: CurlSession | None = None
        parts = urlsplit(self.base_url)
        self._https = parts.scheme != "http"
        self._host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # for messages: the host and port, never a user or a key
        self._where = f"[{self._host}]:{port}" if ":" in self._host else f"{self._host}:{port}"

    def _open(self) -> CurlSession:
        # Created on first use, inside the running loop (the session is driven by that loop).
        if self._session is None:
            self._session = CurlSession(
                self._headers, self._concurrency, self._timeout, self._ca_bundle, https=self._https
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()

    async def _send(self, method: str, url: str, body: bytes | None) -> RawAnswer | Answer:
        """The API's answer as read off the wire, or the `Answer` that there was none."""
        sent = time.monotonic()
        try:
            outcome: RawAnswer | Answer = await self._open().request(method, url, body)
        except TimedOut:
            outcome = failure(
                None, None, classify("client_timeout", None), "no answer within --timeout", self.redactor
            )
        except TransportError as exc:
            outcome = failure(
                None, None, classify("network_error", None), self._network_message(exc), self.redactor
            )
        if log.isEnabledFor(logging.DEBUG):  # the route and the outcome; never headers or bodies
            status = outcome.status if isinstance(outcome, RawAnswer) else outcome.message
            log.debug(
                "%s %s -> %s in %.0f ms",
                method,
                url.removeprefix(self.base_url),
                status,
                (time.monotonic() - sent) * 1000,
            )
        return outcome

    def _network_message(self, exc: TransportError) -> str:
        if isinstance(exc, CertificateRejected):
            return _tls_message(self._where, self._host, exc.verify_code, str(exc))
        if isinstance(exc, ConnectFailed):
            return f"cannot connect to {self._where}: {exc.reason}"[:300]
        return f"no answer from {self._where}: {exc}"[:300]

    async def _call(
        self,
        method: str,
        url: str,
        success_object: str,
        is_success: Callable[[dict[str, Any]], bool],
        body: bytes | None = None,
    ) -> Answer:
        """Send one request; a 2xx counts only when its JSON body is the documented `success_object`."""
        raw = await self._send(method, url, body)
        if isinstance(raw, Answer):
            return raw
        status = raw.status
        if raw.oversized:
            return failure(
                status,
                None,
                classify("unexpected_response", None),
                f"HTTP {status} with an answer larger than {MAX_BODY_BYTES} bytes",
                self.redactor,
            )
        try:
            payload = orjson.loads(raw.body) if raw.body else None
        except ValueError:  # orjson.JSONDecodeError, also for text that is not UTF-8
            payload = None
        if not 200 <= status < 300:
            return error_answer(status, payload, raw.retry_after, self.redactor)
        if not (
            isinstance(payload, dict) and payload.get("object") == success_object and is_success(payload)
        ):
            return failure(
                status,
                payload,
                classify("unexpected_response", None),
                f"HTTP {status} without the documented {success_object} answer",
                self.redactor,
            )
        return Answer(status, payload, None)

    async def patch_account(self, account_id: str, body: dict[str, Any]) -> Answer:
        url = f"{self.base_url}/accounts/{account_path(account_id)}"
        return await self._call(
            "PATCH",
            url,
            "AccountPatched",
            lambda payload: payload.get("account_id") == account_id,
            body=orjson.dumps(body),
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


def _tls_message(where: str, host: str, code: int, detail: str) -> str:
    """Name the cause; only an unknown issuer suggests --ca-bundle (it cannot fix the others). libcurl checks
    the host name itself, after OpenSSL accepted the chain: then the code is 0 (OK)."""
    if code in _UNKNOWN_CA_CODES:
        return (
            f"TLS: {where}'s certificate is signed by an unknown authority (use --ca-bundle for a private CA)"
        )
    if code == _EXPIRED_CODE:
        return f"TLS: {where}'s certificate has expired"
    if code == _NOT_YET_VALID_CODE:
        return f"TLS: {where}'s certificate is not valid yet (check this machine's clock)"
    if code in (_HOSTNAME_MISMATCH_CODE, 0):
        return f"TLS: {where}'s certificate does not name the host {host}"
    return f"TLS certificate verification failed for {where}: {detail}"[:300]
