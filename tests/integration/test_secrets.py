"""A sentinel password (given as ${VAR}, and as a plaintext next to a config error) and a sentinel API key,
through every command with --verbose on, and through the error paths: never in stdout, stderr (the log),
the state (file or PostgreSQL rows), the journal, saved plans or reports."""

from __future__ import annotations

import ast
import json
import re
import socket

import pytest

from reconciler import logs, secrets
from tests.helpers import PG_URL, SENTINEL_KEY, SENTINEL_PASSWORD

SENTINELS = (SENTINEL_PASSWORD, SENTINEL_KEY)
CONFIG = """\
version: 1
accounts:
  a: {provider: LINKEDIN, proxy: {host: h.example, port: 8080, username: "${PROXY_PASSWORD}",
      password: "${PROXY_PASSWORD}"}, resync: {generation: 1}}
  b: {proxy: {host: x.example, port: 1, password: "${PROXY_PASSWORD}"}}
  c: {country: US}
"""


@pytest.fixture
def redactor() -> secrets.Redactor:
    """A run's redactor, as each command invocation makes one."""
    return secrets.Redactor()


def assert_clean(outcomes, workdir, state_url: str | None = None) -> None:
    for outcome in outcomes:
        for secret in SENTINELS:
            assert secret not in outcome.out + outcome.err, outcome.err[-800:]
    for path in workdir.rglob("*"):
        if path.is_file() and path.suffix not in (".yaml",):
            content = path.read_bytes()
            for secret in SENTINELS:
                assert secret.encode() not in content, path
    if state_url and state_url.startswith("postgresql://"):
        import psycopg

        schema = state_url.split("schema=")[1].split("&")[0]
        with psycopg.connect(PG_URL) as connection:
            for table in ("accounts", "workspaces"):
                rows = connection.execute(f'select * from "{schema}".{table}').fetchall()
                for secret in SENTINELS:
                    assert secret not in repr(rows)


def test_every_command_verbose(run, write, api, workdir, state_url, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workdir / "summary.md"))
    api.faults = []
    from reconciler.sandbox import Fault

    api.faults = [Fault.parse("errors/unexpected_error@a,b;times=3;retry_after=0;unlisted")]  # retried
    write("a.yaml", CONFIG)
    state = ["--state", state_url]
    outcomes = [
        run("-v", "validate", "a.yaml"),
        run("-v", "plan", "a.yaml", *state, "--out", "p.plan"),
        run("-v", "plan", "a.yaml", *state, "--format", "json"),
        run("-v", "plan", "a.yaml", *state, "--format", "markdown"),
        run(
            "-v",
            "apply",
            "--plan",
            "p.plan",
            "--yes",
            *state,
            "--report",
            "r.json",
            "--max-attempts",
            "12",
            "--sync-poll-interval",
            "0.01",
        ),
        run("-v", "state", "list", *state),
        run("-v", "state", "show", "a", *state),
        run("-v", "state", "forget", "c", *state),
        run("-v", "import", "a.yaml", *state),
        run("-v", "apply", "a.yaml", "--yes", *state, "--format", "json"),
    ]
    assert [o.code for o in outcomes] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [o.err[-300:] for o in outcomes]
    log = "".join(o.err for o in outcomes)
    assert "DEBUG reconciler.http: PATCH /accounts/a -> 200" in log  # the log was on, and detailed
    assert "retrying in" in log
    assert json.loads((workdir / "r.json").read_text())["summary"]["failed"] == 0
    assert_clean(outcomes, workdir, state_url)


def test_error_paths_verbose(run, write, api, server, workdir, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    outcomes = []
    # A 401: the API refuses the sentinel key.
    api.api_key = "another-key"
    outcomes.append(run("-v", "apply", "a.yaml", "--yes", "--report", "r401.json", "--max-attempts", "1"))
    assert outcomes[-1].code == 3 and "errors/invalid_credentials" in outcomes[-1].out
    # A network error: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("POSTPRESS_API_URL", f"http://127.0.0.1:{closed_port}/api/v1")
    outcomes.append(run("-v", "apply", "a.yaml", "--yes", "--report", "rnet.json", "--max-attempts", "1"))
    assert outcomes[-1].code == 3 and "network_error" in outcomes[-1].out
    # Config errors on the secret's own line and next to it, with the secret written in plaintext.
    for broken in (
        f'  d: {{proxy: {{host: h, port: "x", password: {SENTINEL_PASSWORD}}}}}\n',
        f"  d: {{proxy: {{host: h, port: 1, password: [{SENTINEL_PASSWORD}]}}}}\n",
        f'  d: {{proxy: {{host: h, port: 1, password: "{SENTINEL_PASSWORD}}}}}\n',
        f"  d: {{country: {SENTINEL_PASSWORD}, proxy: {{password: {SENTINEL_PASSWORD}}}}}\n",
        f"  d: {{proxy: {{host: h, port: 1, password: {SENTINEL_PASSWORD}, pasword: x}}}}\n",
    ):
        write("bad.yaml", CONFIG + broken)
        for command in (["validate"], ["plan"], ["apply", "--yes"]):
            outcome = run("-v", *command, "bad.yaml")
            assert outcome.code == 1 and "bad.yaml:" in outcome.err, outcome.err
            outcomes.append(outcome)
    # An unset variable names the variable, never a value.
    monkeypatch.delenv("PROXY_PASSWORD")
    outcomes.append(run("-v", "apply", "a.yaml", "--yes"))
    assert outcomes[-1].code == 1 and "PROXY_PASSWORD is not set" in outcomes[-1].err
    assert_clean(outcomes, workdir)


def test_api_key_only_from_the_environment(run, write, api, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    monkeypatch.delenv("POSTPRESS_API_KEY")
    for flag in ("--api-key", "--key", "--token"):
        result = run("apply", "a.yaml", "--yes", flag, SENTINEL_KEY)
        assert result.code == 1 and "No such option" in result.err
        assert SENTINEL_KEY not in result.err
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 1 and "POSTPRESS_API_KEY is not set" in result.err
    assert api.stats.requests == 0


def test_the_redacting_filter_is_the_last_line_of_defence(capsys, redactor) -> None:
    """Even a log line that carried a secret (none does) would be redacted."""
    logs.configure(True, redactor)
    redactor.register(SENTINEL_KEY)
    redactor.register(SENTINEL_PASSWORD)  # as the configuration loader does with each secret it resolves
    logs.get("test").warning("key=%s password=%s", SENTINEL_KEY, SENTINEL_PASSWORD)
    try:
        raise ValueError(SENTINEL_PASSWORD)
    except ValueError:
        logs.get("test").exception("failed")
    err = capsys.readouterr().err
    assert "key=*** password=***" in err and "ValueError: ***" in err
    assert SENTINEL_KEY not in err and SENTINEL_PASSWORD not in err


# -- redaction of outside text ---------------------------------------------------------------------------------
ODD_SECRET = 'p/w"+<é>&SENT%41'


def _encodings(secret: str) -> dict[str, str]:
    import base64
    from urllib.parse import quote, quote_plus

    escaped = json.dumps(secret)[1:-1]
    return {
        "raw": secret,
        "JSON": escaped,
        "JSON, ASCII only": json.dumps(secret, ensure_ascii=False)[1:-1],
        "URL": quote(secret, safe=""),
        "URL, lower-case hex": re.sub(
            "%[0-9A-F]{2}", lambda match: match.group().lower(), quote(secret, safe="")
        ),
        "form": quote_plus(secret),
        "HTML": __import__("html").escape(secret),
        **{
            f"base64 of a JSON body, offset {offset}": base64.b64encode(
                b"x" * offset + json.dumps({"password": secret}).encode()
            ).decode()
            for offset in range(3)
        },
        "base64url": base64.urlsafe_b64encode(b"yy" + secret.encode()).decode(),
    }


@pytest.mark.parametrize("encoding", sorted(_encodings(ODD_SECRET)))
def test_redact_finds_every_form_of_a_secret(encoding: str, redactor) -> None:
    from tests.helpers import assert_no_secrets

    redactor.register(ODD_SECRET)
    echoed = _encodings(ODD_SECRET)[encoding]
    redacted = redactor.redact(f"before {echoed} after")
    assert redacted.startswith("before ") and redacted.endswith(" after") and "***" in redacted
    assert_no_secrets(secrets=[ODD_SECRET], texts={encoding: redacted})


def test_redact_cuts_only_after_redacting(redactor) -> None:
    """A secret straddling the length limit is redacted whole, never shown in part."""
    redactor.register(SENTINEL_PASSWORD)
    for filler in range(280, 301):
        text = "x" * filler + SENTINEL_PASSWORD + "y" * 10_000 + SENTINEL_PASSWORD
        redacted = redactor.redact(text, limit=300)
        assert len(redacted) <= 300 and SENTINEL_PASSWORD[:4] not in redacted.strip("x*y")
    many = (SENTINEL_PASSWORD + "-") * 1000 + "tail"
    assert redactor.redact(many, limit=300) == ("***-" * 75)


def test_redact_merges_overlapping_secrets(redactor) -> None:
    redactor.register("abcdefgh")
    redactor.register("efghijkl")
    assert redactor.redact("0abcdefghijkl1 efgh") == "0***1 efgh"


def test_redact_scales_to_many_distinct_secrets(redactor) -> None:
    """Past a few dozen forms the search is one pass indexed by prefix: same result, no per-secret cost."""
    values = [f"secret-{index:06d}-value" for index in range(5_000)]
    for value in values:
        redactor.register(value)
    text = f"a {values[17]} b {json.dumps(values[4_321])} c"
    assert redactor.redact(text) == 'a *** b "***" c'


def test_an_answer_is_redacted_where_it_is_built(redactor) -> None:
    from reconciler.api.answer import error_answer, failure

    redactor.register(SENTINEL_KEY)
    body = {
        "type": f"errors/<b>\x1b[2J {SENTINEL_KEY} " + "z" * 200,
        "title": "ignored: the detail is shown",
        "detail": f"key {SENTINEL_KEY} base64 {__import__('base64').b64encode(SENTINEL_KEY.encode()).decode()}",
    }
    answer = error_answer(400, body, None, redactor)
    assert answer.message is not None and answer.message.startswith("HTTP 400: key *** base64 ***")
    assert answer.error is not None and answer.error.type.startswith("errors/%3Cb%3E%1B%5B2J%20***%20zzz")
    assert len(answer.error.type) <= 100 and answer.error.category == "invalid_request"
    assert (
        error_answer(400, {"type": "errors/proxy_error"}, None, redactor).error.type == "errors/proxy_error"
    )
    assert failure(None, None, None, f"network: {SENTINEL_KEY}", redactor).message == "network: ***"


# -- a secret echoed in another shape: cut short, in another case, hex, base64, split ----------------------------
PIECES_KEY = "KEY_abcdefghijklmnop_01q7Zr3xW9"
PIECES_PASSWORD = "Tr0ub4dor&3-horse/Batt"
WIDE_PASSWORD = "pässwörd-ÉÈÀ-ünï-42-ñ"


def _shapes(secret: str) -> dict[str, str]:
    import base64

    data = secret.encode()
    return {
        "cut to 20 and ...": f"bad key {secret[:20]}...",
        "its first 8": f"password starts {secret[:8]}",
        "its last 8": f"password ends {secret[-8:]}",
        "8 from the middle": f"around {secret[5:13]} here",
        "upper-cased": secret.upper(),
        "lower-cased": secret.lower(),
        "upper-cased and cut": f"KEY {secret.upper()[:10]}...",
        "hex": data.hex(),
        "HEX": data.hex().upper(),
        "hex of its first 8": f"0x{data[:8].hex()}",
        "hex inside a longer hex dump": (b"\x00\x01abc" + data + b"\xff").hex(),
        **{
            f"base64 of its first 9, offset {offset}": base64.b64encode(b"z" * offset + data[:9]).decode()
            for offset in range(3)
        },
        **{
            f"base64 of a JSON body cut short, offset {offset}": base64.b64encode(
                b"q" * offset + json.dumps({"password": secret}).encode()[:22]
            ).decode()
            for offset in range(3)
        },
        "base64url of its last 10": base64.urlsafe_b64encode(data[-10:]).decode().rstrip("="),
        "JSON-escaped, cut": json.dumps(secret)[:12],
    }


@pytest.mark.parametrize("secret", [PIECES_KEY, PIECES_PASSWORD, WIDE_PASSWORD])
@pytest.mark.parametrize("shape", sorted(_shapes(PIECES_KEY)))
def test_redact_finds_a_secret_in_pieces_and_in_any_case(secret: str, shape: str, redactor) -> None:
    """Any run of 8 characters of a known secret, in any case, raw, hex or base64, is redacted."""
    from tests.helpers import assert_no_secrets

    redactor.register(secret)
    echoed = _shapes(secret)[shape]
    redacted = redactor.redact(f"before {echoed} after")
    assert redacted.startswith("before ") and redacted.endswith(" after") and "***" in redacted, redacted
    assert_no_secrets(secrets=[secret], texts={shape: redacted})


def test_a_short_secret_is_redacted_whole_in_any_case_but_not_in_pieces(redactor) -> None:
    redactor.register("Ab3xY9z")  # 7 characters: below the length of a piece
    assert redactor.redact("a Ab3xY9z b AB3XY9Z c ab3xy9z d") == "a *** b *** c *** d"
    assert redactor.redact("Ab3xY9 and b3xY9z") == "Ab3xY9 and b3xY9z"
    assert redactor.redact(f"hex {b'Ab3xY9z'.hex().upper()}") == "hex ***"


def test_pieces_of_secrets_side_by_side_are_one_redaction(redactor) -> None:
    redactor.register(PIECES_KEY)
    redactor.register(PIECES_PASSWORD)
    text = f"x {PIECES_KEY[3:15]}{PIECES_PASSWORD[:9].upper()} y {PIECES_KEY[-8:]}"
    assert redactor.redact(text) == "x *** y ***"


def test_ordinary_text_is_left_alone_among_many_secrets(redactor) -> None:
    """Thousands of secrets known: text holding no run of 8 of any of them comes back unchanged, hex and base64
    runs included."""
    import random

    generator = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    values = ["".join(generator.choice(alphabet) for _ in range(24)) for _ in range(20_000)]
    for value in values:
        redactor.register(value)
    text = (
        "HTTP 502: the proxy proxy-12.example.com:8012 refused the connection for account acc_000012: "
        "'407 Proxy Authentication Required' (request id 0123456789abcdef, trace dGhlIHRyYWNlIGlk)"
    )
    assert redactor.redact(text) == text
    assert redactor.redact(f"{text} {values[12_345][2:11]}") == f"{text} ***"


def test_a_piece_cut_at_the_limit_is_not_shown(redactor) -> None:
    redactor.register(PIECES_KEY)
    for filler in range(285, 301):
        redacted = redactor.redact("x" * filler + PIECES_KEY[:12] + "y" * 5_000, limit=300)
        assert len(redacted) <= 300 and not any(c in redacted for c in "KEY_abc"), redacted[-20:]


@pytest.mark.parametrize("secret", [PIECES_KEY, "Ab3xY9z"])
@pytest.mark.parametrize("cut", [1, 3, 6])
def test_a_secret_split_between_two_texts_is_redacted_on_both_sides(secret: str, cut: int, redactor) -> None:
    """An answer's type ending with a secret's start and its detail starting with the rest (or the other way
    round): each part too short to be recognised alone."""
    redactor.register(secret)
    first, second = secret[:cut], secret[cut:]
    if len(second) >= 8:  # the long part alone is a piece: shorten it so only the meeting finds it
        first, second = secret[: len(secret) - 6], secret[len(secret) - 6 :]
    for type_, detail in ((f"errors/x {first}", f"{second} tail"), (f"{second} x", f"detail {first}")):
        shown_type, shown_detail = redactor.redact_together([type_, detail], [100, 300])
        assert "***" in shown_type and "***" in shown_detail, (shown_type, shown_detail)
        for part in (first, second):
            assert len(part) < 3 or part not in shown_type + shown_detail, (shown_type, shown_detail)
    assert redactor.redact_together(["errors/x", "tail"], [100, 300]) == ["errors/x", "tail"]


def test_an_answer_with_a_key_split_between_type_and_detail_shows_neither_part(redactor) -> None:
    from reconciler.api.answer import error_answer
    from tests.helpers import assert_no_secrets

    redactor.register(PIECES_KEY)
    for cut in (5, 16, 26):
        body = {"type": f"errors/bad {PIECES_KEY[:cut]}", "detail": f"{PIECES_KEY[cut:]} is not a key"}
        answer = error_answer(401, body, None, redactor)
        assert answer.error is not None and answer.message is not None
        assert answer.message.endswith("*** is not a key"), answer.message
        assert_no_secrets(secrets=[PIECES_KEY], texts={"type": answer.error.type, "message": answer.message})
        assert_no_secrets(secrets=[PIECES_KEY], texts={"both": answer.error.type + answer.message[10:]})


def test_a_log_record_is_one_escaped_line(capsys, redactor) -> None:
    logs.configure(True, redactor)
    logs.get("test").warning("account %s failed", "a\x1b[2J\nERROR forged\u202e")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "account a\\x1b[2J\\x0aERROR forged\\u202e failed" in err


def _plant_old_messages(state_url: str, account_ids: list[str], operation: str = "patch") -> None:
    """Give each account a failure whose message holds the sentinel password, as 0.1.0 recorded an echo (a
    failed PATCH is planned again; a failed resync of an account that declares none is not)."""
    from reconciler.state import open_backend

    backend = open_backend(state_url)
    recorded = backend.read()
    for account_id in account_ids:
        record = recorded.accounts[account_id]
        record.last_failure = {
            "operation": operation,
            "error_type": "errors/invalid_parameters",
            "http_status": 400,
            "message": f"proxy password {SENTINEL_PASSWORD} refused",
            "at": "2026-01-01T00:00:00.000Z",
        }
    with backend.lock():
        backend.write(recorded)
    assert all(SENTINEL_PASSWORD in str(backend.read().accounts[i].last_failure) for i in account_ids)


def test_a_message_recorded_with_a_secret_by_an_older_version_is_stripped_by_the_next_apply(
    run, write, api, workdir, state_url, monkeypatch
) -> None:
    """0.1.0 recorded the API's messages as they came. The next apply with changes strips what it knows from
    every recorded message that it did not record anew: also of an account it does not reach (outside
    --target), and never over what it recorded (a success clears a failure)."""
    from reconciler.state import open_backend

    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)
    write("a.yaml", CONFIG)
    state = ["--state", state_url]
    assert run("apply", "a.yaml", "--yes", *state, "--sync-poll-interval", "0.05").code == 0
    _plant_old_messages(state_url, ["a", "b"])

    write("a.yaml", CONFIG.replace("c: {country: US}", "c: {country: DE}"))
    outcomes = [
        run("apply", "a.yaml", "--yes", *state, "--target", "a", "--target", "c"),
        run("state", "show", "b", *state),
    ]
    assert outcomes[0].code == 0, outcomes[0].err
    recorded = open_backend(state_url).read()
    assert recorded.accounts["a"].last_failure is None  # its failed PATCH was sent again and succeeded
    failure = recorded.accounts["b"].last_failure
    assert failure is not None and failure["message"] == "proxy password *** refused"
    assert failure["at"] == "2026-01-01T00:00:00.000Z"  # the same failure, stripped
    assert api.stats.patches["b"] == 1  # b was not sent again
    assert_clean(outcomes, workdir, state_url)


def test_a_shard_strips_only_its_own_accounts_messages(run, write, api, workdir, monkeypatch) -> None:
    """Another shard may be recording its accounts at the same moment: a shard never writes theirs."""
    from reconciler.planning import shard_of
    from reconciler.state import open_backend
    from tests.helpers import fresh_postgres_state

    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)
    ids = [f"acc_{i:04d}" for i in range(12)]
    body = '{proxy: {host: h.example, port: 8080, password: "${PROXY_PASSWORD}"}}'
    config = "version: 1\naccounts:\n" + "".join(f"  {i}: {body}\n" for i in ids)
    shard = shard_of("new", 2)  # the shard that will have a change: an account added
    mine = [i for i in ids if shard_of(i, 2) == shard]
    others = [i for i in ids if shard_of(i, 2) != shard]
    assert mine and others
    write("a.yaml", config)
    with fresh_postgres_state("strip_shards") as state_url:
        assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
        _plant_old_messages(state_url, ids, "resync")
        write("a.yaml", config + "  new: {country: US}\n")
        assert run("apply", "a.yaml", "--yes", "--state", state_url, "--shard", f"{shard}/2").code == 0
        recorded = open_backend(state_url).read()
    assert all(recorded.accounts[i].last_failure["message"] == "proxy password *** refused" for i in mine)
    assert all(SENTINEL_PASSWORD in recorded.accounts[i].last_failure["message"] for i in others)


def test_stripping_old_messages_is_best_effort(run, write, api, workdir, monkeypatch) -> None:
    """A run whose own results are recorded keeps its report and exit code if the stripping cannot record (a
    full disk, say), and a cancelled run does not strip at all."""
    import asyncio

    from reconciler.applying.stripping import strip_stored_messages
    from reconciler.errors import StateError
    from reconciler.state import open_backend
    from reconciler.state.file.journal import FileJournal

    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)
    state = str(workdir / "state.json")
    write("a.yaml", CONFIG)
    assert run("apply", "a.yaml", "--yes", "--state", state, "--sync-poll-interval", "0.05").code == 0
    _plant_old_messages(state, ["b"])
    appended = FileJournal.append

    def failing_append(journal, event) -> None:
        if event["op"] == "failed":
            raise StateError("state.json.journal: cannot record a result: No space left on device")
        appended(journal, event)

    monkeypatch.setattr(FileJournal, "append", failing_append)
    write("a.yaml", CONFIG.replace("c: {country: US}", "c: {country: DE}"))
    result = run("apply", "a.yaml", "--yes", "--state", state, "--target", "c", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["summary"]["succeeded"] == 1
    assert result.err.splitlines()[1].startswith(  # after `Applying to ...`
        "Warning: some failure messages recorded by an older version keep their text: state.json.journal: "
    )
    assert SENTINEL_PASSWORD in open_backend(state).read().accounts["b"].last_failure["message"]

    class Cancelled:
        cancelled_by = 2

    recorded = open_backend(state).read()
    known = secrets.Redactor([SENTINEL_PASSWORD])  # as the run that loaded the configuration knows it
    events: list[object] = []

    def everyone(account_id: str) -> bool:
        return True

    class Journal:
        def append(self, event) -> None:
            events.append(event)

    asyncio.run(strip_stored_messages(Cancelled(), recorded, Journal(), everyone, known))  # type: ignore[arg-type]
    assert events == []
    Cancelled.cancelled_by = None  # type: ignore[assignment]
    asyncio.run(strip_stored_messages(Cancelled(), recorded, Journal(), everyone, known))  # type: ignore[arg-type]
    assert [event["id"] for event in events] == ["b"]  # type: ignore[index]


# -- the secrets belong to the run ------------------------------------------------------------------------------
_MUTATORS = frozenset(
    (
        "add",
        "append",
        "clear",
        "discard",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "setdefault",
        "update",
    )
)


def _module_level_mutables(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level to a dict, set or list (a display, a comprehension or a call of
    the type)."""
    names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        mutable = isinstance(
            value, ast.Dict | ast.Set | ast.List | ast.DictComp | ast.SetComp | ast.ListComp
        ) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in ("dict", "set", "list", "defaultdict", "OrderedDict", "deque", "WeakSet")
        )
        if mutable:
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _mutated(tree: ast.Module, names: set[str]) -> set[str]:
    """Which of `names` the module changes: a mutating method called on it, an item or slice stored or deleted,
    an augmented assignment, or a `global` statement naming it."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in names
        ):
            found.add(node.func.value.id)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store | ast.Del)
            and isinstance(node.value, ast.Name)
            and node.value.id in names
        ):
            found.add(node.value.id)
        elif (
            isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id in names
        ):
            found.add(node.target.id)
        elif isinstance(node, ast.Global):
            found.update(node.names)
    return found


def test_no_module_level_mutable_registry_of_secrets() -> None:
    """The secrets a run knows live in its Redactor: no module of reconciler.secrets keeps a container that it
    changes, nor rebinds a module global."""
    from pathlib import Path

    package = Path(secrets.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {path.name for path in modules} >= {
        "__init__.py",
        "values.py",
        "references.py",
        "redaction.py",
        "digests.py",
        "unknown.py",
    }
    for path in modules:
        tree = ast.parse(path.read_text(), str(path))
        assert not _mutated(tree, _module_level_mutables(tree)), path.name
    for name in ("register", "registered", "redact", "redact_together", "clear_registered", "_registry"):
        assert not hasattr(secrets, name), name
    # the check itself finds a registry written the old way
    old = ast.parse("_registry: set[str] = set()\ndef register(v):\n    _registry.add(v)\n")
    assert _mutated(old, _module_level_mutables(old)) == {"_registry"}


def test_each_run_knows_only_its_own_secrets(write) -> None:
    """The configuration loader tells the redactor it is handed every secret it resolves; another run's
    redactor knows none of them."""
    from reconciler.config import load_config

    path = write("a.yaml", CONFIG)
    first, second = secrets.Redactor(), secrets.Redactor()
    load_config(str(path), {"PROXY_PASSWORD": SENTINEL_PASSWORD}, redactor=first)
    assert SENTINEL_PASSWORD in first.known()
    assert first.redact(f"echo {SENTINEL_PASSWORD}") == "echo ***"
    assert second.redact(f"echo {SENTINEL_PASSWORD}") == f"echo {SENTINEL_PASSWORD}"
    load_config(str(path), {"PROXY_PASSWORD": "another-password-42"}, redactor=second)
    assert second.known() == {"another-password-42"} and SENTINEL_PASSWORD in first.known()


@pytest.mark.parametrize("text", ["${1X}", "a ${BAD-NAME} b", "${}"])
def test_one_parser_one_wording_for_a_malformed_reference(text: str) -> None:
    """The environment-only resolution and the configuration's resolver (with secrets files) are one parser:
    one wording for one mistake."""
    from reconciler.secrets.references import ReferenceError_, Resolver, resolve_or_mark

    with pytest.raises(ReferenceError_) as alone:
        resolve_or_mark(text, {"X": "x"})
    with pytest.raises(ReferenceError_) as with_files:
        Resolver("a.yaml", {"X": "x"}, None).resolve(text)
    assert str(alone.value) == str(with_files.value)
    assert str(alone.value).startswith("malformed reference at character ")


# -- typed values in plans: no regex reads the product's own plan text back ---------------------------------------
#: Where text the product wrote is read back: a saved plan (when it is loaded and checked) and the state's stored
#: fingerprints (typed for the plan's changes and `state show`).
PARSING_BOUNDARY = frozenset(("planfile.py", "planfile_check.py", "state/stored.py"))
_READ_BACK = re.compile(
    r"sha256:\[|sha256:\\\[|not known here[^\"'\n]*\\\(|\\\(not known here|startswith\([^)]*not known here"
    r"|\b(?:is_fingerprint|is_unknown|unknown_names|_UNKNOWN|_FINGERPRINT)\b"
)


def test_no_regex_reads_the_plans_own_text_back() -> None:
    """A value not known here is a NotKnown and a fingerprint a Fingerprint inside a plan; only the saved-plan and
    state boundaries parse the text forms back."""
    from pathlib import Path

    package = Path(secrets.__file__).parent.parent
    found = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).as_posix() not in PARSING_BOUNDARY
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _READ_BACK.search(line)
    ]
    assert found == []
    # the scan finds the old ways
    for old in (
        '_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\\Z")',
        'rf"\\(not known here: (?:(?P<env>{_ENV_NAME}) unset"',
        "if is_unknown(value):",
        'value.startswith("(not known here: ")',
    ):
        assert _READ_BACK.search(old), old


def test_plan_values_are_typed_and_become_text_only_when_rendered(write) -> None:
    """Inside a plan, a fingerprint is a Fingerprint and a value not known here a NotKnown; the JSON plan and
    the saved plan hold their text as before."""
    from reconciler.config import load_config
    from reconciler.model import Recorded
    from reconciler.planning import make_plan
    from reconciler.render import plan_json

    path = write("a.yaml", CONFIG)
    recorded = Recorded("lineage", 1, "a-salt")
    known = make_plan(load_config(str(path), {"PROXY_PASSWORD": SENTINEL_PASSWORD}), recorded)
    unknown = make_plan(load_config(str(path), {}), recorded)
    after = {change.account_id: change.after for change in known.changes}
    assert isinstance(after["a"]["proxy"]["password"], secrets.Fingerprint)
    assert after["a"]["proxy"]["password"].startswith(secrets.FINGERPRINT_PREFIX)
    not_known = {change.account_id: change.after for change in unknown.changes}["a"]["proxy"]["password"]
    assert isinstance(not_known, secrets.NotKnown) and not_known.sources == ("PROXY_PASSWORD",)
    shown = json.loads(plan_json.render(unknown))
    (a,) = [change for change in shown["changes"] if change["account_id"] == "a"]
    assert a["after"]["proxy"]["password"] == "(not known here: PROXY_PASSWORD unset)"
