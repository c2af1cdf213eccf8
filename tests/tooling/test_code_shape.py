"""The shape of the code: no class over 200 lines and no function over 80 in reconciler/ (the sandbox included),
unless the comment just above it (above its decorators, or right above its `def` line) has a line starting
`# long:` that says why a longer one reads better. A length is `end_lineno - lineno + 1` of the `def` or `class`
as `ast` reads it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import reconciler

PACKAGE = Path(reconciler.__file__).resolve().parent  # wherever this test file lives
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 80
REASON = "# long:"

Unit = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def units(path: Path) -> Iterator[tuple[Unit, int, int, str | None]]:
    """Every function and class of `path`: (node, its length, its limit, the reason it may be longer or None)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if not isinstance(node, Unit):
            continue
        limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
        assert node.end_lineno is not None
        yield node, node.end_lineno - node.lineno + 1, limit, reason_above(lines, node)


def reason_above(lines: list[str], node: Unit) -> str | None:
    """The text after `# long:` in the comment lines right above the unit's decorators or right above its `def`
    or `class` line (below its decorators), if any."""
    first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    for index in {first - 2, node.lineno - 2}:
        while index >= 0 and lines[index].lstrip().startswith("#"):
            comment = lines[index].strip()
            if comment.startswith(REASON):
                return comment[len(REASON) :].strip()
            index -= 1
    return None


def where(path: Path, node: Unit) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"


def test_no_class_or_function_is_over_its_length_without_a_reason() -> None:
    over = [
        f"{where(path, node)}: {length} lines (at most {limit})"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node, length, limit, reason in units(path)
        if length > limit and not reason
    ]
    assert not over, (
        "split these, or say why a longer one reads better in a '# long:' comment above:\n" + "\n".join(over)
    )


def test_every_long_reason_is_needed_and_says_something() -> None:
    """A `# long:` above a unit within its limit is stale; one with no words after it is no reason."""
    stale = [
        f"{where(path, node)}: {length} lines, reason {reason!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node, length, limit, reason in units(path)
        if reason is not None and (length <= limit or len(reason.split()) < 3)
    ]
    assert not stale, "\n".join(stale)


def test_the_measure_reads_decorators_and_comments_as_this_test_says(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    body = "\n".join(f"    x{n} = {n}" for n in range(80))
    source.write_text(
        f"# long: a table reads better whole\n@decorated\ndef long_one():\n{body}\n\n"
        f"def long_two():\n{body}\n\n# long:\ndef bare():\n    pass\n\n"
        f"@command\n@option\n# long: one parameter per option\ndef between():\n    pass\n",
        encoding="utf-8",
    )
    found = {node.name: (length, reason) for node, length, _, reason in units(source)}
    assert found == {
        "long_one": (81, "a table reads better whole"),
        "long_two": (81, None),
        "bare": (2, ""),
        "between": (2, "one parameter per option"),
    }
