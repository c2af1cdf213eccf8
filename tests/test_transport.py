"""TLS verification and client-side pacing, against the sandbox over real sockets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.sandbox import Sandbox, ServerThread
from tests.helpers import SENTINEL_KEY, fleet


@pytest.fixture
def tls_server(tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
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
