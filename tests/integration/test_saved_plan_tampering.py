"""Tampered saved plans: a saved plan is an artifact anyone may have made or edited, so whatever it holds is
shown escaped for the format printed, its structure is bounded when read, and its `config` can name only a file
inside the working directory, never quoted before its digest matches.

Each test starts from a real saved plan (`plan --out`) and edits its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.render.plan_markdown import MARKER
from reconciler.sandbox import Fault, Sandbox, ServerThread
from reconciler.sandbox.reference import Reply
from tests.helpers import SENTINEL_KEY
from tests.integration.test_outside_text import HOSTILE_TEXT, assert_markdown_safe, raw_controls

CONFIG = """
version: 1
accounts:
  acc_a:
    provider: LINKEDIN
    proxy: {host: p.example.com, port: 8080, username: u, password: "${PROXY_PASSWORD}"}
  acc_b: {country: US}
  acc_c: {country: DE}
"""
FORMATS = ("text", "json", "markdown")
#: A workflow command of GitHub Actions, which the runner reads from any line of a step's output (after
#: leading whitespace), and which the action's own `grep '^::'` hands to it.
COMMAND = "::error title=owned::pwned"
#: The same, as an account id (no whitespace).
ID_COMMAND = "::error::pwned"
HOSTILE = f"{COMMAND}\n{COMMAND}\r\n  {COMMAND}\n{HOSTILE_TEXT}\u202e\x07<!-- reconciler-plan -->"


def _plan(run, write, monkeypatch, *, unset: bool = False) -> dict[str, Any]:
    """A real saved plan (`plan.bin`), as its JSON document; `unset`: made without PROXY_PASSWORD."""
    write("a.yaml", CONFIG)
    if unset:
        monkeypatch.delenv("PROXY_PASSWORD")
    result = run("plan", "a.yaml", "--out", "plan.bin")
    assert result.code == 0, result.err
    if unset:
        monkeypatch.setenv("PROXY_PASSWORD", "x")
    return json.loads(Path("plan.bin").read_text())


def _save(document: dict[str, Any] | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    Path("plan.bin").write_text(text, encoding="utf-8")


def _command_lines(text: str) -> list[str]:
    """Lines the Actions runner would read as a workflow command (it strips leading whitespace first)."""
    return [line for line in text.splitlines() if line.lstrip().startswith("::")]


def _assert_one_line_refusal(result, *words: str) -> None:
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err and result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("Error: "), result.err
    assert not raw_controls(result.err) and not _command_lines(result.err), result.err
    for word in words:
        assert word in result.err, result.err


# -- item 5: every string from the saved plan is escaped for the format printed ------------------------------


def _hostile_everywhere(document: dict[str, Any]) -> None:
    """Outside text in every free-text field of a saved plan that `show` prints."""
    change = document["changes"][0]
    change["account_id"] = HOSTILE[:250]
    change["file"] = HOSTILE + "|x|.yaml"
    change["after"]["proxy"]["host"] = HOSTILE
    document["changes"][1]["account_id"] = COMMAND
    document["changes"][1]["file"] = COMMAND
    document["changes"][2]["file"] = None
    document["changes"][2]["action"] = "forget"
    document["changes"][2]["before"], document["changes"][2]["after"] = {"country": HOSTILE}, None
    document["warnings"] = [HOSTILE, COMMAND, "\n" + COMMAND]
    document["config"] = "cfg" + HOSTILE.replace("\n", " ").replace("\r", " ") + ".yaml"


@pytest.mark.parametrize("output_format", FORMATS)
def test_show_escapes_hostile_text_from_a_tampered_plan(run, write, monkeypatch, output_format) -> None:
    document = _plan(run, write, monkeypatch)
    _hostile_everywhere(document)
    _save(document)
    shown = run("show", "plan.bin", "--format", output_format)
    assert shown.code == 0, shown.err
    for stream in (shown.out, shown.err):
        assert not raw_controls(stream), raw_controls(stream)
        assert not _command_lines(stream), _command_lines(stream)
    if output_format == "json":
        ids = {change["account_id"] for change in json.loads(shown.out)["changes"]}
        assert {COMMAND, HOSTILE[:250]} <= ids  # the same strings, escaped as JSON
    if output_format == "markdown":
        assert_markdown_safe(shown.out, MARKER)


@pytest.mark.parametrize(
    "names",
    [
        ["PROXY\x1b[2J_PASSWORD"],
        ["X\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"],
        ["X\u202eY"],
        ["X</details><img src=x onerror=alert(1)>"],
        ["@octocat"],
        ["<!-- reconciler-plan -->"],
        [f"X\n{COMMAND}"],
        ["1ABC"],
        ["PROXY_PASSWORD\n"],  # Python's `$` matches before a final newline; the schema's dialect does not
        [""],
        ["X" * 2000],
    ],
)
def test_a_saved_plans_variable_names_are_names(run, write, monkeypatch, names) -> None:
    """The finding: such names came out raw in the markdown comment (an ESC, an OSC-8 link, a BEL, U+202E,
    markup, a mention, a second plan marker, and a line `::error::` the action's `grep '^::'` hands the
    runner). A saved plan holds only names `[A-Za-z_][A-Za-z0-9_]*`: anything else is not a saved plan."""
    document = _plan(run, write, monkeypatch, unset=True)
    document["unset_variables"] = names
    _save(document)
    for output_format in FORMATS:
        refused = run("show", "plan.bin", "--format", output_format)
        _assert_one_line_refusal(refused, "plan.bin: not a valid saved plan: unset_variables[0]")
    _assert_one_line_refusal(run("apply", "--plan", "plan.bin", "--yes"), "not a valid saved plan")


@pytest.mark.parametrize(
    "marker",
    [
        "(not known here: X\x1b[2J unset)",
        f"(not known here: X\n{COMMAND} unset)",
        "(not known here: @octocat unset)",
        "(not known here: unset)",
    ],
)
def test_a_malformed_not_known_marker_is_refused(run, write, monkeypatch, marker) -> None:
    document = _plan(run, write, monkeypatch, unset=True)
    document["changes"][0]["after"]["proxy"]["password"] = marker
    _save(document)
    _assert_one_line_refusal(run("show", "plan.bin", "--format", "markdown"), "not a valid saved plan")


def test_the_not_known_markers_of_a_real_plan_still_show(run, write, monkeypatch) -> None:
    _plan(run, write, monkeypatch, unset=True)
    shown = run("show", "plan.bin", "--format", "markdown")
    assert shown.code == 0, shown.err
    assert "(not known here: PROXY_PASSWORD unset)" in shown.out
    assert "> Not known here: PROXY_PASSWORD unset;" in shown.out
    assert_markdown_safe(shown.out, MARKER)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["changes"][0].update(fields=["proxy.host\n" + COMMAND]), "changes[0].fields[0]"),
        (lambda d: d["changes"][0]["after"].update(labels={"x": "y"}), "changes[0].after"),
        (lambda d: d["changes"][0]["after"]["proxy"].update(extra="x"), "changes[0].after.proxy"),
        (lambda d: d["changes"][0]["after"]["proxy"].update(host={"a": "b"}), "changes[0].after.proxy.host"),
        (lambda d: d["changes"][0].update(account_id="a" * 5000), "changes[0].account_id"),
        (lambda d: d.update(warnings=["w" * 100_000]), "warnings[0]"),
        (lambda d: d.update(lineage="l" * 5000), "lineage"),
        (lambda d: d["safety"].update(recorded=10**30), "safety.recorded"),
        (lambda d: d.update(unchanged=10**30), "unchanged"),
    ],
)
def test_a_saved_plans_strings_and_numbers_are_bounded(run, write, monkeypatch, edit, where) -> None:
    document = _plan(run, write, monkeypatch)
    edit(document)
    _save(document)
    for command in (("show", "plan.bin"), ("apply", "--plan", "plan.bin", "--yes")):
        _assert_one_line_refusal(run(*command), f"plan.bin: not a valid saved plan: {where}")


def test_a_saved_plan_with_a_number_too_large_for_a_float_is_refused(run, write, monkeypatch) -> None:
    document = _plan(run, write, monkeypatch)
    _save(json.dumps(document).replace('"port": 8080', '"port": 1e400'))
    _assert_one_line_refusal(
        run("show", "plan.bin"), "plan.bin: not a saved reconciler plan (1e400 is not a finite"
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_saved_plan_with_nan_is_not_json(run, write, monkeypatch, constant) -> None:
    document = _plan(run, write, monkeypatch)
    _save(json.dumps(document).replace('"max_update_percent": 30.0', f'"max_update_percent": {constant}'))
    _assert_one_line_refusal(
        run("show", "plan.bin"), f"plan.bin: not a saved reconciler plan ({constant} is not JSON)"
    )


# -- no line begins with a workflow command unless reconciler wrote one ---------------------------------------


class CommandAnswers(Sandbox):
    """The sandbox, answering every error with a type and a detail that begin with a workflow command."""

    async def handle(self, scope: dict[str, Any], receive: Any) -> Reply:
        status, payload, headers = await super().handle(scope, receive)
        if isinstance(payload, dict) and "type" in payload:
            payload = {**payload, "type": COMMAND, "title": COMMAND, "detail": f"\n{COMMAND}\n  {COMMAND}"}
        return Reply(status, payload, headers)


@pytest.fixture
def command_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    sandbox = CommandAnswers(SENTINEL_KEY, accept_any_account=True, sync_polls=1)
    sandbox.faults = [Fault("errors/invalid_parameters", accounts=frozenset({ID_COMMAND, "acc_fails"}))]
    thread = ServerThread(sandbox).start()
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("POSTPRESS_API_URL", thread.url)
    yield sandbox
    thread.stop()


def test_no_output_line_of_plan_or_apply_begins_with_a_workflow_command(
    run, write, command_api, monkeypatch
) -> None:
    """Outside text that can begin a line: an account id, a file name, a warning, the API's error type and
    detail. Under GITHUB_ACTIONS=true the only `::` lines are reconciler's own annotations."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    config = "::warning::cfg"  # its files' problems and warnings begin with their path
    write(
        f"{config}/{COMMAND}.yaml",
        f"""
        version: 1
        accounts:
          "{ID_COMMAND}": {{country: US}}
          "acc_fails": {{country: US}}
          "{ID_COMMAND}x": {{proxy: {{host: h.example, port: 1, password: plain}}}}
        """,
    )
    outputs = []
    for output_format in FORMATS:
        outputs.append(run("plan", config, "--format", output_format))
        outputs.append(run("plan", config, "--format", output_format, "--out", "plan.bin"))
        outputs.append(run("show", "plan.bin", "--format", output_format))
        outputs.append(
            run("apply", config, "--yes", "--format", output_format, "--state", f"{output_format}.json")
        )
    assert [result.code for result in outputs] == [0, 0, 0, 3] * len(FORMATS), [r.err for r in outputs]
    for result in outputs:
        assert not _command_lines(result.out), _command_lines(result.out)
        own = [line for line in _command_lines(result.err) if line.startswith("::warning file=")]
        assert _command_lines(result.err) == own, _command_lines(result.err)
        assert own == [] or len(own) == 1
        assert result.err == "" or "::warning::cfg" in result.err.replace("\\x3a:", "::")
    assert any(ID_COMMAND[1:] in result.out for result in outputs)  # shown, escaped


# -- item 6: a saved plan's structure is bounded when read ---------------------------------------------------


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [900, 100_000])
def test_a_deeply_nested_saved_plan_is_one_line(run, write, monkeypatch, depth) -> None:
    """The finding: an `after` nested 900 mappings deep passed the schema check, and `show` ended in a
    RecursionError traceback. 100,000 deep, json.loads itself recurses too deeply."""
    document = _plan(run, write, monkeypatch)
    text = json.dumps(document).replace('"after": {"country": "US"}', f'"after": {_nested(depth)}', 1)
    _save(text)
    for output_format in FORMATS:
        _assert_one_line_refusal(run("show", "plan.bin", "--format", output_format), "plan.bin: ")
    _assert_one_line_refusal(run("apply", "--plan", "plan.bin", "--yes"), "plan.bin: ")


@pytest.mark.parametrize("where", ["targets", "selectors", "warnings", "state"])
def test_deep_nesting_anywhere_is_one_line(run, write, monkeypatch, where) -> None:
    document = _plan(run, write, monkeypatch)
    text = json.dumps(document).replace(f'"{where}": ', f'"{where}": [{_nested(5000)}, ', 1)
    _save(text)
    _assert_one_line_refusal(run("show", "plan.bin"), "plan.bin: ")


def test_a_saved_plan_that_is_not_a_regular_file_is_read_within_bounds(run, write) -> None:
    """`show /dev/zero` reads no more than a saved plan may hold, then says it is not one."""
    result = run("show", "/dev/zero")
    _assert_one_line_refusal(result, "/dev/zero: ")


# -- item 8: a saved plan's config is a file inside the working directory, quoted only once it matches -------


def _run_apply_in_subprocess(workdir: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """apply --plan in a process of its own: were the FIFO opened, it would wait for a writer for ever."""
    environment = {**os.environ, "POSTPRESS_API_KEY": "k", "POSTPRESS_API_URL": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--plan", "plan.bin", "--yes"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def outside_fifo(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FIFO outside the working directory: opening it for reading blocks until a writer comes (none does)."""
    fifo = tmp_path_factory.mktemp("outside") / "accounts.yaml"
    os.mkfifo(fifo)
    return fifo


def _named_config(workdir: Path, fifo: Path, kind: str) -> str:
    if kind == "absolute":
        return str(fifo)
    if kind == "dotdot":
        return os.path.relpath(fifo, workdir)
    if kind == "dotdot-inside":
        return "sub/../" + os.path.relpath(fifo, workdir)
    if kind == "symlink":
        (workdir / "link.yaml").symlink_to(fifo)
        return "link.yaml"
    if kind == "symlinked-directory":
        (workdir / "linked").symlink_to(fifo.parent)
        return "linked/accounts.yaml"
    assert kind == "fifo-inside"
    os.mkfifo(workdir / "pipe.yaml")
    return "pipe.yaml"


@pytest.mark.parametrize(
    "kind", ["absolute", "dotdot", "dotdot-inside", "symlink", "symlinked-directory", "fifo-inside"]
)
def test_a_saved_plans_config_outside_the_working_directory_is_refused_before_any_open(
    run, write, workdir, monkeypatch, outside_fifo, kind
) -> None:
    (workdir / "sub").mkdir()
    document = _plan(run, write, monkeypatch)
    document["config"] = _named_config(workdir, outside_fifo, kind)
    _save(document)
    result = _run_apply_in_subprocess(workdir)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: plan.bin: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("config", ["/etc/passwd", "/dev/zero", "../x.yaml", "a/../../x.yaml", ""])
def test_a_saved_plans_config_must_be_relative_and_inside(run, write, monkeypatch, config) -> None:
    document = _plan(run, write, monkeypatch)
    document["config"] = config
    _save(document)
    for command in (("show", "plan.bin"), ("apply", "--plan", "plan.bin", "--yes")):
        result = run(*command)
        _assert_one_line_refusal(result, "plan.bin: ")
        assert "root:" not in result.err


def test_a_config_that_differs_from_the_plan_is_not_quoted(run, write, api, monkeypatch) -> None:
    """The finding: with `"config": "/etc/shadow"`, apply --plan parsed the file and quoted its lines as
    configuration errors. Inside the working directory too, a file is parsed only once its digest matches."""
    _plan(run, write, monkeypatch)
    secret_line = "root:$6$SENTINEL-hash:19000:0:99999:7:::"
    write("a.yaml", f"{secret_line}\n  [unbalanced: {{\n")
    result = run("apply", "--plan", "plan.bin", "--yes")
    _assert_one_line_refusal(result, "the configuration a.yaml differs from the one planned")
    assert "SENTINEL" not in result.err and "root" not in result.err
    assert api.stats.requests == 0
    write("a.yaml", "version: 1\naccounts:\n  acc_z: {country: [" + secret_line + "]}\n")
    result = run("apply", "--plan", "plan.bin", "--yes")
    _assert_one_line_refusal(result, "the configuration a.yaml differs from the one planned")
    assert "SENTINEL" not in result.err


def test_a_directory_config_that_differs_from_the_plan_is_not_quoted(run, write, api, monkeypatch) -> None:
    write("cfg/one.yaml", CONFIG)
    assert run("plan", "cfg", "--out", "plan.bin").code == 0
    write("cfg/two.yaml", "root:$6$SENTINEL-hash:19000\n")
    result = run("apply", "--plan", "plan.bin", "--yes")
    _assert_one_line_refusal(result, "the configuration cfg differs from the one planned")
    assert "SENTINEL" not in result.err


def test_a_plan_of_a_config_inside_the_working_directory_still_applies(run, write, api, workdir) -> None:
    """A config in a subdirectory, and one reached through a link that stays inside, apply as before."""
    write("team/accounts.yaml", CONFIG.replace('"${PROXY_PASSWORD}"', "pw"))
    (workdir / "accounts.yaml").symlink_to("team/accounts.yaml")
    for index, config in enumerate(("team/accounts.yaml", "accounts.yaml", "./team/../team/accounts.yaml")):
        assert run("plan", config, "--out", "plan.bin", "--state", f"{index}.json").code == 0
        applied = run("apply", "--plan", "plan.bin", "--yes")
        assert applied.code == 0, applied.err
        assert Path(f"{index}.json").exists()


def test_plan_out_refuses_a_config_outside_the_working_directory(run, write, workdir, monkeypatch) -> None:
    """Such a plan could never be applied: plan says so at once, before printing anything."""
    write("outside.yaml", CONFIG)
    write("inside/a.yaml", CONFIG)
    (workdir / "inside" / "link.yaml").symlink_to(workdir / "outside.yaml")
    monkeypatch.chdir(workdir / "inside")
    for config in ("../outside.yaml", str(workdir / "outside.yaml"), "link.yaml"):
        result = run("plan", config, "--out", "plan.bin")
        _assert_one_line_refusal(result, "is outside the working directory")
        assert not Path("plan.bin").exists()
        assert run("plan", config).code == 0  # without --out, plan reads it
    # An absolute path inside the working directory is saved relative to it.
    assert run("plan", str(workdir / "inside" / "a.yaml"), "--out", "plan.bin").code == 0
    assert json.loads(Path("plan.bin").read_text())["config"] == "a.yaml"


# -- the hand check of large lists is the schema ---------------------------------------------------------------


def _mutations(change: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`change` with one thing changed, each way a tampered plan might."""
    odd_values: list[Any] = [
        None,
        True,
        0,
        -1,
        1.5,
        2**63,
        "",
        "x" * 5000,
        "(not known here: X unset)",
        "(not known here: X unset)\n",
        "(not known here",
        [],
        {},
        {"a": 1},
        ["x"],
        "\x00",
    ]
    for key in [*change, "extra"]:
        for value in odd_values:
            yield {**change, key: value}
        if key in change:
            yield {name: value for name, value in change.items() if name != key}
    for side in ("before", "after"):
        for settings_key in ("proxy", "country", "ip", "labels"):
            for value in odd_values:
                yield {**change, side: {settings_key: value}}
        for proxy_key in ("host", "port", "password", "extra"):
            for value in odd_values:
                yield {**change, side: {"proxy": {proxy_key: value}}}
    for fields in (["proxy.host.x"], ["a b"], ["x\n"], ["x"] * 65, [1]):
        yield {**change, "fields": fields}


def _item_validator(key: str) -> Any:
    """The validator of one item of the saved plan's list `key`, from schemas/saved-plan.schema.json."""
    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "saved-plan.schema.json").read_text("utf-8"))
    item = {"$schema": schema["$schema"], "$defs": schema["$defs"], **schema["properties"][key]["items"]}
    return jsonschema.validators.validator_for(item)(item)


def test_the_hand_check_of_a_change_accepts_nothing_the_schema_refuses(run, write, monkeypatch) -> None:
    """`problem` checks each item of a saved plan's long lists by hand and asks the schema only about an item the
    hand check refuses; an item the hand check accepts is not looked at again. So a plan holding one item the
    schema refuses is refused only if the hand check refuses that item too."""
    from reconciler import planfile_check

    document = _plan(run, write, monkeypatch, unset=True)
    assert planfile_check.problem(document) is None  # every item of a real plan passes the hand check
    validator = _item_validator("changes")
    checked = 0
    for change in document["changes"]:
        for mutated in _mutations(change):
            if list(validator.iter_errors(mutated)):
                assert planfile_check.problem({**document, "changes": [mutated]}) is not None, mutated
            checked += 1
    assert checked > 500
    variables = _item_validator("unset_variables")
    for name in ("PROXY_PASSWORD", "x", "_1", "PROXY_PASSWORD\n", "1x", "", "a-b", "x" * 300):
        if list(variables.iter_errors(name)):
            assert planfile_check.problem({**document, "unset_variables": [name]}) is not None, name


def test_every_change_of_real_plans_takes_the_fast_path(run, write, monkeypatch) -> None:
    """Creates, updates (a proxy, a managed one, a failed apply), forgets and resyncs, with values not known."""
    from reconciler import planfile_check

    write(
        "a.yaml",
        """
        version: 1
        accounts:
          p: {provider: LINKEDIN, proxy: {protocol: socks5, host: h.example, port: 1, username: u, password: pw}}
          m: {country: US, ip: 203.0.113.1}
          r: {provider: TELEGRAM, country: DE, resync: {generation: 2}}
          f: {country: FR}
        """,
    )
    assert run("import", "a.yaml").code == 0
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          p: {provider: LINKEDIN, proxy: {protocol: http, host: h2.example, port: 2, password: "${UNSET_PW}"}}
          m: {country: GB}
          r: {provider: TELEGRAM, country: DE, resync: {generation: 3}}
          n: {proxy: {host: n.example, port: 3, username: "${PROXY_PASSWORD}"}}
        """,
    )
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    document = json.loads(Path("plan.bin").read_text())
    assert {change["action"] for change in document["changes"]} == {"create", "update", "forget", "none"}
    assert document["unset_variables"] == ["UNSET_PW"]
    # `problem` refuses any item its hand check refuses, even one the schema accepts: None says that every
    # change and warning took the fast path.
    assert planfile_check.problem(document) is None
    assert run("show", "plan.bin", "--format", "markdown").code == 0
