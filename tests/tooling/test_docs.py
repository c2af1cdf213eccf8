"""The documentation stays true to the code: every command and option is described, the error-type catalogue is
the code's own table, pasted JSON follows its schema, links resolve, and nothing points outside the repository.

`python -m tests.tooling.test_docs --write` regenerates the catalogue section of docs/messages.md.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest

from reconciler.api.catalogue import CATALOGUE, ErrorKind
from reconciler.cli import cli
from tests.helpers import SENTINEL_KEY, fleet

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MESSAGES = DOCS / "messages.md"
COMMANDS = DOCS / "commands.md"
CATALOGUE_START = "<!-- catalogue: generated from reconciler/api/catalogue.py"
CATALOGUE_END = "<!-- end of catalogue -->"

#: Names of places outside the repository that a reader cannot open. Written so that this file does not match.
OUTSIDE_REFERENCES = re.compile(r"shared[/]|findings[.]md|contract[.]md|\bissues?[ ]+#?\d", re.IGNORECASE)
#: The changelog may tell history in any words.
OUTSIDE_REFERENCES_ALLOWED_IN = {"CHANGELOG.md"}


# -- the error-type catalogue ---------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(kind: ErrorKind) -> str:
    status = str(kind.status) if kind.status is not None else "–"
    return (
        f"| `{kind.type}` | {status} | `{kind.category}` | "
        f"{'throttling' if kind.throttling else 'yes' if kind.retryable else 'no'} | "
        f"{'yes' if kind.stops_run else 'no'} | {_cell(kind.hint)} |"
    )


def catalogue_markdown() -> str:
    """The catalogue as the markdown table docs/messages.md holds: API types by status, then the client's own."""
    api = [kind for kind in CATALOGUE.values() if kind.status is not None]
    own = [kind for kind in CATALOGUE.values() if kind.status is None]
    header = [
        "| type | HTTP | category | retried | stops the run | what to do (printed in the report) |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    lines = ["Answered by the API:", "", *header, *map(_row, api), ""]
    lines += ["The client's own types, for what did not come as a documented API error:", "", *header]
    lines += map(_row, own)
    return "\n".join(lines)


def _catalogue_section(text: str) -> tuple[int, int]:
    start = text.index(CATALOGUE_START)
    start = text.index("\n", start) + 1
    return start, text.index(CATALOGUE_END)


def write_catalogue() -> None:
    text = MESSAGES.read_text("utf-8")
    start, end = _catalogue_section(text)
    MESSAGES.write_text(text[:start] + catalogue_markdown() + "\n" + text[end:], "utf-8")


def test_the_catalogue_in_the_docs_is_the_codes_table() -> None:
    text = MESSAGES.read_text("utf-8")
    start, end = _catalogue_section(text)
    assert text[start:end] == catalogue_markdown() + "\n", "run: python -m tests.tooling.test_docs --write"
    for kind in CATALOGUE.values():  # each row, whatever the layout
        assert f"| `{kind.type}` |" in text[start:end]


# -- commands and options -------------------------------------------------------------------------------------
def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += _commands(command, path + " ")
        else:
            found.append((path, command))
    return found


#: Commands described in the section of another (`state show` shares `state list`'s).
SHARED_SECTIONS = {"state show": "state list"}


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/commands.md has no section '## {heading}'"
    return match.group(1)


@pytest.mark.parametrize("path,command", _commands(cli), ids=[path for path, _ in _commands(cli)])
def test_every_option_of_every_command_is_documented(path: str, command: click.Command) -> None:
    section = _section(COMMANDS.read_text("utf-8"), SHARED_SECTIONS.get(path, path))
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.name != "help":
            for option in [*parameter.opts, *parameter.secondary_opts]:
                assert f"`{option}" in section, f"{path}: {option} is not described in docs/commands.md"


def _apply_exit_rows() -> dict[int, str]:
    """The rows of apply's exit table in docs/commands.md: code -> meaning."""
    section = _section(COMMANDS.read_text("utf-8"), "apply")
    return {
        int(code): meaning for code, meaning in re.findall(r"^\| \*\*(\d+)\*\* \| (.*) \|$", section, re.M)
    }


@pytest.mark.parametrize(
    ("case", "key", "url", "words"),
    [
        ("no key", None, "{url}", "no API key"),
        ("a URL refused before sending", SENTINEL_KEY, "{root}", "a path that does not end in `/api/v1`"),
        ("a wrong key", "wrong-key", "{url}", "a wrong API key"),
        ("the API down", SENTINEL_KEY, "http://127.0.0.1:9/api/v1", "an API that is down or out of reach"),
    ],
    ids=["no key", "URL path", "wrong key", "API down"],
)
def test_apply_exit_table_puts_each_case_under_the_code_apply_exits_with(
    run, write, server, monkeypatch, case: str, key: str | None, url: str, words: str
) -> None:
    if key is None:
        monkeypatch.delenv("POSTPRESS_API_KEY", raising=False)
    else:
        monkeypatch.setenv("POSTPRESS_API_KEY", key)
    monkeypatch.setenv(
        "POSTPRESS_API_URL", url.format(url=server.url, root=server.url.removesuffix("/api/v1"))
    )
    write("a.yaml", fleet(2))
    code = run("apply", "a.yaml", "--yes", "--max-attempts", "1").code
    rows = _apply_exit_rows()
    assert [row for row, meaning in rows.items() if words in meaning] == [code], (case, code, rows)


def test_the_global_options_are_documented() -> None:
    section = _section(COMMANDS.read_text("utf-8"), "Global options")
    for parameter in cli.params:
        if isinstance(parameter, click.Option):
            for option in parameter.opts:
                assert f"`{option}" in section


# -- pasted output --------------------------------------------------------------------------------------------
def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_pasted_json_parses_and_follows_its_schema() -> None:
    checked = 0
    for path in _markdown_files():
        text = path.read_text("utf-8")
        for block in re.finditer(r"^```json\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
            document = json.loads(block.group(1))
            marker = re.search(r"<!-- schema: (\w+) -->\n\Z", text[: block.start()])
            if marker:
                schema = json.loads((ROOT / "schemas" / f"{marker.group(1)}.schema.json").read_text("utf-8"))
                jsonschema.validate(document, schema)
                checked += 1
    assert checked >= 3  # the plan and the reports of docs/output.md


# -- the schema in an editor ----------------------------------------------------------------------------------
EDITOR_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def test_the_example_names_a_schema_file_that_is_there() -> None:
    example = ROOT / "examples" / "accounts.yaml"
    text = example.read_text("utf-8")
    found = EDITOR_LINE.match(text)  # the first line, where editors and readers look for it
    assert found, text.splitlines()[0]
    named = example.parent / found.group(1)
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", named.resolve().relative_to(ROOT).as_posix()],
        cwd=ROOT,
        capture_output=True,
    )
    assert tracked.returncode == 0  # a file in the repository, not through the `schemas` link (a text file
    assert not named.parent.is_symlink()  # where a checkout has no symbolic links)
    schema = json.loads(named.read_text("utf-8"))
    assert schema == json.loads((ROOT / "schemas" / "accounts.schema.json").read_text("utf-8"))
    validate = [sys.executable, "-m", "reconciler", "validate", str(example)]
    assert subprocess.run(validate, capture_output=True, cwd=ROOT).returncode == 0  # the line is a comment


def test_the_documented_command_prints_the_installed_schema() -> None:
    text = (DOCS / "configuration.md").read_text("utf-8")
    blocks = re.findall(r"^```sh\n(python -c .*?)\n```", text, re.MULTILINE)
    assert len(blocks) == 1, blocks
    command = shlex.split(blocks[0])
    printed = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, check=True
    ).stdout
    installed = Path(printed.strip())
    assert installed.is_file() and installed.name == "accounts.schema.json"
    shipped = json.loads(installed.read_text("utf-8"))
    assert shipped["$id"] == EDITOR_LINE.findall(text)[0]  # the same schema as the URL the docs give first


# -- links and references -------------------------------------------------------------------------------------
def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def test_relative_links_resolve() -> None:
    broken = []
    for path in _markdown_files():
        text = path.read_text("utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text("utf-8")):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_nothing_points_outside_the_repository() -> None:
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # new files count too
    tracked = subprocess.run(listing, cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    offenders = []
    for name in filter(None, tracked):
        path = ROOT / name
        if name in OUTSIDE_REFERENCES_ALLOWED_IN or path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue  # not text
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE_REFERENCES.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.tooling.test_docs --write")
    write_catalogue()
