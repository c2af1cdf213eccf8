"""The exception hierarchy. Each exception carries one user-facing message; the CLI prints it and exits 1."""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error the CLI turns into one line and exit code 1."""


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
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"


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
