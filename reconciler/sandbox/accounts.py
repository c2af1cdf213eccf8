"""The accounts a sandbox knows, and the `--accounts FILE` that declares them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.reference import TERMINAL_SYNC_STATUSES

#: Providers whose proxy update answers 501 unless told otherwise: the mail-type providers.
MAIL_PROVIDERS = frozenset(("MAIL", "GOOGLE_OAUTH", "ICLOUD", "OUTLOOK", "EXCHANGE"))


@dataclass(slots=True)
class SandboxAccount:
    """One account: its provider and, optionally, how its syncs go."""

    provider: str = "LINKEDIN"
    sync_polls: int | None = (
        None  # SYNC_RUNNING answers before the terminal one (None: the sandbox's default)
    )
    sync_result: str | None = None  # the terminal status to script, e.g. SYNC_ERROR


def load_accounts_file(path: str) -> dict[str, SandboxAccount]:
    """Read `{accounts: {ID: {provider, sync_polls, sync_result}}}` (YAML or JSON).

    Raises ValueError with a one-line message naming the file when it cannot be read or is not that shape.
    """
    import yaml

    from reconciler.config.yamlpos import yaml_error_problem

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {' '.join(str(exc).split())}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # worded as for a configuration: what was written, where
        raise ValueError(str(yaml_error_problem(path, text, exc))) from None
    entries = document.get("accounts", document) if isinstance(document, dict) else document
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ValueError(
            f"{path}: expected a mapping of account ids, as {{accounts: {{ID: {{provider: ...}}}}}}"
        )
    return {
        str(account_id): _account(path, str(account_id), fields) for account_id, fields in entries.items()
    }


def _account(path: str, account_id: str, fields: Any) -> SandboxAccount:
    where = f"{path}: account {account_id!r}"
    if fields is None:
        return SandboxAccount()
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: expected a mapping of provider, sync_polls, sync_result")
    unknown = sorted(str(name) for name in fields if name not in ("provider", "sync_polls", "sync_result"))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (known: provider, sync_polls, sync_result)")
    provider = fields.get("provider", "LINKEDIN")
    polls = fields.get("sync_polls")
    result = fields.get("sync_result")
    if not isinstance(provider, str):
        raise ValueError(f"{where}: provider must be a string such as LINKEDIN")
    if polls is not None and (type(polls) is not int or polls < 0):
        raise ValueError(f"{where}: sync_polls must be a whole number of at least 0")
    if result is not None and result not in TERMINAL_SYNC_STATUSES:
        raise ValueError(f"{where}: sync_result must be one of {', '.join(sorted(TERMINAL_SYNC_STATUSES))}")
    return SandboxAccount(provider=provider.upper(), sync_polls=polls, sync_result=result)
