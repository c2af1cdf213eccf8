"""Nothing from outside reaches a comment, a terminal, a report or the state unredacted or unescaped.

One suite runs every command and output format (text, JSON, markdown, `--out`, `--report`, the step summary,
GITHUB_OUTPUT, `-v` logs, `state list/show/forget`, `import`) on both state backends, with sentinel secrets in
every source (a `${VAR}` password and username, a plaintext password, the API key) and an API that echoes them
in its answers (raw, JSON-escaped and base64), and hostile strings in every outside field (account ids, labels,
hosts, the API's type/title/detail, the config and state file names). Then it checks every byte written:
stdout, stderr, the state file, the journal as written, PostgreSQL rows, the saved plan, the reports, the step
summary, GITHUB_OUTPUT and the lock file.

- secrets: `assert_no_secrets` (tests/helpers.py) in every decoded view;
- terminal: no character a terminal acts on (C0/C1 controls, ESC, DEL, bidi and other format characters) in
  any output or file: only their visible escapes (`\\x1b`, `\\u202e`);
- markdown: each comment, report and summary rendered by GitHub's own parser (cmark-gfm): the marker exactly
  once, no element but ours, every `<details>` closed where we closed it, no mention outside code, and the
  60,000-character bound held.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from reconciler import escape
from reconciler.render.markdown import LIMIT
from reconciler.sandbox import Fault, Sandbox, ServerThread
from reconciler.sandbox.reference import Reply
from tests.helpers import PG_URL, assert_no_secrets, postgres_unreachable_reason, written_files

# -- sentinel secrets: characters that change under JSON, URL, HTML and base64 encoding ------------------------
PASSWORD = 'pw/SENT"inel+<é>&7f3a'  # ${PROXY_PASSWORD}
USERNAME = "u$er/SENT&inel=9c'x"  # ${PROXY_USER}
PLAINTEXT = "plain+SENT/inel%41zz"  # written in the config (a warning)
API_KEY = 'k3y/SENT"inel+51&x'
SECRETS = (PASSWORD, USERNAME, PLAINTEXT, API_KEY)

# -- hostile strings -------------------------------------------------------------------------------------------
HOSTILE_IDS = (
    "acc</details><img/src=x/onerror=alert(1)>",
    "acc```~~~`",
    "@octocat",
    "[x](javascript:alert(1))",
    "<!--reconciler-plan-->",
)
TITLE_ID = "@octocat"  # its answer has no detail: the title is shown
#: In the API's answers: cursor moves, a screen clear, an OSC title, C1 CSI, bidi, zero width, markdown.
HOSTILE_TEXT = (
    "\x1b[2J\x1b]0;owned\x07\r\n\u009b31m\u202eevil\u200b</details>\n```\n~~~\n"
    "<img src=x onerror=alert(1)> @octocat [x](javascript:alert(1)) <!-- reconciler-plan --> "
)
HOSTILE_TYPE = f"errors/x {HOSTILE_TEXT}{PASSWORD} {base64.b64encode(API_KEY.encode()).decode()}"
#: A host in the file is checked (no host holds a control character or a '<'): this one comes from the recorded
#: state, outside text too (a state edited by hand or written by another tool), and reaches the plan's diff.
RECORDED_HOST = "h\x1b[2J\x1b]0;owned\x07\r\u202e</details>`x`@team.example"
CONFIG_NAME = "cfg\x1b[2J\u202e`<img src=x onerror=alert(1)>@x.yaml"
STATE_NAME = "st\x1b]0;t\x07<details>`.json"

CONFIG = f"""\
version: 1
accounts:
  acc_secret:
    provider: LINKEDIN
    labels: {{team: "red\\e[31m</details>@here\\u202e"}}
    proxy: {{host: h.team.example, port: 8080, username: "${{PROXY_USER}}", password: "${{PROXY_PASSWORD}}"}}
  acc_secret64: {{proxy: {{host: h.example, port: 1, password: "${{PROXY_PASSWORD}}"}}}}
  acc_plain: {{proxy: {{host: p.example, port: 1, password: "{PLAINTEXT}"}}}}
  acc_ok: {{country: US, labels: {{note: "\\e[2J"}}}}
""" + "".join(f"  {json.dumps(account_id)}: {{country: US}}\n" for account_id in HOSTILE_IDS)

FAILING = ("acc_secret", "acc_secret64", "acc_plain", *HOSTILE_IDS)


def raw_controls(text: str) -> list[str]:
    """What a terminal would act on: every character Python does not call printable, but newlines and tabs."""
    return [character for character in text if not character.isprintable() and character not in "\n\t"]


class HostileAnswers(Sandbox):
    """The sandbox, with hostile text in the answers: an unknown `type` smuggling markup, controls and the
    secrets for acc_plain, and a title in place of the detail for TITLE_ID."""

    async def handle(self, scope: dict[str, Any], receive: Any) -> Reply:
        status, payload, headers = await super().handle(scope, receive)
        path = (scope.get("raw_path") or b"").decode("latin-1")
        if isinstance(payload, dict) and "type" in payload:
            if "/acc_plain" in path:
                payload = {**payload, "type": HOSTILE_TYPE, "detail": HOSTILE_TEXT + payload["detail"]}
            elif path.endswith("/" + quote(TITLE_ID, safe="")):
                payload = {**payload, "title": HOSTILE_TEXT + payload["detail"], "detail": ""}
        return Reply(status, payload, headers)


@pytest.fixture
def hostile_api(monkeypatch: pytest.MonkeyPatch):
    sandbox = HostileAnswers(API_KEY, accept_any_account=True, sync_polls=1)
    sandbox.faults = [
        Fault(
            "errors/invalid_proxy_credentials", accounts=frozenset({"acc_secret", "acc_secret64"}), echo=True
        ),
        Fault("errors/invalid_parameters", accounts=frozenset({"acc_plain", *HOSTILE_IDS}), echo=True),
    ]
    thread = ServerThread(sandbox).start()
    monkeypatch.setenv("POSTPRESS_API_KEY", API_KEY)
    monkeypatch.setenv("POSTPRESS_API_URL", thread.url)
    monkeypatch.setenv("PROXY_PASSWORD", PASSWORD)
    monkeypatch.setenv("PROXY_USER", USERNAME)
    yield sandbox
    thread.stop()


@pytest.fixture
def journal_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every byte the file backend writes to a journal, as it is written (the journal is gone after a run)."""
    from reconciler import fsutil

    written: list[bytes] = []
    original = fsutil.write_all

    def capturing(fd: int, data: bytes) -> None:
        written.append(bytes(data))
        original(fd, data)

    monkeypatch.setattr(fsutil, "write_all", capturing)
    return written


# -- markdown as GitHub renders it -----------------------------------------------------------------------------
ALLOWED_ELEMENTS = {"details", "summary", "code", "pre", "p", "h3", "strong", "blockquote", "ul", "li"} | {
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"lang", "align"}


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.elements: list[str] = []
        self.attributes: set[str] = set()
        self.mentions_outside_code: list[str] = []
        self.deepest_details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)
        self.attributes.update(name for name, _ in attrs)
        self.open.append(tag)
        self.deepest_details = max(self.deepest_details, self.open.count("details"))

    def handle_endtag(self, tag: str) -> None:
        assert tag in self.open, f"</{tag}> closes nothing"
        while self.open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if "@" in data and "code" not in self.open:
            self.mentions_outside_code.append(data)


def assert_markdown_safe(source: str, marker: str, sections: int | None = None) -> None:
    """`source` renders with only our structure: one marker, our elements, no mention, under the bound."""
    assert len(source) <= LIMIT
    assert source.startswith(marker + "\n") and source.count(marker) == 1
    assert source.count("<!--") == 1, "an HTML comment opener from outside"
    assert not raw_controls(source), raw_controls(source)
    rendered = cmarkgfm.github_flavored_markdown_to_html(source, options=Options.CMARK_OPT_UNSAFE)
    structure = _Structure()
    structure.feed(rendered)
    structure.close()
    assert not structure.open, f"unclosed: {structure.open}"
    assert set(structure.elements) <= ALLOWED_ELEMENTS, set(structure.elements) - ALLOWED_ELEMENTS
    assert structure.attributes <= ALLOWED_ATTRIBUTES, structure.attributes
    assert structure.deepest_details <= 1
    assert not structure.mentions_outside_code, structure.mentions_outside_code
    if sections is not None:
        assert structure.elements.count("details") == sections, rendered


def without_annotations(out: str) -> str:
    """stdout less the `::warning ...` workflow commands printed under GITHUB_ACTIONS=true."""
    return "".join(line for line in out.splitlines(keepends=True) if not line.startswith("::"))


def reports_in(summary: str) -> list[str]:
    marker = "<!-- reconciler-report -->"
    return [marker + part for part in summary.split(marker)[1:]]


# -- the suite -------------------------------------------------------------------------------------------------
def _plant_recorded_host(state: str, account_ids: list[str], host: str = RECORDED_HOST) -> None:
    """Record `host` as the proxy host of each account: the plan's diff shows it."""
    from reconciler.model import AccountRecord
    from reconciler.state import open_backend

    backend = open_backend(state)
    with backend.lock():
        recorded = backend.create_if_absent()
        for account_id in account_ids:
            recorded.accounts[account_id] = AccountRecord(
                settings={"proxy": {"host": host, "port": 8080}}, applied_at="2026-01-01T00:00:00Z"
            )
        backend.write(recorded)


def test_every_command_and_format(
    run, workdir: Path, state_url: str, hostile_api, journal_writes, monkeypatch
) -> None:
    state = str(workdir / "state" / STATE_NAME) if not state_url.startswith("postgresql") else state_url
    (workdir / "state").mkdir(exist_ok=True)
    config = workdir / CONFIG_NAME
    config.write_text(CONFIG, encoding="utf-8")
    summary, outputs = workdir / "summary.md", workdir / "outputs.txt"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    apply = ["apply", "--yes", "--state", state, "--max-attempts", "1"]
    _plant_recorded_host(state, ["acc_secret"])

    outcomes = {
        "validate": run("-v", "validate", CONFIG_NAME),
        "plan text": run("-v", "plan", CONFIG_NAME, "--state", state),
        "plan json": run("-v", "plan", CONFIG_NAME, "--state", state, "--format", "json"),
        "plan markdown": run(
            "-v", "plan", CONFIG_NAME, "--state", state, "--format", "markdown", "--out", "p.bin"
        ),
        "apply --plan": run("-v", *apply[:1], "--plan", "p.bin", *apply[1:], "--report", "r.json"),
        "apply json": run("-v", *apply, CONFIG_NAME, "--format", "json"),
        "apply markdown": run("-v", *apply, CONFIG_NAME, "--format", "markdown", "--report", "r2.json"),
        "plan after failures": run("-v", "plan", CONFIG_NAME, "--state", state, "--format", "markdown"),
        "state list": run("-v", "state", "list", "--state", state),
    }
    for account_id in (*FAILING, "acc_ok"):
        outcomes[f"state show {account_id}"] = run("-v", "state", "show", account_id, "--state", state)
    outcomes["state show missing"] = run("-v", "state", "show", "nope\x1b[2J", "--state", state)
    outcomes["state forget"] = run("-v", "state", "forget", HOSTILE_IDS[0], "--state", state)
    outcomes["import"] = run("-v", "import", CONFIG_NAME, "--state", state)
    outcomes["state forget missing"] = run("-v", "state", "forget", "gone\u202e", "--state", state)

    codes = {name: outcome.code for name, outcome in outcomes.items()}
    expected = dict.fromkeys(codes, 0)
    expected.update({"apply --plan": 3, "apply json": 3, "apply markdown": 3})
    expected.update({"state show missing": 1, "state forget missing": 1})
    assert codes == expected, {
        name: outcomes[name].err[-600:] for name in codes if codes[name] != expected[name]
    }

    # The run was real: the answers echoed the secrets, the hostile text reached every output, escaped.
    echoed = hostile_api.stats.log
    assert len(echoed) == 3 * len(FAILING) + 1
    applied = outcomes["apply --plan"].out
    assert "\\x1b[2J" in applied and "\\u202e" in applied and "\\x0d\\x0a" in applied
    assert "Injected by the sandbox; X-API-KEY *** (***); the request {" in applied
    assert "HTTP 401" in applied and "HTTP 400" in applied
    assert (
        "\\u202e" in outcomes["plan text"].out and "\\x1b" in outcomes["validate"].err
    )  # recorded host; file
    report = json.loads((workdir / "r.json").read_text())
    types = {result["account_id"]: result["error_type"] for result in report["results"]}
    assert types["acc_plain"].startswith("errors/x%20%1B%5B2J") and len(types["acc_plain"]) <= 100
    assert all("***" in result["message"] for result in report["results"] if result["outcome"] == "failed")
    shown = json.loads(outcomes["state show acc_plain"].out)
    assert (
        shown["last_failure"]["error_type"] == types["acc_plain"]
        and "***" in shown["last_failure"]["message"]
    )
    assert (
        "::warning file=cfg\\x1b[2J\\u202e`<img src=x onerror=alert(1)>@x.yaml,line="
        in outcomes["validate"].err
    )

    # Secrets: nowhere, in any form.
    texts: dict[str, str | bytes] = {}
    for name, outcome in outcomes.items():
        texts[f"{name} stdout"], texts[f"{name} stderr"] = outcome.out, outcome.err
    texts["the journal as written"] = b"".join(journal_writes)
    assert state_url.startswith("postgresql") or len(journal_writes) > 3
    assert_no_secrets(secrets=SECRETS, texts=texts, files=workdir, skip=[config], postgres=state_url)

    # The terminal: no raw control, bidi or format character in any output or any written file.
    for name, text in texts.items():
        assert not raw_controls(text.decode() if isinstance(text, bytes) else text), name
    for path, content in written_files(workdir, skip=[config]).items():
        assert not raw_controls(content.decode("utf-8")), path
    assert "Traceback" not in "".join(outcome.err for outcome in outcomes.values())
    for name in ("plan json", "apply json", "state show acc_plain"):
        json.loads(without_annotations(outcomes[name].out))  # escaping kept the JSON valid

    # Markdown: the comment, the report on stdout and each report in the step summary.
    assert_markdown_safe(
        without_annotations(outcomes["plan markdown"].out), "<!-- reconciler-plan -->", sections=1
    )
    assert_markdown_safe(
        without_annotations(outcomes["plan after failures"].out), "<!-- reconciler-plan -->", sections=1
    )
    assert_markdown_safe(
        without_annotations(outcomes["apply markdown"].out), "<!-- reconciler-report -->", sections=3
    )
    reports = reports_in(summary.read_text())
    assert len(reports) == 3
    for markdown in reports:
        assert_markdown_safe(markdown.rstrip("\n") + "\n", "<!-- reconciler-report -->", sections=3)
    assert outputs.read_text().startswith("changes=true\n")


def test_markdown_stays_bounded_and_structured_with_hostile_text_everywhere(
    run, workdir, hostile_api
) -> None:
    """Escaping lengthens text (longer fences, `\\x1b`): the 60,000-character bound still holds, and so does
    the structure."""
    ids = [f"a{index:04d}" + "`" * 40 + "</details>" for index in range(600)]
    lines = ["version: 1", "accounts:"]
    lines += [f"  {json.dumps(account_id)}: {{proxy: {{host: h.example, port: 1}}}}" for account_id in ids]
    (workdir / "big.yaml").write_text("\n".join(lines) + "\n")
    _plant_recorded_host(str(workdir / ".reconciler" / "state.json"), ids, HOSTILE_TEXT)  # the diff shows it
    result = run("plan", "big.yaml", "--format", "markdown")
    assert result.code == 0, result.err
    assert "account(s) in 1 file(s) left out to stay under 60,000 characters" in result.out
    assert "\\u001b[2J" in result.out and "\\u202eevil" in result.out  # the recorded hosts, escaped
    assert_markdown_safe(result.out, "<!-- reconciler-plan -->", sections=1)

    hostile_api.faults = [Fault("errors/invalid_parameters", echo=True)]
    result = run(
        "apply",
        "big.yaml",
        "--yes",
        "--max-attempts",
        "1",
        "--format",
        "markdown",
        "--concurrency",
        "16",
        "--max-consecutive-failures",
        "0",  # every account fails the same way: the breaker would stop the run before the bound matters
        "--force",  # every recorded account is updated
    )
    assert result.code == 3, result.err[-500:]
    assert "failures left out to stay under 60,000 characters" in result.out
    assert_markdown_safe(result.out, "<!-- reconciler-report -->", sections=1)


# -- the escaping functions, one per medium --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain id", "plain id"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\rb\nc\td\x7f", "a\\x0db\\x0ac\\x09d\\x7f"),
        ("\u009b31m \u0085", "\\x9b31m \\x85"),
        ("\u202eevil\u2066\u200b\ufeff\u2028", "\\u202eevil\\u2066\\u200b\\ufeff\\u2028"),
        ("\U000e0041 \ud800", "\\U000e0041 \\ud800"),
        ("é ⟳ 日本 🙂", "é ⟳ 日本 🙂"),
    ],
)
def test_terminal_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert escape.terminal(text) == shown


def test_json_document_stays_the_same_json() -> None:
    document = {"id": "a\u202eb\u009b\x1b\u2028\U000e0041\ud800", "n": [1, "\n"]}
    serialised = json.dumps(document, indent=2, ensure_ascii=False)
    printed = escape.json_document(serialised)
    assert json.loads(printed) == document
    assert not raw_controls(printed) and printed.count("\n") == serialised.count("\n")


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "`",
        "a`b",
        "``x``",
        "` x `",
        " x ",
        "   ",
        "x\n</details>\n```\n",
        "<!-- reconciler-plan -->",
        "@u",
    ],
)
def test_a_code_span_holds_any_text(text: str) -> None:
    source = f"before {escape.code_span(text)} after"
    rendered = cmarkgfm.github_flavored_markdown_to_html(source, options=Options.CMARK_OPT_UNSAFE)
    shown = re.fullmatch(r"<p>before <code>(.*)</code> after</p>\n", rendered, re.DOTALL)
    assert shown, rendered
    assert html.unescape(shown.group(1)) == escape.terminal(text).replace("<!--", "<\\x21--")


def test_a_code_block_fence_no_line_can_close() -> None:
    lines = [escape.code_line(line) for line in ("```", "`````` x", "~~~", "</details>")]
    fence = escape.code_fence(lines)
    source = f"{fence}diff\n" + "\n".join(lines) + f"\n{fence}\n\nafter\n"
    rendered = cmarkgfm.github_flavored_markdown_to_html(source, options=Options.CMARK_OPT_UNSAFE)
    assert rendered.count("<pre") == 1 and rendered.endswith("</code></pre>\n<p>after</p>\n"), rendered
    assert len(fence) == 7


def test_html_code_is_inert() -> None:
    assert (
        escape.html_code('<img src=x> & "@u"\x1b')
        == "<code>&lt;img src=x&gt; &amp; &quot;@u&quot;\\x1b</code>"
    )


# -- secrets echoed in other shapes: cut short, upper-cased, hex, split between type and detail ----------------
#: Long enough that the shapes below cut them into pieces of 8 or more, and with characters JSON escapes.
LONG_PASSWORD = 'Pw/SENT"inel+<é>&7f3a-horse-battery'
LONG_KEY = "KEY_abcdefghijklmnop_SENTinel_0123456789"
SHAPES_CONFIG = """\
version: 1
accounts:
  acc_env: {proxy: {host: h.example, port: 8080, username: "${PROXY_USER}", password: "${PROXY_PASSWORD}"}}
  acc_plain: {proxy: {host: p.example, port: 1, password: "plain+SENT/inel%41zz-staple"}}
  acc_ok: {country: US}
"""


@pytest.mark.parametrize("shape", ["cut", "upper", "hex", "split", "cut,upper,hex,split,raw"])
def test_secrets_echoed_in_other_shapes_are_nowhere(run, write, workdir, monkeypatch, shape: str) -> None:
    """An API quoting the key cut short (`bad key KEY_abcdefghijklmnop...`), a password's first characters, the
    request upper-cased or in hex, or the key split between `type` and `detail`: no piece of 8 characters of
    any secret, in any case or encoding, reaches stdout, stderr, the report (JSON, markdown) or the state."""
    sandbox = Sandbox(LONG_KEY, accept_any_account=True)
    sandbox.faults = [
        Fault(
            "errors/invalid_parameters",
            accounts=frozenset({"acc_env", "acc_plain"}),
            echo=True,
            echo_shapes=tuple(shape.split(",")),
        )
    ]
    thread = ServerThread(sandbox).start()
    try:
        monkeypatch.setenv("POSTPRESS_API_KEY", LONG_KEY)
        monkeypatch.setenv("POSTPRESS_API_URL", thread.url)
        monkeypatch.setenv("PROXY_PASSWORD", LONG_PASSWORD)
        monkeypatch.setenv("PROXY_USER", USERNAME)
        config = write("a.yaml", SHAPES_CONFIG)
        apply = ["apply", "a.yaml", "--yes", "--max-attempts", "1"]
        outcomes = {
            "apply text": run("-v", *apply, "--report", "r.json"),
            "apply json": run(*apply, "--format", "json"),
            "apply markdown": run(*apply, "--format", "markdown", "--report", "r2.json"),
            "state show acc_env": run("state", "show", "acc_env"),
            "state show acc_plain": run("state", "show", "acc_plain"),
            "plan markdown": run("plan", "a.yaml", "--format", "markdown"),
        }
    finally:
        thread.stop()
    assert [outcome.code for outcome in outcomes.values()] == [3, 3, 3, 0, 0, 0], {
        name: outcome.err[-400:] for name, outcome in outcomes.items()
    }
    assert len(sandbox.stats.log) >= 6  # the answers were given, with their echoes
    message = json.loads(outcomes["state show acc_env"].out)["last_failure"]["message"]
    assert message.startswith("HTTP 400: ") and "***" in message, message
    texts: dict[str, str | bytes] = {}
    for name, outcome in outcomes.items():
        texts[f"{name} stdout"], texts[f"{name} stderr"] = outcome.out, outcome.err
    assert_no_secrets(
        secrets=[LONG_PASSWORD, LONG_KEY, USERNAME, "plain+SENT/inel%41zz-staple"],
        texts=texts,
        files=workdir,
        skip=[workdir / config],
    )


# -- surfaces whose fix lives in another change ----------------------------------------------------------------
DB_PASSWORD = "dbSENTinel9pw"


def test_database_password_is_never_shown(run, workdir, hostile_api, monkeypatch) -> None:
    problem = postgres_unreachable_reason()
    if problem:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {problem}")
    user_url = PG_URL.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")
    if user_url == PG_URL:
        pytest.skip(f"{PG_URL} is not postgresql://postgres@...: no place for a password")
    url = f"{user_url}?schema=t_dbpw&workspace=test"
    (workdir / "a.yaml").write_text("version: 1\naccounts:\n  a: {country: US}\n")
    outcomes = [
        run("-v", "plan", "a.yaml", "--state", url, "--format", "markdown"),
        run("-v", "apply", "a.yaml", "--yes", "--state", url),
        run("-v", "state", "list", "--state", url.replace(DB_PASSWORD, DB_PASSWORD + "%zz")),
    ]
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute('drop schema if exists "t_dbpw" cascade')
    texts = {
        f"{index} {stream}": getattr(o, stream)
        for index, o in enumerate(outcomes)
        for stream in ("out", "err")
    }
    assert_no_secrets(secrets=[DB_PASSWORD], texts=texts, files=workdir)


@pytest.mark.parametrize("character", ["\u009b", "\u202e", "\u2066", "\u200b", "\ufeff"])
def test_look_alike_account_ids_are_refused(run, write, character: str) -> None:
    write(
        "a.yaml",
        f'version: 1\naccounts:\n  "acc{character}x": {{country: US}}\n'.replace(
            character, f"\\u{ord(character):04x}"
        ),
    )
    result = run("validate", "a.yaml")
    assert result.code == 1 and re.search(r"^a\.yaml:3:\d+: ", result.err, re.MULTILINE), result.err


WORD_SECRET = "plainSENTinel41zz"  # a valid alias or tag name
SECRET_IN_MESSAGES = [
    f"*{WORD_SECRET}",
    f"!{WORD_SECRET} x",
    f"{WORD_SECRET}, bogus: 1",
    f"{WORD_SECRET}, port: x",
]


@pytest.mark.parametrize("password", SECRET_IN_MESSAGES)
def test_configuration_messages_quote_no_secret(run, write, monkeypatch, password: str) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    write("a.yaml", f"version: 1\naccounts:\n  a: {{proxy: {{host: h, port: 1, password: {password}}}}}\n")
    outcomes = [run(command, "a.yaml") for command in ("validate", "plan")]
    assert [outcome.code for outcome in outcomes] == [1, 1]
    texts = {
        f"{index} {stream}": getattr(o, stream)
        for index, o in enumerate(outcomes)
        for stream in ("out", "err")
    }
    assert_no_secrets(secrets=[WORD_SECRET], texts=texts)


def test_a_key_with_a_newline_or_tab_stays_one_line(run, write, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    write("a.yaml", 'version: 1\naccounts:\n  "k\\nl\\tm": {bogus: 1}\n  b: {country: US, "x\\ny": 1}\n')
    for command in ("validate", "plan"):
        outcome = run(command, "a.yaml")
        assert outcome.code == 1
        lines = [line for line in outcome.err.splitlines() if not line.startswith("::")]  # annotations
        assert len([line for line in lines if line.startswith("a.yaml:")]) >= 2, outcome.err
        assert all(re.match(r"a\.yaml:\d+:\d+: |\d+ error\(s\) in a\.yaml$", line) for line in lines), lines
        assert not raw_controls(outcome.err + outcome.out)


def test_a_saved_plan_holds_no_per_secret_fingerprint(run, write, workdir, monkeypatch) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", PASSWORD)
    write(
        "a.yaml", 'version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: "${PROXY_PASSWORD}"}}\n'
    )
    assert run("import", "a.yaml").code == 0
    monkeypatch.setenv("PROXY_PASSWORD", PASSWORD + "2")
    assert run("plan", "a.yaml", "--out", "p.bin").code == 0
    salt = json.loads((workdir / ".reconciler" / "state.json").read_text())["salt"]
    saved = (workdir / "p.bin").read_bytes().decode("utf-8", "replace")
    for value in (PASSWORD, PASSWORD + "2"):
        digest = hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
        assert digest not in saved


def test_answers_are_redacted_without_verbose(run, write, workdir, hostile_api) -> None:
    """The registry of secrets is on in every apply, not only under --verbose."""
    write("a.yaml", CONFIG)
    outcomes = [
        run("apply", "a.yaml", "--yes", "--max-attempts", "1", "--report", "r.json"),
        run("state", "show", "acc_secret"),
    ]
    assert [outcome.code for outcome in outcomes] == [3, 0]
    assert "Injected by the sandbox; X-API-KEY *** (***); the request {" in outcomes[0].out
    texts = {
        f"{index} {stream}": getattr(o, stream)
        for index, o in enumerate(outcomes)
        for stream in ("out", "err")
    }
    assert_no_secrets(secrets=SECRETS, texts=texts, files=workdir, skip=[workdir / "a.yaml"])


def test_usage_errors_and_file_names_are_escaped(run, write, workdir) -> None:
    write("a.yaml", "version: 1\naccounts:\n  a: {country: US}\n")
    hostile = "x\x1b[2J\u202e"
    assert run("import", "a.yaml", "--state", "a.json").code == 0
    outcomes = [
        run("plan", f"--{hostile}"),
        run("plan", "a.yaml", hostile),
        run("validate", f"{hostile}.yaml"),
        run("state", "migrate", "--from", "a.json", "--to", f"{hostile}.json"),
    ]
    assert [outcome.code for outcome in outcomes] == [1, 1, 1, 0]
    for outcome in outcomes:
        assert not raw_controls(outcome.out + outcome.err) and "x\\x1b[2J\\u202e" in outcome.err, outcome.err


def test_the_report_escapes_what_it_is_given() -> None:
    """The renderers escape on their own, whatever reaches them (the answer's own sanitising aside)."""
    from reconciler.model import Result
    from reconciler.render import report

    results = [
        Result(
            account_id,
            "patch",
            "failed",
            400,
            f"errors/{HOSTILE_TEXT}",
            "invalid_request",
            False,
            1,
            HOSTILE_TEXT,
        )
        for account_id in HOSTILE_IDS
    ]
    stop = f"stopped {HOSTILE_TEXT}"
    assert_markdown_safe(report.render_markdown(results, stop), "<!-- reconciler-report -->", sections=1)
    text = report.render_text(results, stop)
    assert not raw_controls(text) and len(text.splitlines()) == 5 + len(HOSTILE_IDS)
    document = report.render_json(results)
    assert not raw_controls(document) and json.loads(document)["results"][0]["message"] == HOSTILE_TEXT
