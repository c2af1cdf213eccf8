"""`--help` reads whole: each command's summary in its group's list is a complete sentence on one line (click
cuts a long first sentence with "..."), and every command that reads CONFIG says what CONFIG defaults to."""

from __future__ import annotations

import re

import click
import pytest

from reconciler.cli import cli

WIDTH = "80"  # click's help is at most 80 columns wide; a narrower terminal wraps a summary, never cuts it


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    context = click.Context(group, info_name="reconciler")
    found = [prefix]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += _paths(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


PATHS = _paths(cli)
GROUPS = [path for path in PATHS if not path or path == ("state",)]


def _summaries(help_text: str) -> dict[str, str]:
    """The `Commands:` section of a group's help: name -> summary, each row on one line."""
    section = help_text.split("\nCommands:\n", 1)[1]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"  (\S+)\s+(\S.*)", line)
        assert match, f"a summary is not on one line: {line!r}"
        rows[match.group(1)] = match.group(2)
    return rows


@pytest.mark.parametrize("path", GROUPS, ids=[" ".join(path) or "reconciler" for path in GROUPS])
def test_each_summary_is_a_whole_sentence_on_one_line(run, monkeypatch, path) -> None:
    monkeypatch.setenv("COLUMNS", WIDTH)
    result = run(*path, "--help")
    assert result.code == 0, result.err
    summaries = _summaries(result.out)
    assert summaries, result.out
    for name, summary in summaries.items():
        assert not summary.endswith("..."), f"{name}: {summary}"
        assert summary.endswith("."), f"{name}: {summary}"


@pytest.mark.parametrize("path", PATHS[1:], ids=[" ".join(path) for path in PATHS[1:]])
def test_config_says_its_default_in_every_command_that_reads_it(run, monkeypatch, path) -> None:
    monkeypatch.setenv("COLUMNS", WIDTH)
    result = run(*path, "--help")
    assert result.code == 0, result.err
    usage = result.out.splitlines()[0]
    text = " ".join(result.out.split())
    if "[CONFIG]" in usage:
        assert (
            "CONFIG is a YAML file or a directory of them (default: accounts.yaml in the working directory, or "
            "in DIR with `reconciler -C DIR`)." in text
        )
    else:
        assert "CONFIG" not in usage
