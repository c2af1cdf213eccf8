"""The command line: one module per command group; each parses, calls one function, renders, exits.

Exit codes are named in `reconciler.cli.common.ExitCode`. Usage errors exit 1, never 2 (which means "changes
present"), and no error ends in a traceback.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

import click

from reconciler import logs
from reconciler.cli.common import ExitCode, fail, run_redactor
from reconciler.errors import ReconcilerError
from reconciler.escape import terminal
from reconciler.install import DISTRIBUTION
from reconciler.urls import redact_credentials

#: What click 8.2 and later raise for a group run without a command (earlier releases print the help and exit 0
#: themselves); its message is the whole help, which escaping would put on one line.
_NO_ARGS_IS_HELP: type[click.ClickException] = getattr(
    click.exceptions, "NoArgsIsHelpError", click.ClickException
)

#: Each command and the module that defines it (`module:attribute` under reconciler.cli).
COMMANDS = {
    "validate": "plan:validate",
    "plan": "plan:plan",
    "show": "plan:show",
    "apply": "apply:apply",
    "state": "state:state",
    "import": "state:import_",
    "sandbox": "sandbox:sandbox",
}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command is run or listed.

    A run imports one command's code, not every command's: start-up is part of how soon `apply` sends its first
    request (BENCHMARKS.md).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # a typo, say: click suggests a name from the commands loaded
            for name in COMMANDS:
                command = self.get_command(ctx, name)
                if command is not None:
                    self.add_command(command, name)
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command: click.Command = getattr(importlib.import_module(f"reconciler.cli.{module}"), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="RECONCILER_VERBOSE",
    help="Debug log on stderr: files, state, each request and retry (secrets redacted).",
)
@click.option(
    "-C",
    "--chdir",
    "directory",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Run in DIR, as if started there (paths, the default state, the config).",
)
def cli(verbose: bool, directory: str | None) -> None:
    """Declare postpress account proxies in YAML; plan and apply them."""
    logs.configure(verbose, run_redactor())  # the run's redactor: made here, once per invocation
    if directory is not None:
        os.chdir(directory)


#: Options of the group itself, which a user may put after the command (`reconciler plan -C dir`).
_GLOBAL_OPTIONS = frozenset(("-C", "--chdir", "-v", "--verbose"))


def _shown(message: str) -> str:
    """click's message, which may quote an argument as given: escaped for the terminal, and a URL in it (a state
    URL given as a stray argument) without its password."""
    return terminal(redact_credentials(message))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command line and exit with its code.

    Without `argv` (the process's own command line), the process ends after this: every object is frozen out of
    the garbage collector first, so that the interpreter's last collections at exit skip them (measured: 60-70 ms
    after an apply of 10,000 accounts, 15 ms frozen). Atexit handlers and file closing are unchanged.
    """
    try:
        _run(argv)
    finally:
        if argv is None:
            gc.freeze()


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except _NO_ARGS_IS_HELP as exc:  # `reconciler`, `reconciler state`: the help, our own text, as it is
        exc.show()
        sys.exit(ExitCode.ERROR)
    except click.UsageError as exc:  # one line, as every error (click's own shows the usage around it)
        message = _shown(" ".join(exc.format_message().split())).removesuffix(".")
        if isinstance(exc, click.NoSuchOption) and exc.option_name in _GLOBAL_OPTIONS:
            message += f"; {exc.option_name} is an option of reconciler itself: give it before the command"
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {message}{where}", err=True)
        sys.exit(ExitCode.ERROR)
    except click.ClickException as exc:
        exc.message = _shown(exc.message)  # type: ignore[misc]
        exc.show()
        sys.exit(ExitCode.ERROR)
    except ReconcilerError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    sys.exit(ExitCode.OK)
