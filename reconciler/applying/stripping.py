"""Failure messages recorded by version 0.1.0, stripped of the secrets a run knows, at the end of the run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from reconciler.errors import StateError
from reconciler.model import Recorded
from reconciler.secrets.redaction import Redactor
from reconciler.state import Journal
from reconciler.state import events as recording

#: Records looked at between two chances for a signal to be handled.
_STRIP_BATCH = 512


class Cancellable(Protocol):
    """What the stripping asks of the engine: whether a signal cancelled the run (and which)."""

    @property
    def cancelled_by(self) -> int | None: ...


async def strip_stored_messages(
    engine: Cancellable,
    recorded: Recorded,
    journal: Journal,
    ours: Callable[[str], bool],
    redactor: Redactor,
    stored: Callable[[], Recorded] | None = None,
) -> str | None:
    """Strip the secrets this run knows (its `redactor`) from the failure messages of the state's accounts that
    are `ours` (a shard's own: another shard may be recording the others now).

    Version 0.1.0 recorded the API's messages as they came, and an answer can echo what was sent (a proxy
    password, say): at the end of a run, each such message is recorded again, stripped. `recorded` is the
    journal's own state, this run's events folded in, so what the run recorded itself is already clean. At the
    end rather than the start, so that the first request does not wait: with many stored failures and many
    secrets it takes seconds. Signals are handled between records (a first one ends this, a second aborts), and
    a failure to record is a warning, returned: the run's own results are recorded already.

    A targeted run's journal holds only the targets' records: `stored` then reads the records that hold a failure
    message (`Backend.read_failed`), and each one stripped is first put into the journal's state, where the fold
    starts from it (no one else writes it meanwhile: this run holds its lock). The journal's own record wins.
    """
    candidates = recorded.accounts
    if stored is not None and engine.cancelled_by is None:
        try:
            candidates = {**stored().accounts, **recorded.accounts}
        except StateError as exc:
            return f"some failure messages recorded by an older version keep their text: {exc}"
    for index, (account_id, record) in enumerate(list(candidates.items())):
        if index % _STRIP_BATCH == 0:
            await asyncio.sleep(0)
            if engine.cancelled_by is not None:
                return None
        failure = record.last_failure
        if not failure or not ours(account_id):
            continue
        message = failure.get("message")
        if isinstance(message, str) and (stripped := redactor.redact(message)) != message:
            kept: Any = {**failure, "message": stripped}  # a Failure, as the state document's check passed it
            recorded.accounts.setdefault(account_id, record)
            try:
                journal.append(recording.failed(account_id, kept, failure.get("at")))
            except (StateError, OSError) as exc:
                return f"some failure messages recorded by an older version keep their text: {exc}"
    return None
