"""Which state a saved plan was made against, named without any secret.

A state location (`--state`) may carry a password; its reference never does. A file state is named by its path
as given (an absolute path inside the working directory becomes relative to it, so that a plan made in one
checkout names the same state in another); a PostgreSQL state by its server (host and port, or libpq service),
database, schema and workspace, never by its user or password.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from reconciler.plain import Compared

Kind = Literal["file", "postgresql"]

#: The fields of each kind's JSON form, in their order (`kind` first).
_FIELDS: dict[str, tuple[str, ...]] = {
    "file": ("path",),
    "postgresql": ("host", "port", "service", "database", "schema", "workspace"),
}
_DEFAULT_PORT = "5432"


class StateReference(Compared):
    """A state's kind and location, without secrets: what a saved plan records and messages show."""

    __slots__ = ("kind", "path", "host", "port", "service", "database", "schema", "workspace")

    def __init__(
        self,
        kind: Kind,
        *,
        path: str | None = None,
        host: str | None = None,
        port: str | None = None,
        service: str | None = None,
        database: str | None = None,
        schema: str | None = None,
        workspace: str | None = None,
    ) -> None:
        self.kind = kind
        self.path = path
        self.host = host
        self.port = port
        self.service = service
        self.database = database
        self.schema = schema
        self.workspace = workspace

    @classmethod
    def file(cls, path: str) -> StateReference:
        """A file state's reference: `path` normalised, relative to the working directory when inside it."""
        normal = os.path.normpath(path)
        if os.path.isabs(normal):
            relative = os.path.relpath(normal)
            if not _leaves(relative):
                normal = relative
        return cls("file", path=normal)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> StateReference:
        kind = document["kind"]
        return cls(kind, **{name: document.get(name) for name in _FIELDS[kind]})

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **{name: getattr(self, name) for name in _FIELDS[self.kind]}}

    @property
    def inside_working_directory(self) -> bool:
        """A file state named by a relative path that stays inside the working directory."""
        return (
            self.kind == "file"
            and self.path is not None
            and not os.path.isabs(self.path)
            and not _leaves(self.path)
        )

    def same_place(self, other: StateReference) -> bool:
        """Whether both name the same location (not necessarily the same state: it may have been replaced)."""
        if self.kind != other.kind:
            return False
        if self.kind == "file":
            return os.path.realpath(self.path or "") == os.path.realpath(other.path or "")
        return _server(self) == _server(other) and (self.database, self.schema, self.workspace) == (
            other.database,
            other.schema,
            other.workspace,
        )

    @property
    def kind_name(self) -> str:
        """How messages and the markdown plan name the kind: `file`, `PostgreSQL`."""
        return "file" if self.kind == "file" else "PostgreSQL"

    def brief(self) -> str:
        """The state by kind and workspace only (`PostgreSQL, workspace production`), or a file state by its path:
        what a pull-request comment shows, never the server, database, schema or user."""
        if self.kind == "file":
            return f"file {self.path}"
        return f"PostgreSQL, workspace {self.workspace}"

    def __str__(self) -> str:
        """`file .reconciler/state.json`, `postgresql db.example.com:5432, database ops, schema reconciler,
        workspace prod`."""
        if self.kind == "file":
            return f"file {self.path}"
        if self.host:
            host = f"[{self.host}]" if ":" in self.host and "," not in self.host else self.host
            server = f"{host}:{self.port}" if self.port else host
        elif self.service:
            server = f"service {self.service}"
        else:
            server = "the default server" + (f" (port {self.port})" if self.port else "")
        if self.host and self.service:
            server += f" (service {self.service})"
        database = f", database {self.database}" if self.database else ""
        return f"postgresql {server}{database}, schema {self.schema}, workspace {self.workspace}"


def _leaves(relative: str) -> bool:
    """Whether a relative path climbs out of the directory it is relative to."""
    return relative == os.pardir or relative.startswith(os.pardir + os.sep)


def _server(reference: StateReference) -> tuple[str | None, str, str | None]:
    host = reference.host.lower() if reference.host else None
    return host, reference.port or _DEFAULT_PORT, reference.service
