"""Connecting to the state's database, and its errors as one line that never holds the URL's password."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg

from reconciler.errors import MESSAGE_LIMIT, StateError
from reconciler.secrets.redaction import Redactor
from reconciler.state.postgres.url import MAX_IDENTIFIER_BYTES
from reconciler.urls import REDACTED, display_url, redact_credentials, url_passwords

#: psycopg logs a warning ("error ignored terminating <psycopg.Pipeline>...") when a connection is lost inside
#: a pipeline; without --verbose, logging's last-resort handler would print it beside our own one-line error.
#: With --verbose it still reaches the log (a NullHandler does not stop propagation).
logging.getLogger("psycopg").addHandler(logging.NullHandler())


class Database:
    """The server a state URL names: `connect()` to it, and `errors(doing)` around what is done there.

    `shown` is the URL as messages show it (its password replaced)."""

    def __init__(self, url: str, conninfo: str, redactor: Redactor | None = None) -> None:
        self.conninfo = conninfo
        self.shown = display_url(url)
        #: The run's: the server's messages are redacted of every secret it knows (`message_of`).
        self._redactor = Redactor() if redactor is None else redactor
        self._passwords = url_passwords(url)
        for password in self._passwords:  # so that any outside text quoting it, or a piece of it, is redacted
            self._redactor.register(password)

    def connect(self, application_name: str = "reconciler") -> psycopg.Connection[Any]:
        name = application_name.encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore")
        try:
            return psycopg.connect(self.conninfo, application_name=name, connect_timeout=10)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to PostgreSQL at {self.shown}: {self.message_of(exc)}"
            ) from None

    def message_of(self, exc: BaseException) -> str:
        """An exception's text as one line, without the URL's password (libpq quotes parts of the URL)."""
        text = str(exc) or type(exc).__name__
        for secret in self._passwords:
            text = text.replace(secret, REDACTED)
        text = one_line(self._redactor.redact(redact_credentials(text)))
        return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "…"

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn a database error inside the block into one StateError line: `<location>: <doing>: <why>`."""
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(f"{self.shown}: {doing}: {self.message_of(exc)}") from None


def one_line(text: str) -> str:
    """libpq's text (one line per host tried, then hints) as one line: its lines joined as sentences, `. `
    before one that starts with a capital (`Connection refused. Is the server running ...?`), else `; `, and a
    space alone after a line that ends in punctuation; whitespace squeezed."""
    joined = ""
    for line in (" ".join(line.split()) for line in text.splitlines()):
        if not line:
            continue
        if not joined or joined[-1] in ".:;,?!":
            joined += (" " if joined else "") + line
        else:
            joined += (". " if line[0].isupper() else "; ") + line
    return joined


def fetch_value(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the cursor's next row; None when there is none."""
    row = cursor.fetchone()
    return row[0] if row else None
