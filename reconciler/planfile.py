"""Saved plans (`plan --out`): what `apply --plan` needs to apply exactly that plan, and to refuse a stale one.

A saved plan is meant to travel (a CI artifact that anyone with read access may download), so it holds no secret
and nothing that helps guess one: no salt, no per-secret fingerprint. Its changes show every secret as
`(sensitive)`; one aggregate digest of all the secrets, keyed by the state's salt (which stays in the state)
and slow to compute, tells apply that the secrets resolved now differ from those planned. The configuration is
named relative to the working directory, so that a plan made in one checkout applies in another checkout of the
same commit; another commit's configuration is refused by its digest.

A saved plan also names the state it was made against (`state`: its kind and location, never a user or a
password; `lineage`). `apply --plan` without `--state` uses that state when it is a file inside the working
directory; it never connects to a database on a saved plan's word (see `own_state`).
"""

from __future__ import annotations

import json
import math
import os
import secrets as random_tokens
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from reconciler import fsutil, planfile_check
from reconciler.config import name_in_messages
from reconciler.errors import ReconcilerError, StalePlan, WrongState, brief
from reconciler.model import Change, Desired, Elsewhere, Plan, Recorded, Safety
from reconciler.planning import weigh
from reconciler.reference import StateReference
from reconciler.secrets import (
    NotKnown,
    is_file_source,
    keyed_salt,
    masked,
    secrets_digest,
    sources_text,
)
from reconciler.state import SANDBOX_STATE

KIND = "reconciler-saved-plan"
#: 3: `state` names the state the plan was made against. 2: no salt, one digest of all secrets.
FORMAT_VERSION = 3


class SavedChange(TypedDict, total=False):
    file: str | None
    account_id: str
    action: str
    resync: bool
    fields: list[str]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    resync_generation: int | None
    recorded_generation: int


class SavedSecrets(TypedDict):
    """`digest` of every secret; `nonce` keys it when the plan was made before the state existed."""

    digest: str
    nonce: str | None


class SavedSafety(TypedDict):
    """What apply's safety bounds were weighed with when the plan was made (`planning.weigh`). The resync bound
    and `elsewhere` are absent from plans saved by earlier versions."""

    recorded: int
    max_update_percent: float
    max_forget_percent: float
    max_resync_percent: NotRequired[float]
    elsewhere: NotRequired[dict[str, Any] | None]


class SavedPlanDocument(TypedDict, total=False):
    """The JSON document `plan --out` writes (`reconciler/schemas/saved-plan.schema.json`)."""

    kind: str
    format_version: int
    config: str
    state: dict[str, Any]
    targets: list[str]
    selectors: list[list[str]]
    lineage: str | None
    serial: int
    config_digest: str
    desired_digest: str
    secrets: SavedSecrets
    unchanged: int
    warnings: list[str]
    unset_variables: list[str]
    changes: list[SavedChange]
    safety: SavedSafety


def masked_change(change: Change, text: bool = False) -> Change:
    """`change` with every secret of `before`/`after` shown as `(sensitive)`: what a saved plan holds (with
    `text`, as it is written: a value not known here as its text, `secrets.masked`)."""
    return Change(
        change.account_id,
        change.action,
        change.resync,
        change.fields,
        masked(change.before, text),
        masked(change.after, text),
        change.resync_generation,
        change.recorded_generation,
        change.file,
    )


def _digest_salt(recorded: Recorded, nonce: str | None, fingerprint_key: str | None) -> str:
    """What keys the secrets digest: the state's salt, or the plan's nonce when there was no state yet."""
    base = recorded.salt if recorded.exists else nonce
    if base is None:  # made against a state, and there is none now: check_state says so first
        raise WrongState("this plan was made against a state that is not there now")
    return keyed_salt(base, fingerprint_key)


def _secrets_digest(desired: Desired, salt: str) -> str:
    return secrets_digest({i: spec.settings for i, spec in desired.accounts.items()}, salt)


def save(
    path: str,
    plan: Plan,
    desired: Desired,
    recorded: Recorded,
    *,
    state: StateReference,
    config: str,
    targets: list[str],
    selectors: list[tuple[str, str]],
    fingerprint_key: str | None = None,
    safety: Safety | None = None,
) -> None:
    """Write `plan` (made from `desired` against `recorded`, the state `state`) for `apply --plan`; mode 0600,
    replaced atomically. `safety` (what the bounds made of it) is kept so that `show` says what `plan` said."""
    # Before the state exists its salt is not kept anywhere: a fresh nonce keys the digest instead. (The first
    # apply creates the state with a salt of its own, so this nonce never keys a fingerprint.)
    nonce = None if recorded.exists else random_tokens.token_hex(16)
    document: SavedPlanDocument = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "config": config_name(config),
        "state": state.to_json(),
        "targets": targets,
        "selectors": [list(pair) for pair in selectors],
        "lineage": plan.lineage,
        "serial": plan.serial,
        "config_digest": plan.config_digest,
        "desired_digest": plan.desired_digest,
        "secrets": {
            "digest": _secrets_digest(desired, _digest_salt(recorded, nonce, fingerprint_key)),
            "nonce": nonce,
        },
        "unchanged": plan.unchanged,
        "warnings": list(plan.warnings),
        "unset_variables": list(plan.unset_variables),
        "changes": [_saved_change(masked_change(change, text=True)) for change in plan.all_changes],
    }
    if safety is not None:
        checks = {check.action: check.bound for check in safety.checks}
        document["safety"] = {
            "recorded": safety.existing,
            "max_update_percent": checks["update"],
            "max_forget_percent": checks["forget"],
            "elsewhere": None if safety.elsewhere is None else safety.elsewhere.to_json(),
        }
        if "resync" in checks:
            document["safety"]["max_resync_percent"] = checks["resync"]
    # A new temporary (unique name, O_EXCL | O_NOFOLLOW) renamed over the target: never written through a link.
    try:
        fsutil.replace_atomically(Path(path), json.dumps(document).encode(), 0o600)
    except OSError as exc:
        raise ReconcilerError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None


def config_name(config: str) -> str:
    """How a saved plan names CONFIG: relative to the working directory. Raise ReconcilerError when it is not
    inside it (by its path or through a symbolic link): `apply --plan` would refuse such a plan."""
    if config == "-":
        return config
    name = os.path.relpath(os.path.abspath(config))
    here = os.path.realpath(os.curdir)
    if config_problem(name) is not None or os.path.commonpath([here, os.path.realpath(name)]) != here:
        raise ReconcilerError(
            f"--out: the configuration {config} is outside the working directory, so a saved plan could not "
            "name it (apply --plan reads a configuration only inside it); plan from a directory that holds it"
        )
    return name


def _saved_change(change: Change) -> SavedChange:
    return {
        "file": None if change.file is None else os.path.relpath(os.path.abspath(change.file)),
        "account_id": change.account_id,
        "action": change.action,
        "resync": change.resync,
        "fields": list(change.fields),
        "before": change.before,
        "after": change.after,
        "resync_generation": change.resync_generation,
        "recorded_generation": change.recorded_generation,
    }


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A loaded saved plan: what to plan again (config, targets, selectors) and what it must equal. `changes`
    are the document's, read once at load: a value not known here is a `NotKnown` again (`changes_of`)."""

    path: str
    document: SavedPlanDocument
    changes: list[Change]

    @property
    def config(self) -> str:
        """The configuration it was made from, relative to the working directory."""
        return self.document["config"]

    def check_config(self) -> None:
        """Refuse, before any file is opened, a `config` that leads out of the working directory through a
        symbolic link (`load` refused an absolute one and `..` already), or that is not a regular file or a
        directory (a FIFO would block the read for ever, a device never end it). Raise ReconcilerError.

        What is left, a file inside the working directory, is parsed only once its digest is the one planned
        (`check_config_digest`), so that nothing of a file the plan was not made from is quoted."""
        config = self.config
        if config == "-":  # standard input: apply reads what it is given, as plan did
            return
        here = os.path.realpath(os.curdir)
        target = os.path.realpath(config)  # lstat and readlink only: nothing is opened
        if os.path.commonpath([here, target]) != here:
            raise ReconcilerError(
                f"{self.path}: the saved plan's config {config} leads out of the working directory (to "
                f"{target}); apply --plan reads a configuration only inside it"
            )
        try:
            mode = os.stat(target).st_mode
        except OSError as exc:
            raise ReconcilerError(f"{config}: {exc.strerror or exc}") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ReconcilerError(
                f"{self.path}: the saved plan's config {config} is not a regular file or a directory"
            )

    def check_config_digest(self, digest: str) -> None:
        """Raise StalePlan unless `digest` (of the configuration's bytes, before they are parsed) is the one
        planned: a file that differs is never parsed, so none of its lines is quoted."""
        if digest != self.document["config_digest"]:
            raise StalePlan(
                f"saved plan is stale: the configuration {name_in_messages(self.config)} differs from the one planned "
                "(another commit, or edited since); run plan again"
            )

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.document["targets"])

    @property
    def selectors(self) -> tuple[tuple[str, str], ...]:
        return tuple((key, value) for key, value in self.document["selectors"])

    @property
    def plan(self) -> Plan:
        """The plan as it was saved (secrets `(sensitive)`), for showing it."""
        document = self.document
        return Plan(
            changes=list(self.changes),
            unchanged=document["unchanged"],
            lineage=document["lineage"],
            serial=document["serial"],
            config_digest=document["config_digest"],
            digest_of_desired=lambda: document["desired_digest"],
            warnings=tuple(document["warnings"]),
            unset_variables=tuple(document["unset_variables"]),
        )

    @property
    def safety(self) -> Safety | None:
        """What apply's safety bounds made of the plan when it was made (None: not saved with it)."""
        saved = self.document.get("safety")
        if saved is None:
            return None
        elsewhere = saved.get("elsewhere")
        return weigh(
            self.plan,
            saved["recorded"],
            saved["max_update_percent"],
            saved["max_forget_percent"],
            saved.get("max_resync_percent"),
            None if elsewhere is None else Elsewhere.from_json(elsewhere),
        )

    def check_complete(self) -> None:
        """Refuse a plan made while variables it depends on were unset: it cannot say what apply would send."""
        names = self.document["unset_variables"]
        if names and not any(is_file_source(name) for name in names):
            many = len(names) > 1
            raise StalePlan(
                f"{self.path} was made while {', '.join(names)} {'were' if many else 'was'} unset, so it does not "
                f"say what apply would send; run plan again where {'they are' if many else 'it is'} set"
            )
        if names:
            raise StalePlan(
                f"{self.path} was made while {sources_text(names, 'unset', 'not decrypted')}, so it does not say "
                "what apply would send; run plan again where every secret is known (the variables set, the "
                "secrets files' key given)"
            )

    @property
    def state(self) -> StateReference:
        """The state the plan was made against (kind and location)."""
        return StateReference.from_json(self.document["state"])

    def _planned(self) -> str:
        return f"this plan was made against {self.state} ({_lineage(self.document['lineage'])})"

    def own_state(self) -> str:
        """The location of the state the plan was made against, for `apply --plan` given no state: a file state
        inside the working directory (a path that is not a symbolic link, as the default state's).

        Raise WrongState, naming the state, for any other: a saved plan is an artifact that anyone may have
        made, so apply neither writes a file outside the working directory nor connects to a database (with
        the credentials of the environment, and without the URL's TLS settings) on its word alone; and a plan
        made against the sandbox's state applies only with --sandbox."""
        state = self.state
        if state.kind != "file":
            raise WrongState(
                f"{self._planned()}; give that state's URL with --state or RECONCILER_STATE (apply connects to "
                "no database on a saved plan's word)"
            )
        if not state.inside_working_directory:
            raise WrongState(
                f"{self._planned()}; give that state with --state or RECONCILER_STATE (apply uses a state "
                "named by a saved plan only inside the working directory)"
            )
        assert state.path is not None
        if os.path.normpath(state.path) == os.path.normpath(SANDBOX_STATE):
            raise WrongState(f"{self._planned()}, the sandbox's state; apply it with --sandbox")
        return state.path

    def check_state(self, recorded: Recorded, here: StateReference, named_by: str) -> None:
        """Refuse to apply the plan to a state other than the one it was made against.

        `recorded` was read from `here`; `named_by` says what chose `here` ("--state names"). The same lineage
        is the same state, however it is named (another host name, a copy); a state that did not exist yet is
        known by its location only. Raise WrongState, or StalePlan when the state planned against was created
        since (another apply got there first)."""
        planned, lineage = self.state, self.document["lineage"]
        if lineage is not None and lineage == recorded.lineage:
            return
        same_place = planned.same_place(here)
        if lineage is None and recorded.lineage is None and same_place:
            return
        if not same_place:
            raise WrongState(f"{self._planned()}; {named_by} {here} ({_lineage(recorded.lineage)})")
        if lineage is None:
            raise StalePlan(
                f"saved plan is stale: the state {here} was created since it was made (lineage "
                f"{recorded.lineage}, serial {recorded.serial}); run plan again"
            )
        if recorded.lineage is None:
            raise WrongState(
                f"{self._planned()}, but there is no state there now; give --state where that state is, or "
                "plan again"
            )
        raise WrongState(
            f"{self._planned()}, but the state there now has lineage {recorded.lineage} (it was replaced since); "
            "give --state where the planned state is, or plan again against this one"
        )

    def check_fresh(
        self, current: Plan, desired: Desired, recorded: Recorded, fingerprint_key: str | None = None
    ) -> None:
        """Raise StalePlan unless `current` (planned now from `desired` against `recorded`) is the saved plan.

        The state must be the one planned against (`check_state`, called first)."""
        document = self.document
        if document["lineage"] != current.lineage:  # check_state refused it already, in words
            raise WrongState(self._planned())
        if document["serial"] != current.serial:
            raise StalePlan(
                f"saved plan is stale: the state moved since it was made (serial {document['serial']} -> "
                f"{current.serial}); run plan again"
            )
        self.check_config_digest(current.config_digest)
        if document["desired_digest"] != current.desired_digest:
            raise StalePlan("saved plan is stale: the configuration reads differently now; run plan again")
        salt = _digest_salt(recorded, document["secrets"]["nonce"], fingerprint_key)
        if document["secrets"]["digest"] != _secrets_digest(desired, salt):
            raise StalePlan(
                "saved plan is stale: the secrets resolved now differ from those planned (or "
                "RECONCILER_FINGERPRINT_KEY does); run plan again"
            )
        if self.changes != [masked_change(change) for change in current.all_changes]:
            raise StalePlan("saved plan is stale: planning again gives different changes; run plan again")


def _lineage(lineage: str | None) -> str:
    return f"lineage {lineage}" if lineage else "no state yet"


def _read(path: str) -> bytes:
    """The file's bytes, up to fsutil.MAX_RECORD_BYTES (a larger file, or an endless one such as /dev/zero, is
    refused, read no further)."""
    try:
        return fsutil.read_file_at_most(path, fsutil.MAX_RECORD_BYTES)
    except OSError as exc:
        raise ReconcilerError(f"{path}: cannot read the saved plan ({exc.strerror or exc})") from None


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is not a finite number")
    return number


def config_problem(config: str) -> str | None:
    """Why a saved plan's `config` cannot name a configuration (None: it can): it must be a relative path that
    stays inside the working directory (`-`, standard input, aside). Decided from the text alone, before any
    file is opened; `apply --plan` then also follows symbolic links (`SavedPlan.check_config`)."""
    if config == "-":
        return None
    if os.path.isabs(config):
        return "is not relative to the working directory"
    normal = os.path.normpath(config)
    if normal == ".." or normal.startswith(".." + os.sep):
        return "leads out of the working directory"
    return None


def load(path: str) -> SavedPlan:
    """Read and check a saved plan; any problem is one line naming the file (ReconcilerError).

    Bounded: the file's size (fsutil.MAX_RECORD_BYTES), then its nesting and its strings are checked before its schema
    (`planfile_check`), so that no saved plan ends in a MemoryError or a RecursionError; the schema bounds the
    rest, and names the only variables and settings a saved plan may hold. Its `config` must stay inside the
    working directory (`config_problem`)."""
    raw = _read(path)
    try:
        document = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)
    except RecursionError:
        raise ReconcilerError(f"{path}: not a saved reconciler plan (nested too deeply)") from None
    except ValueError as exc:
        said = str(exc) if str(exc).endswith(("is not JSON", "is not a finite number")) else "not JSON"
        raise ReconcilerError(f"{path}: not a saved reconciler plan ({said})") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ReconcilerError(f"{path}: not a saved reconciler plan")
    if document.get("format_version") != FORMAT_VERSION:
        raise ReconcilerError(
            f"{path}: a saved plan of format {str(document.get('format_version'))[:20]!r}, this version reads "
            f"format {FORMAT_VERSION}; run plan again"
        )
    invalid = planfile_check.problem(document)
    if invalid is not None:
        raise ReconcilerError(f"{path}: not a valid saved plan: {invalid}")
    problem = config_problem(document["config"])
    if problem is not None:
        raise ReconcilerError(f"{path}: not a valid saved plan: config {brief(document['config'])} {problem}")
    checked = cast(SavedPlanDocument, document)
    return SavedPlan(path, checked, changes_of(checked))


#: How a value not known here begins in a saved plan (`secrets.unknown_marker`; planfile_check checks the rest).
_NOT_KNOWN = "(not known here: "


def _typed(value: Any) -> Any:
    """Saved settings (or one leaf) with each value not known here, saved as its text, a `NotKnown` again: the
    saved plan's text is read back here, once, when the plan is loaded."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, str) and value.startswith(_NOT_KNOWN) and value.endswith(")"):
        sources: list[str] = []
        for part in value[len(_NOT_KNOWN) : -1].split("; "):
            names, _, _ = part.rpartition(
                " unset" if not part.endswith(" not decrypted") else " not decrypted"
            )
            sources += names.split(", ")
        return NotKnown(sources)
    return value


def changes_of(document: SavedPlanDocument) -> list[Change]:
    """The saved changes, their values not known here typed (`NotKnown`)."""
    return [
        Change(
            account_id=c["account_id"],
            action=c["action"],  # type: ignore[arg-type]
            resync=c["resync"],
            fields=tuple(c["fields"]),
            before=_typed(c["before"]),
            after=_typed(c["after"]),
            resync_generation=c["resync_generation"],
            recorded_generation=c["recorded_generation"],
            file=c.get("file"),
        )
        for c in document["changes"]
    ]
