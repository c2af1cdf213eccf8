"""The nouns of the reconciler: what is desired, what is recorded, what a plan changes, what an apply did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.errors import Problem

Action = Literal["create", "update", "forget", "none"]
Operation = Literal["patch", "resync"]
Outcome = Literal["succeeded", "failed", "skipped"]

SYNC_PROVIDERS = ("LINKEDIN", "TELEGRAM")


@dataclass(frozen=True, slots=True)
class ResyncSpec:
    """A declared resync: `generation` above the recorded one asks for one more sync."""

    generation: int
    chunk_size: int | None = None
    partial: bool | None = None
    linkedin_product: str | None = None
    after_ms: int | None = None
    before_ms: int | None = None

    def query(self) -> dict[str, str]:
        """The sync route's query parameters: only those declared."""
        params: dict[str, str] = {}
        if self.chunk_size is not None:
            params["chunk_size"] = str(self.chunk_size)
        if self.partial is not None:
            params["partial"] = "true" if self.partial else "false"
        if self.linkedin_product is not None:
            params["linkedin_product"] = self.linkedin_product
        if self.after_ms is not None:
            params["after"] = str(self.after_ms)
        if self.before_ms is not None:
            params["before"] = str(self.before_ms)
        return params

    def as_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, **self.query()}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One declared account. `settings` may hold `Secret`s: it is the desired PATCH body, normalised."""

    account_id: str
    provider: str | None
    labels: dict[str, str]
    settings: dict[str, Any] | None
    resync: ResyncSpec | None
    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything the configuration declares, validated."""

    accounts: dict[str, AccountSpec]
    warnings: list[Problem]
    files: list[str]
    config_digest: str


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """What was last applied to one account. `settings` holds fingerprints, never secrets."""

    settings: dict[str, Any] | None = None
    applied_at: str | None = None
    resync_generation: int = 0
    resynced_at: str | None = None
    last_failure: dict[str, Any] | None = None
    provider: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "applied_at": self.applied_at,
            "resync_generation": self.resync_generation,
            "resynced_at": self.resynced_at,
            "last_failure": self.last_failure,
            "provider": self.provider,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AccountRecord:
        return cls(
            settings=raw.get("settings"),
            applied_at=raw.get("applied_at"),
            resync_generation=int(raw.get("resync_generation") or 0),
            resynced_at=raw.get("resynced_at"),
            last_failure=raw.get("last_failure"),
            provider=raw.get("provider"),
        )


@dataclass(slots=True)
class Recorded:
    """The recorded state: a snapshot of every account's record plus the state's identity."""

    lineage: str | None
    serial: int
    salt: str
    accounts: dict[str, AccountRecord] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.lineage is not None


@dataclass(frozen=True, slots=True)
class Change:
    """What one account needs. `before`/`after` are fingerprinted settings (never plaintext)."""

    account_id: str
    action: Action
    resync: bool
    fields: tuple[str, ...]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    resync_generation: int | None = None
    recorded_generation: int = 0

    @property
    def patch(self) -> bool:
        return self.action in ("create", "update") and self.after is not None


@dataclass(frozen=True, slots=True)
class Plan:
    """The changes from recorded to desired, with what identifies the inputs it was computed from."""

    changes: list[Change]
    unchanged: int
    lineage: str | None
    serial: int
    salt: str
    config_digest: str
    #: Computes `desired_digest` once, when first asked: only saved plans need it (`plan --out`, `apply --plan`),
    #: and at 10,000 accounts it was half of planning's time, before the first request.
    digest_of_desired: Callable[[], str] = field(repr=False, compare=False)
    files: tuple[str, ...] = ()

    @property
    def desired_digest(self) -> str:
        """A digest of everything apply would send (planning.desired_digest)."""
        return self.digest_of_desired()

    def count(self, action: str) -> int:
        if action == "resync":
            return sum(1 for change in self.changes if change.resync)
        return sum(1 for change in self.changes if change.action == action)

    @property
    def summary(self) -> dict[str, int]:
        return {
            "create": self.count("create"),
            "update": self.count("update"),
            "forget": self.count("forget"),
            "resync": self.count("resync"),
            "unchanged": self.unchanged,
        }

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one operation of an apply."""

    account_id: str
    operation: Operation
    outcome: Outcome
    http_status: int | None = None
    error_type: str | None = None
    category: str | None = None
    retryable: bool | None = None
    attempts: int = 0
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "operation": self.operation,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "error_type": self.error_type,
            "category": self.category,
            "retryable": self.retryable,
            "attempts": self.attempts,
            "message": self.message,
        }
