"""The stop policy: everything that ends a run early, and why, in one place.

A run stops sending (what is left is reported `skipped`, with the reason) when:

- an answer's type says the failure is not about one account (the catalogue's `stops_run`: a missing key, a key
  without the scope, postpress's network down);
- the API asks to wait longer than `--max-retry-after`;
- nothing succeeds: `threshold` failed requests in a row, with no success between, of one kind that is not about
  an account. The kinds: authentication, outage (500, 503 and 504 errors, throttling answers, no answer,
  timeouts), or any one error type repeated. Then the breaker opens: no request that would start an
  operation goes out except one probe at a time, each after a backoff (at least the last Retry-After); a probe's
  success closes it, PROBES failed probes in a row stop the run. Probes refused by throttling count only once the
  breaker has been open for `--throttle-timeout`: a spent quota is waited for;
- the state cannot be recorded, or a signal cancels the run (the engine says so).

Failures that belong to the run rather than to its accounts (`catalogue.run_cause`): while nothing of the run has
succeeded, a 404 saying the account is not there (the API URL reaches a server that is not the API, or the key is
another workspace's), a 401 saying the credentials are invalid (a wrong key), and an outage (no answer, the API
unavailable or refusing everything). The recorder holds them back until a success clears the run. When the breaker
stops a run in which nothing succeeded on one of them, or the run ends with nothing but them, of two accounts or
more (or of one, when no HTTP answer came: that is never an account's doing), `blamed` names the cause: the reason says
it in one sentence, naming the URL and what to check, and the recorder reports those accounts `skipped` for that
reason rather than record them as failed. With the breaker off, they are the accounts' own.

Which failures count: an operation's first attempt (at the end of a run the retries of accounts that really are
broken follow one another with no success between, and say nothing about the API), and a throttled request sent
again (it uses no attempt: an API that refuses everything would otherwise be tried account after account). It
takes failures of at least two accounts: one account the API keeps refusing never opens it. Throttling alone never
stops a run while requests succeed: each success resets the count, and the pace slows down at the first
throttling answer of each round trip.

Why the threshold defaults to the concurrency: the first `concurrency` requests go out together, so fewer
failures than that cannot tell an outage from a few bad accounts that happened to be first; and once that many
failed, at most `concurrency` more are already on their way. A wrong key or a dead API thus costs about two
times `--concurrency` requests, not one per account.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from reconciler import logs
from reconciler.api.catalogue import ErrorKind, run_cause
from reconciler.urls import display_url

log = logs.get("engine")

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
#: What to check, by kind of systemic failure: clauses, without an end of sentence (a report goes on after them).
_ADVICE = {
    "authentication": "check POSTPRESS_API_KEY",
    "outage": "check that the API is up and that --api-url is right",
    "throttled": "the API refuses every request as too many; apply again later, or lower --rate-limit",
}


def default_threshold(concurrency: int) -> int:
    return max(MIN_DEFAULT_THRESHOLD, concurrency)


def kind_of(error: ErrorKind) -> str:
    """The kind a failure counts as: authentication, outage (throttling included: a dying API alternates between
    them), or its own type."""
    if error.throttling:
        return "outage"
    return _SYSTEMIC_CATEGORIES.get(error.category, error.type)


class StopPolicy:
    """The reason the run stopped (None while it goes on) and the breaker; `threshold` 0 turns the breaker off."""

    __slots__ = (
        "reason",
        "cancelled",
        "threshold",
        "open",
        "opened_at",
        "probes_failed",
        "probes_throttled",
        "retry_after",
        "max_retry_after",
        "throttle_timeout",
        "api_url",
        "succeeded_once",
        "blamed",
        "_kind",
        "_first",
        "_first_message",
        "_accounts",
        "_requests",
        "_throttled",
    )

    def __init__(
        self,
        threshold: int,
        max_retry_after: float,
        throttle_timeout: float = 300.0,
        api_url: str | None = None,
    ) -> None:
        self.reason: str | None = None
        #: A signal cancelled the run: nothing more is sent, not even a poll.
        self.cancelled = False
        self.threshold = threshold
        self.open = False
        self.opened_at = 0.0
        self.probes_failed = 0
        #: Probes refused by throttling while the breaker has been open less than `throttle_timeout`.
        self.probes_throttled = 0
        self.throttle_timeout = throttle_timeout
        #: The last Retry-After of a counted failure: a probe waits at least that long.
        self.retry_after = 0.0
        self.max_retry_after = max_retry_after
        #: The API's base URL, for the reason that blames it.
        self.api_url = api_url
        #: Whether any request of the run succeeded: until then, a 404 for every account may be the URL's fault.
        self.succeeded_once = False
        #: What the run blamed instead of its accounts (`catalogue.run_cause`: url, key, outage), if it did.
        self.blamed: str | None = None
        self._kind: str | None = None
        #: The failure that started the breaker's count, and its message.
        self._first: ErrorKind | None = None
        self._first_message: str | None = None
        self._accounts: set[str] = set()
        self._requests = 0
        self._throttled = False

    def stop(self, reason: str) -> None:
        """Stop the run (the first reason given is the one reported)."""
        if not self.reason:
            log.warning("stopping early: %s", reason)
            self.reason = reason

    # -- answers ---------------------------------------------------------------------------------------------
    def succeeded(self) -> None:
        self.succeeded_once = True
        self.open = False
        self.probes_failed = 0
        self.probes_throttled = 0
        self._kind = None
        self._accounts.clear()
        self._requests = 0

    def failed(
        self,
        account_id: str,
        error: ErrorKind,
        retry_after: float | None,
        first: bool,
        message: str | None = None,
    ) -> bool:
        """Count one failed request (`first`: the operation's first attempt); may open the breaker. True when its
        Retry-After is over the cap: the run stops, and the request is not sent again."""
        if retry_after is not None and retry_after > self.max_retry_after:
            self.stop(
                f"the API asked to wait {_seconds(retry_after)} s (Retry-After), over --max-retry-after "
                f"{self.max_retry_after:g}"
            )
            return True
        if self.threshold <= 0 or self.open or not (first or error.throttling):
            return False
        kind = kind_of(error)
        if kind != self._kind:
            self._kind, self._first, self._first_message = kind, error, message
            self._accounts = set()
            self._requests = 0
        self._accounts.add(account_id)
        self._requests += 1
        self._throttled = error.throttling  # the advice follows the last failure counted
        self.retry_after = retry_after or 0.0
        if self._requests >= self.threshold and len(self._accounts) >= min(2, self.threshold):
            self.open = True
            self.opened_at = time.monotonic()
        return False

    def failed_finally(self, error: ErrorKind) -> None:
        """An operation ended in `error`: some types stop the run whatever else happens (the catalogue's
        `stops_run`), and the reason says what to do, since no account's failure will."""
        if error.stops_run:
            hint = error.hint.rstrip(".")
            if hint[:1].isupper() and not hint.startswith("API"):
                hint = hint[0].lower() + hint[1:]
            self.stop(f"{error.type} (HTTP {error.status}) is not about one account: {hint}")

    def probe_failed(self, throttled: bool = False) -> bool:
        """Count a failed probe; True when the probes are exhausted and the run stops.

        A probe refused by throttling does not count while the breaker has been open less than
        `--throttle-timeout`: an API whose quota is spent for a while is waited for (one probe at a time, each
        after a longer backoff), as a throttled request is."""
        if throttled and time.monotonic() - self.opened_at < self.throttle_timeout:
            self.probes_throttled += 1
            return False
        self.probes_failed += 1
        if self.probes_failed < PROBES:
            return False
        self.stop(self._breaker_reason())
        return True

    def suspects(self, error: ErrorKind) -> bool:
        """Whether `error` may be the run's fault rather than its account's (`catalogue.run_cause`), while nothing
        of the run has succeeded yet."""
        return not self.succeeded_once and run_cause(error) is not None

    def blame(self, held: Sequence[tuple[str, ErrorKind, int, str | None]]) -> bool:
        """At the end of a run the breaker did not stop, in which nothing succeeded and every failure was held
        back (`held`: account, failure, requests, message): whether they are the run's. They are when the breaker
        is on, they have one cause, and they come from two accounts or more, or got no HTTP answer at all (which
        says nothing of an account). Then the run stops with the reason, and `blamed` names the cause."""
        causes = {run_cause(kind) for _, kind, _, _ in held}
        accounts = {account_id for account_id, _, _, _ in held}
        cause = causes.pop() if len(causes) == 1 else None
        if self.threshold <= 0 or self.reason or self.succeeded_once or cause is None:
            return False
        if len(accounts) < 2 and any(kind.category != "network" for _, kind, _, _ in held):
            return False  # one account answered (or timed out): its own fault, as likely as the run's
        _, kind, _, message = held[0]
        requests = sum(sent for _, _, sent, _ in held)
        who = "the one account" if len(accounts) == 1 else f"all {len(accounts)} accounts"
        said = (
            f"{who} sent to ({requests} request{'s' if requests != 1 else ''}) failed with "
            f"{_failure(kind, message)}, and none succeeded: "
        )
        self.blamed = cause
        self.stop(said + _blamed(cause, kind, self.api_url))
        return True

    def _breaker_reason(self) -> str:
        first = self._first
        cause = run_cause(first) if first is not None else None
        if not self.succeeded_once and first is not None and cause is not None:
            self.blamed = cause
            said = (
                f"the first {self._requests} requests ({len(self._accounts)} accounts) and {self.probes_failed} "
                f"probes after them all failed with {_failure(first, self._first_message)}, and none succeeded: "
            )
            return said + _blamed(cause, first, self.api_url)
        kind = "throttled" if self._kind == "outage" and self._throttled else self._kind
        advice = _ADVICE.get(kind or "", "") or "the API fails the same way for every account"
        first_type = first.type if first is not None else None
        return (
            f"the last {self._requests} requests ({len(self._accounts)} accounts) all failed with "
            f"{first_type}, and {self.probes_failed} probes after them: {advice}"
        )


def _failure(kind: ErrorKind, message: str | None) -> str:
    """A failure as a reason names it: its type and HTTP status, or what happened when no HTTP answer came."""
    if kind.status is not None:
        return f"{kind.type} (HTTP {kind.status})"
    said = (message or "no HTTP answer").rstrip(".")
    return f"{kind.type} ({said})"


def _blamed(cause: str, kind: ErrorKind, api_url: str | None) -> str:
    """What is to blame instead of the accounts, and what to check: clauses without an end of sentence."""
    at = f" at {display_url(api_url)}" if api_url else ""
    if cause == "key":
        return f"the API{at} does not accept the key (no account is at fault): check POSTPRESS_API_KEY"
    if cause == "outage" and kind.status == 429:
        return (
            f"the API{at} refuses every request as too many (no account is at fault): apply again later, or "
            "lower --rate-limit"
        )
    if cause == "outage":
        return (
            f"the API{at} is down or out of reach (no account is at fault): check that the API is up and that "
            "--api-url is right"
        )
    url = f" {display_url(api_url)}" if api_url else ""
    if api_url and urlsplit(api_url).path.rstrip("/").endswith("/api/v1"):
        # The path is the API's: more likely the key belongs to another workspace than the URL is wrong.
        return (
            f"none of these accounts is known to the API at{url} with this key, not a fault of each account; "
            "check that POSTPRESS_API_KEY is a key of the accounts' workspace, and that the URL reaches the API "
            "and not another server"
        )
    return (
        f"the API URL{url} is the likely cause, not the accounts; check that it reaches the API (its path ends in "
        "/api/v1) and that POSTPRESS_API_KEY is a key of the accounts' workspace"
    )


def _seconds(seconds: float) -> str:
    """A wait as a whole number, or `1e+20` and `inf` past a billion seconds (a Retry-After of 400 digits)."""
    return f"{seconds:.0f}" if seconds < 1e9 else f"{seconds:.3g}"
