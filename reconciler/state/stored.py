"""The state's boundary for what it stores of secrets: a fingerprint is stored as its text, `sha256:<64 hex>`
(state files, journal lines, PostgreSQL rows keep that form), and is a `Fingerprint` again only here.

Typing every record of a large state as it is read would cost time at every plan; the records are kept as read,
and the few that a plan shows (its changes' `before`) or `state show` prints are typed here, once.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.secrets import FINGERPRINT_PREFIX, Fingerprint

#: A fingerprint as the state stores it.
_STORED_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")


def typed(settings: Any) -> Any:
    """Recorded settings (or one leaf) with every stored fingerprint as a `Fingerprint`."""
    if isinstance(settings, dict):
        return {key: typed(value) for key, value in settings.items()}
    if (
        type(settings) is str
        and settings.startswith(FINGERPRINT_PREFIX)
        and _STORED_FINGERPRINT.match(settings) is not None
    ):
        return Fingerprint(settings)
    return settings
