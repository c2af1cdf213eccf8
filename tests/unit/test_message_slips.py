"""Every message reconciler can print reads as one sentence: no doubled punctuation (`account.; the`, `right?;`,
`..` that is not an ellipsis, `;;`, `, ,`) and no stray quotes (`'s3'://`).

Messages come from three places, and each is read here:

1. **The source's string literals.** Every string constant and every f-string of `reconciler/` (docstrings left
   out: they are not printed, nor SQL and regular expressions), an f-string with each `{...}` as a placeholder
   (quoted for `{...!r}`, which prints quotes). This finds a slip written into one literal, whatever prints it
   (an error, a warning, a hint, `--help`), with no list of messages to keep up.
2. **Messages put together at run time.** A slip between two pieces (a reason that ends in a full stop, given to
   `Stopped early: {reason}; the remaining...`) is in no literal: the places that join pieces are run with every
   piece they can get (each breaker reason, each bound, each state another holds, a reason ending in `.`), and
   what they print is read.
3. **The catalogue and the documentation's table of messages** (`docs/messages.md`), which quote what is printed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "reconciler"

#: Punctuation that never follows another in a sentence of ours (an ellipsis is one mark: see `slips`).
_DOUBLED = [
    (re.compile(r"[.?!:,;];"), "punctuation before ';'"),
    (re.compile(r"[?!;:,]\."), "a full stop after other punctuation"),
    (re.compile(r"(?<!\w)\.\.|\.\.(?!\w)"), "'..' that is not an ellipsis nor a range (1..N)"),
    (re.compile(r",\s*,"), "', ,'"),
    (re.compile(r"[.;]\s+[.;,]|;,"), "a full stop or ';' before another mark"),
]
#: A quoted word glued to what follows: `'s3'://`, `'a'b`.
_STRAY_QUOTE = re.compile(r"(?<![\w'])'[^'\s]+'(?=\w|://)")
#: A placeholder for what an f-string fills in: a word, so that it neither makes nor hides a slip.
_HOLE = "X"
_ELLIPSIS = re.compile(r"\.\.\.|…")


def slips(text: str) -> list[str]:
    """What is wrong with `text`'s punctuation, each with the text around it."""
    found = []
    plain = _ELLIPSIS.sub("\u2026", text)  # `...;` elides, `...` then `;` is fine; an ellipsis is one mark
    for pattern, what in _DOUBLED:
        for match in pattern.finditer(plain):
            found.append(f"{what}: {plain[max(0, match.start() - 40) : match.end() + 20]!r}")
    for match in _STRAY_QUOTE.finditer(text):
        found.append(f"stray quotes: {text[max(0, match.start() - 40) : match.end() + 20]!r}")
    return found


# -- 1. the source's literals ---------------------------------------------------------------------------------
def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (module, class and function docstrings, and attribute docs `#:` are comments)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _joined(node: ast.JoinedStr) -> str:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(value.value)
        elif isinstance(value, ast.FormattedValue) and value.conversion == ord("r"):
            parts.append(f"'{_HOLE}'")  # `{scheme!r}` prints quotes: `'s3'://` shows here as `'X'://`
        else:
            parts.append(_HOLE)
    return "".join(parts)


#: Literals that are not prose: SQL, regular expressions (a backslash, a group) and the like, by what they hold.
_NOT_PROSE = re.compile(r"^\s*(select|insert|update|delete|create|copy) |\\|\(\?|^[\W\d_]*$", re.IGNORECASE)


def source_literals() -> Iterator[tuple[str, str]]:
    """(`file:line`, text) of every string literal and f-string of reconciler/ that is not a docstring."""
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = _docstrings(tree)
        inside_fstrings = {
            id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for value in node.values
        }
        inside_fstrings |= {  # a format spec (`{count:,.0f}`) is an f-string of its own
            id(node.format_spec)
            for node in ast.walk(tree)
            if isinstance(node, ast.FormattedValue) and node.format_spec is not None
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                if id(node) in inside_fstrings:
                    continue
                text = _joined(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings or id(node) in inside_fstrings:
                    continue
                text = node.value
            else:
                continue
            if len(text) < 3 or _NOT_PROSE.search(text):
                continue
            yield f"{path.relative_to(ROOT)}:{node.lineno}", text


def test_no_literal_of_the_source_has_a_slip() -> None:
    found = [f"{where}: {slip}" for where, text in source_literals() for slip in slips(text)]
    assert found == []


def test_the_scan_sees_the_messages_and_the_slips() -> None:
    """The scan reads the literals that become messages, and would have caught each slip the first week met."""
    texts = [text for _, text in source_literals()]
    assert any("is not set; the API key is read from the environment only" in text for text in texts)
    assert any(text.startswith("unsupported state location") for text in texts)
    assert len(texts) > 500
    for slip in (
        "the API fails the same way for every account.; the remaining operations were skipped.",
        "is POSTPRESS_API_KEY right?; the remaining",
        "unsupported state location 's3'://: use a path",
        "e.g.. this",
        "the end..",
        "one, , two",
        "a;; b",
        "a; , b",
        "ends. . here",
    ):
        assert slips(slip), slip
    for fine in (
        "... and 3 more",
        "Stopped early: ...; the remaining operations were skipped.",
        "account 'acc_1': proxy.host",
        "don't",
        "`--select KEY=VALUE`",
        "e.g. https://api.postpress.ai/api/v1",
        "apply shards 1..N at once",
    ):
        assert not slips(fine), fine


# -- 2. messages put together at run time ----------------------------------------------------------------------
def _breaker_reasons() -> list[str]:
    from reconciler.api.catalogue import CATALOGUE, classify
    from reconciler.applying.stopping import PROBES, StopPolicy

    kinds = [
        CATALOGUE["errors/invalid_credentials"],  # authentication
        CATALOGUE["errors/unexpected_error"],  # outage
        CATALOGUE["errors/too_many_requests"],  # throttled
        CATALOGUE["errors/proxy_error"],  # one type repeated
        CATALOGUE["errors/resource_not_found"],  # 404s with no success: the URL
        classify(None, 404),  # a 404 of a server that is not the API
    ]
    reasons = []
    for kind in kinds:
        policy = StopPolicy(threshold=3, max_retry_after=120, api_url="http://127.0.0.1:1/x")
        for account in "abc":
            policy.failed(account, kind, None, first=True)
        for _ in range(PROBES):
            policy.probe_failed()
        assert policy.reason, kind
        reasons.append(policy.reason)
    policy = StopPolicy(threshold=3, max_retry_after=1)
    policy.failed("a", CATALOGUE["errors/too_many_requests"], 1e300, first=True)
    reasons.append(policy.reason or "")
    policy = StopPolicy(threshold=3, max_retry_after=1)
    policy.failed_finally(CATALOGUE["errors/network_down"])
    reasons.append(policy.reason or "")
    reasons.append("OSError: [Errno 28] No space left on device.")  # the engine's reason for an exception
    return reasons


def _reports() -> Iterator[str]:
    from reconciler.model import Result
    from reconciler.render import report

    results = [
        Result(
            "acc_1", "patch", "failed", 404, "errors/resource_not_found", "not_found", False, 1, "HTTP 404."
        ),
        Result("acc_2", "patch", "skipped", message="skipped: the run stopped early (X)"),
    ]
    for reason in _breaker_reasons():
        yield report.render_text(results, reason)
        yield report.render_markdown(results, reason)
        yield f"skipped: the run stopped early ({reason})"


def _safety_lines() -> Iterator[str]:
    from reconciler.escape import code_span
    from reconciler.model import Change, Elsewhere, Plan
    from reconciler.planning import raise_if_unsafe, weigh
    from reconciler.render.changes import safety_lines

    changes = [
        Change(f"a{i}", "update", False, ("country",), {"country": "DE"}, {"country": "US"}) for i in range(8)
    ]
    changes += [Change(f"f{i}", "forget", False, ("country",), {"country": "DE"}, None) for i in range(8)]
    changes += [Change(f"r{i}", "create", True, ("country",), None, {"country": "US"}, 2) for i in range(12)]
    plan = Plan(changes, 10, "lineage", 1, "c", lambda: "d")
    for elsewhere in (
        Elsewhere("workspace", "production", 30, 30),
        Elsewhere("schema", "prod_state", 30, 30, "production"),
        Elsewhere("file", ".reconciler/state.json", 3, 4),
        Elsewhere(
            "file", ".reconciler/state.json", 3, 4, here="postgresql://u:***@h/db?schema=s&workspace=w"
        ),
    ):
        safety = weigh(plan, 20, elsewhere=elsewhere)
        assert len(safety.refused) == 3
        yield from safety_lines(safety)
        yield from safety_lines(safety, code_span)
        yield elsewhere.refusal()
        with pytest.raises(Exception) as refused:
            raise_if_unsafe(safety)
        yield str(refused.value)
        with pytest.raises(Exception) as refused:
            raise_if_unsafe(weigh(plan, 20))
        yield str(refused.value)


def _refusals() -> Iterator[str]:
    from reconciler.api.endpoint import check_api_url
    from reconciler.cli.common import missing_default_config
    from reconciler.errors import LockHeld, ReconcilerError
    from reconciler.model import AccountSpec
    from reconciler.planning import check_targets, unmatched_selection
    from reconciler.secrets import Redactor
    from reconciler.state import open_backend

    yield str(LockHeld.by("state.json", "apply (pid 1 on host) since 2026-01-01T00:00:00Z"))
    yield str(LockHeld.by("state.json", "apply (pid 1 on host) since 2026-01-01T00:00:00Z", 1.0))
    yield missing_default_config()
    specs = {"a": AccountSpec("a", None, {"team": "emea"}, None, None, "a.yaml", 1, 1)}
    yield unmatched_selection([("team", "emae")], specs)
    yield unmatched_selection([("team", "emea"), ("env", "x")], specs)
    yield unmatched_selection([("team", "emea")], specs, targeted=True)
    yield unmatched_selection([("team", "x")], {"a": AccountSpec("a", None, {}, None, None, "a.yaml", 1, 1)})
    for call in (
        lambda: check_targets({"acc_O1"}, {"acc_01"}),
        lambda: check_api_url("http://127.0.0.1:8787", Redactor()),
        lambda: check_api_url("https://example.com/v2", Redactor()),
        lambda: check_api_url("ftp://example.com/api/v1", Redactor()),
        lambda: open_backend("s3://bucket/state.json"),
    ):
        with pytest.raises(ReconcilerError) as refused:
            call()
        yield str(refused.value)


def test_messages_put_together_at_run_time_have_no_slip() -> None:
    printed = [*_reports(), *_safety_lines(), *_refusals()]
    found = [slip for text in printed for slip in slips(text)]
    assert found == []


# -- 3. the catalogue and the documentation ---------------------------------------------------------------------
def test_the_catalogue_and_the_documented_messages_have_no_slip() -> None:
    from reconciler.api.catalogue import CATALOGUE

    found = [f"{kind.type}: {slip}" for kind in CATALOGUE.values() for slip in slips(kind.hint)]
    table = (ROOT / "docs" / "messages.md").read_text("utf-8")
    cells = re.findall(r"^\| `(.+?)`", table, flags=re.MULTILINE)
    assert len(cells) > 50
    found += [f"docs/messages.md: {slip}" for cell in cells for slip in slips(cell)]
    assert found == []
