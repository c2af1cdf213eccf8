"""The sandbox speaks the reference's API over real HTTP, refuses what the API refuses, and says what is wrong."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from typing import Any

import click
import httpx
import pytest

from reconciler.api.answer import account_path
from reconciler.api.catalogue import CATALOGUE
from reconciler.sandbox import Fault, Sandbox, SandboxAccount, SandboxStartError, ServerThread
from reconciler.sandbox.reference import ROUTE_ERROR_TYPES
from tests.helpers import SENTINEL_KEY

API_TYPES = sorted(name for name, row in CATALOGUE.items() if row.status is not None)
KEY_HEADER = {"X-API-KEY": SENTINEL_KEY}


@pytest.fixture
def http(server: ServerThread):
    with httpx.Client(base_url=server.url, headers=KEY_HEADER) as client:
        yield client


def raw_exchange(server: ServerThread, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send bytes exactly as given (no client normalises the path); return the status and the JSON body."""
    with socket.create_connection((server.host, server.port), timeout=10) as connection:
        connection.sendall(head + b"\r\nHost: sandbox\r\nConnection: close\r\n\r\n" + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def error_of(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["type"]


def test_patch_success_body_exactly_as_reference(http, server) -> None:
    answer = http.patch("/accounts/acc_1", json={"proxy": {"host": "h", "port": 1, "protocol": "https"}})
    assert answer.status_code == 200
    assert answer.json() == {"object": "AccountPatched", "account_id": "acc_1"}
    assert server.sandbox.stats.patched["acc_1"]["proxy"]["host"] == "h"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "errors/missing_credentials"),
        ({"X-API-KEY": "wrong"}, "errors/invalid_credentials"),
        ({"X-API-KEY": "ключ-é".encode()}, "errors/invalid_credentials"),  # not ASCII: was a 500
    ],
)
def test_api_key_checked(server, headers, expected) -> None:
    answer = httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers=headers)
    assert answer.status_code == 401
    body = answer.json()
    assert body["type"] == expected and body["status"] == 401 and body["title"] and body["detail"]


def test_unknown_account_and_encoded_ids(http, server) -> None:
    server.sandbox.accept_any_account = False
    server.sandbox.accounts["a/b?c#d%e"] = SandboxAccount("LINKEDIN")
    assert error_of(http.patch("/accounts/nobody", json={"country": "US"})) == (
        404,
        "errors/resource_not_found",
    )
    answer = http.patch(f"/accounts/{account_path('a/b?c#d%e')}", json={"country": "US"})
    assert answer.json() == {"object": "AccountPatched", "account_id": "a/b?c#d%e"}


def test_empty_account_id_is_refused_on_both_routes(server) -> None:
    assert raw_exchange(server, b"PATCH /api/v1/accounts/ HTTP/1.1\r\nX-API-KEY: " + SENTINEL_KEY.encode())[
        1
    ]["type"] == ("errors/invalid_resource_identifier")
    status, body = raw_exchange(
        server, b"GET /api/v1/accounts//sync HTTP/1.1\r\nX-API-KEY: " + SENTINEL_KEY.encode()
    )
    assert (status, body["type"]) == (404, "errors/invalid_resource_identifier")
    assert "" not in server.sandbox.accounts and server.sandbox.stats.syncs_started.total() == 0


@pytest.mark.parametrize(
    ("segment", "status", "error_type"),
    [
        (b"a%zz", 400, "errors/unescaped_characters"),
        (b"a%4", 400, "errors/unescaped_characters"),
        (b"a\\b", 400, "errors/unescaped_characters"),
        (b"a%FF", 404, "errors/invalid_resource_identifier"),  # well escaped, but not UTF-8 text
    ],
)
def test_bad_escapes_in_the_path(server, segment, status, error_type) -> None:
    head = b"GET /api/v1/accounts/" + segment + b"/sync HTTP/1.1\r\nX-API-KEY: " + SENTINEL_KEY.encode()
    answer_status, body = raw_exchange(server, head)
    assert (answer_status, body["type"]) == (status, error_type)
    assert server.sandbox.stats.syncs_started.total() == 0


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"proxy": {"host": "x.invalid", "port": 1}}, 502, "errors/proxy_error"),
        ({"proxy": {"host": "h", "port": 1, "password": "bad"}}, 401, "errors/invalid_proxy_credentials"),
        ({"proxy": {"host": "h"}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "protocol": "ftp"}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1}, "country": "US"}, 400, "errors/invalid_parameters"),
        # Values of the wrong type: a 500 or a 200 before.
        ({"proxy": {"host": "h", "port": 1, "protocol": {}}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "protocol": []}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": 1, "port": 1}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "username": ["u"]}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "password": None}}, 400, "errors/invalid_parameters"),
        ({"proxy": None}, 400, "errors/invalid_parameters"),
        ({"ip": 203}, 400, "errors/invalid_parameters"),
        ({"country": None}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 8080.5}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 0}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": True}}, 400, "errors/invalid_parameters"),
        ({"proxy": {"host": "h", "port": 1, "via": "x"}}, 400, "errors/invalid_parameters"),
        ({}, 400, "errors/invalid_parameters"),
    ],
)
def test_patch_rules(http, body, status, error_type) -> None:
    assert error_of(http.patch("/accounts/a", json=body)) == (status, error_type)


def test_port_written_as_a_whole_float_is_accepted(http) -> None:
    answer = http.patch("/accounts/a", json={"proxy": {"host": "h", "port": 8080.0}})
    assert answer.status_code == 200, answer.text
    problem = http.patch("/accounts/a", json={"proxy": {"host": "h", "port": 8080.5}}).json()["detail"]
    assert problem == "proxy.port must be a whole number from 1 to 65535."


@pytest.mark.parametrize(
    ("content", "headers", "status", "error_type"),
    [
        (b"[" * 100_000, {"content-type": "application/json"}, 400, "errors/malformed_request"),  # was a 500
        (b'{"country": "US"}', {"content-type": "text/plain"}, 400, "errors/malformed_request"),
        (b'{"country": "US"}', {}, 400, "errors/malformed_request"),
        (
            b'{"proxy": {"host": "h", "port": NaN}}',
            {"content-type": "application/json"},
            400,
            "errors/malformed_request",
        ),
        (b"", {"content-type": "application/json"}, 400, "errors/missing_parameters"),
    ],
)
def test_body_that_is_not_a_json_object(http, content, headers, status, error_type) -> None:
    assert error_of(http.patch("/accounts/a", content=content, headers=headers)) == (status, error_type)


def test_json_media_type_with_parameters_is_json(http) -> None:
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    assert http.patch("/accounts/a", content=b'{"country": "US"}', headers=headers).status_code == 200


# -- request bodies have a bound ---------------------------------------------------------------------------


def test_body_above_the_limit_answers_content_too_large(http, server) -> None:
    server.sandbox.max_body_bytes = 1000
    exactly = b'{"country": "US"}'.ljust(1000)  # JSON allows the trailing spaces
    json_type = {"content-type": "application/json"}
    assert http.patch("/accounts/a", content=exactly, headers=json_type).status_code == 200
    answer = http.patch("/accounts/a", content=exactly + b" ", headers=json_type)
    assert error_of(answer) == (400, "errors/content_too_large")

    def chunks():  # no Content-Length: the limit is found while reading
        yield from [b" " * 4096] * 256

    answer = http.patch("/accounts/a", content=chunks(), headers=json_type)
    assert error_of(answer) == (400, "errors/content_too_large")
    assert http.patch("/accounts/a", json={"country": "GB"}).status_code == 200  # the connection still serves


def _asgi_call(sandbox: Sandbox, headers: list[tuple[bytes, bytes]], receive) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "PATCH",
        "path": "/api/v1/accounts/a",
        "raw_path": b"/api/v1/accounts/a",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
    }
    asyncio.run(sandbox(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_body_is_read_into_a_bounded_buffer() -> None:
    sandbox = Sandbox(SENTINEL_KEY, accept_any_account=True, max_body_bytes=100_000)
    reads = 0

    async def endless_body() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b" " * 10_000, "more_body": True}

    status, body = _asgi_call(sandbox, [(b"x-api-key", SENTINEL_KEY.encode())], endless_body)
    assert (status, body["type"]) == (400, "errors/content_too_large")
    assert reads == 11  # stopped at the first chunk past the limit


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"x-api-key", b"wrong")], (401, "errors/invalid_credentials")),
        (
            [(b"x-api-key", SENTINEL_KEY.encode()), (b"content-length", b"104857600")],
            (400, "errors/content_too_large"),
        ),
    ],
)
def test_key_and_declared_length_are_checked_before_the_body_is_read(headers, expected) -> None:
    sandbox = Sandbox(SENTINEL_KEY, accept_any_account=True)

    async def must_not_read() -> dict[str, Any]:
        raise AssertionError("the body was read")

    status, body = _asgi_call(sandbox, headers, must_not_read)
    assert (status, body["type"]) == expected


# -- the sync route ----------------------------------------------------------------------------------------


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
    assert server.sandbox.sync_status("t") == "SYNC_STARTED" and server.sandbox.sync_status("none") is None


def test_partial_sync_ends_in_chunk_done_and_scripted_error(http, server) -> None:
    server.sandbox.accounts["l"] = SandboxAccount("LINKEDIN", sync_polls=0)
    server.sandbox.accounts["e"] = SandboxAccount("LINKEDIN", sync_polls=0, sync_result="SYNC_ERROR")
    assert [http.get("/accounts/l/sync", params={"partial": "true"}).json()["status"] for _ in range(2)] == [
        "SYNC_STARTED",
        "CHUNK_DONE",
    ]
    assert [http.get("/accounts/e/sync").json()["status"] for _ in range(2)] == ["SYNC_STARTED", "SYNC_ERROR"]


@pytest.mark.parametrize(
    "params",
    [
        {"chunk_size": "²"},  # Unicode digits: accepted before
        {"chunk_size": "５"},
        {"after": "²"},
        {"before": "１２"},
        {"chunk_size": "0"},
        {"after": "-1"},
        {"before": "1.5"},
        {"partial": "yes"},
        {"linkedin_product": "basic"},
    ],
)
def test_sync_query_refused(http, server, params) -> None:
    assert error_of(http.get("/accounts/a/sync", params=params)) == (400, "errors/invalid_parameters")
    assert server.sandbox.stats.syncs_started.total() == 0


def test_sync_query_accepted_and_recorded(http, server) -> None:
    params = {"chunk_size": "50", "after": "0", "before": "9" * 40, "linkedin_product": "recruiter", "x": "y"}
    assert http.get("/accounts/a/sync", params=params).json()["status"] == "SYNC_STARTED"
    assert server.sandbox.stats.sync_params["a"] == params


# -- faults ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_type", API_TYPES)
def test_every_reference_error_type_can_be_injected_where_its_page_lists_it(http, server, error_type) -> None:
    server.sandbox.faults = [Fault.parse(f"{error_type}:1.0;retry_after=3")]
    on_patch = error_type in ROUTE_ERROR_TYPES["patch"]
    answer = http.patch("/accounts/a", json={"country": "US"}) if on_patch else http.get("/accounts/a/sync")
    body = answer.json()
    assert answer.status_code == CATALOGUE[error_type].status == body["status"]
    assert body["type"] == error_type
    assert answer.headers["retry-after"] == "3"


def test_a_fault_answers_only_on_the_routes_whose_page_lists_it(http, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/account_restricted"), Fault.parse("errors/proxy_error")]
    assert error_of(http.get("/accounts/a/sync")) == (403, "errors/account_restricted")
    assert error_of(http.patch("/accounts/a", json={"country": "US"})) == (502, "errors/proxy_error")
    with pytest.raises(ValueError, match="does not list errors/proxy_error; add ;unlisted"):
        Fault.parse("errors/proxy_error;route=sync")
    server.sandbox.faults = [Fault.parse("errors/proxy_error;route=sync;unlisted")]
    assert error_of(http.get("/accounts/a/sync")) == (502, "errors/proxy_error")
    server.sandbox.faults = [Fault.parse("errors/account_restricted;unlisted")]
    assert error_of(http.patch("/accounts/a", json={"country": "US"})) == (403, "errors/account_restricted")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("client_timeout", "the client's own name for what it saw"),
        ("network_error:0.5", "the client's own name for what it saw"),
        ("errors/not_a_type", "unknown error type 'errors/not_a_type': "),
        (
            "errors/service_unavailabel",
            "unknown error type 'errors/service_unavailabel' (did you mean 'errors/service_unavailable'?): ",
        ),
        ("hnag:0.5", "unknown error type 'hnag' (did you mean 'hang'?): "),
        ("x:abc", "the rate 'abc' is not a number from 0 to 1"),
        ("errors/proxy_error:abc", "the rate 'abc' is not a number from 0 to 1"),
        ("errors/proxy_error:2.0", "the rate '2.0' is not a number from 0 to 1"),
        ("errors/proxy_error:-0.1", "the rate '-0.1' is not a number from 0 to 1"),
        ("errors/proxy_error:nan", "the rate 'nan' is not a number from 0 to 1"),
        ("errors/proxy_error;times=x", "times='x': the count is a whole number of at least 1"),
        ("errors/proxy_error;times=0", "times='0': the count is a whole number of at least 1"),
        ("errors/proxy_error;route=put", "route='put': the route is patch or sync"),
        ("errors/proxy_error;retry_after=\x1b[2J", "retry_after="),
        ("errors/proxy_error@", "an empty account id after '@'"),
        ("errors/proxy_error;retry=1", "unknown fault option 'retry=1'"),
        ("errors/proxy_error;echo=cut,base32", "echo='base32': the shapes are raw, cut, upper, hex, split"),
    ],
)
def test_fault_spec_errors_name_the_cause(spec, message) -> None:
    with pytest.raises(ValueError) as raised:
        Fault.parse(spec)
    assert message in str(raised.value)


def test_echo_shapes_parse() -> None:
    assert Fault.parse("errors/proxy_error;echo").echo_shapes == ()
    fault = Fault.parse("errors/proxy_error;echo=cut,hex")
    assert fault.echo and fault.echo_shapes == ("cut", "hex")


def test_sandbox_command_prints_the_fault_problem(run) -> None:
    result = run("sandbox", "--fault", "x:abc")
    assert result.code == 1
    assert result.err.strip() == "Error: --fault: the rate 'abc' is not a number from 0 to 1"
    result = run("sandbox", "--fault", "errors/proxy_error;times=x")
    assert result.code == 1 and "--fault: times='x'" in result.err and "Traceback" not in result.err


def test_fault_for_named_accounts_and_rate(http, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/proxy_error@x,y")]
    assert http.patch("/accounts/x", json={"country": "US"}).status_code == 502
    assert http.patch("/accounts/z", json={"country": "US"}).status_code == 200


def test_rate_limit_answers_429_with_retry_after(http, server) -> None:
    server.sandbox.rate_limit = 2
    codes = [http.patch("/accounts/a", json={"country": "US"}).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]


# -- throttling: the token bucket and the worker pool -----------------------------------------------------


class FakeClock:
    """The bucket's time source, moved by the test: refills without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(server: ServerThread) -> FakeClock:
    fake = FakeClock()
    server.sandbox.clock = fake
    return fake


def statuses(http: httpx.Client, count: int, account: str = "a") -> list[int]:
    return [http.patch(f"/accounts/{account}", json={"country": "US"}).status_code for _ in range(count)]


def test_bucket_lets_the_burst_through_at_once_then_refills_at_the_rate(http, server, clock) -> None:
    server.sandbox.rate_limit, server.sandbox.burst = 4, 3
    assert statuses(http, 5) == [200, 200, 200, 429, 429]
    clock.advance(0.125)  # half a token
    assert statuses(http, 1) == [429]
    clock.advance(0.125)  # the other half: one request
    assert statuses(http, 2) == [200, 429]
    assert http.get("/accounts/a/sync").status_code == 429  # both routes take from the one bucket
    clock.advance(0.5)  # two tokens
    assert [http.get("/accounts/a/sync").status_code, *statuses(http, 2)] == [200, 200, 429]
    clock.advance(60)  # refilled to the burst, no further
    assert statuses(http, 4) == [200, 200, 200, 429]
    assert server.sandbox.stats.throttled == 7


def test_default_burst_is_a_second_of_the_rate_and_at_least_one(http, server, clock) -> None:
    server.sandbox.rate_limit = 5
    assert statuses(http, 6) == [200] * 5 + [429]
    server.sandbox.rate_limit = None  # off: the bucket is full again when it comes back
    assert statuses(http, 7) == [200] * 7
    server.sandbox.rate_limit = 0.5
    assert statuses(http, 2) == [200, 429]
    clock.advance(1.0)
    assert statuses(http, 1) == [429]
    clock.advance(1.0)
    assert statuses(http, 1) == [200]


def test_a_refused_request_takes_no_token(http, server, clock) -> None:
    server.sandbox.rate_limit, server.sandbox.burst = 4, 1
    assert statuses(http, 10) == [200] + [429] * 9
    clock.advance(0.25)  # one token: the nine refusals did not run the bucket into debt
    assert statuses(http, 2) == [200, 429]


@pytest.mark.parametrize(
    ("answer", "status", "error_type", "retry_after"),
    [
        ("429", 429, "errors/too_many_requests", None),
        ("429-retry-after", 429, "errors/too_many_requests", "1"),
        ("503", 503, "errors/service_unavailable", None),
    ],
)
def test_throttle_answer(http, server, clock, answer, status, error_type, retry_after) -> None:
    server.sandbox.rate_limit, server.sandbox.throttle_answer = 1, answer
    assert http.patch("/accounts/a", json={"country": "US"}).status_code == 200
    for refused in (http.patch("/accounts/a", json={"country": "US"}), http.get("/accounts/a/sync")):
        body = refused.json()
        assert (refused.status_code, body["type"], body["status"]) == (status, error_type, status)
        assert body["title"] and body["detail"]
        assert refused.headers.get("retry-after") == retry_after


def test_the_default_throttle_answer_and_a_bad_one() -> None:
    from reconciler.cli.sandbox import sandbox as command
    from reconciler.sandbox.app import THROTTLE_ANSWERS

    assert Sandbox(SENTINEL_KEY).throttle_answer == "429-retry-after"
    (option,) = [param for param in command.params if param.name == "throttle_answer"]
    assert isinstance(option.type, click.Choice) and list(option.type.choices) == list(THROTTLE_ANSWERS)
    with pytest.raises(ValueError, match="'502' is not one of 429, 429-retry-after, 503"):
        Sandbox(SENTINEL_KEY, throttle_answer="502")


def test_a_throttled_request_changes_nothing(http, server, clock) -> None:
    server.sandbox.rate_limit, server.sandbox.burst = 1, 1
    assert http.patch("/accounts/x", json={"country": "US"}).status_code == 200
    assert http.patch("/accounts/x", json={"country": "FR"}).status_code == 429
    assert http.patch("/accounts/y", json={"country": "FR"}).status_code == 429
    assert http.get("/accounts/x/sync").status_code == 429
    stats = server.sandbox.stats
    assert stats.patched == {"x": {"country": "US"}}
    assert stats.syncs_started == {} and server.sandbox.sync_status("x") is None
    assert stats.patches == {"x": 2, "y": 1}  # they reached the server, and were refused
    assert stats.throttled == 3


def test_a_throttled_request_still_takes_the_latency(http, server, clock) -> None:
    """The gateway's refusal comes back after the network's round trip, as every other answer."""
    server.sandbox.rate_limit, server.sandbox.latency_ms = 1, 150
    assert statuses(http, 1) == [200]
    started = time.monotonic()
    assert statuses(http, 1) == [429]
    assert time.monotonic() - started >= 0.15


def test_the_key_is_checked_before_the_bucket_and_faults_after_it(http, server, clock) -> None:
    server.sandbox.rate_limit, server.sandbox.burst = 1, 1
    server.sandbox.faults = [Fault.parse("errors/proxy_error@f")]
    wrong_key = httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers={"X-API-KEY": "w"})
    assert error_of(wrong_key) == (401, "errors/invalid_credentials")  # and took no token
    assert error_of(http.patch("/accounts/f", json={"country": "US"})) == (502, "errors/proxy_error")
    assert error_of(http.patch("/accounts/f", json={"country": "US"})) == (429, "errors/too_many_requests")
    assert server.sandbox.stats.throttled == 1


def _hold(server: ServerThread, count: int, path: str = "/api/v1/accounts") -> list[Any]:
    """Start `count` PATCHes (or GETs of `path` when it is not the API's) that the latency holds in flight."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(count)
    base = server.url.removesuffix("/api/v1")
    if path == "/api/v1/accounts":
        futures = [
            pool.submit(httpx.patch, f"{base}{path}/held{i}", json={"country": "US"}, headers=KEY_HEADER)
            for i in range(count)
        ]
    else:
        futures = [pool.submit(httpx.get, f"{base}{path}", headers=KEY_HEADER) for _ in range(count)]
    pool.shutdown(wait=False)
    deadline = time.monotonic() + 5
    while server.sandbox.stats.in_flight < count:
        assert time.monotonic() < deadline, "the held requests never arrived"
        time.sleep(0.005)
    return futures


def test_the_pool_answers_503_at_once_past_k_in_flight_then_frees_its_slots(http, server) -> None:
    server.sandbox.latency_ms, server.sandbox.max_in_flight = 400, 2
    held = _hold(server, 2)
    for account in ("r1", "r2"):  # the first refusal did not take a slot: so is the second
        started = time.monotonic()
        refused = http.patch(f"/accounts/{account}", json={"country": "FR"})
        assert time.monotonic() - started < 0.2  # at once, not after the 400 ms of latency
        assert error_of(refused) == (503, "errors/service_unavailable")
        assert "retry-after" not in refused.headers
    assert error_of(http.get("/accounts/held0/sync")) == (503, "errors/service_unavailable")
    assert [future.result().status_code for future in held] == [200, 200]
    stats = server.sandbox.stats
    assert set(stats.patched) == {"held0", "held1"} and stats.syncs_started == {}
    assert stats.throttled == 3
    server.sandbox.latency_ms = 0
    assert statuses(http, 3, "after") == [200, 200, 200]  # the slots are free again


def test_the_key_is_checked_before_the_pool(http, server) -> None:
    server.sandbox.latency_ms, server.sandbox.max_in_flight = 300, 1
    held = _hold(server, 1)
    answer = httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers={"X-API-KEY": "w"})
    assert error_of(answer) == (401, "errors/invalid_credentials")
    assert held[0].result().status_code == 200


def test_a_request_the_pool_refuses_takes_no_token(http, server, clock) -> None:
    sandbox = server.sandbox
    sandbox.latency_ms, sandbox.max_in_flight, sandbox.rate_limit, sandbox.burst = 300, 1, 1, 2
    held = _hold(server, 1)
    assert statuses(http, 1) == [503]
    assert held[0].result().status_code == 200  # the first token
    sandbox.latency_ms = 0
    assert statuses(http, 2) == [200, 429]  # the second: the pool's refusal took none
    assert sandbox.stats.throttled == 2


def test_introspection_is_never_throttled(http, server, clock) -> None:
    sandbox = server.sandbox
    sandbox.latency_ms, sandbox.max_in_flight = 300, 1
    held_introspection = _hold(server, 1, "/_sandbox/requests")  # takes no slot of the pool
    assert statuses(http, 1) == [200]
    assert held_introspection[0].result().status_code == 200
    held = _hold(server, 1)  # the pool is full: introspection is still answered
    assert (
        httpx.get(server.url.replace("/api/v1", "/_sandbox/requests"), headers=KEY_HEADER).status_code == 200
    )
    assert held[0].result().status_code == 200
    sandbox.latency_ms, sandbox.rate_limit, sandbox.burst = 0, 1, 1
    assert statuses(http, 2) == [200, 429]  # the bucket is empty: introspection is still answered
    for _ in range(3):
        assert (
            httpx.get(server.url.replace("/api/v1", "/_sandbox/requests"), headers=KEY_HEADER).status_code
            == 200
        )
    assert sandbox.stats.throttled == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        *[
            (("--rate-limit", value), "Invalid value for '--rate-limit'")
            for value in ("0", "-1", "abc", "nan", "inf")
        ],
        *[
            (("--rate-limit", "5", "--burst", value), "Invalid value for '--burst'")
            for value in ("0", "-1", "abc", "nan", "inf", "0.5")
        ],
        *[
            (("--max-in-flight", value), "Invalid value for '--max-in-flight'")
            for value in ("0", "-1", "abc", "nan", "1.5")
        ],
        *[
            (("--rate-limit", "5", "--throttle-answer", value), "Invalid value for '--throttle-answer'")
            for value in ("0", "-1", "502", "")
        ],
        (("--burst", "3"), "--burst needs --rate-limit"),
    ],
)
def test_bad_throttling_options_are_one_line(run, args, message) -> None:
    result = run("sandbox", "--port", "0", "--api-key", "k", *args)
    assert result.code == 1
    assert result.err.startswith("Error: ") and message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_sandbox_command_builds_the_throttling_it_is_given(run, monkeypatch) -> None:
    import reconciler.sandbox

    built: list[Sandbox] = []

    class Recording:
        def __init__(self, sandbox: Sandbox, host: str, port: int) -> None:
            built.append(sandbox)

        def start(self) -> None:
            raise SandboxStartError("recorded")

    monkeypatch.setattr(reconciler.sandbox, "ServerThread", Recording)
    assert run("sandbox", "--api-key", "k").code == 1
    args = ("--rate-limit", "0.5", "--burst", "2.5", "--throttle-answer", "503", "--max-in-flight", "7")
    assert run("sandbox", "--api-key", "k", *args).code == 1
    (defaults, given) = built
    assert (defaults.rate_limit, defaults.burst, defaults.throttle_answer, defaults.max_in_flight) == (
        None,
        None,
        "429-retry-after",
        None,
    )
    assert (given.rate_limit, given.burst, given.throttle_answer, given.max_in_flight) == (0.5, 2.5, "503", 7)


def test_sandbox_command_throttles() -> None:
    command = [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--api-key", "k"]
    command += ["--accept-any-account", "--rate-limit", "0.5", "--burst", "2", "--throttle-answer", "429"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        url = process.stderr.readline().rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, headers={"X-API-KEY": "k"}) as client:
            answers = [client.patch("/accounts/a", json={"country": "US"}) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [
            200,
            200,
            429,
        ]  # the burst, then a token per 2 s
        assert "retry-after" not in answers[2].headers
    finally:
        process.terminate()
        process.wait()
        process.stderr.close()


def test_dropped_connection_is_a_network_error(server) -> None:
    server.sandbox.faults = [Fault.parse("drop")]
    with pytest.raises(httpx.HTTPError):
        httpx.patch(f"{server.url}/accounts/a", json={"country": "US"}, headers=KEY_HEADER)


def _fault_pattern(seed: int) -> list[int]:
    sandbox = Sandbox(
        SENTINEL_KEY, accept_any_account=True, faults=[Fault.parse("errors/unexpected_error:0.3")], seed=seed
    )
    thread = ServerThread(sandbox).start()
    try:
        with httpx.Client(base_url=thread.url, headers=KEY_HEADER) as client:
            return [client.patch(f"/accounts/a{i}", json={"country": "US"}).status_code for i in range(60)]
    finally:
        thread.stop()


def test_seed_makes_faults_reproducible() -> None:
    first, again, other = _fault_pattern(7), _fault_pattern(7), _fault_pattern(8)
    assert first == again
    assert first != other
    assert 5 <= first.count(500) <= 35  # about 30% of 60


def test_latency_and_jitter_bound_each_answer(http, server) -> None:
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


# -- introspection -----------------------------------------------------------------------------------------


def test_introspection_routes_need_the_key(http, server) -> None:
    base = server.url.replace("/api/v1", "/_sandbox")
    http.patch(
        "/accounts/acc%2F1",
        json={"proxy": {"host": "h", "port": 1, "username": "u-resolved", "password": "pw"}},
    )
    for _ in range(4):
        http.get("/accounts/acc%2F1/sync")
    for method, route in [("GET", "accounts/acc%2F1"), ("GET", "requests"), ("POST", "reset")]:
        refused = httpx.request(method, f"{base}/{route}")
        assert error_of(refused) == (401, "errors/missing_credentials")
        assert "u-resolved" not in refused.text
    account = httpx.get(f"{base}/accounts/acc%2F1", headers=KEY_HEADER).json()
    assert account["current"] == {
        "proxy": {"host": "h", "port": 1, "username": "u-resolved", "password": "(sensitive)"}
    }
    assert (account["patches"], account["syncs_started"], account["requests_after_terminal"]) == (1, 2, 1)
    log = httpx.get(f"{base}/requests", headers=KEY_HEADER).json()["requests"]
    assert [(r["method"], r["status"]) for r in log] == [("PATCH", 200)] + [("GET", 200)] * 4
    assert httpx.post(f"{base}/reset", headers=KEY_HEADER).json() == {"reset": True}
    assert httpx.get(f"{base}/requests", headers=KEY_HEADER).json()["requests"] == []


# -- the server and the command ----------------------------------------------------------------------------


def test_address_in_use_names_host_and_port(run, monkeypatch) -> None:
    monkeypatch.delenv("POSTPRESS_API_KEY", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            SandboxStartError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"
        ):
            ServerThread(Sandbox(SENTINEL_KEY), port=port)
        result = run("sandbox", "--port", str(port), "--api-key", "k")
        generated = run("sandbox", "--port", str(port))
    assert result.code == 1
    assert result.err.strip() == f"Error: cannot listen on 127.0.0.1:{port}: address already in use"
    # No key of its own is made up and shown for a server that never listened.
    assert (generated.code, generated.err) == (1, result.err)


def test_ipv6_url_has_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        thread = ServerThread(Sandbox(SENTINEL_KEY), host="::1")
    except SandboxStartError as exc:
        pytest.skip(str(exc))
    try:
        assert thread.url == f"http://[::1]:{thread.port}/api/v1"
    finally:
        thread.socket.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accounts: [a, b]\n", "expected a mapping of account ids"),
        ("accounts:\n  a: {provider: MAIL, color: red}\n", "account 'a': unknown field 'color'"),
        ("accounts:\n  a: {sync_polls: -1}\n", "account 'a': sync_polls must be a whole number"),
        ("accounts:\n  a: {sync_result: FINE}\n", "account 'a': sync_result must be one of"),
        ("accounts: {a: [\n", "accounts.yaml:1:15: invalid YAML: this '[' is never closed"),
        (
            "accounts:\n  a: {provider: MAIL}\n   b: {provider: MAIL}\n",
            "accounts.yaml:3:4: invalid YAML: this line is",
        ),
    ],
)
def test_bad_accounts_file_is_one_line(run, write, text, message) -> None:
    write("accounts.yaml", text)
    result = run("sandbox", "--accounts", "accounts.yaml", "--port", "0", "--api-key", "k")
    assert result.code == 1
    assert result.err.startswith("Error: --accounts: accounts.yaml") and message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_sandbox_command_serves(tmp_path) -> None:
    (tmp_path / "accounts.yaml").write_text(
        "accounts:\n  known: {provider: MAIL}\n  t: {provider: TELEGRAM}\n"
    )
    command = [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--api-key", "k"]
    command += ["--accounts", str(tmp_path / "accounts.yaml"), "--unsupported-providers", "SLACK"]
    command += ["--max-body-bytes", "100"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
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
        large = httpx.patch(
            f"{url}/accounts/known", json={"proxy": {"host": "h" * 100, "port": 1}}, headers=headers
        )
        assert error_of(large) == (400, "errors/content_too_large")
    finally:
        process.terminate()
        process.wait()
        process.stderr.close()


def test_without_uvicorn_the_package_raises_import_error_and_the_command_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['uvicorn'] = None\n"  # as if the sandbox extra were not installed
        "try:\n"
        "    import reconciler.sandbox\n"
        "except ImportError:\n"
        "    print('ImportError')\n"
        "from reconciler.cli import main\n"
        "main(['sandbox'])\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.stdout.strip() == "ImportError"
    assert finished.returncode == 1
    from reconciler.install import extra_command

    assert finished.stderr.strip() == f"Error: the sandbox needs its extra: {extra_command('sandbox')}"


def test_a_request_is_timed_when_it_arrives_not_when_its_latency_ends(http, server) -> None:
    """Benchmarks time the first request by its arrival: the simulated latency comes after it."""
    server.sandbox.latency_ms = 300
    started = time.monotonic()
    assert http.patch("/accounts/arrival", json={"country": "US"}).status_code == 200
    answered = time.monotonic()
    ((arrived, route, account),) = server.sandbox.stats.request_times
    assert (route, account) == ("patch", "arrival")
    assert arrived - started < 0.2 and answered - arrived >= 0.3


def test_stopping_cuts_a_hanging_request_after_a_short_grace() -> None:
    """A `hang` request would hold the server for its whole hang (an hour by default): stopping cuts it."""
    import threading

    sandbox = Sandbox(SENTINEL_KEY, accept_any_account=True)
    sandbox.faults = [Fault.parse("hang")]
    thread = ServerThread(sandbox).start()
    outcome: list[object] = []

    def hanging_request() -> None:
        try:
            with httpx.Client(base_url=thread.url, headers={"X-API-KEY": SENTINEL_KEY}, timeout=30) as client:
                outcome.append(client.patch("/accounts/h", json={"country": "US"}).status_code)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    client = threading.Thread(target=hanging_request)
    client.start()
    while sandbox.stats.in_flight == 0:
        time.sleep(0.01)
    started = time.monotonic()
    thread.stop()
    assert time.monotonic() - started < 5 and not thread.thread.is_alive()
    client.join(timeout=10)
    assert outcome and outcome[0] != 200  # cut, not answered
