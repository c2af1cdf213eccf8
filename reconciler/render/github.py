"""GitHub workflow-command annotations (`::error file=F,line=L,col=C::message`) for configuration problems.

Escaped by GitHub's rules so that a file name or message can never add a property or a second command:
data escapes `%`, CR and LF; property values also escape `:` and `,`. Other control characters (an ESC that
would recolour the log) are escaped as for the terminal.
"""

from __future__ import annotations

from reconciler.errors import Problem
from reconciler.escape import terminal


def escape_data(text: str) -> str:
    return terminal(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(problem: Problem) -> str:
    level = "warning" if problem.severity == "warning" else "error"
    return (
        f"::{level} file={escape_property(problem.file)},line={problem.line},col={problem.col}"
        f"::{escape_data(problem.message)}"
    )
