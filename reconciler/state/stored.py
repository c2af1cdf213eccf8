"""The state's boundary for what it stores of secrets: a fingerprint is stored as its text, `sha256:<64 hex>`
(state files, journal lines, PostgreSQL rows keep that form), and is a `Fingerprint` again only here.

Typing every record of a large state as it is read would cost time at every plan; the records are kept as read,
and those that a plan shows (its changes' `before`) or `state show` prints are typed here, once, in place: a
`Fingerprint` is equal to its stored text and is written back as it, so the record means what it meant, and no
copy of it is made (a plan that changes every one of 100,000 accounts types them all).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.secrets import FINGERPRINT_PREFIX, Fingerprint

#: A fingerprint as the state stores it.
_STORED_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")


def typed(settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """Recorded settings with every stored fingerprint made a `Fingerprint`, in place; returned."""
    if settings is not None:
        for key, value in settings.items():
            if type(value) is dict:
                typed(value)
            elif (
                type(value) is str
                and value.startswith(FINGERPRINT_PREFIX)
                and _STORED_FINGERPRINT.match(value) is not None
            ):
                settings[key] = Fingerprint(value)  # the same key: no entry added, the mapping's size holds
    return settings
