"""The run as a whole: the breaker, bounded waits, exit codes that keep their meaning, checks before sending."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from reconciler.sandbox import Fault
from tests.helpers import fleet, run_engine, self_signed_certificate


def test_a_wrong_key_costs_about_two_times_the_concurrency(run, write, api, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "not-the-key")
    write("a.yaml", fleet(1000))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "64", "--format", "json")
    assert result.code == 3
    assert api.stats.requests <= 2 * 64 + 8, api.stats.requests
    outcomes = [r["outcome"] for r in result.json["results"]]
    assert outcomes.count("skipped") >= 1000 - 2 * 64 - 8
    text = run("apply", "a.yaml", "--yes", "--concurrency", "64")
    assert "errors/invalid_credentials" in text.out and "check POSTPRESS_API_KEY" in text.out


@pytest.mark.parametrize("error_type", ["errors/network_down", "errors/service_unavailable"])
def test_an_api_down_for_everyone_costs_about_two_times_the_concurrency(
    workdir, write, server, error_type
) -> None:
    server.sandbox.faults = [Fault.parse(error_type)]
    # the default backoff: a throttled request (503) is sent again after it, without using an attempt
    outcome, _ = run_engine(
        workdir,
        server,
        write("a.yaml", fleet(1000)),
        concurrency=64,
        backoff_base=0.5,
        backoff_cap=30,
        throttle_timeout=1,
    )
    assert server.sandbox.stats.requests <= 2 * 64 + 8, server.sandbox.stats.requests
    assert outcome.stop_reason
    assert sum(r.outcome == "succeeded" for r in outcome.results) == 0


def test_a_few_failing_accounts_among_successes_do_not_stop_the_run(workdir, write, server) -> None:
    failing = [f"acc_{i:04d}" for i in range(0, 300, 7)]
    server.sandbox.faults = [Fault.parse(f"errors/proxy_error@{','.join(failing)}")]
    outcome, _ = run_engine(workdir, server, write("a.yaml", fleet(300)), concurrency=16, max_attempts=2)
    assert outcome.stop_reason is None
    failed = {r.account_id for r in outcome.results if r.outcome == "failed"}
    assert failed == set(failing)
    assert sum(r.outcome == "succeeded" for r in outcome.results) == 300 - len(failing)


def test_a_probe_that_succeeds_closes_the_breaker(workdir, write, server) -> None:
    # The first 6 requests fail for everyone: 5 open the breaker, the first probe fails, the second succeeds and
    # closes it: the run goes on without stopping, and every account is applied.
    server.sandbox.faults = [Fault.parse("errors/service_unavailable;times=6")]
    outcome, _ = run_engine(workdir, server, write("a.yaml", fleet(100)), concurrency=1, max_attempts=4)
    assert outcome.stop_reason is None
    assert all(r.outcome == "succeeded" for r in outcome.results)
    assert server.sandbox.stats.requests == 106


def test_the_breaker_can_be_turned_off(run, write, api, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "not-the-key")
    write("a.yaml", fleet(40))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "4", "--max-consecutive-failures", "0")
    assert result.code == 3
    assert api.stats.requests == 40  # one per account: invalid credentials are not retried


def test_retry_after_on_a_non_retryable_answer_is_ignored(workdir, write, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/invalid_parameters@acc_0000;retry_after=100000")]
    started = time.monotonic()
    outcome, _ = run_engine(workdir, server, write("a.yaml", fleet(3)), concurrency=1)
    assert time.monotonic() - started < 10
    assert [r.outcome for r in outcome.results] == ["failed", "succeeded", "succeeded"]


def test_retry_after_over_the_cap_fails_the_operation_and_stops(run, write, api) -> None:
    api.faults = [Fault.parse("errors/service_unavailable@acc_0000;retry_after=100000")]
    write("a.yaml", fleet(3))
    started = time.monotonic()
    result = run(
        "apply", "a.yaml", "--yes", "--concurrency", "1", "--max-retry-after", "60", "--format", "json"
    )
    assert time.monotonic() - started < 10
    assert result.code == 3
    first = result.json["results"][0]
    assert (first["outcome"], first["error_type"], first["attempts"]) == (
        "failed",
        "errors/service_unavailable",
        1,
    )
    text = run("apply", "a.yaml", "--yes", "--concurrency", "1", "--max-retry-after", "60")
    assert "the API asked to wait 100000 s (Retry-After), over --max-retry-after 60" in text.out


def test_the_pace_shows_in_the_progress_line(run, write, api, monkeypatch) -> None:
    from reconciler.cli import progress

    monkeypatch.setattr(progress, "PROGRESS_LINE_SECONDS", 0.2)
    api.latency_ms = 30
    api.faults = [Fault.parse("errors/too_many_requests@acc_0000;times=1")]
    write("a.yaml", fleet(30))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "1")
    assert result.code == 0, result.err
    assert re.search(r"paced at ~\d+ requests/s \(the API pushed back\)", result.err), result.err


def test_a_dripping_server_cannot_outlast_the_timeout(run, write, monkeypatch) -> None:
    """A server that sends its answer one byte a second cannot keep a request alive past --timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def drip() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000:
                    if stop.wait(1.0):
                        break
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("POSTPRESS_API_KEY", "k" * 8)
        monkeypatch.setenv("POSTPRESS_API_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1")
        write("a.yaml", fleet(1))
        started = time.monotonic()
        result = run(
            "apply", "a.yaml", "--yes", "--timeout", "1.5", "--max-attempts", "1", "--format", "json"
        )
        assert time.monotonic() - started < 8
        assert result.code == 3
        assert result.json["results"][0]["error_type"] == "client_timeout"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_an_unwritable_report_path_exits_1_before_any_request(run, write, api, workdir) -> None:
    write("a.yaml", fleet(3))
    result = run("apply", "a.yaml", "--yes", "--report", str(workdir / "no" / "such" / "dir" / "r.json"))
    assert result.code == 1
    assert "--report" in result.err and "cannot write there" in result.err
    assert api.stats.requests == 0


def test_an_unwritable_step_summary_is_a_warning(run, write, api, workdir, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workdir / "no" / "summary.md"))
    write("a.yaml", fleet(3))
    result = run("apply", "a.yaml", "--yes", "--report", "r.json")
    assert result.code == 0
    assert "Warning: cannot write the step summary" in result.err
    assert (workdir / "r.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("good-key\n", "a newline at its end"),
        ("good-key\r", "a carriage return at its end"),
        ("good\tkey", "a tab at position 5"),
        ("good\x1bkey", "the control character U+001B at position 5"),
    ],
)
def test_an_api_key_with_a_control_character_is_refused_first(
    run, write, api, workdir, monkeypatch, key, what
):
    monkeypatch.setenv("POSTPRESS_API_KEY", key)
    write("a.yaml", fleet(2))
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 1
    assert result.err.count("\n") == 1 and what in result.err and "good" not in result.err
    assert "Traceback" not in result.err
    assert not (workdir / ".reconciler").exists()  # refused before the state was created
    assert api.stats.requests == 0


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://example.com/api/v1", "http://127.0.0.1:99999/api/v1", "http://[::1", "https://"],
)
def test_a_bad_api_url_is_refused_first(run, write, workdir, monkeypatch, url) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "k" * 8)
    write("a.yaml", fleet(2))
    result = run("apply", "a.yaml", "--yes", "--api-url", url)
    assert result.code == 1
    assert result.err.startswith("Error: --api-url") and result.err.count("\n") == 1
    assert not (workdir / ".reconciler").exists()


def test_an_api_url_with_a_password_is_refused_without_showing_it(run, write, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "k" * 8)
    write("a.yaml", fleet(2))
    result = run("apply", "a.yaml", "--yes", "--api-url", "https://user:hunter22@example.com/api/v1")
    assert result.code == 1 and "hunter22" not in result.err


def test_plain_http_to_another_host_warns(run, write, api, monkeypatch) -> None:
    # The sandbox listens on loopback: no warning. A non-loopback host: a warning (the run then fails to connect).
    write("a.yaml", fleet(1))
    quiet = run("apply", "a.yaml", "--yes")
    assert quiet.code == 0 and "in clear" not in quiet.err
    loud = run("apply", "a.yaml", "--yes", "--api-url", "http://api.invalid/api/v1", "--max-attempts", "1")
    assert (
        "Warning: --api-url uses plain http:// to api.invalid: the API key would travel in clear" in loud.err
    )


def test_connection_refused_names_the_host_not_ssl(run, write, monkeypatch) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    monkeypatch.setenv("POSTPRESS_API_KEY", "k" * 8)
    write("a.yaml", fleet(1))
    result = run(
        "apply",
        "a.yaml",
        "--yes",
        "--api-url",
        f"http://127.0.0.1:{port}/api/v1",
        "--max-attempts",
        "1",
        "--format",
        "json",
    )
    message = result.json["results"][0][
        "message"
    ]  # one account, no answer: the run's failure, not the account's
    assert f"network_error (cannot connect to 127.0.0.1:{port}: Connection refused)" in message
    assert "ssl:default" not in message


def test_a_bad_ca_bundle_names_the_file_and_the_option(run, write, workdir, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", "k" * 8)
    write("a.yaml", fleet(1))
    write("bundle.pem", "not a certificate\n")
    result = run("apply", "a.yaml", "--yes", "--ca-bundle", "bundle.pem")
    assert result.code == 1
    assert "--ca-bundle bundle.pem: not a readable PEM file of CA certificates" in result.err


def test_the_ca_bundle_adds_to_the_system_roots(tmp_path) -> None:
    import ssl

    from reconciler.api.endpoint import tls_context

    cert, _ = self_signed_certificate(tmp_path, "test-ca")
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    combined = tls_context(str(cert)).cert_store_stats()["x509_ca"]
    assert combined == system + 1


def test_a_404_about_the_route_says_where_the_url_should_end(run, write, api, server, monkeypatch) -> None:
    monkeypatch.setenv("POSTPRESS_API_URL", server.url.removesuffix("/api/v1"))
    write("a.yaml", fleet(1))
    refused = run("apply", "a.yaml", "--yes", "--format", "json")
    assert refused.code == 1 and "does not end in /api/v1" in refused.err  # checked first, nothing sent
    result = run("apply", "a.yaml", "--yes", "--format", "json", "--any-api-path")  # a proxy's path, say
    assert result.code == 3
    assert "the API URL should end in /api/v1" in result.json["results"][0]["message"]
