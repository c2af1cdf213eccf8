"""The exception hierarchy. Each exception carries one user-facing message; the CLI prints it and exits 1."""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error the CLI turns into one line and exit code 1."""


#: A message about hostile input (a 50 MB key, say) stays one readable line.
MESSAGE_LIMIT = 400


def brief(value: object, limit: int = 60) -> str:
    """A value's repr cut to `limit` characters, so a huge value never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, slots=True)
class Problem:
    """One positioned finding in a configuration file."""

    file: str
    line: int
    col: int
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        message = self.message if len(self.message) <= MESSAGE_LIMIT else self.message[:MESSAGE_LIMIT] + "…"
        return f"{self.file}:{self.line}:{self.col}: {prefix}{message}"


class ConfigError(ReconcilerError):
    """The configuration is invalid; `problems` lists every error found in one pass."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        super().__init__("\n".join(str(p) for p in problems))


class StateError(ReconcilerError):
    """The recorded state cannot be read, written or trusted."""


class LockHeld(StateError):
    """Another process holds the state lock."""


class StalePlan(ReconcilerError):
    """A saved plan no longer matches the state, the configuration or the secrets."""


class UnsafePlan(ReconcilerError):
    """The plan changes more of the recorded accounts than the safety bounds allow."""


class UsageError(ReconcilerError):
    """A flag combination or environment that cannot work (e.g. no API key)."""
