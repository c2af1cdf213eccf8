"""The nouns of the reconciler: what is desired, what is recorded, what a plan changes, what an apply did."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from reconciler.errors import Problem
from reconciler.plain import Compared, Plain
from reconciler.secrets import NotKnown

Action = Literal["create", "update", "forget", "none"]
#: What one Result is about. A forget is local (no API call); the JSON report lists forgets apart from results.
Operation = Literal["patch", "resync", "forget"]
Outcome = Literal["succeeded", "failed", "skipped"]

SYNC_PROVIDERS = ("LINKEDIN", "TELEGRAM")

#: PER_ITEM: the classes made once per account or per operation (ResyncSpec, AccountSpec, AccountRecord, Change,
#: Result) are not frozen, and are never changed after they are made: a frozen class sets each field through
#: object.__setattr__, measured 1.4 us for eight fields against 0.3 us, paid for every account before the first
#: request and for every request. None of the classes here is a dataclass: see reconciler/plain.py.


def settings_leaves(settings: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Every leaf of `settings` under its dotted path (`proxy.host`); an empty mapping is a leaf of its own.

    Two settings are equal exactly when their leaves are: this is what a plan's `fields` are made of.
    """
    leaves: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict) and value:  # not the Mapping ABC: its check is several times slower
            leaves.update(settings_leaves(value, f"{prefix}{key}."))
        else:
            leaves[prefix + key] = value
    return leaves


class ResyncSpec(Compared):  # see PER_ITEM above
    """A declared resync: `generation` above the recorded one asks for one more sync."""

    __slots__ = ("generation", "chunk_size", "partial", "linkedin_product", "after_ms", "before_ms")

    def __init__(
        self,
        generation: int,
        chunk_size: int | None = None,
        partial: bool | None = None,
        linkedin_product: str | None = None,
        after_ms: int | None = None,
        before_ms: int | None = None,
    ) -> None:
        self.generation = generation
        self.chunk_size = chunk_size
        self.partial = partial
        self.linkedin_product = linkedin_product
        self.after_ms = after_ms
        self.before_ms = before_ms

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


class AccountSpec(Compared):  # see PER_ITEM above
    """One declared account. `settings` may hold `Secret`s: it is the desired PATCH body, normalised."""

    __slots__ = ("account_id", "provider", "labels", "settings", "resync", "file", "line", "col")

    def __init__(
        self,
        account_id: str,
        provider: str | None,
        labels: dict[str, str],
        settings: dict[str, Any] | None,
        resync: ResyncSpec | None,
        file: str,
        line: int,
        col: int,
    ) -> None:
        self.account_id = account_id
        self.provider = provider
        self.labels = labels
        self.settings = settings
        self.resync = resync
        self.file = file
        self.line = line
        self.col = col


class Desired(Compared):
    """Everything the configuration declares, validated; never changed once made.

    A value behind an unset `${VAR}` is a `secrets.Unresolved` in `accounts`; `unset_variables` lists the
    unset variables the accounts need, sorted, each once (empty when every value is known), and `ALIAS.*` for
    each secrets file not decrypted that they need. `secrets_files`: (alias, file, decrypted, why not) of each
    secrets file the configuration names.
    """

    __slots__ = ("accounts", "warnings", "files", "config_digest", "unset_variables", "secrets_files")

    def __init__(
        self,
        accounts: dict[str, AccountSpec],
        warnings: list[Problem],
        files: list[str],
        config_digest: str,
        unset_variables: tuple[str, ...] = (),
        secrets_files: tuple[tuple[str, str, bool, str], ...] = (),
    ) -> None:
        self.accounts = accounts
        self.warnings = warnings
        self.files = files
        self.config_digest = config_digest
        self.unset_variables = unset_variables
        self.secrets_files = secrets_files


class AccountRecord(Compared):  # see PER_ITEM above
    """What was last applied to one account. `settings` holds fingerprints, never secrets."""

    __slots__ = ("settings", "applied_at", "resync_generation", "resynced_at", "last_failure", "provider")

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        applied_at: str | None = None,
        resync_generation: int = 0,
        resynced_at: str | None = None,
        last_failure: dict[str, Any] | None = None,
        provider: str | None = None,
    ) -> None:
        self.settings = settings
        self.applied_at = applied_at
        self.resync_generation = resync_generation
        self.resynced_at = resynced_at
        self.last_failure = last_failure
        self.provider = provider

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


class Recorded(Compared):
    """The recorded state: a snapshot of every account's record plus the state's identity."""

    __slots__ = ("lineage", "serial", "salt", "accounts")

    def __init__(
        self, lineage: str | None, serial: int, salt: str, accounts: dict[str, AccountRecord] | None = None
    ) -> None:
        self.lineage = lineage
        self.serial = serial
        self.salt = salt
        self.accounts: dict[str, AccountRecord] = {} if accounts is None else accounts

    @property
    def exists(self) -> bool:
        return self.lineage is not None


class Change(Compared):  # see PER_ITEM above
    """What one account needs. `before`/`after` are fingerprinted settings (never plaintext), or masked ones
    (every secret `(sensitive)`) in a plan read back from a file; `fields` are the dotted paths of the leaves
    that differ. `file` is where the account is declared (None for a forget): where a reviewer reads the change,
    not part of it, so two changes that differ only there are equal."""

    __slots__ = (
        "account_id",
        "action",
        "resync",
        "fields",
        "before",
        "after",
        "resync_generation",
        "recorded_generation",
        "file",
    )
    _hidden = frozenset(("file",))

    def __init__(
        self,
        account_id: str,
        action: Action,
        resync: bool,
        fields: tuple[str, ...],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        resync_generation: int | None = None,
        recorded_generation: int = 0,
        file: str | None = None,
    ) -> None:
        self.account_id = account_id
        self.action = action
        self.resync = resync
        self.fields = fields
        self.before = before
        self.after = after
        self.resync_generation = resync_generation
        self.recorded_generation = recorded_generation
        self.file = file

    @property
    def patch(self) -> bool:
        return self.action in ("create", "update") and self.after is not None


def counts_of(changes: Iterable[Change]) -> dict[str, int]:
    """How many of `changes` create, update, forget and resync (an account may count twice: update and resync)."""
    counts = {"create": 0, "update": 0, "forget": 0, "resync": 0}
    for change in changes:
        if change.action != "none":
            counts[change.action] += 1
        if change.resync:
            counts["resync"] += 1
    return counts


class Plan(Compared):
    """The changes from recorded to desired, with what identifies the inputs it was computed from; never changed
    once made.

    `warnings` are the configuration's (a plaintext password, say), carried so that every rendering of the plan
    shows them. A plan holds no salt and no secret: a saved plan is written from it as it is. A value behind an
    unset `${VAR}` is a `secrets.NotKnown` in `after`, and its account is never unchanged.

    `changes` are given whole and kept apart in two: `changes`, what the plan can show, and `secret_only`, the
    updates whose every difference is a value behind an unset variable. Those may change nothing: without the
    secrets a fork's pull request would list every account with a `${VAR}` password, burying the real changes,
    so they are counted by variable instead (`secret_only_by_variables`). Only a plan with unset variables has
    any, and such a plan is never applied.
    """

    __slots__ = (
        "changes",
        "secret_only",
        "unchanged",
        "lineage",
        "serial",
        "config_digest",
        "digest_of_desired",
        "files",
        "warnings",
        "unset_variables",
    )
    _hidden = frozenset(("digest_of_desired",))

    def __init__(
        self,
        changes: list[Change],
        unchanged: int,
        lineage: str | None,
        serial: int,
        config_digest: str,
        digest_of_desired: Callable[[], str],
        files: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        unset_variables: tuple[str, ...] = (),
    ) -> None:
        if unset_variables:
            self.changes = [change for change in changes if not secret_only(change)]
            self.secret_only = [change for change in changes if secret_only(change)]
        else:  # every value known: no change can be one of a secret not known
            self.changes, self.secret_only = changes, []
        self.unchanged = unchanged
        self.lineage = lineage
        self.serial = serial
        self.config_digest = config_digest
        #: Computes `desired_digest` once, when first asked: only saved plans need it (`plan --out`, `apply
        #: --plan`), and at 10,000 accounts it was half of planning's time, before the first request.
        self.digest_of_desired = digest_of_desired
        self.files = files
        self.warnings = warnings
        #: Variables unset while planning that the changes depend on: their values show as not known, and such
        #: a plan cannot be applied.
        self.unset_variables = unset_variables

    @property
    def declared(self) -> int:
        """The declared accounts the plan weighed (chosen, in the shard): those unchanged and those to act on but
        forget. What the resync bound weighs resyncs from scratch against."""
        return self.unchanged + sum(1 for change in self.all_changes if change.action != "forget")

    @property
    def fresh_resyncs(self) -> int:
        """Resyncs this plan would start on accounts the state holds nothing for (no settings, no resync done):
        accounts to create, or resync-only ones never resynced. A lost state restarts every declared resync."""
        return sum(
            1
            for change in self.changes
            if change.resync and change.before is None and change.recorded_generation == 0
        )

    @property
    def desired_digest(self) -> str:
        """A digest of everything apply would send (planning.desired_digest)."""
        return self.digest_of_desired()

    @property
    def all_changes(self) -> list[Change]:
        """`changes` and `secret_only` together, sorted by account id: what a saved plan holds."""
        if not self.secret_only:
            return self.changes
        return sorted(self.changes + self.secret_only, key=lambda change: change.account_id)

    def count(self, action: str) -> int:
        if action == "resync":
            return sum(1 for change in self.changes if change.resync)
        return sum(1 for change in self.changes if change.action == action)

    @property
    def summary(self) -> dict[str, int]:
        """The counts of the changes shown (`secret_only` apart)."""
        return {**counts_of(self.changes), "unchanged": self.unchanged}

    def secret_only_by_variables(self) -> list[tuple[tuple[str, ...], int]]:
        """(the unset variables, how many `secret_only` updates depend on exactly those), most first."""
        counts: dict[tuple[str, ...], int] = {}
        for change in self.secret_only:
            key = unknown_names_of(change)
            counts[key] = counts.get(key, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    @property
    def empty(self) -> bool:
        """Nothing to do, nor anything that may turn out to be a change once the secrets are known."""
        return not self.changes and not self.secret_only


def secret_only(change: Change) -> bool:
    """An update whose every difference is a value not known here (behind an unset variable): it may turn out
    to change nothing. A resync, or a failed apply to repeat, is a change of its own."""
    if change.action != "update" or change.resync or not change.fields:
        return False
    after = settings_leaves(change.after)
    return all(isinstance(after.get(field), NotKnown) for field in change.fields)


def unknown_names_of(change: Change) -> tuple[str, ...]:
    """The unset variables the differences of `change` wait for, sorted."""
    after = settings_leaves(change.after)
    names: set[str] = set()
    for field in change.fields:
        value = after.get(field)
        if isinstance(value, NotKnown):
            names.update(value.sources)
    return tuple(sorted(names))


class BoundCheck(Plain):
    """One safety bound weighed against a plan: `count` of `existing` to `action`.

    update, forget: of the recorded accounts; resync: resyncs of accounts the state holds nothing for, of the
    accounts that declare a resync. `applies`: whether the bound is weighed at all (enough recorded accounts,
    enough resyncs)."""

    __slots__ = ("action", "count", "existing", "bound", "uncertain", "applies")

    def __init__(
        self,
        action: str,
        count: int,
        existing: int,
        bound: float,
        uncertain: int = 0,
        applies: bool = True,
    ) -> None:
        self.action = action
        self.count = count
        self.existing = existing
        #: The largest share allowed, in percent (`--max-update-percent`, `--max-forget-percent`, ...).
        self.bound = bound
        #: Changes of this action that depend only on secrets not known here: they may or may not count.
        self.uncertain = uncertain
        self.applies = applies

    @property
    def percent(self) -> float:
        return 100.0 * self.count / self.existing if self.existing else 0.0

    @property
    def over(self) -> bool:
        return self.percent > self.bound

    @property
    def may_be_over(self) -> bool:
        """Over the bound if the changes that depend on unknown secrets turn out to be changes."""
        return (
            not self.over
            and self.existing > 0
            and 100.0 * (self.count + self.uncertain) / self.existing > self.bound
        )

    def refusal(self) -> str:
        """Why this bound refuses a plan, with the numbers: the one line `apply` and `plan` both say."""
        if self.action == "resync":
            return (
                f"too many resyncs from scratch: {self.percent:.2f}% is over {self.bound:.2f}% ({self.count} of "
                f"the {self.existing} accounts would start a resync the state has no record of; a lost state "
                "restarts them all)"
            )
        return (
            f"too many {self.action}s: {self.percent:.2f}% is over {self.bound:.2f}% "
            f"({self.count}/{self.existing})"
        )

    def way_past(self, command: str = "") -> str:
        """How to apply past this bound, as `plan` and `apply` both say it (`command`: `apply ` when another
        command says it)."""
        return f"{command}--force applies it anyway, or --max-{self.action}-percent sets the bound"

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "count": self.count,
            "of": self.existing,
            "applies": self.applies,
            "percent": round(self.percent, 2),
            "max_percent": self.bound,
            "over": self.over,
            "may_be_over": self.may_be_over,
        }


class Elsewhere(Plain):
    """Another state that holds most of the accounts a plan against an empty state would create: a workspace of
    the same PostgreSQL schema (a mistyped `workspace=`), a workspace of another schema of the same database when
    this state's schema holds nothing (a mistyped or forgotten `schema=`), or the file state in the working
    directory beside a PostgreSQL (or another file) state. `name` is the workspace, the schema (its workspace in
    `workspace`), or the file's path. `here`: this state's location as messages show it (password `***`), when
    known (not saved in a plan), for a command that can be pasted."""

    __slots__ = ("kind", "name", "holds", "of", "workspace", "here")

    def __init__(
        self,
        kind: Literal["workspace", "schema", "file"],
        name: str,
        holds: int,
        of: int,
        workspace: str | None = None,
        here: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        #: How many of the `of` accounts to create it holds.
        self.holds = holds
        self.of = of
        #: The workspace of the schema `name` that holds them (kind "schema" only).
        self.workspace = workspace
        self.here = here

    def pointer(
        self, quote: Callable[[str], str] = repr, command: Callable[[str], str] = str
    ) -> tuple[str, str]:
        """Where the accounts are and what to do about it, the two halves of `refusal` (and of `state list`'s
        note). `quote` writes the workspace, schema or path (from a database: outside text) for the medium,
        `command` a shell command (escaped for the medium, never quoted by it: it is pasted)."""
        if self.kind == "workspace":
            where = f"workspace {quote(self.name)} of the same schema"
            parameters = urlencode({"workspace": self.name})
            return where, (
                f"if the workspace is mistyped, use that one ({quote(parameters)} in the state URL); if the state "
                "moved, copy it here with reconciler state migrate"
            )
        if self.kind == "schema":
            workspace = self.workspace or "default"
            where = f"workspace {quote(workspace)} of schema {quote(self.name)} of the same database"
            parameters = urlencode({"schema": self.name, "workspace": workspace})
            return where, (
                f"if the schema is mistyped, use that one ({quote(parameters)} in the state URL); if the state "
                "moved, copy it here with reconciler state migrate"
            )
        where = f"the file state {quote(self.name)} in the working directory"
        migrate = f"reconciler state migrate --from {shlex.quote(self.name)} --to "
        if self.here is None:
            return where, f"copy it here with {command(migrate + 'STATE')}, STATE being this state"
        filled = " (with the password in place of ***)" if "***" in self.here and "://" in self.here else ""
        return where, f"copy it here with {command(migrate + shlex.quote(self.here))}{filled}"

    def refusal(self, quote: Callable[[str], str] = repr, command: Callable[[str], str] = str) -> str:
        """Why apply refuses a plan against an empty state when this other state holds its accounts: the one
        line `apply` and `plan` both say (see `pointer`)."""
        where, use = self.pointer(quote, command)
        return (
            f"this state holds no accounts, but {where} holds {self.holds} of the {self.of} accounts to "
            f"create: {use}"
        )

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {
            "kind": self.kind,
            "name": self.name,
            "holds": self.holds,
            "of": self.of,
        }
        if self.workspace is not None:
            document["workspace"] = self.workspace
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Elsewhere:
        return cls(
            document["kind"], document["name"], document["holds"], document["of"], document.get("workspace")
        )


class Safety(Plain):
    """What the safety bounds make of a plan: whether apply would refuse it without `--force`.

    The update and forget bounds weigh only a state of `minimum` recorded accounts or more (`applies`); below it
    they pass. The resync bound has a threshold of its own (`BoundCheck.applies`). `elsewhere`: the state holds
    nothing, and another state holds most of the accounts to create."""

    __slots__ = ("existing", "minimum", "checks", "elsewhere")

    def __init__(
        self,
        existing: int,
        minimum: int,
        checks: tuple[BoundCheck, ...],
        elsewhere: Elsewhere | None = None,
    ) -> None:
        self.existing = existing
        self.minimum = minimum
        self.checks = checks
        self.elsewhere = elsewhere

    @property
    def applies(self) -> bool:
        return self.existing >= self.minimum

    @property
    def refused(self) -> list[BoundCheck]:
        """The bounds the plan goes over: apply refuses it without `--force` when there is any."""
        return [check for check in self.checks if check.applies and check.over]

    @property
    def doubtful(self) -> list[BoundCheck]:
        """The bounds the plan may go over, depending on secrets not known here."""
        return [check for check in self.checks if check.applies and check.may_be_over]

    @property
    def refuses(self) -> bool:
        """Whether apply refuses the plan without `--force`: a bound passed, or another state holds it."""
        return bool(self.refused) or self.elsewhere is not None

    def to_json(self) -> dict[str, object]:
        return {
            "recorded": self.existing,
            "applies": self.applies,
            "refused": self.refuses,
            "override": "--force",
            "bounds": [check.to_json() for check in self.checks],
            "elsewhere": None if self.elsewhere is None else self.elsewhere.to_json(),
        }


class Result(Compared):  # see PER_ITEM above
    """The outcome of one operation of an apply."""

    __slots__ = (
        "account_id",
        "operation",
        "outcome",
        "http_status",
        "error_type",
        "category",
        "retryable",
        "attempts",
        "message",
        "polls",
        "held_back",
    )

    def __init__(
        self,
        account_id: str,
        operation: Operation,
        outcome: Outcome,
        http_status: int | None = None,
        error_type: str | None = None,
        category: str | None = None,
        retryable: bool | None = None,
        attempts: int = 0,
        message: str | None = None,
        polls: int = 0,
        held_back: bool = False,
    ) -> None:
        self.account_id = account_id
        self.operation = operation
        self.outcome = outcome
        self.http_status = http_status
        self.error_type = error_type
        self.category = category
        self.retryable = retryable
        #: Requests sent for the operation apart from polls: 1 plus its retries (0 when nothing was sent).
        self.attempts = attempts
        self.message = message
        #: resync only: status requests after the one that started the sync (each counted once, retries apart).
        self.polls = polls
        #: skipped only: its requests were sent and failed for a cause of the run (a wrong key, a dead API, a URL
        #: that is not the API), not of the account; the report counts such accounts apart (not in the JSON).
        self.held_back = held_back

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
            "polls": self.polls,
            "message": self.message,
        }


class PaceSummary(Plain):
    """What the pace did over a run: the report's `pace`."""

    __slots__ = (
        "adaptive",
        "requests",
        "throttled",
        "slowdowns",
        "held_rate",
        "rate",
        "window",
        "waited",
        "timeline",
    )

    def __init__(
        self,
        *,
        adaptive: bool,
        requests: int,
        throttled: int,
        slowdowns: int,
        held_rate: float | None,
        rate: float | None,
        window: int,
        waited: float,
        timeline: list[dict[str, float | int | None]],
    ) -> None:
        self.adaptive = adaptive
        #: Answers received (every request that got an answer or none, polls and re-sends included).
        self.requests = requests
        #: Of them, throttling answers (429, 503, 504).
        self.throttled = throttled
        #: Times the pace slowed down: for throttles, timeouts or rising latency (one a round trip at most).
        self.slowdowns = slowdowns
        #: Requests per second the API accepted from its first throttling answer on (None: it never throttled).
        self.held_rate = held_rate
        #: The rate the pace held at the end (None: no limit).
        self.rate = rate
        #: The window at the end: requests that could be in flight.
        self.window = window
        #: Seconds in all that requests waited for the rate (non-overlapping: one waits at a time).
        self.waited = waited
        self.timeline = timeline

    def to_json(self) -> dict[str, object]:
        return {
            "adaptive": self.adaptive,
            "requests": self.requests,
            "throttled": self.throttled,
            "slowdowns": self.slowdowns,
            "held_requests_per_second": None if self.held_rate is None else round(self.held_rate, 1),
            "requests_per_second": None if self.rate is None else round(self.rate, 1),
            "window": self.window,
            "waited_seconds": round(self.waited, 3),
            "timeline": self.timeline,
        }


def no_requests(adaptive: bool = True) -> PaceSummary:
    """The summary of a run that sent nothing."""
    return PaceSummary(
        adaptive=adaptive,
        requests=0,
        throttled=0,
        slowdowns=0,
        held_rate=None,
        rate=None,
        window=0,
        waited=0.0,
        timeline=[],
    )
