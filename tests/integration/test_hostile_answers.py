"""Hostile answers from the API, byte for byte, through a real `apply`: no header value, status line or body
ends a run in a traceback. Every case: apply finishes with the contract's exit code, the report is written and
valid, the hostile account gets a failure of a sensible type or the run goes on as if the header were absent,
and an account answered well beside it is applied.

The answers come from tests/rawhttp.py, a loopback server that sends exactly the bytes given (the sandbox
speaks well-formed HTTP). Unit tests of the parsing itself are at the end.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import jsonschema
import pytest

from reconciler.api.answer import parse_retry_after
from reconciler.api.transport import MAX_BODY_BYTES
from tests.helpers import SENTINEL_KEY
from tests.rawhttp import RawServer, http

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "report.schema.json").read_text())
OK, HOSTILE = "aaa_ok", "zzz_hostile"  # in this order: the well-answered account goes first
GIB = 1 << 30


def patched(account_id: str) -> bytes:
    return http("200 OK", json.dumps({"object": "AccountPatched", "account_id": account_id}))


def synced(status: object = "SYNC_DONE") -> bytes:
    return http("200 OK", json.dumps({"object": "AccountResync", "status": status}))


def account_of(target: str) -> tuple[str, bool]:
    """(account id, whether the request is on the sync route) of `/api/v1/accounts/ID[/sync?...]`."""
    parts = target.split("?")[0].split("/")
    return parts[4], len(parts) > 5 and parts[5] == "sync"


class Scripted:
    """The well-behaved API for OK, and for HOSTILE the given answers in turn (the last one repeated)."""

    def __init__(self, *hostile: bytes | Iterable[bytes]) -> None:
        self.hostile = hostile

    def __call__(self, method: str, target: str, count: int) -> bytes | Iterable[bytes]:
        account_id, sync = account_of(target)
        if account_id != HOSTILE:
            return synced() if sync else patched(account_id)
        return self.hostile[min(count, len(self.hostile) - 1)]


@pytest.fixture
def apply_against(run, workdir, monkeypatch):
    """Apply a two-account config (OK, HOSTILE; managed proxies, or resyncs only) against a RawServer answering
    `answer`; check what every case must hold and return (exit code, report, HOSTILE's result, output)."""

    def applying(answer, resync: bool = False, *options: str):
        body = "{provider: LINKEDIN, resync: {generation: 1}}" if resync else "{country: US}"
        (workdir / "a.yaml").write_text(f"version: 1\naccounts:\n  {OK}: {body}\n  {HOSTILE}: {body}\n")
        monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
        with RawServer(answer) as server:
            result = run(
                "apply",
                "a.yaml",
                "--yes",
                "--api-url",
                server.url,
                "--state",
                "state.json",
                "--report",
                "report.json",
                "--concurrency",
                "1",
                "--max-attempts",
                "2",
                "--timeout",
                "10",
                "--sync-poll-interval",
                "0.01",
                *options,
            )
        output = result.out + result.err
        assert "Traceback" not in output, output[-3000:]
        assert result.code in (0, 3), (result.code, output[-2000:])
        assert all(line.isprintable() for line in output.splitlines()), output[-2000:]
        report = json.loads((workdir / "report.json").read_text())
        jsonschema.validate(report, SCHEMA)
        results = {r["account_id"]: r for r in report["results"]}
        assert results[OK]["outcome"] == "succeeded", results[OK]
        state = json.loads((workdir / "state.json").read_text())
        hostile = results[HOSTILE]
        if hostile["outcome"] != "succeeded":  # never recorded as applied
            record = state["accounts"].get(HOSTILE) or {}
            assert not record.get("settings") and not record.get("resync_generation"), record
        return result.code, report, hostile, output

    return applying


# -- Retry-After ---------------------------------------------------------------------------------------------------
IGNORED_RETRY_AFTER = [
    "-1",
    "1.5",
    "1e308",
    "NaN",
    "inf",
    "-inf",
    "0x10",
    "²",  # one byte 0xB2: latin-1 "²"; str.isdigit() accepts it, float() does not
    "Â²",  # the same character's UTF-8 bytes
    "1 2",
    "Mon, 99 Foo 99999 99:99:99 GMT",
    "Mon, 01 Jan 99999999999 00:00:00 GMT",  # OverflowError inside email.utils: a traceback before
    "Fri, 31 Dec 9999 23:59:59 +9999",
    "Mon, 32 Jan 2026 25:61:61 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",  # in the past: wait nothing
    "Mon, 01 Jan 0001 00:00:00 -0000",
]


@pytest.mark.parametrize("value", IGNORED_RETRY_AFTER)
@pytest.mark.parametrize("status", ["429 Too Many Requests", "503 Service Unavailable"])
def test_a_retry_after_that_is_not_a_number_of_seconds_is_ignored(apply_against, value, status) -> None:
    refused = http(status, json.dumps({"type": "errors/" + "x"}), {"Retry-After": value})
    code, report, hostile, _ = apply_against(Scripted(refused, patched(HOSTILE)))
    assert code == 0
    assert hostile["outcome"] == "succeeded"


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT", "3600"]
)
def test_a_retry_after_too_long_stops_the_run_and_says_so(apply_against, value) -> None:
    refused = http("503 Service Unavailable", "{}", {"Retry-After": value})
    code, report, hostile, output = apply_against(Scripted(refused, patched(HOSTILE)))
    assert code == 3
    assert (hostile["outcome"], hostile["http_status"]) == ("failed", 503)
    assert "over --max-retry-after 120" in output, output[-2000:]


def test_a_retry_after_on_a_poll_that_is_not_a_date_is_ignored(apply_against) -> None:
    refused = http("503 Service Unavailable", "{}", {"Retry-After": "Mon, 01 Jan 99999999999 00:00:00 GMT"})
    code, report, hostile, _ = apply_against(
        Scripted(synced("SYNC_STARTED"), refused, synced("SYNC_DONE")), True
    )
    assert code == 0
    assert (hostile["operation"], hostile["outcome"]) == ("resync", "succeeded")


# -- status lines --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "status", "error_type", "category"),
    [
        ("999 Odd", 999, "unknown", "unexpected"),
        ("600 Beyond", 600, "unknown", "unexpected"),
        ("101 Switching Protocols", 101, "unknown", "unexpected"),
        ("304 Not Modified", 304, "unknown", "unexpected"),
        ("2000 OK", 200, "unexpected_response", "unexpected"),  # libcurl reads the first three digits
        ("000 Zero", None, "network_error", "network"),  # libcurl refuses the answer
        ("099 Low", None, "network_error", "network"),
        ("-200 OK", None, "network_error", "network"),
        ("HTTP/1.1", None, "network_error", "network"),
        ("HTTP/2 200 OK", None, "network_error", "network"),
        ("SPDY/3 200 OK", None, "network_error", "network"),  # no HTTP status line: HTTP/0.9, refused
    ],
)
def test_an_odd_status_line_is_a_failure_of_its_own(
    apply_against, line, status, error_type, category
) -> None:
    code, _, hostile, _ = apply_against(Scripted(http(line, "{}")))
    assert code == 3
    assert (hostile["outcome"], hostile["http_status"], hostile["error_type"], hostile["category"]) == (
        "failed",
        status,
        error_type,
        category,
    )


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n12345",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 1\x002\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: " + b"9" * 300_000 + b"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcde",
    ],
    ids=["two lengths", "negative length", "bad chunk", "NUL in a header", "300 kB header", "bad gzip"],
)
def test_a_malformed_answer_is_a_network_error(apply_against, answer) -> None:
    code, _, hostile, _ = apply_against(Scripted(answer))
    assert code == 3
    assert (hostile["outcome"], hostile["error_type"], hostile["http_status"]) == (
        "failed",
        "network_error",
        None,
    )


# -- bodies --------------------------------------------------------------------------------------------------------
DEEP = b"[" * 100_000 + b"]" * 100_000  # orjson stops at 1,024 levels: a JSONDecodeError, a ValueError


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"object": "AccountPatched", "account_id": "zzz_hostile", "n": NaN}',
        b'{"object": "AccountPatched", "account_id": "zzz_hostile\xff"}',
        b'{"object": "AccountPatched", "account_id": "zzz_hostile", "n": 1e400}',
        b'{"object": "AccountPatched", "account_id": "zzz_hostile", "n": ' + b"9" * 100_000 + b"}",
        b'{"object": ["AccountPatched"], "account_id": "zzz_hostile"}',
        b'{"object": "AccountPatched", "account_id": {"id": "zzz_hostile"}}',
        b"null",
        b"[]",
        b'"AccountPatched"',
        b"",
    ],
    ids=[
        "100,000 deep",
        "NaN",
        "not UTF-8",
        "1e400",
        "100,000 digits",
        "object a list",
        "id an object",
        "null",
        "a list",
        "a string",
        "empty",
    ],
)
def test_a_success_status_with_a_body_that_is_not_the_answer(apply_against, body) -> None:
    code, _, hostile, _ = apply_against(Scripted(http("200 OK", body)))
    assert code == 3
    assert (hostile["outcome"], hostile["error_type"], hostile["http_status"], hostile["attempts"]) == (
        "failed",
        "unexpected_response",
        200,
        1,  # a 200 is never sent again: the change may have landed
    )


def endless(length_header: bool) -> Iterator[bytes]:
    """A 200 of a gibibyte (announced by Content-Length, or not): it is never read to its end."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % GIB if length_header else b"Connection: close\r\n\r\n"
    yield head + b'{"object": "AccountPatched", "account_id": "zzz_hostile", "padding": "'
    chunk = b"x" * (1 << 20)
    for _ in range(GIB // len(chunk)):
        yield chunk


def gzip_bomb() -> bytes:
    """64 MiB of JSON in about 64 kB of gzip: what libcurl decodes is what counts."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"object": "AccountPatched", "account_id": "zzz_hostile", "padding": "')]
    zeros = b"0" * (1 << 20)
    parts += [compressor.compress(zeros) for _ in range(64)]
    parts += [compressor.compress(b'"}'), compressor.flush()]
    body = b"".join(parts)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % len(body)
        + body
    )


@pytest.mark.parametrize("answer", ["announced", "unannounced", "gzip"])
def test_an_answer_over_the_size_limit_is_not_read_past_it(apply_against, answer) -> None:
    body: bytes | Iterable[bytes] = gzip_bomb() if answer == "gzip" else endless(answer == "announced")
    code, _, hostile, _ = apply_against(Scripted(body))
    assert code == 3
    assert (hostile["outcome"], hostile["error_type"], hostile["http_status"]) == (
        "failed",
        "unexpected_response",
        200,
    )
    assert f"larger than {MAX_BODY_BYTES} bytes" in hostile["message"]


def test_a_gibibyte_answer_is_abandoned_early(run, workdir, monkeypatch) -> None:
    """The server side of the above: the client hangs up after about MAX_BODY_BYTES, not a gibibyte later."""
    (workdir / "a.yaml").write_text(f"version: 1\naccounts:\n  {HOSTILE}: {{country: US}}\n")
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    with RawServer(Scripted(endless(True))) as server:
        result = run(
            "apply", "a.yaml", "--yes", "--api-url", server.url, "--state", "s.json", "--max-attempts", "1"
        )
        assert result.code == 3
    assert server.sent < 64 * MAX_BODY_BYTES  # what the socket buffers held when the client hung up


# -- error answers -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (b'{"type": 123, "detail": {"a": 1}}', "unknown"),
        (b'{"type": ["errors/proxy_error"], "title": ["x"], "detail": null}', "unknown"),
        (b'{"type": null, "title": 7, "detail": false}', "unknown"),
        (b'{"type": {"errors/proxy_error": 1}, "detail": [1, 2]}', "unknown"),
        (b'{"type": "errors/proxy_error", "detail": NaN}', "unknown"),  # not JSON: the status alone
        (DEEP, "unknown"),
        (b'{"type": "errors/proxy_error\xff"}', "unknown"),
        (b'[{"type": "errors/proxy_error"}]', "unknown"),
        (b'{"type": "errors/proxy_error", "detail": {"nested": "object"}}', "errors/proxy_error"),
    ],
)
def test_an_error_answer_with_odd_fields(apply_against, body, error_type) -> None:
    code, _, hostile, _ = apply_against(Scripted(http("400 Bad Request", body)))
    assert code == 3
    assert (hostile["outcome"], hostile["error_type"], hostile["http_status"]) == ("failed", error_type, 400)
    assert hostile["message"].startswith("HTTP 400")


def test_an_error_answer_with_huge_fields_is_cut(apply_against) -> None:
    body = json.dumps({"type": "errors/" + "t" * 400_000, "detail": "d" * 400_000})
    code, _, hostile, _ = apply_against(Scripted(http("400 Bad Request", body)))
    assert code == 3
    assert hostile["outcome"] == "failed"
    assert len(hostile["error_type"]) <= 100 and len(hostile["message"]) <= 400


# -- sync statuses -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status",
    [
        1,
        None,
        True,
        1.5,
        ["SYNC_DONE"],
        {"SYNC_DONE": True},
        "sync_done",
        "SYNC_DONE\u0000",
        "S" * 900_000,
        "\x1b]8;;x\x07SYNC_DONE",
    ],
    ids=["int", "null", "bool", "float", "list", "object", "lower case", "NUL", "900 kB", "OSC"],
)
@pytest.mark.parametrize("when", ["start", "poll"])
def test_a_sync_status_that_is_not_one_of_the_api(apply_against, status, when) -> None:
    answers = [synced(status)] if when == "start" else [synced("SYNC_STARTED"), synced(status)]
    code, _, hostile, _ = apply_against(Scripted(*answers), True)
    assert code == 3
    assert (hostile["operation"], hostile["outcome"], hostile["error_type"]) == (
        "resync",
        "failed",
        "unexpected_response",
    )
    assert hostile["polls"] == (0 if when == "start" else 1)


# -- the parsing itself ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", IGNORED_RETRY_AFTER[:-2])
def test_parse_retry_after_ignores_and_logs(value, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="reconciler.http"):
        assert parse_retry_after(value) is None
    assert "neither seconds nor an HTTP date: ignored" in caplog.text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        (" 7 ", 7.0),
        ("99999999999999999999", 1e20),
        ("9" * 400, float("inf")),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after_reads_seconds_and_dates(value, seconds) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_never_raises() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        [
            "Mon,",
            "01",
            "Jan",
            "Foo",
            "2026",
            "99999999999",
            "2147483648",
            "-1",
            "00:00:00",
            "25:61:61",
            "GMT",
            "-0000",
            "+9999",
            "UT",
            "EST",
            "²",
            "1e308",
            "NaN",
            " ",
        ]
    )

    @settings(max_examples=500, deadline=None)
    @given(st.lists(pieces, max_size=7).map(" ".join) | st.text(max_size=40))
    def check(value: str) -> None:
        seconds = parse_retry_after(value)
        assert seconds is None or seconds >= 0

    check()


@pytest.mark.parametrize("shard", ["²/3", "1/³", "1/" + "9" * 5000])
def test_a_shard_of_unicode_or_huge_digits_is_a_usage_error(run, workdir, shard) -> None:
    """The one other `isdigit()` before an `int()`: `--shard ²/3` ended in a ValueError traceback."""
    (workdir / "a.yaml").write_text("version: 1\naccounts:\n  a: {country: US}\n")
    result = run("apply", "a.yaml", "--shard", shard)
    assert result.code == 1 and "Traceback" not in result.err
    assert "expected K/N with 1 <= K <= N" in result.err
