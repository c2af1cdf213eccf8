"""`--verbose`: debug logging to stderr, with every known secret value redacted as a last line of defence.

What is logged never includes a secret by construction (request bodies and headers are not logged; messages
name accounts, routes, statuses, durations and state locations). The redacting filter covers what a future
log line, or a library's, might let through: the API key and each distinct secret resolved from the config
are registered (only while verbose logging is on) and replaced by `***` in every record, and so is the
password of any URL in a record (`https://user:PASSWORD@host`, `?password=...`): the API URL, say.
"""

from __future__ import annotations

import logging
import re
import sys

from reconciler import secrets
from reconciler.urls import redact_credentials

LOGGER_NAME = "reconciler"
REDACTED = "***"
_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replace every registered secret value in a record's final message (and drop its arguments)."""

    def __init__(self) -> None:
        super().__init__()
        self._pattern: re.Pattern[str] | None = None
        self._pattern_size = -1

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_text:  # the traceback too, then no handler formats it again
            message += "\n" + record.exc_text
        elif record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            message += "\n" + record.stack_info
        record.msg = self._redact(message)
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        return True

    def _redact(self, message: str) -> str:
        known = secrets.registered()
        if self._pattern_size != len(known):  # the registry only grows
            self._pattern = secrets.redaction_pattern(known)
            self._pattern_size = len(known)
        message = redact_credentials(message)
        return self._pattern.sub(REDACTED, message) if self._pattern else message


# Without --verbose nothing of ours is logged: not even warnings through logging's last-resort handler (the
# CLI prints what the user needs as its own one-line messages).
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


def configure(verbose: bool) -> None:
    """Send reconciler's debug log, and warnings from the libraries it uses, to stderr."""
    if not verbose:
        return
    secrets.start_registry()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)


def get(name: str) -> logging.Logger:
    """The logger of one of reconciler's modules (`reconciler.<name>`)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
