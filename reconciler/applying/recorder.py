"""What a run did: one `Result` per operation, and a journal event for each that changes the state.

A success's event is appended by the sender before its permit is given back (so it is durable first); here go
the failures, the skips and the forgets, and the results of all.

A failure that may be the run's fault rather than its account's (a 404 "no such account", a 401 "invalid
credentials", no answer or the API unavailable, while nothing of the run has succeeded: `StopPolicy.suspects`) is
held back, neither reported nor recorded yet. The first success clears the run: what was held is then reported and
recorded as failed, as it is when the run ends any other way. When the stop policy blames the run
(`StopPolicy.blamed`: the breaker stopped it on them, or the run ended with nothing but them), what was held for
that cause is reported `skipped` with the run's reason, and the state keeps no failure for those accounts: the
reason was not theirs. An answer whose type stops the run (the catalogue's `stops_run`: a missing key, a key
without the scope, postpress's network down) is never its account's failure either: it is skipped at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.api.answer import Answer
from reconciler.api.catalogue import run_cause
from reconciler.applying.options import Progress
from reconciler.applying.stopping import StopPolicy
from reconciler.model import Change, Operation, Result
from reconciler.state import Journal
from reconciler.state import events as recording

if TYPE_CHECKING:
    from reconciler.api.catalogue import ErrorKind
    from reconciler.state.events import Event


class Recorder:
    def __init__(self, journal: Journal, stop: StopPolicy, progress: Progress | None = None) -> None:
        self.journal = journal
        self.results: list[Result] = []
        self._stop = stop  # why the run stopped, for the message of what it skipped
        self._progress = progress or Progress()  # the failures so far, for the progress display
        #: Failures that may be the run's fault: their results, events and kinds, until the run says whose they are.
        self._held: list[tuple[Result, Event, ErrorKind]] = []
        #: Failures reported as their accounts' own: a run with any is not blamed at its end.
        self._own_failures = 0

    def succeeded(
        self,
        account_id: str,
        operation: Operation,
        answer: Answer,
        attempts: int,
        message: str | None = None,
        polls: int = 0,
    ) -> None:
        if self._held:  # something succeeded: the URL reaches the API, and what was held is the accounts' own
            self._release()
        self.results.append(
            Result(
                account_id=account_id,
                operation=operation,
                outcome="succeeded",
                http_status=answer.status,
                attempts=attempts,
                message=message,
                polls=polls,
            )
        )

    def failed(
        self, account_id: str, operation: Operation, answer: Answer, attempts: int, polls: int = 0
    ) -> None:
        kind = answer.error
        assert kind is not None
        result = Result(
            account_id=account_id,
            operation=operation,
            outcome="failed",
            http_status=answer.status,
            error_type=kind.type,
            category=kind.category,
            retryable=kind.retryable,
            attempts=attempts,
            message=answer.message,
            polls=polls,
        )
        event = recording.failed(
            account_id,
            {
                "operation": operation,
                "error_type": kind.type,
                "http_status": answer.status,
                "message": answer.message,
            },
        )
        if kind.stops_run:  # the key or postpress itself, not the account: the run stops, and says why
            self._stop.failed_finally(kind)
            self.skipped(account_id, operation, attempts=attempts, http_status=answer.status, polls=polls)
            return
        self._progress.count_failure(kind.type)
        if self._stop.suspects(kind):
            self._held.append((result, event, kind))
        else:
            if self._held and self._stop.succeeded_once:
                self._release()
            self._own_failures += 1
            self.results.append(result)
            self.journal.append(event)

    def _release(self) -> None:
        """Report and record the held failures as the accounts' own."""
        held, self._held = self._held, []
        for result, event, _ in held:
            self.results.append(result)
            self.journal.append(event)

    def settle(self) -> None:
        """At the end of the run: the held failures of the cause the run was blamed for are skipped for the run's
        reason (the requests were sent: their attempts and status are kept); any other is its account's own. A
        run that nothing but held failures ended, with no stop, may be blamed now (`StopPolicy.blame`)."""
        stop = self._stop
        if self._held and stop.blamed is None and not self._own_failures:
            stop.blame([(r.account_id, kind, r.attempts, r.message) for r, _, kind in self._held])
        held, self._held = self._held, []
        message = self._skip_message()
        for result, event, kind in held:
            if stop.blamed is None or run_cause(kind) != stop.blamed:
                self.results.append(result)
                self.journal.append(event)
                continue
            self.results.append(
                Result(
                    result.account_id,
                    result.operation,
                    "skipped",
                    http_status=result.http_status,
                    attempts=result.attempts,
                    message=message,
                    polls=result.polls,
                    held_back=True,
                )
            )
            self._progress.failed -= 1

    def _skip_message(self) -> str:
        return f"skipped: the run stopped early ({self._stop.reason})"

    def skipped(
        self,
        account_id: str,
        operation: Operation,
        message: str | None = None,
        attempts: int = 0,
        http_status: int | None = None,
        polls: int = 0,
    ) -> None:
        """An operation not done: not started, or stopped before its next attempt (`attempts` were sent, each
        failed; when the run blamed a cause of its own, the account is counted among those it held back), or
        ended by an answer that stopped the run (`http_status`: it is not the account's failure)."""
        reason = message or self._skip_message()
        held_back = attempts > 0 and (self._stop.blamed is not None or http_status is not None)
        self.results.append(
            Result(
                account_id=account_id,
                operation=operation,
                outcome="skipped",
                http_status=http_status,
                attempts=attempts,
                message=reason,
                polls=polls,
                held_back=held_back,
            )
        )

    def forgotten(self, account_id: str) -> None:
        self.journal.append(recording.forgotten(account_id))
        self.results.append(Result(account_id, "forget", "succeeded"))

    def skip_unreported(self, changes: list[Change]) -> None:
        """Every operation of the plan ends with a result: those a stop kept from starting are skipped."""
        reported = {(result.account_id, result.operation) for result in self.results}
        for change in changes:
            if change.patch and (change.account_id, "patch") not in reported:
                self.skipped(change.account_id, "patch")
            if change.resync and (change.account_id, "resync") not in reported:
                self.skipped(change.account_id, "resync")
