"""Every problem of a file in one pass: schema and semantic problems of every account together; a file that
cannot be parsed stops the pass and says so once. Through the real `validate` command."""

from __future__ import annotations

from pathlib import Path

# Ten mistakes; the tab on the `ip` line is the syntax error that hides the nine others.
TEN_MISTAKES = """\
version: 1
defaults:
  proxy: {protocol: https, port: 8080}
accounts:
  acc_linkedin:
    provider: LINKDIN
    proxy: {host: p.example.com}
    country: US
  acc_resync:
    provider: LINKEDIN
    country: DE
    resync:
      generation: 1
      chunk_size: "50"
      after: 2026-01-01T00:00:00
  acc_port:
    proxy: {host: h, port: "8080"}
  acc_uk:
    country: uk
  acc_ip:
\tip: 300.1.1.1
  acc_telegram:
    provider: TELEGRAM
    country: US
    resync: {generation: 1, partial: true}
  acc_duplicate:
    country: US
    country: FR
"""

NINE_OTHERS = [
    "a.yaml:6:15: accounts.acc_linkedin.provider: 'LINKDIN' is not one of:",
    "a.yaml:8:5: account 'acc_linkedin': declares both a custom proxy and a managed one ('country'); keep one",
    "a.yaml:14:19: accounts.acc_resync.resync.chunk_size: expected an integer, got a string '50'; "
    "write the number without quotes",
    "a.yaml:15:14: account 'acc_resync': resync.after: '2026-01-01T00:00:00' has no time zone",
    "a.yaml:17:28: accounts.acc_port.proxy.port: expected an integer, got a string; write the number without quotes",
    "a.yaml:19:14: account 'acc_uk': country 'uk' is not an ISO 3166-1 alpha-2 code; did you mean 'GB' "
    "(United Kingdom)?",
    "a.yaml:21:9: account 'acc_ip': ip '300.1.1.1' is not a valid IP address",
    "a.yaml:25:29: account 'acc_telegram': resync.partial is LinkedIn only",
    "a.yaml:28:5: duplicate key 'country' (first defined at line 27, column 5)",
]


def test_ten_mistakes_take_two_runs(run, workdir: Path) -> None:
    config = workdir / "a.yaml"
    config.write_text(TEN_MISTAKES)
    first = run("validate", "a.yaml")
    assert first.code == 1
    assert first.err.splitlines() == [
        "a.yaml:21:1: invalid YAML: a tab character where YAML expects spaces: indent with spaces only",
        "fix this error first: the file could not be parsed, so the other checks did not run",
        "1 error(s) in a.yaml",
    ]
    config.write_text(TEN_MISTAKES.replace("\tip:", "    ip:"))
    second = run("validate", "a.yaml")
    assert second.code == 1
    lines = second.err.splitlines()
    assert len(lines) == 10 and lines[-1] == "9 error(s) in a.yaml", lines
    for line, expected in zip(lines, NINE_OTHERS, strict=False):
        assert line.startswith(expected), (line, expected)
    assert "did not run" not in second.err


def test_a_typo_in_the_provider_does_not_hide_the_other_checks(run, write) -> None:
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          a:
            provider: LINKDIN
            proxy: {host: h, port: 1}
            ip: 1.2.3.4
            resync: {generation: 1, partial: true, before: 2026-01-01}
        """,
    )
    result = run("validate", "a.yaml")
    assert result.code == 1
    lines = result.err.splitlines()
    assert lines[0].startswith("a.yaml:4:15: accounts.a.provider: 'LINKDIN' is not one of: LINKEDIN")
    assert lines[0].endswith("; did you mean 'LINKEDIN'?")
    # Checks that depend on the provider wait for it to be right; the others run.
    assert lines[1:] == [
        "a.yaml:6:5: account 'a': declares both a custom proxy and a managed one ('ip'); keep one",
        "2 error(s) in a.yaml",
    ]


def test_a_mistake_in_one_file_of_a_directory_does_not_hide_the_others(run, write) -> None:
    write("conf/1.yaml", "version: 1\naccounts:\n  a: {country: US}\n  b: {country: [x]}\n")
    write("conf/2.yaml", "version: 2\naccounts:\n  a: {country: DE}\n  c: {ip: x}\n")
    result = run("validate", "conf")
    assert result.err.splitlines() == [
        "conf/1.yaml:4:16: accounts.b.country: expected a string, got a list",
        "conf/2.yaml:1:10: version: must be 1, got 2",
        "conf/2.yaml:3:3: account 'a' is also declared in conf/1.yaml:3:3",
        "conf/2.yaml:4:11: account 'c': ip 'x' is not a valid IP address",
        "4 error(s) in conf",
    ]


def test_syntax_errors_in_two_files_are_both_reported_and_the_note_said_once(run, write) -> None:
    write("conf/1.yaml", "version: 1\naccounts: {a: {country: US}\n")
    write("conf/2.yaml", "version: 1\naccounts:\n  a: {country: US}\n  b: *nowhere\n")
    write("conf/3.yaml", "version: 1\naccounts:\n  c: {country: uk}\n")
    result = run("validate", "conf")
    lines = result.err.splitlines()
    # The unclosed brace is shown where it opens, not where the file ends.
    assert [line.split(": ")[0] for line in lines[:2]] == ["conf/1.yaml:2:11", "conf/2.yaml:4:6"]
    assert lines[2:] == [
        "fix these errors first: the files could not be parsed, so the other checks did not run",
        "2 error(s) in conf",
    ]
