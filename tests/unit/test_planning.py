"""Planning and the plan a reviewer reads: the shown field changes turn `before` into `after`, in every format."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import load_config
from reconciler.model import AccountRecord, Desired, Plan, Recorded, settings_leaves
from reconciler.planning import changed_fields, make_plan
from reconciler.render import plan_json, plan_markdown, plan_text
from reconciler.render.changes import ABSENT
from reconciler.secrets import SENSITIVE, NotKnown, fingerprinted, masked

SCHEMAS = Path(__file__).parents[2] / "schemas"
SALT = "test-salt"

# -- the property: over random pairs of account specs ----------------------------------------------------------

_proxy = st.fixed_dictionaries(
    {"host": st.sampled_from(["a.example", "b.example"]), "port": st.sampled_from([1, 8080])},
    optional={
        "protocol": st.sampled_from(["http", "https", "socks5"]),
        "username": st.sampled_from(["u", "v", "${PROXY_USER}"]),
        "password": st.sampled_from(["${PROXY_PASSWORD}", "${OTHER_PASSWORD}", "plain-one"]),
    },
)
_managed = st.fixed_dictionaries(
    {},
    optional={
        "country": st.sampled_from(["US", "DE"]),
        "ip": st.sampled_from(["203.0.113.1", "2001:db8::1"]),
    },
).filter(bool)
_resync_only = st.just({"provider": "TELEGRAM", "resync": {"generation": 1}})
#: An account body as a user writes it, or None for "not declared" / "not recorded".
_body = st.one_of(st.none(), _proxy.map(lambda proxy: {"proxy": proxy}), _managed, _resync_only)
_VALUES = {
    "PROXY_PASSWORD": st.sampled_from(["secret-1", "secret-2"]),
    "OTHER_PASSWORD": st.sampled_from(["secret-1", "other-3"]),
    "PROXY_USER": st.sampled_from(["user-1", "user-2"]),
}
_environ = st.fixed_dictionaries(_VALUES)
#: What a plan may be made with: any variable may be unset (the recorded side was applied with all of them).
_environ_maybe_unset = st.fixed_dictionaries({}, optional=_VALUES)


def _desired(body: dict[str, Any] | None, environ: dict[str, str], directory: str) -> Desired:
    if body is None:
        return Desired(accounts={}, warnings=[], files=[], config_digest="0" * 64)
    path = Path(directory) / "a.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "accounts": {"acc": body}}, default_style='"'))
    return load_config(str(path), environ)


def _plan_of_pair(
    before: dict[str, Any] | None, after: dict[str, Any] | None, env_before: dict, env_after: dict
) -> Plan:
    with tempfile.TemporaryDirectory() as directory:
        recorded = Recorded("lineage", 1, SALT)
        old = _desired(before, env_before, directory)
        if "acc" in old.accounts:
            settings_before = fingerprinted(old.accounts["acc"].settings, SALT)
            recorded.accounts["acc"] = AccountRecord(settings=settings_before, resync_generation=1)
        return make_plan(_desired(after, env_after, directory), recorded)


def _shown_value(text: str) -> tuple[Any, str]:
    """One value as a text plan shows it, and the rest of the line."""
    for marker in (ABSENT, SENSITIVE):
        if text.startswith(marker):
            return marker, text[len(marker) :]
    if text.startswith("(not known here: "):
        end = text.index(" unset)") + len(" unset)")
        return text[:end], text[end:]
    value, end = json.JSONDecoder().raw_decode(text)
    return value, text[end:]


def _detail_lines(rendered: str, account_id: str) -> list[str]:
    """The detail lines of one account's entry in a text plan (or a markdown plan's diff block)."""
    lines = rendered.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().split(" ")[1:2] == [account_id])
    details = []
    for line in lines[start + 1 :]:
        if not line.startswith("    ") or line.strip().startswith("("):
            break
        details.append(line.strip())
    return details


def _apply_shown(rendered: str, before: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer gets by applying each shown field change to `before` (masked, flattened)."""
    leaves = dict(before)
    for line in _detail_lines(rendered, "acc"):
        if line.startswith("⟳"):
            continue
        field, separator, rest = line.partition(" = ") if " = " in line else line.partition(" : ")
        field = field.strip()
        if separator == " = ":  # create: the new value; forget: the value that goes
            value, tail = _shown_value(rest)
            assert tail == ""
            if leaves.get(field, ABSENT) == value:
                del leaves[field]
            else:
                leaves[field] = value
            continue
        old, tail = _shown_value(rest)
        assert tail.startswith(" -> "), line
        new, tail = _shown_value(tail[len(" -> ") :])
        assert tail == "", line
        assert leaves.get(field, ABSENT) == old, line
        if new == ABSENT:
            del leaves[field]
        else:
            leaves[field] = new
    return leaves


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=_body, after=_body, env_before=_environ, env_after=_environ_maybe_unset)
def test_shown_field_changes_turn_before_into_after(before, after, env_before, env_after) -> None:
    plan = _plan_of_pair(before, after, env_before, env_after)
    if plan.secret_only:  # counted apart, never listed: every difference is a value not known here
        (change,) = plan.secret_only
        assert not plan.changes and change.action == "update" and not change.resync
        assert all(isinstance(settings_leaves(change.after)[field], NotKnown) for field in change.fields)
        assert "acc " not in plan_text.render(plan) and "acc " not in plan_markdown.render(plan)
        return
    if not plan.changes:
        assert not plan.unset_variables
        return
    (change,) = plan.changes
    assert "root" not in change.fields
    masked_before = settings_leaves(masked(change.before, text=True))  # as rendered: a NotKnown as its text
    masked_after = settings_leaves(masked(change.after, text=True))
    if change.action in ("create", "update", "forget"):
        expected = masked_after if change.action != "forget" else {}
        for rendered in (plan_text.render(plan), plan_markdown.render(plan)):
            start = masked_before if change.action != "create" else {}
            assert _apply_shown(rendered, start) == expected
    # JSON: setting each listed field of `before` to its value in `after` (or dropping it) gives `after`.
    document = plan_json.document(plan)
    jsonschema.validate(document, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    (shown,) = document["changes"]
    leaves = settings_leaves(shown["before"])
    target = settings_leaves(shown["after"])
    for field in shown["fields"]:
        if field in target:
            leaves[field] = target[field]
        else:
            leaves.pop(field, None)
    if change.action != "none":
        assert leaves == target
    # And nothing is listed that does not differ (fingerprints compared, so a new secret is listed).
    fingerprinted_before = settings_leaves(change.before)
    fingerprinted_after = settings_leaves(change.after)
    for field in change.fields:
        assert fingerprinted_before.get(field, ABSENT) != fingerprinted_after.get(field, ABSENT)
    # A value not known here is always shown, so an account is never claimed unchanged because of it.
    for field, value in fingerprinted_after.items():
        if isinstance(value, NotKnown):
            assert field in change.fields and plan.unset_variables


def test_changed_fields_compares_types_and_lists_leaves_of_both_shapes() -> None:
    proxy = {"proxy": {"host": "x", "port": 1}}
    assert changed_fields(proxy, {"country": "US"}) == ("country", "proxy.host", "proxy.port")
    assert changed_fields({"proxy": {"port": 1}}, {"proxy": {"port": True}}) == ("proxy.port",)
    assert changed_fields(proxy, proxy) == ()
    assert changed_fields(None, {"country": "US", "ip": "203.0.113.1"}) == ("country", "ip")


# -- the switch between a custom proxy and a managed one, through the real CLI ---------------------------------

PROXY_CONFIG = """
version: 1
accounts:
  acc_a:
    proxy: {host: x.example, port: 8080, username: u, password: "${PROXY_PASSWORD}"}
  acc_b: {country: DE}
"""


def test_switching_proxy_kinds_shows_the_real_leaves_in_every_format(run, write) -> None:
    write("a.yaml", PROXY_CONFIG)
    assert run("import", "a.yaml").code == 0
    write(
        "a.yaml",
        PROXY_CONFIG.replace(
            'proxy: {host: x.example, port: 8080, username: u, password: "${PROXY_PASSWORD}"}', "country: US"
        ),
    )
    text = run("plan", "a.yaml").out
    assert "root" not in text
    for line in (
        "~ acc_a (update)",
        'country        : (none) -> "US"',
        'proxy.host     : "x.example" -> (none)',
        "proxy.password : (sensitive) -> (none)",
        "proxy.port     : 8080 -> (none)",
        'proxy.username : "u" -> (none)',
    ):
        assert line in text, text
    markdown = run("plan", "a.yaml", "--format", "markdown").out
    assert (
        'proxy.host     : "x.example" -> (none)' in markdown and 'country        : (none) -> "US"' in markdown
    )
    assert "root" not in markdown
    (change,) = run("plan", "a.yaml", "--format", "json").json["changes"]
    assert change["fields"] == ["country", "proxy.host", "proxy.password", "proxy.port", "proxy.username"]
    assert change["before"]["proxy"]["password"] == "(sensitive)" and change["after"] == {"country": "US"}

    # And back: a managed account becomes a custom proxy.
    write("b.yaml", "version: 1\naccounts:\n  acc_b: {proxy: {host: y.example, port: 1}}\n")
    text = run("plan", "b.yaml", "--target", "acc_b").out
    assert 'country    : "DE" -> (none)' in text and 'proxy.host : (none) -> "y.example"' in text, text


def test_text_plan_shows_the_unchanged_count(run, write) -> None:
    write("a.yaml", PROXY_CONFIG)
    run("import", "a.yaml")
    write("a.yaml", PROXY_CONFIG + "  acc_c: {country: FR}\n")
    text = run("plan", "a.yaml").out
    assert text.endswith(
        "2 account(s) unchanged, not shown.\nPlan: 1 to create, 0 to update, 0 to forget, 0 to resync.\n"
    )


def test_markdown_plan_carries_the_plaintext_password_warning(run, write) -> None:
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          acc_a: {proxy: {host: x.example, port: 1, password: hunter2-plain}}
        """,
    )
    result = run("plan", "a.yaml", "--format", "markdown")
    assert "> [!WARNING]" in result.out
    assert (
        "> - `a.yaml:3:55: warning: account 'acc_a': plaintext proxy password; use ${VAR} instead`"
        in result.out
    )
    assert "hunter2-plain" not in result.out


def test_markdown_warning_cannot_break_out_of_its_code_span() -> None:
    plan = Plan([], 0, None, 0, "0" * 64, "0" * 64, warnings=("a``b.yaml:1:1: warning: x\n</details>",))
    rendered = plan_markdown.render(plan)
    assert "> - ```a``b.yaml:1:1: warning: x\\x0a</details>```" in rendered
