"""Recording events and how they change the recorded state: pure functions shared by every backend.

A backend appends events as they happen (durably) and folds them into its snapshot; folding the same event
twice gives the same record, so replaying a journal after a crash is safe.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from reconciler.errors import brief
from reconciler.model import AccountRecord, Recorded
from reconciler.state.document import MAX_BIGINT, failure_ok

if TYPE_CHECKING:  # only types: a TypedDict compiles each annotation when made (start-up counts)

    class Failure(TypedDict):
        """What an account's last failed attempt was (`AccountRecord.last_failure`)."""

        operation: str
        error_type: str
        http_status: int | None
        message: str | None
        at: NotRequired[str]

    class AppliedEvent(TypedDict):
        op: Literal["applied"]
        id: str
        settings: dict[str, Any] | None
        provider: str | None
        at: str

    class ResyncedEvent(TypedDict):
        op: Literal["resynced"]
        id: str
        generation: int
        at: str

    class FailedEvent(TypedDict):
        op: Literal["failed"]
        id: str
        failure: Failure

    class ForgetEvent(TypedDict):
        op: Literal["forget"]
        id: str

    #: One line of the journal (or one recorded change in PostgreSQL), as `fold` applies it.
    Event = AppliedEvent | ResyncedEvent | FailedEvent | ForgetEvent

_second: int | None = None
_second_text = ""


def now() -> str:
    """UTC to the millisecond, `2026-01-31T12:00:00.123Z`: one per recorded event, so the formatted second is
    reused (a quarter of the cost of formatting a datetime each time)."""
    global _second, _second_text
    moment = time.time()
    second = int(moment)
    if second != _second:
        _second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = second
    return f"{_second_text}.{int((moment - second) * 1000):03d}Z"


def applied(
    account_id: str, settings: dict[str, Any] | None, provider: str | None, at: str | None = None
) -> AppliedEvent:
    """The account now has `settings` (fingerprinted) on the API side."""
    return {"op": "applied", "id": account_id, "settings": settings, "provider": provider, "at": at or now()}


def resynced(account_id: str, generation: int, at: str | None = None) -> ResyncedEvent:
    return {"op": "resynced", "id": account_id, "generation": generation, "at": at or now()}


def failed(account_id: str, failure: Failure, at: str | None = None) -> FailedEvent:
    return {"op": "failed", "id": account_id, "failure": {**failure, "at": at or now()}}


def forgotten(account_id: str) -> ForgetEvent:
    return {"op": "forget", "id": account_id}


def event_problem(event: Any) -> str | None:
    """None if `event` is a recording event `fold` can apply; else what is wrong with it (read back from a
    journal, it may have been damaged or edited)."""
    if not isinstance(event, dict) or type(event.get("id")) is not str:
        return "not a recording event (no account id)"
    op = event.get("op")
    if op == "forget":
        return None
    if op == "failed":  # its time is the failure's own (`failure.at`)
        failure = event.get("failure")
        return (
            None if failure is not None and failure_ok(failure) else "'failed' event with a malformed failure"
        )
    if type(event.get("at")) is not str:
        return f"{op!r} event without a time"
    if op == "applied":
        settings, provider = event.get("settings"), event.get("provider")
        if (settings is None or type(settings) is dict) and (provider is None or type(provider) is str):
            return None
        return "'applied' event with malformed settings or provider"
    if op == "resynced":
        generation = event.get("generation")
        if type(generation) is int and 0 <= generation <= MAX_BIGINT:
            return None
        return "'resynced' event without a valid generation"
    return f"unknown recording event {brief(op)}"


#: The record of an account that has none yet (read only).
_NO_RECORD = AccountRecord()


def fold(recorded: Recorded, event: Event) -> None:
    """Apply one event to the snapshot in place."""
    account_id = event["id"]
    if event["op"] == "forget":
        recorded.accounts.pop(account_id, None)
        return
    record = recorded.accounts.get(account_id) or _NO_RECORD
    # New records rather than dataclasses.replace, which costs several times as much: this runs for every success.
    if event["op"] == "applied":
        record = AccountRecord(
            settings=event["settings"],
            applied_at=event["at"],
            resync_generation=record.resync_generation,
            resynced_at=record.resynced_at,
            last_failure=None,
            provider=event.get("provider") or record.provider,
        )
    elif event["op"] == "resynced":
        record = AccountRecord(
            settings=record.settings,
            applied_at=record.applied_at,
            resync_generation=max(record.resync_generation, event["generation"]),
            resynced_at=event["at"],
            last_failure=None,
            provider=record.provider,
        )
    elif event["op"] == "failed":
        record = AccountRecord(
            settings=record.settings,
            applied_at=record.applied_at,
            resync_generation=record.resync_generation,
            resynced_at=record.resynced_at,
            last_failure=dict(event["failure"]),
            provider=record.provider,
        )
    else:
        raise ValueError(f"unknown recording event {event['op']!r}")
    recorded.accounts[account_id] = record
