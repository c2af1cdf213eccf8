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
    Unresolved,
    file_source,
    is_file_source,
    is_unknown,
    sources_text,
    unknown_marker,
    unknown_names,
    unresolved_names,
    unset_message,
)
from reconciler.secrets.values import (
    SENSITIVE,
    Secret,
    fingerprint,
    fingerprinted,
    is_fingerprint,
    masked,
    revealed,
)

__all__ = [
    "REDACTED",
    "SENSITIVE",
    "Redactor",
    "ReferenceError_",
    "Secret",
    "Unresolved",
    "file_source",
    "fingerprint",
    "fingerprint_key",
    "fingerprinted",
    "is_file_source",
    "is_fingerprint",
    "is_unknown",
    "keyed_salt",
    "masked",
    "resolve_or_mark",
    "revealed",
    "secrets_digest",
    "sources_text",
    "unknown_marker",
    "unknown_names",
    "unresolved_names",
    "unset_message",
]
