"""The command line: one module per command group; each parses, calls one function, renders, exits.

Exit codes are named in `reconciler.cli.common.ExitCode`. Usage errors exit 1, never 2 (which means "changes
present"), and no error ends in a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from reconciler import logs
from reconciler.cli import apply, plan, sandbox, state
from reconciler.cli.common import ExitCode, fail
from reconciler.errors import ReconcilerError
from reconciler.install import DISTRIBUTION
from reconciler.render.escape import terminal


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    logs.configure(verbose)
    if directory is not None:
        os.chdir(directory)


for command in (
    plan.validate,
    plan.plan,
    plan.show,
    apply.apply,
    state.state,
    state.import_,
    sandbox.sandbox,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command line and exit with its code."""
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except click.ClickException as exc:
        exc.message = terminal(exc.message)  # type: ignore[misc]  # it may quote an argument as given
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
