"""The API's answer as the engine acts on it (`Answer`), and how an error answer is read.

The transport (transport.py) reads an answer off the wire (`RawAnswer`: status, bytes, Retry-After); the client
(client.py) judges it into an `Answer`. Kept apart from both so that planning-only commands never import pycurl.

This is where text from the API enters: an answer may echo the request (its body, its X-API-KEY header) in
`detail` or `title`, or carry any text in `type`. Every message of an answer is redacted of every secret the
run knows (its `Redactor`, which the client holds) and bounded when the answer is built (`failure`), and a
`type` the catalogue does not know is redacted, percent-encoded and bounded, before the engine records or
reports either; such a type and the detail are also redacted of a secret split between them
(`Redactor.redact_together`).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from reconciler import logs
from reconciler.api.catalogue import CATALOGUE, ErrorKind, classify
from reconciler.plain import Compared

if TYPE_CHECKING:
    from reconciler.secrets.redaction import Redactor

#: The longest message kept from an answer (after redaction).
MESSAGE_LIMIT = 300
#: The longest error type kept from an answer whose type the catalogue does not know.
TYPE_LIMIT = 100
#: What an unknown type keeps as is; anything else is percent-encoded (`errors/a%20b`).
_TYPE_SAFE = "/:._-~*"
_CUT_ESCAPE = re.compile(r"%[0-9A-F]?\Z")

_log = logs.get("http")


class Answer(Compared):  # not frozen, made once per request: see model.PER_ITEM
    """What one request came to: the API's answer, judged, or the client's own error (`status` None: no answer).
    `error` is None on success. `message` is kept as given: one built from an answer, or quoting one, is made by
    `failure`, which redacts it."""

    __slots__ = ("status", "body", "error", "message", "retry_after")

    def __init__(
        self,
        status: int | None,
        body: Any,
        error: ErrorKind | None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.error = error
        self.message = message
        self.retry_after = retry_after


def failure(
    status: int | None,
    body: Any,
    error: ErrorKind | None,
    message: str,
    redactor: Redactor,
    retry_after: float | None = None,
) -> Answer:
    """An answer with a message built from an answer, or quoting one: redacted by the run's `redactor` and cut to
    MESSAGE_LIMIT characters, here, once for all uses."""
    return Answer(status, body, error, redactor.redact(message, limit=MESSAGE_LIMIT), retry_after)


_PLAIN = re.compile(r"[A-Za-z0-9_~-]+")


def account_path(account_id: str) -> str:
    """The account id as one percent-encoded path segment (dots too, so `..` can never climb)."""
    if _PLAIN.fullmatch(account_id):  # the common case, 10x cheaper than quote()
        return account_id
    return quote(account_id, safe="").replace(".", "%2E")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from a Retry-After header: a non-negative integer of ASCII digits, or an HTTP date (a
    date in the past is 0). Anything else (`-1`, `1.5`, `1e308`, `NaN`, `²`, a date that cannot be, a year past
    9999) is treated as absent, and the verbose log says so. A number too large for a float is infinite: over
    any --max-retry-after."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # not "²": str.isdigit() accepts it, float() does not
        return float(text)
    import email.utils  # an HTTP-date here is rare; the import is not

    try:
        moment = email.utils.parsedate_to_datetime(text)
        seconds = moment.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, OSError):  # a year past 2**31 is an OverflowError
        _log.debug("Retry-After %r is neither seconds nor an HTTP date: ignored", value[:80])
        return None
    return max(0.0, seconds)


#: A 404 about the route, not the account, means the base URL is wrong.
ROUTE_HINT = "the API URL should end in /api/v1, e.g. https://api.postpress.ai/api/v1"


def outside_type(error_type: str, redactor: Redactor) -> str:
    """An error type as the API wrote it, safe to record and show: a catalogued type as is; any other redacted
    of known secrets, percent-encoded outside a small safe set (no space, markup or control character) and cut
    to TYPE_LIMIT characters."""
    if error_type in CATALOGUE:
        return error_type
    encoded = quote(redactor.redact(error_type, limit=TYPE_LIMIT), safe=_TYPE_SAFE)[:TYPE_LIMIT]
    return _CUT_ESCAPE.sub("", encoded)


def error_answer(status: int, body: Any, retry_after: str | None, redactor: Redactor) -> Answer:
    """The `Answer` to an answer that is not a 2xx: `body` its decoded JSON (None when it is not JSON),
    `retry_after` its Retry-After header as written; what it quotes is redacted by the run's `redactor`."""
    error_type = body.get("type") if isinstance(body, dict) and isinstance(body.get("type"), str) else None
    detail = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
    if error_type is not None and error_type not in CATALOGUE and isinstance(detail, str):
        # A secret split between the two (its start ending the type, its end starting the detail, or the other
        # way round), each part too short to be recognised alone, is redacted where the parts meet.
        error_type, detail = redactor.redact_together([error_type, detail], [TYPE_LIMIT, MESSAGE_LIMIT])
    kind = classify(None if error_type is None else outside_type(error_type, redactor), status)
    message = f"HTTP {status}" + (f": {detail}" if isinstance(detail, str) else "")
    if status == 404 and isinstance(detail, str) and "route" in detail.lower():
        message += f" ({ROUTE_HINT})"
    return failure(status, body, kind, message, redactor, parse_retry_after(retry_after))
