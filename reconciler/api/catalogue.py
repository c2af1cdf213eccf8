"""The one catalogue of error types: every type of both API reference pages, plus the client's own.

Classification, retries, stopping early and the report's hints all read this table; nothing else in the code
names an error type.
"""

from __future__ import annotations

from reconciler.plain import Compared

#: Answers by which an API refuses load: any 429, and a 503 or 504 that says the service is overloaded or comes
#: from a gateway (a type the catalogue does not know). The contract's "throttling answers (429, 503, 504)" names
#: the statuses they come with, not every type of them: a 503 or 504 about one account's client session
#: (no_client_session, no_channel, no_handler) or its provider (request_timeout) is that account's failure,
#: retried with attempts (as throttling, one such account would be re-sent for --throttle-timeout and slow the
#: pace of all), and network_down stops the run, as the contract's stop-early list says.
THROTTLING_STATUSES = frozenset((429, 503, 504))
THROTTLING_TYPES = frozenset(("errors/too_many_requests", "errors/service_unavailable"))


class ErrorKind(Compared):
    """One row of the catalogue (or a kind made for an unknown type): never changed once made, equal to another
    with the same fields, and hashable."""

    __slots__ = ("type", "status", "category", "retryable", "stops_run", "hint", "throttling")

    def __init__(
        self, type: str, status: int | None, category: str, retryable: bool, stops_run: bool, hint: str
    ) -> None:
        self.type = type
        self.status = status
        self.category = category
        self.retryable = retryable
        self.stops_run = stops_run
        self.hint = hint
        #: The API refusing load, not this request: the pace slows down and the request is sent again later
        #: without using an attempt.
        self.throttling = status in THROTTLING_STATUSES and (status == 429 or type in THROTTLING_TYPES)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash((self.type, self.status, self.category))


def _rows(
    status: int | None, category: str, retryable: bool, entries: dict[str, str], stops: tuple[str, ...] = ()
) -> list[ErrorKind]:
    return [
        ErrorKind(name, status, category, retryable, name in stops, hint) for name, hint in entries.items()
    ]


_TABLE: list[ErrorKind] = [
    *_rows(
        400,
        "invalid_request",
        False,
        {
            "errors/invalid_parameters": (
                "One or more request parameters are invalid or missing: check the account's settings."
            ),
            "errors/missing_parameters": "One or more request parameters are missing: check the account's settings.",
            "errors/invalid_request": (
                "One or a combination of request parameters are invalid: check the account's settings."
            ),
            "errors/malformed_request": "The provider rejected the request: check the proxy settings.",
            "errors/content_too_large": "The request payload is too large for the provider.",
            "errors/too_many_characters": "A value exceeds the provider's character limit.",
            "errors/unescaped_characters": (
                "The request path contains unescaped characters: report this as a reconciler bug."
            ),
            "errors/limit_too_high": "Pagination limit too high.",
            "errors/invalid_url": "The provided URL is not valid: check --api-url.",
        },
    ),
    *_rows(
        401,
        "authentication",
        False,
        {
            "errors/missing_credentials": "The API key is missing: set POSTPRESS_API_KEY.",
            "errors/multiple_sessions": (
                "LinkedIn limits multiple sessions on this Recruiter"
                " account: reconnect it with the cookie method."
            ),
            "errors/invalid_checkpoint_solution": (
                "The checkpoint resolution did not pass: resolve it, then apply again."
            ),
            "errors/invalid_proxy_credentials": "The proxy rejected its username/password: fix them in the config.",
            "errors/checkpoint_error": "The account's checkpoint does not appear resolvable: contact support.",
            "errors/invalid_credentials": (
                "The credentials are invalid: check POSTPRESS_API_KEY, or reconnect the account."
            ),
            "errors/expired_credentials": "The account's credentials expired: reconnect the account.",
            "errors/insufficient_privileges": (
                "The API key lacks the scope for this: use a key with account write access."
            ),
            "errors/disconnected_account": "The account is disconnected from its provider: reconnect it.",
            "errors/disconnected_feature": "The service for this feature is disconnected: reconnect it.",
            "errors/invalid_credentials_but_valid_account_imap": (
                "IMAP/SMTP credentials are invalid: fix them on the account."
            ),
            "errors/expired_link": "The link has expired: generate a new one.",
            "errors/wrong_account": "The credentials do not match this account: reconnect the right account.",
        },
        stops=("errors/missing_credentials", "errors/insufficient_privileges"),
    ),
    *_rows(
        403,
        "forbidden",
        False,
        {
            "errors/account_restricted": "The provider restricted the account: resolve it with the provider.",
            "errors/account_mismatch": "The credentials don't match the requested account.",
            "errors/insufficient_permissions": "The account lacks the required permissions.",
            "errors/session_mismatch": "The session does not match the account: reconnect it.",
            "errors/feature_not_subscribed": "The feature is not in your subscription.",
            "errors/subscription_required": "A subscription is required for this feature.",
            "errors/unknown_authentication_context": "Unknown authentication context: reconnect the account.",
            "errors/action_required": "The provider requires an action on the account first.",
            "errors/resource_access_restricted": "Access to this resource is restricted.",
        },
    ),
    *_rows(
        404,
        "not_found",
        False,
        {
            "errors/resource_not_found": (
                "No such account in this workspace: fix the id or `state forget` it (when every account gets "
                "this, check --api-url and the key's workspace instead)."
            ),
            "errors/invalid_resource_identifier": "Not a valid account id: fix the id in the config.",
        },
    ),
    *_rows(
        429,
        "rate_limited",
        True,
        {
            "errors/too_many_requests": (
                "Throttled past --throttle-timeout: apply again later, or lower --concurrency or --rate-limit."
            ),
        },
    ),
    *_rows(
        500,
        "server_error",
        True,
        {
            "errors/unexpected_error": "Something went wrong at postpress: apply again later.",
            "errors/provider_error": "The provider has operational problems: apply again later.",
        },
    ),
    *_rows(
        500,
        "server_error",
        False,
        {
            "errors/authentication_intent_error": "The authentication intent was killed: start the connection again.",
        },
    ),
    *_rows(
        501,
        "not_implemented",
        False,
        {
            "errors/feature_not_implemented": (
                "Not supported for this account's provider yet: remove it from the config."
            ),
        },
    ),
    *_rows(
        502,
        "proxy_error",
        True,
        {
            "errors/proxy_error": "The proxy is not working: check its host, port and protocol.",
        },
    ),
    *_rows(
        503,
        "unavailable",
        True,
        {
            "errors/no_client_session": "No client session is running: apply again shortly.",
            "errors/no_channel": "No channel to the client session: apply again shortly.",
            "errors/no_handler": "Handler missing for that request: apply again shortly.",
            "errors/network_down": "postpress's network is down: apply again shortly.",
            "errors/service_unavailable": "postpress is temporarily unavailable: apply again later.",
        },
        stops=("errors/network_down",),
    ),
    *_rows(
        504,
        "timeout",
        True,
        {
            "errors/request_timeout": (
                "The provider did not answer in time: apply again; contact support if it persists."
            ),
        },
    ),
    # The client's own types.
    ErrorKind(
        "unexpected_response",
        None,
        "unexpected",
        False,
        False,
        "The API answered something other than the documented success: check --api-url.",
    ),
    ErrorKind(
        "network_error",
        None,
        "network",
        True,
        False,
        "No HTTP answer (connection refused, reset or TLS failure): check --api-url and the network.",
    ),
    ErrorKind(
        "client_timeout",
        None,
        "timeout",
        True,
        False,
        "No answer within --timeout: apply again, or raise --timeout.",
    ),
    ErrorKind(
        "sync_error",
        None,
        "sync",
        False,
        False,
        "The resync ended in SYNC_ERROR: it stays planned; apply again to retry it.",
    ),
    ErrorKind(
        "sync_timeout",
        None,
        "sync",
        False,
        False,
        "The resync did not finish within --sync-timeout: it stays planned; raise --sync-timeout.",
    ),
    ErrorKind(
        "unknown",
        None,
        "unexpected",
        False,
        False,
        "An error the API reference does not list: see the message and the HTTP status.",
    ),
]

CATALOGUE: dict[str, ErrorKind] = {row.type: row for row in _TABLE}

_CATEGORY_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    403: "forbidden",
    404: "not_found",
    429: "rate_limited",
    500: "server_error",
    501: "not_implemented",
    502: "proxy_error",
    503: "unavailable",
    504: "timeout",
}
_RETRYABLE_STATUSES = frozenset((429, 500, 502, 503, 504))


def classify(error_type: str | None, status: int | None) -> ErrorKind:
    """The catalogue row for an answer: by its `type` when known, else derived from its HTTP status."""
    if error_type in CATALOGUE:
        return CATALOGUE[error_type]
    category = _CATEGORY_BY_STATUS.get(status or 0, "unexpected")
    kind = ErrorKind(
        error_type or "unknown",
        status,
        category,
        (status or 0) in _RETRYABLE_STATUSES,
        False,
        CATALOGUE["unknown"].hint,
    )
    kind.throttling = kind.throttling or status in THROTTLING_STATUSES  # a gateway's 503 or 504, say
    return kind


def maybe_wrong_url(kind: ErrorKind) -> bool:
    """A 404 that says the resource is not there (not that the id is malformed): about one account, unless every
    account of a run gets it and none succeeds. Then the base URL reaches a server that is not the API (a path
    without `/api/v1`), or the key is another workspace's: the stop policy blames the URL, not the accounts."""
    return kind.status == 404 and kind.type != "errors/invalid_resource_identifier"


#: Types that say the API fails whatever the request (apart from throttling and what has no HTTP answer).
_OUTAGE_TYPES = frozenset(("errors/unexpected_error", "errors/service_unavailable"))


def run_cause(kind: ErrorKind) -> str | None:
    """What a failure blames instead of its account when every account of a run gets it and none succeeds:

    - `url`: a 404 saying the account is not there (`maybe_wrong_url`);
    - `key`: a 401 saying the credentials are invalid (or a 401 of a type the API does not list, as from a
      gateway): a wrong API key is refused the same way for every account;
    - `outage`: no HTTP answer, no answer in time, a throttling answer (a 429 for every request is a quota
      spent for longer than the run waits), a 500 that says nothing of the account, or a 5xx of a type the API
      does not list (a gateway's page);
    - None: the account's own (a proxy that does not work, a session of the account, a provider's timeout...).
    """
    unlisted = kind.type == "unknown" or kind.type not in CATALOGUE
    status = kind.status or 0
    if maybe_wrong_url(kind):
        return "url"
    if status == 401 and (kind.type == "errors/invalid_credentials" or unlisted):
        return "key"
    if kind.category == "network" or kind.type == "client_timeout" or kind.throttling:
        return "outage"
    if kind.type in _OUTAGE_TYPES or (status >= 500 and unlisted):
        return "outage"
    return None
