"""A resync: start the sync, then poll the same route until a final status, and never send after one.

Every call goes through the sender, so polls share the run's pace with the PATCHes. A poll waiting for its time
holds no permit. Once the sync has started, a stop no longer holds its polls back: a sync running upstream must
be followed to its end or the next run would start another.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from reconciler.api.answer import Answer
from reconciler.api.answer import failure as failed
from reconciler.api.catalogue import classify
from reconciler.applying.recorder import Recorder
from reconciler.applying.sender import Sender
from reconciler.model import AccountSpec
from reconciler.state import events as recording

if TYPE_CHECKING:
    from reconciler.api.client import ApiClient
    from reconciler.secrets.redaction import Redactor

TERMINAL_DONE = ("SYNC_DONE", "CHUNK_DONE")
TERMINAL_ERROR = "SYNC_ERROR"
RUNNING = ("SYNC_STARTED", "SYNC_RUNNING")


async def resync(client: ApiClient, sender: Sender, recorder: Recorder, spec: AccountSpec) -> bool:
    """Run the account's declared resync to its end and record its result; whether it ended (succeeded or
    failed) rather than skipped."""
    assert spec.resync is not None
    account_id = spec.account_id
    params = spec.resync.query()
    done = recording.resynced(account_id, spec.resync.generation)
    options = sender.options
    deadline = time.monotonic() + options.sync_timeout
    sent = 0  # every request, retries included
    polls = 0  # status requests after the one that started the sync, each counted once
    started = False
    progress = sender.progress
    progress.syncs_polling += 1
    try:
        while True:
            answer, used = await sender.send(
                lambda: client.sync_account(account_id, params),
                account_id,
                f"sync {account_id}",
                lambda answer: done if answer.body["status"] in TERMINAL_DONE else None,
                starts=not started,
            )
            sent += used
            polls += 1 if started and used else 0
            attempts = sent - polls
            if answer is None:
                recorder.skipped(account_id, "resync", attempts=sent - polls)
                return False
            if answer.error is not None:
                recorder.failed(account_id, "resync", answer, attempts, polls)
                return True
            started = True
            status = answer.body["status"]
            if status in TERMINAL_DONE:  # recorded by the sender
                recorder.succeeded(account_id, "resync", answer, attempts, message=status, polls=polls)
                return True
            failure = _unfinished(
                answer, status, options.sync_timeout, deadline, options.sync_poll_interval, client.redactor
            )
            if failure is not None:
                recorder.failed(account_id, "resync", failure, attempts, polls)
                return True
            await asyncio.sleep(options.sync_poll_interval)
    finally:
        progress.syncs_polling -= 1


def _unfinished(
    answer: Answer, status: str, timeout: float, deadline: float, interval: float, redactor: Redactor
) -> Answer | None:
    """The failure a non-final status comes to (SYNC_ERROR, an unknown status, no end in time), or None to poll."""
    if status == TERMINAL_ERROR:
        return failed(
            answer.status,
            answer.body,
            classify("sync_error", None),
            "the sync ended in SYNC_ERROR",
            redactor,
        )
    if status not in RUNNING:
        return failed(
            answer.status,
            answer.body,
            classify("unexpected_response", None),
            f"unknown sync status {status[:40]!r}",
            redactor,
        )
    if time.monotonic() + interval > deadline:
        return failed(
            None,
            None,
            classify("sync_timeout", None),
            f"still {status} after --sync-timeout {timeout:g}s",
            redactor,
        )
    return None
