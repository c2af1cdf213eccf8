"""Answers the API reference does not document: classified, never recorded as a success."""

from __future__ import annotations

import pytest

from reconciler.sandbox import Fault
from tests.helpers import fleet, run_engine


@pytest.mark.parametrize("kind", ["html", "truncated", "huge", "wrong_account", "wrong_object", "garbage"])
def test_bad_patch_answer_is_classified_and_not_recorded(workdir, write, server, kind) -> None:
    server.sandbox.faults = [Fault.parse(f"{kind}@acc_0000")]
    engine, backend = run_engine(workdir, server, write("a.yaml", fleet(2)), max_attempts=2, concurrency=2)
    by_account = {r.account_id: r for r in engine.results}
    failure = by_account["acc_0000"]
    assert failure.outcome == "failed"
    if kind == "garbage":  # a 502 without the envelope: classified by its status, retried
        assert (failure.error_type, failure.http_status, failure.retryable, failure.attempts) == (
            "unknown",
            502,
            True,
            2,
        )
    else:  # a 200 that is not the documented answer: never retried, since the change may have landed
        assert (failure.error_type, failure.http_status, failure.category, failure.attempts) == (
            "unexpected_response",
            200,
            "unexpected",
            1,
        )
        assert (
            "without the documented AccountPatched answer" in failure.message
            or "larger than" in failure.message
        )
    assert by_account["acc_0001"].outcome == "succeeded"
    recorded = backend.read()
    assert recorded.accounts["acc_0000"].settings is None
    assert recorded.accounts["acc_0001"].settings is not None


@pytest.mark.parametrize("kind", ["html", "truncated", "huge", "wrong_object"])
def test_bad_sync_answer_is_classified_and_not_recorded(workdir, write, server, kind) -> None:
    server.sandbox.faults = [Fault.parse(f"{kind}@acc_0000;route=sync")]
    config = write("a.yaml", fleet(2, extra=", provider: LINKEDIN, resync: {generation: 1}"))
    engine, backend = run_engine(workdir, server, config, max_attempts=2, sync_poll_interval=0.01)
    resyncs = {r.account_id: r for r in engine.results if r.operation == "resync"}
    assert (resyncs["acc_0000"].outcome, resyncs["acc_0000"].error_type) == ("failed", "unexpected_response")
    assert resyncs["acc_0001"].outcome == "succeeded"
    recorded = backend.read()
    assert recorded.accounts["acc_0000"].resync_generation == 0
    assert recorded.accounts["acc_0001"].resync_generation == 1
