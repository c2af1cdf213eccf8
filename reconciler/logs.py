"""`--verbose`: debug logging to stderr, every record redacted of known secrets and escaped for the terminal.

What is logged never includes a secret by construction (request bodies and headers are not logged; messages
name accounts, routes, statuses, durations and state locations). The redacting filter covers what a future
log line, or a library's, might let through: the API key and each distinct secret resolved from the config
are registered with the run's redactor (secrets.Redactor) and replaced by `***` in every record, and so is the
password of any URL in a record (`https://user:PASSWORD@host`, `?password=...`). A record quotes outside text
(an account id, an API answer): its control characters are escaped, so one record is one line that cannot drive
the terminal; only an attached traceback keeps its own line breaks.
"""

from __future__ import annotations

import logging

from reconciler.escape import terminal
from reconciler.secrets.redaction import REDACTED as REDACTED
from reconciler.secrets.redaction import Redactor
from reconciler.urls import redact_credentials

LOGGER_NAME = "reconciler"
_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replace every registered secret value in a record's final message (and drop its arguments); escape its
    control characters. `redactor`: the run's, which knows its secrets."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = terminal(self.redactor.redact(redact_credentials(record.getMessage())))
        trace: list[str] = []
        if record.exc_text:  # the traceback too, then no handler formats it again
            trace.append(record.exc_text)
        elif record.exc_info:
            trace.append(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            trace.append(record.stack_info)
        for text in trace:
            redacted = self.redactor.redact(redact_credentials(text))
            message += "".join("\n" + terminal(line) for line in redacted.split("\n"))
        record.msg = message
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        return True


# Without --verbose nothing of ours is logged: not even warnings through logging's last-resort handler (the
# CLI prints what the user needs as its own one-line messages).
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


def configure(verbose: bool, redactor: Redactor) -> None:
    """Send reconciler's debug log, and warnings from the libraries it uses, to stderr, redacted by the run's
    `redactor`."""
    if not verbose:
        return
    handler = logging.StreamHandler()  # logging writes the records to stderr
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)


def get(name: str) -> logging.Logger:
    """The logger of one of reconciler's modules (`reconciler.<name>`)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
