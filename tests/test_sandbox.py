"""The sandbox speaks the reference's API over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from reconciler.api.answer import account_path
from reconciler.api.catalogue import CATALOGUE
from reconciler.sandbox.server import Fault, SandboxAccount, ServerThread
from tests.conftest import SENTINEL_KEY

API_TYPES = sorted(name for name, row in CATALOGUE.items() if row.status is not None)


@pytest.fixture
def http(server: ServerThread):
    with httpx.Client(base_url=server.url, headers={"X-API-KEY": SENTINEL_KEY}) as client:
        yield client


def test_patch_success_body_exactly_as_reference(http, server) -> None:
    answer = http.patch("/accounts/acc_1", json={"proxy": {"host": "h", "port": 1, "protocol": "https"}})
    assert answer.status_code == 200
    assert answer.json() == {"object": "AccountPatched", "account_id": "acc_1"}
    assert server.sandbox.stats.patched["acc_1"]["proxy"]["host"] == "h"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, "errors/missing_credentials"), ({"X-API-KEY": "wrong"}, "errors/invalid_credentials")],
)
def test_api_key_checked(server, headers, expected) -> None:
    answer = httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers=headers)
    assert answer.status_code == 401
    body = answer.json()
    assert body["type"] == expected and body["status"] == 401 and body["title"] and body["detail"]


def test_unknown_account_and_encoded_ids(http, server) -> None:
    server.sandbox.accept_any_account = False
    server.sandbox.accounts["a/b?c#d%e"] = SandboxAccount("LINKEDIN")
    assert (
        http.patch("/accounts/nobody", json={"country": "US"}).json()["type"] == "errors/resource_not_found"
    )
    answer = http.patch(f"/accounts/{account_path('a/b?c#d%e')}", json={"country": "US"})
    assert answer.json() == {"object": "AccountPatched", "account_id": "a/b?c#d%e"}


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"proxy": {"host": "x.invalid", "port": 1}}, 502, "errors/proxy_error"),
        ({"proxy": {"host": "h", "port": 1, "password": "bad"}}, 401, "errors/invalid_proxy_credentials"),
        ({"proxy": {"host": "h"}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "protocol": "ftp"}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1}, "country": "US"}, 400, "errors/invalid_parameters"),
    ],
)
def test_patch_rules(http, body, status, error_type) -> None:
    answer = http.patch("/accounts/a", json=body)
    assert (answer.status_code, answer.json()["type"]) == (status, error_type)


def test_unsupported_providers(http, server) -> None:
    server.sandbox.accounts.update(m=SandboxAccount("MAIL"), w=SandboxAccount("WHATSAPP"))
    assert http.patch("/accounts/m", json={"country": "US"}).status_code == 501
    assert http.get("/accounts/w/sync").json()["type"] == "errors/feature_not_implemented"


def test_sync_state_machine_and_fresh_sync_after_terminal(http, server) -> None:
    server.sandbox.accounts["t"] = SandboxAccount("TELEGRAM", sync_polls=2)
    statuses = [http.get("/accounts/t/sync").json()["status"] for _ in range(5)]
    assert statuses == ["SYNC_STARTED", "SYNC_RUNNING", "SYNC_RUNNING", "SYNC_DONE", "SYNC_STARTED"]
    assert server.sandbox.stats.syncs_started["t"] == 2
    assert server.sandbox.stats.after_terminal["t"] == 1


def test_partial_sync_ends_in_chunk_done_and_scripted_error(http, server) -> None:
    server.sandbox.accounts["l"] = SandboxAccount("LINKEDIN", sync_polls=0)
    server.sandbox.accounts["e"] = SandboxAccount("LINKEDIN", sync_polls=0, sync_result="SYNC_ERROR")
    assert [http.get("/accounts/l/sync", params={"partial": "true"}).json()["status"] for _ in range(2)] == [
        "SYNC_STARTED",
        "CHUNK_DONE",
    ]
    assert [http.get("/accounts/e/sync").json()["status"] for _ in range(2)] == ["SYNC_STARTED", "SYNC_ERROR"]


@pytest.mark.parametrize("error_type", API_TYPES)
def test_every_reference_error_type_can_be_injected(http, server, error_type) -> None:
    server.sandbox.faults = [Fault.parse(f"{error_type}:1.0;retry_after=3")]
    answer = http.patch("/accounts/a", json={"country": "US"})
    body = answer.json()
    assert answer.status_code == CATALOGUE[error_type].status == body["status"]
    assert body["type"] == error_type
    assert answer.headers["retry-after"] == "3"


def test_fault_for_named_accounts_and_rate(http, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/proxy_error@x,y")]
    assert http.patch("/accounts/x", json={"country": "US"}).status_code == 502
    assert http.patch("/accounts/z", json={"country": "US"}).status_code == 200
    with pytest.raises(ValueError):
        Fault.parse("errors/not_a_type")


def test_rate_limit_answers_429_with_retry_after(http, server) -> None:
    server.sandbox.rate_limit = 2
    codes = [http.patch("/accounts/a", json={"country": "US"}).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]


def test_introspection_routes(http, server) -> None:
    http.patch("/accounts/acc%2F1", json={"proxy": {"host": "h", "port": 1, "password": "pw"}})
    for _ in range(4):
        http.get("/accounts/acc%2F1/sync")
    account = httpx.get(server.url.replace("/api/v1", "/_sandbox/accounts/acc%2F1")).json()
    assert account["current"] == {"proxy": {"host": "h", "port": 1, "password": "(sensitive)"}}
    assert (account["patches"], account["syncs_started"], account["requests_after_terminal"]) == (1, 2, 1)
    log = httpx.get(server.url.replace("/api/v1", "/_sandbox/requests")).json()["requests"]
    assert [(r["method"], r["status"]) for r in log] == [("PATCH", 200)] + [("GET", 200)] * 4
    assert httpx.post(server.url.replace("/api/v1", "/_sandbox/reset")).json() == {"reset": True}
    assert httpx.get(server.url.replace("/api/v1", "/_sandbox/requests")).json()["requests"] == []


def test_dropped_connection_is_a_network_error(server) -> None:
    server.sandbox.faults = [Fault.parse("drop")]
    with pytest.raises(httpx.HTTPError):
        httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers={"X-API-KEY": SENTINEL_KEY})


def test_sandbox_command_serves(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "accounts.yaml").write_text(
        "accounts:\n  known: {provider: MAIL}\n  t: {provider: TELEGRAM}\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "--port",
            "0",
            "--api-key",
            "k",
            "--accounts",
            str(tmp_path / "accounts.yaml"),
            "--unsupported-providers",
            "SLACK",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        headers = {"X-API-KEY": "k"}
        assert (
            httpx.patch(f"{url}/accounts/known", json={"country": "US"}, headers=headers).status_code == 200
        )
        assert (
            httpx.patch(f"{url}/accounts/other", json={"country": "US"}, headers=headers).status_code == 404
        )
    finally:
        process.terminate()
        process.wait()
        process.stderr.close()


def _fault_pattern(seed: int) -> list[int]:
    from reconciler.sandbox.server import Sandbox

    sandbox = Sandbox(
        SENTINEL_KEY, accept_any_account=True, faults=[Fault.parse("errors/unexpected_error:0.3")], seed=seed
    )
    thread = ServerThread(sandbox).start()
    try:
        with httpx.Client(base_url=thread.url, headers={"X-API-KEY": SENTINEL_KEY}) as client:
            return [client.patch(f"/accounts/a{i}", json={"country": "US"}).status_code for i in range(60)]
    finally:
        thread.stop()


def test_seed_makes_faults_reproducible() -> None:
    first, again, other = _fault_pattern(7), _fault_pattern(7), _fault_pattern(8)
    assert first == again
    assert first != other
    assert 5 <= first.count(500) <= 35  # about 30% of 60


def test_latency_and_jitter_bound_each_answer(http, server) -> None:
    import time

    server.sandbox.latency_ms, server.sandbox.jitter_ms = 20, 30
    durations = []
    for i in range(15):
        started = time.perf_counter()
        assert http.patch(f"/accounts/j{i}", json={"country": "US"}).status_code == 200
        durations.append(time.perf_counter() - started)
    assert min(durations) >= 0.020
    assert max(durations) < 0.25  # latency + jitter (50 ms), with room for a loaded machine
    assert max(durations) - min(durations) > 0.005  # jitter varies them


def test_fault_times_answers_only_the_first_requests(http, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/service_unavailable@t;times=2;retry_after=0")]
    statuses = [http.patch("/accounts/t", json={"country": "US"}).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert http.patch("/accounts/other", json={"country": "US"}).status_code == 200
