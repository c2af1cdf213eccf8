"""The breaker: stop sending when the API fails for everyone, not for one account.

Retries are right for one account at a time; they are wrong for a run whose every request fails the same way
(a wrong API key, an API that is down). Without a breaker such a run sends one request per account, and more
for retries, before it ends. The breaker watches attempts (not only final results): when `threshold`
consecutive failed first attempts of distinct accounts share one kind that is not about an account, with no
success between, it opens. (Only first attempts count: at the end of a run the retries of the accounts that
really are broken follow each other with no success between, and they say nothing about the API.) While it
is open no new request goes out except one probe at a time; a probe's success closes it, and `PROBES` failed
probes in a row end the run.

Why the threshold defaults to the concurrency: the first `concurrency` requests go out together, so fewer
failures than that cannot tell an outage from a few bad accounts that happened to be first; and once that many
failed, at most `concurrency` more are already on their way. A wrong key thus costs about two times
`--concurrency` requests, not one per account.
"""

from __future__ import annotations

from reconciler.api.catalogue import ErrorKind
from reconciler.plain import Plain

#: Probes that must all fail before the run stops; each waits longer than the one before.
PROBES = 3
#: The smallest default threshold: below it a handful of bad accounts at the start would open the breaker.
MIN_DEFAULT_THRESHOLD = 5
#: Failures of these categories are about the API or the key, whatever the account: they count together.
_SYSTEMIC_CATEGORIES = {
    "authentication": "authentication",
    "unavailable": "outage",
    "network": "outage",
    "timeout": "outage",
    "server_error": "outage",
}
#: What to check, by kind of systemic failure.
_ADVICE = {
    "authentication": "is POSTPRESS_API_KEY right?",
    "outage": "is the API up and --api-url right?",
    "rate_limited": "lower --concurrency or set --rate-limit.",
}


def default_threshold(concurrency: int) -> int:
    return max(MIN_DEFAULT_THRESHOLD, concurrency)


def kind_of(error: ErrorKind, retry_after: float | None) -> str | None:
    """The kind a failure counts as, or None when it says nothing about the API as a whole (a 429 that says
    when to come back is paced, not counted)."""
    if error.category == "rate_limited":
        return None if retry_after is not None else "rate_limited"
    return _SYSTEMIC_CATEGORIES.get(error.category, error.type)


class Breaker(Plain):
    """Consecutive failures of one kind across distinct accounts; `threshold` 0 turns it off."""

    __slots__ = ("threshold", "open", "probes_failed", "_kind", "_accounts", "_first_type", "_attempts")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.open = False
        self.probes_failed = 0
        self._kind: str | None = None
        self._accounts: set[str] = set()
        self._first_type: str | None = None
        self._attempts = 0

    def success(self) -> None:
        self.open = False
        self.probes_failed = 0
        self._kind = None
        self._accounts.clear()
        self._attempts = 0

    def failure(self, account_id: str, error: ErrorKind, retry_after: float | None, first: bool) -> None:
        """Count one failed attempt (`first`: the account's first attempt); may open the breaker."""
        if self.threshold <= 0 or self.open or not first:
            return
        kind = kind_of(error, retry_after)
        if kind is None:
            return
        if kind != self._kind:
            self._kind, self._first_type = kind, error.type
            self._accounts = set()
            self._attempts = 0
        self._accounts.add(account_id)
        self._attempts += 1
        if len(self._accounts) >= self.threshold:
            self.open = True

    def probe_failed(self) -> bool:
        """Count a failed probe; True when the probes are exhausted and the run must stop."""
        self.probes_failed += 1
        return self.probes_failed >= PROBES

    def reason(self) -> str:
        """Why the run stopped, for the report and the summary line."""
        advice = _ADVICE.get(self._kind or "", "")
        if not advice:
            advice = "the API fails the same way for every account."
        return (
            f"the last {self._attempts} requests ({len(self._accounts)} accounts) all failed with "
            f"{self._first_type}, and {self.probes_failed} probes after them: {advice}"
        )
