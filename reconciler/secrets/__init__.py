"""Secrets, by job: values and fingerprints (values.py), the `${...}` grammar (references.py), redaction of
outside text by the run's `Redactor` (redaction.py), saved-plan digests (digests.py) and values not known here
(unknown.py).

The names many modules use are re-exported here. Nothing in this package keeps state between runs: the secrets
a run knows live in the `Redactor` it made.
"""

from reconciler.secrets.digests import fingerprint_key, keyed_salt, secrets_digest
from reconciler.secrets.redaction import REDACTED, Redactor
from reconciler.secrets.references import ReferenceError_, resolve_or_mark
from reconciler.secrets.unknown import (
    NotKnown,
    Unresolved,
    file_source,
    is_file_source,
    needed_message,
    sources_text,
    text_of,
    unknown_marker,
    unresolved_names,
    unset_message,
)
from reconciler.secrets.values import (
    FINGERPRINT_PREFIX,
    SENSITIVE,
    Fingerprint,
    Secret,
    fingerprint,
    fingerprinted,
    masked,
    revealed,
)

__all__ = [
    "FINGERPRINT_PREFIX",
    "REDACTED",
    "SENSITIVE",
    "Fingerprint",
    "NotKnown",
    "Redactor",
    "ReferenceError_",
    "Secret",
    "Unresolved",
    "file_source",
    "fingerprint",
    "fingerprint_key",
    "fingerprinted",
    "is_file_source",
    "keyed_salt",
    "masked",
    "resolve_or_mark",
    "revealed",
    "secrets_digest",
    "sources_text",
    "text_of",
    "unknown_marker",
    "unresolved_names",
    "needed_message",
    "unset_message",
]
