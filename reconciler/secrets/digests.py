"""Fingerprint keys and the aggregate digest of saved plans."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.secrets.redaction import Redactor
from reconciler.secrets.values import Secret

#: An optional key, from the environment only, mixed into every fingerprint's HMAC key; it is never stored.
FINGERPRINT_KEY_VARIABLE = "RECONCILER_FINGERPRINT_KEY"
#: scrypt's cost for the aggregate digest: 16 MiB and a fraction of a second, paid once per saved plan (and
#: once per guess by whoever tries to guess a secret from it).
SCRYPT_N = 2**14


def fingerprint_key(environ: Mapping[str, str], redactor: Redactor) -> str | None:
    """The fingerprint key the environment gives (`RECONCILER_FINGERPRINT_KEY`), or None when unset or empty; the
    run's `redactor` is told it."""
    key = environ.get(FINGERPRINT_KEY_VARIABLE) or None
    if key is not None:
        redactor.register(key)
    return key


def keyed_salt(salt: str, key: str | None) -> str:
    """The salt fingerprints are made with: the state's own salt, or with a key, an HMAC of the salt under it.

    With a key, a copy of the state (its salt and fingerprints) cannot confirm a guessed password without the
    key as well. Without one the salt is used as it is, so fingerprints recorded before keys existed still match.
    """
    if not key:
        return salt
    return "keyed:" + hmac.new(key.encode(), salt.encode(), hashlib.sha256).hexdigest()


def _secret_leaves(settings: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Secret]]:
    for key, value in sorted(settings.items()):
        if isinstance(value, Mapping):
            yield from _secret_leaves(value, f"{prefix}{key}.")
        elif isinstance(value, Secret):
            yield prefix + key, value


def secrets_digest(settings_by_account: Mapping[str, Mapping[str, Any] | None], salt: str) -> str:
    """One digest of every secret in the desired settings (with the account and the path each sits at).

    It changes when any secret changes and says nothing about any one of them: it is keyed by `salt` (the
    state's, which a saved plan does not hold) and costs scrypt's work factor per guess. "none" when there is no
    secret at all.
    """
    found = [
        [account_id, path, secret.reveal()]
        for account_id in sorted(settings_by_account)
        for path, secret in _secret_leaves(settings_by_account[account_id] or {})
    ]
    if not found:
        return "none"
    message = hashlib.sha256(json.dumps(found, ensure_ascii=False).encode()).digest()
    digest = hashlib.scrypt(message, salt=salt.encode(), n=SCRYPT_N, r=8, p=1, maxmem=2**26, dklen=32)
    return "scrypt:" + digest.hex()
