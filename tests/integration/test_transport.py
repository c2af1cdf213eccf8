"""TLS verification and client-side pacing, against the sandbox over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from reconciler.api.transport import CurlSession, RawAnswer
from reconciler.sandbox import Fault, Sandbox, ServerThread
from tests.helpers import SENTINEL_KEY, fleet, run_engine, self_signed_certificate


@pytest.fixture
def tls_server(tmp_path: Path):
    cert, key = self_signed_certificate(tmp_path)
    server = ServerThread(Sandbox(SENTINEL_KEY, accept_any_account=True), tls=(str(cert), str(key))).start()
    yield server, cert
    server.stop()


def test_self_signed_refused_by_default_accepted_with_ca_bundle(run, write, tls_server, monkeypatch) -> None:
    server, cert = tls_server
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("POSTPRESS_API_URL", server.url)
    write("a.yaml", fleet(2))
    refused = run("apply", "a.yaml", "--yes", "--max-attempts", "1", "--format", "json")
    assert refused.code == 3
    messages = {r["message"] for r in refused.json["results"]}
    assert all("signed by an unknown authority (use --ca-bundle" in m for m in messages), messages
    assert server.sandbox.stats.requests == 0
    accepted = run("apply", "a.yaml", "--yes", "--ca-bundle", str(cert))
    assert accepted.code == 0, accepted.err
    assert len(server.sandbox.stats.patched) == 2


def test_rate_limit_paces_requests(run, write, api) -> None:
    write("a.yaml", fleet(12))
    assert run("apply", "a.yaml", "--yes", "--rate-limit", "20", "--concurrency", "8").code == 0
    times = sorted(moment for moment, route, _ in api.stats.request_times if route == "patch")
    assert len(times) == 12
    assert times[-1] - times[0] >= 11 / 20 - 0.02  # 12 requests at 20/s span at least 0.55 s


class _ClosingApi(BaseHTTPRequestHandler):
    """Answers every PATCH as the API does, over HTTP/1.0: the connection closes after each answer, so the
    client opens a socket per request and the kernel hands out the same descriptor numbers again and again."""

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        account_id = unquote(self.path.rsplit("/", 1)[1])
        body = json.dumps({"object": "AccountPatched", "account_id": account_id}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_connections_closed_after_every_answer(workdir, write) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ClosingApi)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/api/v1"
        outcome, backend = run_engine(
            workdir, SimpleNamespace(url=url), write("a.yaml", fleet(300)), concurrency=8, timeout=5
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [r.outcome for r in outcome.results] == ["succeeded"] * 300
    assert all(r.attempts == 1 for r in outcome.results)
    assert sum(record.settings is not None for record in backend.read().accounts.values()) == 300


def test_connection_refused_names_host_and_port(workdir, write) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    outcome, _ = run_engine(
        workdir,
        SimpleNamespace(url=f"http://127.0.0.1:{port}/api/v1"),
        write("a.yaml", fleet(1)),
        max_attempts=1,
        max_consecutive_failures=0,  # the breaker off: the failure is the account's, not the run's
    )
    (result,) = outcome.results
    assert (result.outcome, result.error_type) == ("failed", "network_error")
    assert result.message == f"cannot connect to 127.0.0.1:{port}: Connection refused"


def test_a_hung_request_times_out_while_others_finish(workdir, write, server) -> None:
    """libcurl moves its next deadline after every transfer; the wake-up for a hung request's --timeout must
    still come, however many transfers finish (and move that deadline) meanwhile."""
    server.sandbox.faults = [Fault.parse("hang@acc_0399")]
    server.sandbox.hang_seconds = 6
    server.sandbox.latency_ms = 5
    started = time.monotonic()
    outcome, _ = run_engine(
        workdir, server, write("a.yaml", fleet(400)), max_attempts=1, timeout=0.5, concurrency=4
    )
    elapsed = time.monotonic() - started
    by_account = {r.account_id: r for r in outcome.results}
    assert (by_account["acc_0399"].error_type, by_account["acc_0399"].attempts) == ("client_timeout", 1)
    assert all(r.outcome == "succeeded" for r in outcome.results if r.account_id != "acc_0399")
    assert elapsed < 5  # the hang lasts 6 s: only the timeout ends it sooner


def test_proxy_variables_of_the_environment_are_not_used(workdir, write, server, monkeypatch) -> None:
    """As before the transport changed: requests go straight to --api-url, whatever *_proxy says."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    outcome, _ = run_engine(workdir, server, write("a.yaml", fleet(3)), max_attempts=1)
    assert [r.outcome for r in outcome.results] == ["succeeded"] * 3


def _canned_server(answer: bytes) -> tuple[socket.socket, threading.Thread]:
    """A server that reads one request and writes `answer` as it is, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # Only the final answer's Retry-After counts, whatever the case of its name or its line ends.
        (
            b"HTTP/1.1 100 Continue\r\nRetry-After: 999\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n"
            b"retry-after:  2 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "2",
        ),
        (
            b"HTTP/1.1 429 Too Many Requests\nRetry-After: Wed, 21 Oct 2099 07:28:00 GMT\nContent-Length: 0\n\n",
            "Wed, 21 Oct 2099 07:28:00 GMT",
        ),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", None),
        # A success's Retry-After is not read at all.
        (b"HTTP/1.1 200 OK\r\nRetry-After: 5\r\nContent-Length: 2\r\n\r\n{}", None),
    ],
)
def test_retry_after_is_read_from_the_final_answer(answer: bytes, expected: str | None) -> None:
    listener, thread = _canned_server(answer)

    async def exchange() -> RawAnswer:
        session = CurlSession({"X-API-KEY": "k"}, max_connections=1, timeout=5, https=False)
        try:
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1/accounts/a"
            return await session.request("PATCH", url, b"{}")
        finally:
            session.close()

    try:
        received = asyncio.run(exchange())
    finally:
        thread.join(5)
        listener.close()
    assert received.retry_after == expected
