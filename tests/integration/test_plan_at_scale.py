"""A plan a reviewer can use at scale: the markdown grouped by file with per-file counts and a note of what was cut,
the safety bound's verdict in every format, and the updates that wait only for unset secrets counted apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cmarkgfm
import jsonschema
import pytest
from cmarkgfm.cmark import Options

from tests.integration.test_outside_text import assert_markdown_safe

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
REGIONS = ("amer-us", "apac-sg", "emea-de", "emea-fr", "emea-uk", "apac-jp")


def _region_file(region: str, count: int, host: str = "proxy.example.com", extra: str = "") -> str:
    variable = "PW_" + region.split("-")[0].upper()
    lines = ["version: 1", "defaults:", "  proxy: {protocol: https, port: 8080}", "accounts:"]
    lines += [
        f"  acc_{region.replace('-', '_')}_{i:04d}: {{provider: LINKEDIN, "
        f"proxy: {{host: p{i}.{region}.{host}, username: u, "
        f'password: "${{{variable}}}"}}}}'
        for i in range(count)
    ]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def fleet(run, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Six region files of 400 accounts each, recorded as applied (`import`)."""
    for name in ("PW_AMER", "PW_APAC", "PW_EMEA"):
        monkeypatch.setenv(name, f"{name}-SENTINEL-5d1c")
    directory = workdir / "accounts"
    directory.mkdir()
    for region in REGIONS:
        (directory / f"{region}.yaml").write_text(_region_file(region, 400))
    imported = run("import", "accounts")
    assert imported.code == 0, imported.err
    return directory


def _file_rows(markdown: str) -> dict[str, list[str]]:
    """The per-file table: file -> its counts (create, update, forget, resync) as shown."""
    rows = {}
    for line in markdown.splitlines():
        match = re.fullmatch(r"\| (`[^`]+`|\(no longer declared\)) \| (.+) \|", line)
        if match:
            rows[match.group(1).strip("`")] = match.group(2).split(" | ")
    return rows


def _listed(markdown: str) -> dict[str, int]:
    """How many accounts each file's details show."""
    shown: dict[str, int] = {}
    for block in markdown.split("<details><summary>")[1:]:
        summary, _, body = block.partition("</summary>")
        name = re.sub(r"</?code>", "", summary.split(": ")[0])
        shown[name] = len(re.findall(r"^[+~\-⟳] acc_", body, flags=re.MULTILINE))
    return shown


def test_markdown_plan_groups_by_file_counts_first_and_names_what_it_cut(
    run, fleet: Path, monkeypatch
) -> None:
    # emea-de moves to new hosts (400 updates), apac-sg gains 300 managed accounts, amer-us forgets 50 and
    # resyncs 20, the other three files are unchanged.
    (fleet / "emea-de.yaml").write_text(_region_file("emea-de", 400, host="proxy2.example.com"))
    created = "".join(f"  acc_apac_sg_new_{i:04d}: {{country: SG}}\n" for i in range(300))
    (fleet / "apac-sg.yaml").write_text(_region_file("apac-sg", 400, extra=created))
    amer = _region_file("amer-us", 350).splitlines()
    amer = [
        line.replace("}}", "}, resync: {generation: 1}}")
        if re.match(r"  acc_amer_us_00[01]\d:", line)
        else line
        for line in amer
    ]
    (fleet / "amer-us.yaml").write_text("\n".join(amer) + "\n")

    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/accounts")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("RECONCILER_PLAN_ARTIFACT", "reconciler-plan-text")
    result = run("plan", "accounts", "--format", "markdown", "--max-update-percent", "50")
    assert result.code == 0, result.err
    markdown = result.out
    assert len(markdown) <= 60_000
    assert "**Plan: 300 to create, 400 to update, 50 to forget, 20 to resync.** 1,930 unchanged." in markdown
    # The per-file counts come before any detail, one row per file with something to do, forgets last.
    table = markdown.index("| file | create | update | forget | resync |")
    assert table < markdown.index("<details>")
    assert list(_file_rows(markdown).items()) == [
        ("accounts/amer-us.yaml", ["0", "0", "0", "20"]),
        ("accounts/apac-sg.yaml", ["300", "0", "0", "0"]),
        ("accounts/emea-de.yaml", ["0", "400", "0", "0"]),
        ("(no longer declared)", ["0", "0", "50", "0"]),
    ]
    assert "<details><summary><code>accounts/apac-sg.yaml</code>: 300 to create</summary>" in markdown
    # Details were cut: the note names each file that lost some, with how many, and they add up.
    shown = _listed(markdown)
    planned = {
        "accounts/amer-us.yaml": 20,
        "accounts/apac-sg.yaml": 300,
        "accounts/emea-de.yaml": 400,
        "(no longer declared)": 50,
    }
    cut = {name: planned[name] - shown.get(name, 0) for name in planned if planned[name] > shown.get(name, 0)}
    assert cut, "the plan was expected not to fit"
    note = markdown[markdown.index("**Details of ") :]
    total = sum(cut.values())
    assert note.startswith(
        f"**Details of {total:,} account(s) in {len(cut)} file(s) left out to stay under 60,000 characters**; "
        "the whole plan is the artifact `reconciler-plan-text` of "
        "[this workflow run](https://github.com/acme/accounts/actions/runs/4242). Left out:\n"
    )
    for name, count in cut.items():
        shown_name = name if name == "(no longer declared)" else f"`{name}`"
        assert f"\n- {shown_name}: {count:,}\n" in note

    # Without the action's artifact, the note says how to get the whole plan; the text plan lists it all.
    monkeypatch.delenv("RECONCILER_PLAN_ARTIFACT")
    plain = run("plan", "accounts", "--format", "markdown", "--max-update-percent", "50").out
    assert "`reconciler plan` prints the whole plan (`--format text` or `--format json`). Left out:" in plain
    assert_markdown_safe(plain, "<!-- reconciler-plan -->")
    text = run("plan", "accounts", "--max-update-percent", "50").out
    assert len(re.findall(r"^  [+~\-⟳] acc_", text, flags=re.MULTILINE)) == 300 + 400 + 50 + 20


def test_a_link_is_made_only_to_what_is_surely_a_run_page(run, fleet: Path, monkeypatch) -> None:
    for region in ("emea-de", "emea-fr", "emea-uk"):
        (fleet / f"{region}.yaml").write_text(_region_file(region, 400, host="proxy2.example.com"))
    monkeypatch.setenv("RECONCILER_PLAN_ARTIFACT", "reconciler-plan-text")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://evil.example/x) [click](https://evil.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/accounts")
    monkeypatch.setenv("GITHUB_RUN_ID", "1")
    markdown = run("plan", "accounts", "--format", "markdown", "--max-update-percent=90").out
    assert "evil" not in markdown
    assert "the whole plan is the artifact `reconciler-plan-text` of this workflow run." in markdown


def test_file_names_from_outside_keep_the_table_and_the_comment_intact(run, workdir: Path) -> None:
    directory = workdir / "hostile"
    directory.mkdir()
    names = ["a|b`<details>.yaml", "c<!-- x -->@team.yaml", "d\u202e[x](javascript:alert(1)).yaml"]
    for index, name in enumerate(names):
        accounts = "".join(
            f"  acc_{index}_{i:04d}: {{country: US, ip: 203.0.113.{i % 250}}}\n" for i in range(700)
        )
        (directory / name).write_text("version: 1\naccounts:\n" + accounts)
    markdown = run("plan", "hostile", "--format", "markdown").out
    assert "left out to stay under 60,000 characters" in markdown
    assert_markdown_safe(markdown, "<!-- reconciler-plan -->")
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    table = html[html.index("<th>file</th>") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.DOTALL)
    assert len(rows) == 3 and all(row.count("<td") == 5 for row in rows), rows
    assert "a|b`&lt;details&gt;.yaml" in table


def test_plan_says_when_apply_would_refuse_it_in_every_format(run, write, api, monkeypatch) -> None:
    accounts = "".join(f"  acc_{i:02d}: {{country: US, ip: 203.0.113.{i}}}\n" for i in range(20))
    write("a.yaml", "version: 1\naccounts:\n" + accounts)
    assert run("import", "a.yaml").code == 0
    changed = "".join(
        f"  acc_{i:02d}: {{country: {'DE' if i < 8 else 'US'}, ip: 203.0.113.{i}}}\n" for i in range(19)
    )
    write("a.yaml", "version: 1\naccounts:\n" + changed)  # 8 updates (40%), 1 forget (5%)
    said = (
        "apply would refuse this plan: too many updates: 40.00% is over 30.00% (8/20); apply --force applies it "
        "anyway, or --max-update-percent sets the bound."
    )

    text = run("plan", "a.yaml")
    assert text.code == 0 and text.out.rstrip("\n").endswith(
        "Plan: 0 to create, 8 to update, 1 to forget, 0 to resync.\n" + said
    )
    markdown = run("plan", "a.yaml", "--format", "markdown").out
    assert f"> [!CAUTION]\n> {said}\n" in markdown
    assert markdown.index("[!CAUTION]") < markdown.index("| file |")
    document = run("plan", "a.yaml", "--format", "json").json
    jsonschema.validate(document, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert document["safety"] == {
        "recorded": 20,
        "applies": True,
        "refused": True,
        "override": "--force",
        "bounds": [
            {
                "action": "update",
                "count": 8,
                "of": 20,
                "applies": True,
                "percent": 40.0,
                "max_percent": 30.0,
                "over": True,
                "may_be_over": False,
            },
            {
                "action": "forget",
                "count": 1,
                "of": 20,
                "applies": True,
                "percent": 5.0,
                "max_percent": 30.0,
                "over": False,
                "may_be_over": False,
            },
            {
                "action": "resync",
                "count": 0,
                "of": 19,
                "applies": False,
                "percent": 0.0,
                "max_percent": 30.0,
                "over": False,
                "may_be_over": False,
            },
        ],
        "elsewhere": None,
    }
    # A saved plan says the same when shown.
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    assert said in run("show", "plan.bin").out
    assert json.loads(run("show", "plan.bin", "--format", "json").out)["safety"]["refused"] is True

    # And apply refuses it with the same numbers, sending nothing.
    refused = run("apply", "a.yaml", "--yes")
    assert refused.code == 1
    assert (
        refused.err == "Error: too many updates: 40.00% is over 30.00% (8/20); --force applies it anyway, or "
        "--max-update-percent sets the bound\n"
    )
    assert api.stats.requests == 0

    # With the bound apply will run with, the plan passes, and says nothing of a refusal.
    passing = run("plan", "a.yaml", "--max-update-percent", "40")
    assert "refuse" not in passing.out
    assert (
        run("plan", "a.yaml", "--format", "json", "--max-update-percent", "40").json["safety"]["refused"]
        is False
    )


def test_a_small_state_is_never_refused(run, write) -> None:
    write("a.yaml", "version: 1\naccounts:\n  a: {country: US}\n  b: {country: US}\n")
    assert run("import", "a.yaml").code == 0
    write("a.yaml", "version: 1\naccounts:\n  a: {country: DE}\n  b: {country: DE}\n")
    document = run("plan", "a.yaml", "--format", "json").json
    assert document["safety"]["applies"] is False and document["safety"]["refused"] is False
    assert (
        document["safety"]["bounds"][0]["over"] is True
    )  # 100% over 30%, but 2 accounts are below the minimum
    assert "refuse" not in run("plan", "a.yaml").out


def test_updates_that_wait_only_for_unset_secrets_are_counted_by_variable(
    run, fleet: Path, monkeypatch
) -> None:
    # The real change: five emea-de accounts move; the secrets are not set here (a fork's pull request).
    lines = [
        line.replace(".emea-de.", ".moved.") if re.match(r"  acc_emea_de_000[0-4]:", line) else line
        for line in _region_file("emea-de", 400).splitlines()
    ]
    moved = [line for line in lines if ".moved." in line]
    assert len(moved) == 5, moved
    (fleet / "emea-de.yaml").write_text("\n".join(lines) + "\n")
    for name in ("PW_AMER", "PW_APAC", "PW_EMEA"):
        monkeypatch.delenv(name)

    result = run("plan", "accounts", "--detailed-exitcode")
    assert result.code == 2, result.err
    listed = re.findall(r"^  ~ (acc_\w+) \(update\)", result.out, flags=re.MULTILINE)
    assert listed == [f"acc_emea_de_000{i}" for i in range(5)]
    # Grouped by exactly the variables each account waits for, most first.
    assert (
        "2,395 more update(s) depend only on PW_AMER, PW_APAC, PW_EMEA (not set here) and may change nothing, "
        "not listed: 1,195 on PW_EMEA; 800 on PW_APAC; 400 on PW_AMER."
    ) in result.out
    assert "Plan: 0 to create, 5 to update, 0 to forget, 0 to resync." in result.out
    assert "SENTINEL" not in result.out + result.err

    document = run("plan", "accounts", "--format", "json").json
    jsonschema.validate(document, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert document["summary"]["update"] == 5
    assert [change["account_id"] for change in document["changes"]] == listed
    assert document["secret_only"] == {
        "count": 2395,
        "by_variables": [
            {"variables": ["PW_EMEA"], "count": 1195},
            {"variables": ["PW_APAC"], "count": 800},
            {"variables": ["PW_AMER"], "count": 400},
        ],
    }
    # The moved accounts are 5 of 2,400 (0.2%): the bound passes; with the others it might not.
    update_bound = document["safety"]["bounds"][0]
    assert update_bound["over"] is False and update_bound["may_be_over"] is True
    assert (
        "apply may refuse this plan: 5/2400 updates are within 30.00%, but with the 2395 that depend on values not "
        "known here they would be 100.00% (2400/2400); apply --force applies it anyway."
    ) in result.out

    markdown = run("plan", "accounts", "--format", "markdown").out
    assert "> [!NOTE]\n> Not known here: PW_AMER, PW_APAC, PW_EMEA unset;" in markdown
    assert ">\n> 2,395 more update(s) depend only on PW_AMER, PW_APAC, PW_EMEA (not set here)" in markdown
    assert list(_file_rows(markdown).items()) == [("accounts/emea-de.yaml", ["0", "5", "0", "0"])]
    assert len(re.findall(r"^~ acc_", markdown, flags=re.MULTILINE)) == 5

    # Nothing but secret-only updates: still changes (they may be), listed nowhere.
    (fleet / "emea-de.yaml").write_text(_region_file("emea-de", 400))
    only = run("plan", "accounts", "--detailed-exitcode")
    assert only.code == 2
    assert "Reconciler will perform" not in only.out and "~ acc_" not in only.out
    assert "2,400 more update(s) depend only on" in only.out
