"""The habits users bring from Terraform and octoDNS: -C, JSON everywhere, an import that says what it did."""

from __future__ import annotations

import io
import sys

from reconciler.sandbox import Fault
from tests.helpers import fleet


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_chdir_runs_as_if_started_there(run, write, workdir) -> None:
    write("repo/accounts.yaml", fleet(2))
    result = run("-C", "repo", "plan", "--format", "json")
    assert result.code == 0 and result.json["summary"]["create"] == 2
    missing = run("-C", "nowhere", "plan")
    assert missing.code == 1 and "nowhere" in missing.err


def test_a_target_that_names_nothing_is_refused_with_the_closest_ids(run, write) -> None:
    write("a.yaml", fleet(3))
    result = run("plan", "a.yaml", "--target", "acc_0O01")
    assert result.code == 1
    assert "--target names no declared or recorded account: 'acc_0O01' (did you mean 'acc_0001'" in result.err
    assert run("plan", "a.yaml", "--target", "acc_0001").code == 0


def test_state_list_and_show_and_forget_in_json(run, write, api) -> None:
    write("a.yaml", fleet(3))
    api.faults = [Fault.parse("errors/proxy_error@acc_0002")]
    assert run("apply", "a.yaml", "--yes", "--max-attempts", "1").code == 3
    listed = run("state", "list", "--format", "json").json
    assert [(a["account_id"], a["status"], a["last_failure_type"]) for a in listed["accounts"]] == [
        ("acc_0000", "ok", None),
        ("acc_0001", "ok", None),
        ("acc_0002", "failed", "errors/proxy_error"),
    ]
    assert "acc_0002\tfailed\tapplied -\tresync generation 0\terrors/proxy_error" in run("state", "list").out
    shown = run("state", "show", "acc_0000", "--format", "json").json
    assert shown["account_id"] == "acc_0000" and shown["settings"] == {"country": "US", "ip": "203.0.113.1"}
    forgot = run("state", "forget", "acc_0001", "--format", "json")
    assert forgot.json == {"format_version": 1, "forgotten": ["acc_0001"]}
    assert "Forgot 1 account(s): acc_0001." in forgot.err


def test_state_list_reads_the_sandbox_state_with_sandbox(run, write) -> None:
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--sandbox", "--yes").code == 0
    assert run("state", "list", "--format", "json").json["accounts"] == []
    assert len(run("state", "list", "--sandbox", "--format", "json").json["accounts"]) == 2


def test_import_says_what_it_recorded(run, write) -> None:
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          acc_a: {country: US}
          acc_b:
            provider: LINKEDIN
            country: DE
            resync: {generation: 2}
        """,
    )
    result = run("import", "a.yaml", "--no-resynced", "--format", "json")
    assert result.code == 0
    assert result.json == {
        "format_version": 1,
        "imported": ["acc_a", "acc_b"],
        "resynced": [],
        "previously_failed": [],
    }
    assert "imported acc_a" in result.err and "Imported 2 account(s)." in result.err
    plan = run("plan", "a.yaml", "--format", "json").json
    assert [(c["account_id"], c["action"], c["resync"]) for c in plan["changes"]] == [("acc_b", "none", True)]
    again = run("import", "a.yaml")
    assert "recorded 1 resync(s) as done" in again.err
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0


def test_import_on_a_terminal_asks_before_writing(run, write, workdir, monkeypatch) -> None:
    write("a.yaml", fleet(2))
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    refused = run("import", "a.yaml")
    assert refused.code == 1 and "Write the state?" in refused.err
    assert run("state", "list", "--format", "json").json["accounts"] == []
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert run("import", "a.yaml").code == 0
    assert len(run("state", "list", "--format", "json").json["accounts"]) == 2


def test_validate_in_json_and_from_standard_input(run, write, monkeypatch) -> None:
    write("a.yaml", "version: 1\naccounts:\n  acc_1: {proxy: {host: h, port: '8080'}}\n")
    result = run("validate", "a.yaml", "--format", "json")
    assert result.code == 1
    problem = result.json["problems"][0]
    assert (problem["file"], problem["line"], problem["path"]) == ("a.yaml", 3, "accounts.acc_1.proxy.port")
    assert result.json["valid"] is False and "port" in problem["message"]
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(b"version: 1\naccounts:\n  acc_1: {country: US}\n"))
    )
    piped = run("validate", "-", "--format", "json")
    assert piped.code == 0 and piped.json["valid"] is True and piped.json["accounts"] == 1
    write("b.yaml", "version: 1\naccounts:\n  acc_1: {proxy: {host: h, port: 1, password: '${NOT_SET}'}}\n")
    unset = run("validate", "b.yaml", "--format", "json")
    assert unset.code == 0 and unset.json["unset_variables"] == ["NOT_SET"]


def test_annotations_never_mix_into_a_plan_on_stdout(run, write, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    write("a.yaml", "version: 1\naccounts:\n  acc_1: {proxy: {host: h, port: 1, password: plain-text-pw}}\n")
    result = run("plan", "a.yaml", "--format", "json")
    assert result.code == 0 and result.json["summary"]["create"] == 1  # stdout is the JSON alone
    assert "::warning file=a.yaml,line=3," in result.err


def test_an_unsupported_state_location_names_what_is_supported(run, write) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", "s3://bucket/state.json")
    assert result.code == 1
    assert (
        "unsupported state location s3://bucket/state.json: use a path, a file:// URL or a postgresql:// URL"
        in result.err
    )


def test_plan_out_into_a_missing_directory_names_the_plan_file(run, write) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--out", "nodir/plan.bin")
    assert result.code == 1
    assert result.err == "Error: --out nodir/plan.bin: cannot write there (No such file or directory)\n"


def test_a_mistyped_command_gets_a_suggestion(run) -> None:
    """Commands are imported only when used; a typo still gets click's "did you mean" from every name."""
    for typed, meant in (("plna", "plan"), ("imprt", "import"), ("sandbx", "sandbox")):
        result = run(typed)
        assert result.code == 1
        assert f"No such command '{typed}'. Did you mean '{meant}'?" in result.err


def test_a_group_without_a_command_shows_its_help_as_it_is(run) -> None:
    """click 8.2+ raises its help as an error message: shown escaped, it came out on one line with `\\x0a`."""
    for args, commands in (((), ("apply", "plan", "state")), (("state",), ("forget", "list", "show"))):
        result = run(*args)
        assert result.code == 1
        assert "\\x0a" not in result.err and result.err.startswith("Usage: reconciler")
        lines = result.err.splitlines()
        assert len(lines) > 10
        assert all(any(line.strip().startswith(command + " ") for line in lines) for command in commands)


def test_validate_counts_one_account_in_the_singular(run, write) -> None:
    write("one.yaml", "version: 1\naccounts:\n  acc_1: {country: US}\n")
    result = run("validate", "one.yaml")
    assert result.code == 0 and "one.yaml: valid (1 account)\n" in result.err


def test_a_usage_error_is_one_line_naming_the_help(run) -> None:
    """Like every error: `Error: ...` on one line, exit 1, with where the usage is explained."""
    cases = {
        (
            "apply",
            "a.yaml",
            "--shard",
            "3/2",
        ): "Error: Invalid value for '--shard': '3/2': expected K/N with 1 <= K "
        "<= N, e.g. 2/4 (see 'reconciler apply --help')\n",
        ("state", "show"): "Error: Missing argument 'ACCOUNT_ID' (see 'reconciler state show --help')\n",
        (
            "plan",
            "-C",
            ".",
        ): "Error: No such option '-C'; -C is an option of reconciler itself: give it before the "
        "command (see 'reconciler plan --help')\n",
        (
            "plan",
            "--formatt",
            "json",
        ): "Error: No such option '--formatt'. Did you mean '--format'? (see 'reconciler plan --help')\n",
        (
            "plan",
            "a.yaml",
            "\x1b[31m",
        ): "Error: Got unexpected extra argument (\\x1b[31m) (see 'reconciler plan --help')\n",
    }
    for args, expected in cases.items():
        result = run(*args)
        assert (result.code, result.out, result.err) == (1, "", expected)


def test_a_number_option_refuses_nan_and_infinity(run) -> None:
    """NaN passes every range check: `--max-update-percent nan` turned the safety bound off."""
    for option in ("--max-update-percent", "--max-forget-percent", "--timeout", "--lock-timeout"):
        for value in ("nan", "inf", "-inf"):
            result = run("apply", "a.yaml", option, value)
            assert result.code == 1 and result.out == ""
            assert result.err.startswith(f"Error: Invalid value for '{option}': "), result.err
            assert "finite" in result.err or "not in the range" in result.err


def test_a_plan_file_that_cannot_be_written_is_one_line_and_nothing_on_stdout(run, write) -> None:
    write("a.yaml", "version: 1\naccounts:\n  a: {country: US}\n")
    for path in ("/", ".", ".."):
        result = run("plan", "a.yaml", "--out", path)
        assert (result.code, result.out) == (1, "")
        assert result.err == f"Error: --out {path}: cannot write there (Is a directory)\n"


def test_a_usage_error_never_shows_the_password_of_a_url_it_quotes(run) -> None:
    from tests.helpers import SENTINEL_PASSWORD

    result = run("plan", "a.yaml", f"postgresql://ops:{SENTINEL_PASSWORD}@db/x")
    assert result.code == 1 and SENTINEL_PASSWORD not in result.err
    assert result.err == (
        "Error: Got unexpected extra argument (postgresql://ops:***@db/x) (see 'reconciler plan --help')\n"
    )
