"""The layers that import-linter cannot see (it checks imports; .importlinter and CONTRIBUTING.md, "Layers").

- Only the command line (reconciler/cli) and the sandbox, a tool of its own, write to the terminal: no other
  module calls `print`, `click.echo` or `click.secho`, or names `sys.stdout` or `sys.stderr`. A lower layer
  returns the text, raises, or logs (reconciler/logs.py; logging writes the records).
- No module touches another module's private names: no `from reconciler.x import _name`, and no
  `name._private` (nor `setattr(name, "_private", ...)`, monkeypatch's included) where `name` was imported from
  another reconciler module (a module, a class or a function). A private attribute reached through an instance
  (`self.backend._write_file`) is not seen: that needs types. The tests are held to it too: a test calls
  reconciler through public names.

Both are `ast` scans of every file under reconciler/ (the private names also of every file under tests/); each
scanner is tried on a known violation first.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
TESTS = PACKAGE.parent / "tests"

#: The modules that may write to the terminal: the command line, and the sandbox (its own command's server).
TERMINAL_WRITERS = ("cli", "sandbox")
_STREAMS = frozenset(("stdout", "stderr", "__stdout__", "__stderr__"))
_ECHOES = frozenset(("echo", "secho"))


def _module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> list[tuple[str, Path, ast.Module]]:
    return [
        (_module_name(path), path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _line_number(finding: str) -> int:
    return int(finding.split(":")[0].removeprefix("line "))


def terminal_writes(tree: ast.Module) -> list[str]:
    """Where `tree` writes to the terminal itself: `print(...)`, `click.echo`/`click.secho` (or the bare names
    imported from click), `sys.stdout`/`sys.stderr` (or the names imported from sys)."""
    imported: dict[str, str] = {}  # a name bound by `from sys import stderr` / `from click import echo`
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("sys", "click") and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"line {node.lineno}: print(...)")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in {"sys": _STREAMS, "click": _ECHOES}.get(node.value.id, ()):
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in imported:
            module, name = imported[node.id].split(".")
            if name in (_STREAMS if module == "sys" else _ECHOES):
                found.append(f"line {node.lineno}: {imported[node.id]}")
    return sorted(found, key=_line_number)


def _private(name: str) -> bool:
    return name.startswith("_") and name != "_" and not (name.startswith("__") and name.endswith("__"))


def _imported_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` in `module` reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def private_reaches(module: str, is_package: bool, tree: ast.Module) -> list[str]:
    """Where `tree` (the module `module`) touches a private name of another reconciler module."""
    found = []
    foreign: dict[str, str] = {}  # a local name -> what of another reconciler module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _imported_from(module, is_package, node)
            if source.split(".")[0] != "reconciler" or source == module:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"line {node.lineno}: from {source} import {alias.name}")
                foreign[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "reconciler":
                    local = alias.asname or alias.name.split(".")[0]
                    foreign[local] = alias.name if alias.asname else "reconciler"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in foreign:
            target = ".".join([foreign[value.id], *reversed(chain[1:])])
            if target != module:  # `import reconciler.x` in reconciler.x itself: its own names
                found.append(f"line {node.lineno}: {ast.unparse(node)} ({target}.{node.attr})")
    for node in ast.walk(tree):  # setattr(name, "_private", ...), monkeypatch.setattr(...) and the like
        if not (isinstance(node, ast.Call) and len(node.args) >= 2 and _called(node.func) in _SETTERS):
            continue
        owner, attribute = node.args[:2]
        if (
            isinstance(owner, ast.Name)
            and owner.id in foreign
            and isinstance(attribute, ast.Constant)
            and isinstance(attribute.value, str)
            and _private(attribute.value)
        ):
            found.append(
                f"line {node.lineno}: {owner.id}.{attribute.value} ({foreign[owner.id]}.{attribute.value})"
            )
    return sorted(found, key=_line_number)


_SETTERS = frozenset(("setattr", "getattr", "delattr"))


def _called(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _test_sources() -> list[tuple[str, Path, ast.Module]]:
    return [
        (_module_name(path, TESTS.parent), path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(TESTS.rglob("*.py"))
    ]


def test_the_scanners_find_what_they_look_for() -> None:
    writes = terminal_writes(
        ast.parse(
            "import sys, click\nfrom sys import stderr as err\nfrom click import echo\n"
            "print('x')\nsys.stdout.write('x')\nclick.echo('x')\necho('x')\nerr.write('x')\n"
            "sys.argv\nclick.Path\nlogging.StreamHandler()\n"
        )
    )
    assert [line.split(":")[0] for line in writes] == [f"line {n}" for n in (4, 5, 6, 7, 8)], writes
    reaches = private_reaches(
        "reconciler.state.file",
        False,
        ast.parse(
            "import reconciler.secrets\nfrom reconciler import planfile\nfrom reconciler.state import base\n"
            "from .base import _helper, Backend\nfrom reconciler.model import Plan\nimport os\n"
            "planfile._load\nbase._x\nBackend._y\nPlan._z\nreconciler.secrets._registry\nos._exit\nself._mine\n"
            "planfile.save\n_local\nplanfile.__name__\n"
            "monkeypatch.setattr(planfile, '_load', None)\nsetattr(base, '_x', 1)\nsetattr(os, '_exit', 1)\n"
            "monkeypatch.setattr(planfile, 'save', None)\ngetattr(Backend, '_y')\n"
        ),
    )
    expected = (4, 7, 8, 9, 10, 11, 17, 18, 21)
    assert [line.split(":")[0] for line in reaches] == [f"line {n}" for n in expected], reaches


def test_only_the_command_line_and_the_sandbox_write_to_the_terminal() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {write}"
        for module, path, tree in _sources()
        if module.split(".")[1:2] not in [[name] for name in TERMINAL_WRITERS]
        for write in terminal_writes(tree)
    ]
    assert found == [], "return the text, raise or log instead"


def test_no_module_touches_another_modules_private_names() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {reach}"
        for module, path, tree in _sources()
        for reach in private_reaches(module, path.name == "__init__.py", tree)
    ]
    assert found == []


def test_no_test_touches_a_private_name_of_reconciler() -> None:
    found: dict[str, set[str]] = {}
    for module, path, tree in _test_sources():
        for reach in private_reaches(module, path.name == "__init__.py", tree):
            found.setdefault(path.relative_to(TESTS.parent).as_posix(), set()).add(
                reach.split(": ")[1].split()[0]
            )
    assert found == {}, "test through public names, or make the helper public"
