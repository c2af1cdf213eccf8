"""What a run did: one `Result` per operation, and a journal event for each that changes the state.

A success's event is appended by the sender before its permit is given back (so it is durable first); here go
the failures, the skips and the forgets, and the results of all.
"""

from __future__ import annotations

from reconciler.api.answer import Answer
from reconciler.applying.options import Progress
from reconciler.applying.stopping import StopPolicy
from reconciler.model import Change, Operation, Result
from reconciler.state import Journal
from reconciler.state import events as recording


class Recorder:
    def __init__(self, journal: Journal, stop: StopPolicy, progress: Progress | None = None) -> None:
        self.journal = journal
        self.results: list[Result] = []
        self._stop = stop  # why the run stopped, for the message of what it skipped
        self._progress = progress or Progress()  # the failures so far, for the progress display

    def succeeded(
        self,
        account_id: str,
        operation: Operation,
        answer: Answer,
        attempts: int,
        message: str | None = None,
        polls: int = 0,
    ) -> None:
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
        self.results.append(
            Result(
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
        )
        self.journal.append(
            recording.failed(
                account_id,
                {
                    "operation": operation,
                    "error_type": kind.type,
                    "http_status": answer.status,
                    "message": answer.message,
                },
            )
        )
        self._progress.count_failure(kind.type)
        self._stop.failed_finally(kind)

    def skipped(self, account_id: str, operation: Operation, message: str | None = None) -> None:
        reason = message or f"skipped: the run stopped early ({self._stop.reason})"
        self.results.append(
            Result(account_id=account_id, operation=operation, outcome="skipped", message=reason)
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
