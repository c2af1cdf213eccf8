"""What every command shares: exit codes, options, parameter types, loading the config, one-line errors."""

from __future__ import annotations

import enum
import inspect
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from reconciler import logs
from reconciler.config import load_config, name_in_messages
from reconciler.config.secretfiles import Decrypt
from reconciler.errors import ConfigError, Problem
from reconciler.escape import terminal, terminal_line
from reconciler.model import Desired, Plan, Safety
from reconciler.render import github
from reconciler.secrets import unset_message
from reconciler.secrets.redaction import Redactor

if TYPE_CHECKING:
    from reconciler.reference import StateReference
    from reconciler.state import Backend

MAX_WARNINGS_SHOWN = 10
DEFAULT_CONFIG = "accounts.yaml"

log = logs.get("cli")


class ExitCode(enum.IntEnum):
    """What each exit status means, in every command."""

    OK = 0
    #: Nothing was attempted: bad input, a usage error, a held lock, a stale plan, a safety bound.
    ERROR = 1
    #: `plan --detailed-exitcode` only: changes are present. Never a usage error.
    CHANGES = 2
    #: apply: some operations failed or were skipped.
    PARTIAL = 3
    #: apply stopped by SIGINT (Ctrl-C) or SIGTERM (a CI cancel): 128 + the signal's number.
    INTERRUPTED = 130
    TERMINATED = 143


def run_redactor() -> Redactor:
    """This command invocation's redactor: made by the `reconciler` group (or here, for a command run alone) and
    kept on the root click context, so that nothing outlives the run. Every part that meets a secret or outside
    text is handed it: the configuration loader, the state backend, the API client, the log filter."""
    root = click.get_current_context().find_root()
    if not isinstance(root.obj, Redactor):
        root.obj = Redactor()
    return root.obj


def fail(message: str) -> NoReturn:
    """Print one error line and exit 1. The message may quote outside text (a file name, a lock's holder): its
    control characters, newlines included, are escaped, so it stays one line that cannot drive the terminal."""
    click.echo(f"Error: {terminal(message)}", err=True)
    sys.exit(ExitCode.ERROR)


class FiniteRange(click.FloatRange):
    """click's FloatRange without `nan` and `inf`: NaN passes every bound's comparison, so `--max-update-percent
    nan` turned the safety bound off, and an infinite `--timeout` failed in the transport."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number: float = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _whole(text: str) -> bool:
    """ASCII digits, few enough for int(): str.isdigit() also accepts "²", which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 18


if TYPE_CHECKING:  # generic from click 8.4 on; subscripted at run time, it would fail on click 8.1 to 8.3
    _ShardParam = click.ParamType[tuple[int, int]]
    _SelectorParam = click.ParamType[tuple[str, str]]
else:
    _ShardParam = _SelectorParam = click.ParamType


class ShardType(_ShardParam):
    """`K/N` with 1 <= K <= N, as a (K, N) pair."""

    name = "K/N"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        index, _, count = str(value).partition("/")
        if not (_whole(index) and _whole(count) and 1 <= int(index) <= int(count)):
            self.fail(f"{value!r}: expected K/N with 1 <= K <= N, e.g. 2/4", param, ctx)
        return int(index), int(count)


class SelectorType(_SelectorParam):
    """`KEY=VALUE`, as a (key, value) pair."""

    name = "KEY=VALUE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, separator, wanted = str(value).partition("=")
        if not separator or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key, wanted


def given(name: str) -> bool:
    """Whether the user gave parameter `name` (on the command line or through its environment variable)."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT)


state_option = click.option(
    "--state",
    "state_location",
    default=None,
    help="State: a path, file:// or postgresql:// URL (else $RECONCILER_STATE, else .reconciler/state.json).",
)
target_option = click.option(
    "--target", "targets", multiple=True, metavar="ID", help="Only this account (repeatable)."
)
select_option = click.option(
    "--select",
    "selectors",
    multiple=True,
    type=SelectorType(),
    help="Only declared accounts with this label (repeatable; all must match).",
)
lock_timeout_option = click.option(
    "--lock-timeout",
    type=FiniteRange(0.0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for a state locked by another command before giving up.",
)
#: What every command that reads CONFIG says about it in its --help (an argument has no help of its own).
CONFIG_HELP = (
    f"CONFIG is a YAML file or a directory of them (default: {DEFAULT_CONFIG} in the working directory, or in "
    "DIR with `reconciler -C DIR`)."
)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def config_argument(function: _Command) -> _Command:
    """The optional CONFIG argument (default `accounts.yaml`), with CONFIG_HELP appended to the command's help:
    put it below `@click.command()`, which reads the help from the docstring."""
    function.__doc__ = f"{inspect.cleandoc(function.__doc__ or '')}\n\n{CONFIG_HELP}"
    return click.argument("config", required=False, default=DEFAULT_CONFIG)(function)


format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="How to print: for people, for scripts (JSON), or for a pull request comment (markdown).",
)


def show_warnings(warnings: Sequence[Problem | str]) -> None:
    for warning in warnings[:MAX_WARNINGS_SHOWN]:
        click.echo(terminal_line(str(warning)), err=True)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        click.echo(f"... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings", err=True)


def annotating() -> bool:
    """Whether to print GitHub workflow-command annotations (`::error file=...`) beside problems."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def missing_default_config() -> str:
    """The error for a command run without CONFIG where there is no `accounts.yaml`: how to name the file, or the
    directory to run in (`-C`, an option of reconciler itself, given before the command)."""
    context = click.get_current_context(silent=True)
    command = context.info_name if context is not None else "plan"
    return (
        f"{DEFAULT_CONFIG}: no such file or directory (CONFIG defaults to {DEFAULT_CONFIG} in the working "
        f"directory); give it: reconciler {command} PATH, or run in its directory: reconciler -C DIR {command}"
    )


def load_or_exit(
    config: str,
    need_secrets: bool = True,
    check_digest: Callable[[str], None] | None = None,
    decrypt: Decrypt = "always",
) -> Desired:
    """Load the configuration, or print every problem (one line each) and exit 1.

    With `need_secrets`, a `${VAR}` that is unset is an error too (validate does not need them).
    `check_digest` (apply --plan) refuses files other than those planned before they are parsed (`load_config`).
    `decrypt`: how far its secrets files are read (`load_config`); a file that must be decrypted and cannot be
    is one line.
    """
    started = time.monotonic()
    if config == DEFAULT_CONFIG and not os.path.lexists(config):
        fail(missing_default_config())
    try:
        desired = load_config(config, check_digest=check_digest, decrypt=decrypt, redactor=run_redactor())
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(terminal_line(str(problem)), err=True)
        show_warnings(exc.warnings)
        if annotating():
            for problem in exc.problems + exc.warnings:
                click.echo(github.render(problem), err=True)
        if exc.note:
            click.echo(terminal_line(exc.note), err=True)
        click.echo(f"{len(exc.problems)} error(s) in {terminal(name_in_messages(config))}", err=True)
        sys.exit(ExitCode.ERROR)
    if need_secrets and desired.unset_variables:
        fail(unset_message(desired.unset_variables))
    log.debug(
        "loaded %d account(s) from %s in %.2f s",
        len(desired.accounts),
        ", ".join(desired.files),
        time.monotonic() - started,
    )
    show_warnings(desired.warnings)
    if annotating():
        for warning in desired.warnings:
            click.echo(github.render(warning), err=True)
    return desired


def not_decrypted(desired: Desired) -> dict[str, str]:
    """Each secrets file that was not decrypted (plan without a key), as its source (`vault.*`) -> the file and
    why (`secrets.sops.yaml: no SOPS key given here`): said once, on the plan's `Not known here` line when the
    text plan shows it, else on stderr (`say_not_decrypted`)."""
    return {
        f"{alias}.*": f"{file}: {why_not}"
        for alias, file, decrypted, why_not in desired.secrets_files
        if not decrypted
    }


def say_not_decrypted(reasons: Mapping[str, str]) -> None:
    """The line for each secrets file not decrypted, on stderr."""
    for source, reason in reasons.items():
        file, _, why_not = reason.partition(": ")
        click.echo(
            terminal(
                f"{file} ({source.removesuffix('.*')}): not decrypted here ({why_not}); what depends on it shows "
                "as not known until apply"
            ),
            err=True,
        )


def open_state(location: str, explicit: bool | None = None, unnamed: str = "the default state") -> Backend:
    """The backend of a state location (`state.open_backend`), and on stderr where a followed symbolic link
    leads."""
    from reconciler.state import location_note, open_backend  # not for validate, which reads no state

    backend = open_backend(location, explicit, unnamed, run_redactor())
    note = location_note(backend)
    if note:
        click.echo(note, err=True)
    return backend


def write_github_outputs(outputs: dict[str, str]) -> None:
    """Append `key=value` lines to $GITHUB_OUTPUT when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in outputs.items())


def bound_options(command: Any) -> Any:
    """`--max-update-percent`, `--max-forget-percent` and `--max-resync-percent`: apply's safety bounds, which
    plan weighs too, so that a reviewer sees a refusal before the merge."""
    return _bound_options(command, "Refuse (without --force) to")


def plan_bound_options(command: Any) -> Any:
    """The same bounds for plan, which refuses nothing: it says whether apply would."""
    return _bound_options(command, "Say whether apply (without --force) would refuse to")


def _bound_options(command: Any, verb: str) -> Any:
    from reconciler.planning import DEFAULT_MAX_RESYNC_PERCENT

    command = click.option(
        "--max-resync-percent",
        type=FiniteRange(0, 100),
        default=DEFAULT_MAX_RESYNC_PERCENT,
        show_default=True,
        help=f"{verb} start resyncs from scratch (of accounts the state does not hold, 10 or more) for more than "
        "this share of the declared accounts: a lost state would restart them all.",
    )(command)
    for action in ("forget", "update"):  # applied innermost first: --help lists update, forget, resync
        command = click.option(
            f"--max-{action}-percent",
            type=FiniteRange(0, 100),
            default=30.0,
            show_default=True,
            help=f"{verb} {action} more than this share of the recorded accounts.",
        )(command)
    return command


def render_plan(
    plan: Plan,
    output_format: str,
    config: str,
    state: StateReference | None = None,
    safety: Safety | None = None,
    not_decrypted: Mapping[str, str] | None = None,
) -> str:
    """`plan` in `output_format`; `safety` is what apply's bounds make of it (None: not known, say nothing).
    The markdown header names `state` by kind and workspace (or a file state by its path). `not_decrypted`: why
    each secrets file was not (`not_decrypted`), for the text plan's `Not known here` line."""
    # Imported here: `apply --yes` renders no plan, and start-up counts (BENCHMARKS.md).
    from reconciler.render import plan_json, plan_markdown, plan_text

    if output_format == "json":
        return plan_json.render(plan, safety)
    if output_format == "markdown":
        return plan_markdown.render(
            plan, config=name_in_messages(config), state=state, safety=safety, where=whole_plan_where()
        )
    return plan_text.render(plan, safety, not_decrypted)


#: Set by the GitHub Action to the name of the artifact that holds the whole plan as text.
PLAN_ARTIFACT_VARIABLE = "RECONCILER_PLAN_ARTIFACT"


def whole_plan_where() -> str:
    """Where a reader of a cut markdown plan finds the whole plan: the artifact of this workflow run that the
    Action uploads (a link to the run), or else the command that prints it."""
    from reconciler.escape import code_span
    from reconciler.render import plan_markdown

    artifact = os.environ.get(PLAN_ARTIFACT_VARIABLE)
    if not artifact:
        return plan_markdown.WHOLE_PLAN_HERE
    said = f"the whole plan is the artifact {code_span(artifact)} of this workflow run"
    url = "{}/{}/actions/runs/{}".format(
        *(os.environ.get(name, "") for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    )
    if not _RUN_URL.fullmatch(url):  # a link only to what is surely a run's page: nothing else in the comment
        return said
    return said.replace("this workflow run", f"[this workflow run]({url})")


_RUN_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/actions/runs/[0-9]+")
