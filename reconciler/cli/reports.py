"""Where apply's report goes: stdout in the chosen format, `--report FILE` (JSON), and the step summary."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click

from reconciler.errors import UsageError
from reconciler.escape import terminal
from reconciler.model import PaceSummary, Result
from reconciler.plain import Plain
from reconciler.render import report


class ReportFile(Plain):
    """A `--report` path opened before anything is sent, so that an unwritable path exits 1 with nothing
    attempted instead of failing after everything was applied. Mode 0600, like the state."""

    __slots__ = ("path", "fd", "created", "written")

    def __init__(self, path: str, fd: int, created: bool) -> None:
        self.path = path
        self.fd = fd
        self.created = created
        self.written = False

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | None) -> Iterator[ReportFile | None]:
        if path is None:
            yield None
            return
        existed = os.path.lexists(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(f"--report {path}: cannot write there ({exc.strerror or exc})") from None
        handle = cls(path, fd, created=not existed)
        try:
            yield handle
        finally:
            os.close(fd)
            if handle.created and not handle.written:  # nothing was applied: leave no empty file behind
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        while data:
            data = data[os.write(self.fd, data) :]
        os.fchmod(self.fd, 0o600)
        self.written = True


def emit_report(
    results: list[Result],
    stop_reason: str | None,
    pace: PaceSummary,
    output_format: str,
    report_file: ReportFile | None,
) -> None:
    """Print the report, write `--report`, and append the markdown report to $GITHUB_STEP_SUMMARY.

    A step summary that cannot be written is a warning: everything was applied by then, and exit codes 0 and 3
    must keep their meaning.
    """
    if output_format == "json":
        click.echo(report.render_json(results, pace), nl=False)
    elif output_format == "markdown":
        click.echo(report.render_markdown(results, stop_reason, pace), nl=False)
    else:
        click.echo(report.render_text(results, stop_reason, pace), nl=False)
    if report_file is not None:
        report_file.write(report.render_json(results, pace))
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        try:
            with open(summary_path, "a", encoding="utf-8") as handle:
                handle.write(report.render_markdown(results, stop_reason, pace, timeline=True) + "\n")
        except OSError as exc:
            click.echo(
                f"Warning: cannot write the step summary {terminal(summary_path)}: {exc.strerror or exc}",
                err=True,
            )
