"""Secrets files encrypted with SOPS: the real `sops` binary (the `sops` extra) and real age keys made here.

validate needs no key; plan without the key shows what depends on a file as not known (counted by file);
plan and apply with it use the decrypted values as secrets everywhere; every failure (no sops, an old sops, a
wrong key, a tampered file, a plaintext file, a missing key) is one line, exit 1, with no secret in it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pyrage
import pytest

from reconciler import sops
from tests.helpers import SENTINEL_KEY, assert_no_secrets

SCHEMAS = Path(__file__).parents[2] / "schemas"

#: Decrypted values: none may reach any byte the tool writes.
PASSWORD_1 = "pw-SOPS-SENTINEL-1-a8f3"
PASSWORD_2 = "pw-SOPS-SENTINEL-2-c71e"
PASSWORD_3 = "pw-SOPS-SENTINEL-3-5b09"
SOPS_SECRETS = (PASSWORD_1, PASSWORD_2, PASSWORD_3)

CONFIG = """
version: 1
secrets:
  vault: secrets.sops.yaml
defaults:
  proxy:
    host: proxy.example.com
    port: 8080
    password: ${vault.proxy_passwords.$account}
accounts:
  acc_1:
    proxy: {username: u1}
  acc_2:
    proxy: {username: u2}
  acc_3:
    proxy: {username: u3, password: "${vault.shared.pool_password}"}
  acc_4:
    country: US
"""


def _secrets_yaml(first: str = PASSWORD_1) -> str:
    return (
        f"proxy_passwords:\n  acc_1: {first}\n  acc_2: {PASSWORD_2}\nshared:\n  pool_password: {PASSWORD_3}\n"
    )


class AgeKey:
    """A real age identity made for the test, and its recipient."""

    def __init__(self) -> None:
        identity = pyrage.x25519.Identity.generate()
        self.secret = str(identity)
        self.recipient = str(identity.to_public())


def encrypt(path: Path, plaintext: str, key: AgeKey, fmt: str | None = None) -> None:
    """Encrypt `plaintext` to `path` with the real sops, read from a pipe (the plaintext is never a file)."""
    fmt = fmt or sops.file_format(path)
    assert fmt is not None
    done = subprocess.run(
        [sops.program(os.environ), "encrypt", "--input-type", fmt, "--output-type", fmt]
        + ["--age", key.recipient, "/dev/stdin"],
        input=plaintext.encode(),
        capture_output=True,
        check=True,
        env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"},
    )
    path.write_bytes(done.stdout)


@pytest.fixture
def key() -> AgeKey:
    return AgeKey()


@pytest.fixture(autouse=True)
def no_key_around(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No age identity but the ones a test gives: no SOPS_* variables, and a HOME without keys. And what the
    in-process commands leave behind is undone (`-v`'s handler: tests/conftest.py)."""
    for name in list(os.environ):
        if name.startswith("SOPS_") or name == sops.PROGRAM_VARIABLE or name == "XDG_CONFIG_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(workdir / "home"))
    yield


@pytest.fixture
def repo(workdir: Path, write, key: AgeKey) -> Path:
    """accounts.yaml naming secrets.sops.yaml, encrypted for `key`."""
    write("accounts.yaml", CONFIG)
    encrypt(workdir / "secrets.sops.yaml", _secrets_yaml(), key)
    return workdir


def _one_line_error(result, *words: str) -> None:
    assert result.code == 1, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_validate_needs_no_key_and_no_sops(run, repo, monkeypatch) -> None:
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, "/nonexistent/sops")  # validate never runs it
    result = run("validate", "accounts.yaml")
    assert result.code == 0, result.err
    assert "accounts.yaml: valid (4 accounts)" in result.err
    document = run("validate", "accounts.yaml", "--format", "json").json
    assert document["valid"] is True and document["unset_variables"] == ["vault.*"]


def test_plan_without_the_key_shows_not_known_and_counts_by_file(run, repo, key, monkeypatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    assert run("import", "accounts.yaml").code == 0
    monkeypatch.delenv("SOPS_AGE_KEY")
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, "/nonexistent/sops")  # without a key, sops is not even run

    result = run("plan", "accounts.yaml", "--detailed-exitcode")
    assert result.code == 2, result.err  # what may change cannot be told here
    assert "not decrypted" not in result.err  # said once, on the plan's own line, with why
    assert (
        "Not known here: vault.* not decrypted (secrets.sops.yaml: no SOPS key given here); the fields that depend "
        "on it show as not known until apply." in result.out
    )
    assert run("plan", "accounts.yaml", "--format", "json").err == (
        "secrets.sops.yaml (vault): not decrypted here (no SOPS key given here); what depends on it shows as not "
        "known until apply\n"
    )
    assert (
        "3 more update(s) depend only on vault.* (not decrypted here) and may change nothing, not listed."
        in result.out
    )
    document = run("plan", "accounts.yaml", "--format", "json").json
    jsonschema.validate(document, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert document["unset_variables"] == ["vault.*"]
    assert document["secret_only"] == {"count": 3, "by_variables": [{"variables": ["vault.*"], "count": 3}]}

    # A new account from the file shows its password as not known; a saved plan made so is refused by apply.
    (repo / "accounts.yaml").write_text(
        CONFIG.replace("  acc_4:\n    country: US", "  acc_5:\n    country: US")
    )
    result = run("plan", "accounts.yaml", "--out", "plan.json")
    assert "- acc_4 (forget)" in result.out and "+ acc_5 (create)" in result.out
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    monkeypatch.delenv(sops.PROGRAM_VARIABLE)
    refused = run("apply", "--plan", "plan.json", "--sandbox", "--yes")
    _one_line_error(refused, "plan.json was made while vault.* not decrypted")


def test_plan_and_apply_with_the_key(run, repo, key, api, monkeypatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    planned = run("plan", "accounts.yaml")
    assert planned.code == 0, planned.err
    assert "proxy.password = (sensitive)" in planned.out and "not known" not in planned.out + planned.err
    applied = run("apply", "accounts.yaml", "--yes", "--state", "state.json")
    assert applied.code == 0, applied.err
    sent = {account: body.get("proxy", {}).get("password") for account, body in api.stats.patched.items()}
    assert sent == {"acc_1": PASSWORD_1, "acc_2": PASSWORD_2, "acc_3": PASSWORD_3, "acc_4": None}
    state = json.loads((repo / "state.json").read_text())
    assert state["accounts"]["acc_1"]["settings"]["proxy"]["password"].startswith("sha256:")
    assert run("plan", "accounts.yaml", "--state", "state.json", "--detailed-exitcode").code == 0

    # Rotating one password in the file plans exactly that account, as an update of a sensitive value.
    encrypt(repo / "secrets.sops.yaml", _secrets_yaml(first="pw-rotated-0001"), key)
    result = run("plan", "accounts.yaml", "--state", "state.json")
    assert "~ acc_1 (update)\n      proxy.password : (sensitive) -> (sensitive)" in result.out
    assert "Plan: 0 to create, 1 to update, 0 to forget, 0 to resync." in result.out


@pytest.mark.parametrize("fmt", ["json", "dotenv"])
def test_json_and_dotenv_files(run, workdir, write, key, fmt, monkeypatch) -> None:
    name = "secrets.sops.json" if fmt == "json" else "secrets.sops.env"
    plaintext = (
        json.dumps({"acc_1": PASSWORD_1, "nested": {"acc_2": PASSWORD_2}})
        if fmt == "json"
        else f"acc_1={PASSWORD_1}\n# a comment\nacc_2={PASSWORD_2}\n"
    )
    encrypt(workdir / name, plaintext, key)
    second = "nested.acc_2" if fmt == "json" else "acc_2"
    write(
        "accounts.yaml",
        f"""
        version: 1
        secrets: {{pw: {name}}}
        defaults: {{proxy: {{host: h.example, port: 1, password: "${{pw.$account}}"}}}}
        accounts:
          acc_1: {{proxy: {{}}}}
          acc_2: {{proxy: {{password: "${{pw.{second}}}"}}}}
        """,
    )
    assert run("validate", "accounts.yaml").code == 0
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    result = run("plan", "accounts.yaml", "--format", "json")
    assert result.code == 0, result.err
    assert result.json["unset_variables"] == [] and result.json["summary"]["create"] == 2
    assert_no_secrets(result.out, result.err, secrets=SOPS_SECRETS)


def test_a_missing_reference_is_a_positioned_error_in_every_command(run, repo, key, monkeypatch) -> None:
    config = (
        CONFIG
        + "  acc_9:\n    proxy: {username: u9}\n  acc_10:\n    proxy: {password: '${vault.shared.nope}'}\n"
    )
    (repo / "accounts.yaml").write_text(config)
    expected = [
        "accounts.yaml:20:5: account 'acc_9': proxy.password (from defaults.proxy.password): secrets.sops.yaml "
        "(vault) has no key 'proxy_passwords.acc_9' (nothing under 'proxy_passwords' is named 'acc_9')",
        "accounts.yaml:22:23: account 'acc_10': proxy.password: secrets.sops.yaml (vault) has no key "
        "'shared.nope' (nothing under 'shared' is named 'nope')",
        "2 error(s) in accounts.yaml",
    ]
    assert run("validate", "accounts.yaml").err.splitlines() == expected
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    for command in (["plan"], ["apply", "--sandbox", "--yes"]):
        result = run(*command, "accounts.yaml")
        assert result.code == 1 and result.err.splitlines() == expected, result.err


def test_references_and_aliases_are_checked(run, workdir, write, key) -> None:
    encrypt(workdir / "s.sops.yaml", "a: {b: " + PASSWORD_1 + "}\n", key)
    write("other.txt", "x")
    write(
        "accounts.yaml",
        """
        version: 1
        secrets: {vault: s.sops.yaml, Bad: s.sops.yaml, txt: other.txt}
        accounts:
          a1: {proxy: {host: h.example, port: 1, password: "${nope.b}"}}
          a2: {proxy: {host: h.example, port: 1, password: "${vault.a}"}}
          a3: {proxy: {host: h.example, port: 1, password: "${vault..a}"}}
          a4: {proxy: {host: h.example, port: 1, password: "${vault}"}}
        """,
    )
    err = run("validate", "accounts.yaml").err
    assert "secrets: the alias 'Bad' is not lower-case letters" in err
    assert "secrets.txt: 'other.txt' is not a .yaml, .yml, .json or .env file" in err
    assert "account 'a1': proxy.password: 'nope' is not an alias of a secrets file (this file declares" in err
    assert "account 'a2': proxy.password: 'vault.a' is a mapping in s.sops.yaml, not a value" in err
    assert "account 'a3': proxy.password: malformed reference at character 1: '${ALIAS.KEY...}'" in err
    assert "a4" not in err  # ${vault} has no dot: the environment variable `vault`, never the file
    assert PASSWORD_1 not in err


def test_an_alias_names_one_file_in_the_whole_configuration(run, workdir, write, key) -> None:
    encrypt(workdir / "one.sops.yaml", f"k: {PASSWORD_1}\n", key)
    encrypt(workdir / "two.sops.yaml", f"k: {PASSWORD_2}\n", key)
    write("c/a.yaml", "version: 1\nsecrets: {vault: ../one.sops.yaml}\naccounts: {x: {country: US}}\n")
    write("c/b.yaml", "version: 1\nsecrets: {vault: ../two.sops.yaml}\naccounts: {y: {country: US}}\n")
    err = run("validate", "c").err
    assert (
        "c/b.yaml:2:18: secrets.vault: the alias already names one.sops.yaml (c/a.yaml:2:18); an alias names "
        "one file in the whole configuration"
    ) in err
    # The same file under the same alias in several files is one file, decrypted once.
    write("c/b.yaml", "version: 1\nsecrets: {vault: ../one.sops.yaml}\naccounts: {y: {country: US}}\n")
    assert run("validate", "c").code == 0


def test_a_plaintext_secrets_file_says_how_to_encrypt_it(run, workdir, write, key, monkeypatch) -> None:
    write("accounts.yaml", CONFIG)
    (workdir / "secrets.sops.yaml").write_text(_secrets_yaml())
    result = run("validate", "accounts.yaml")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "accounts.yaml:3:10: secrets.vault: secrets.sops.yaml is not encrypted with SOPS (it has no SOPS "
        "metadata (no 'sops' entry with a MAC)); encrypt it with 'sops encrypt --in-place secrets.sops.yaml' "
        "(docs/secrets-in-repository.md)"
    )
    assert PASSWORD_1 not in result.err
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    applied = run("apply", "accounts.yaml", "--sandbox", "--yes")
    _one_line_error(applied, "secrets.sops.yaml (vault): not encrypted with SOPS; encrypt it: sops encrypt")
    assert_no_secrets(applied.err, secrets=SOPS_SECRETS)


def test_a_wrong_key_names_the_files_recipients(run, repo, key, workdir, monkeypatch) -> None:
    wrong = AgeKey()
    monkeypatch.setenv("SOPS_AGE_KEY", wrong.secret)
    for command in (["plan"], ["apply", "--sandbox", "--yes"]):
        result = run(*command, "accounts.yaml")
        assert result.err == (
            "Error: secrets.sops.yaml (vault): cannot decrypt it: the key given (SOPS_AGE_KEY) does not match the "
            f"file's recipients ({key.recipient}); give the private key of one of them (sops: failed to create "
            "reader for decrypting sops data key with age: identity did not match any of the recipients: "
            "incorrect identity for recipient block)\n"
        )
        assert result.code == 1
        assert_no_secrets(result.err, secrets=(*SOPS_SECRETS, wrong.secret, key.secret))
    # The keys file sops reads by default is a key given, named by its path.
    monkeypatch.delenv("SOPS_AGE_KEY")
    keys_file = workdir / "home" / ".config" / "sops" / "age" / "keys.txt"
    keys_file.parent.mkdir(parents=True)
    keys_file.write_text(wrong.secret + "\n")
    result = run("plan", "accounts.yaml")
    _one_line_error(
        result, f"the key given ({keys_file}) does not match the file's recipients ({key.recipient})"
    )
    assert_no_secrets(result.err, secrets=(*SOPS_SECRETS, wrong.secret, key.secret))


def test_no_key_says_how_to_give_one(run, repo, key) -> None:
    result = run("apply", "accounts.yaml", "--sandbox", "--yes")
    assert result.err == (
        "Error: secrets.sops.yaml (vault): cannot decrypt it: no age key is given here: set SOPS_AGE_KEY to the "
        "private key (AGE-SECRET-KEY-1...), or SOPS_AGE_KEY_FILE to the path of a file holding it, or keep it in "
        "~/.config/sops/age/keys.txt (docs/secrets-in-repository.md); the file is encrypted for "
        f"{key.recipient}\n"
    )
    assert result.code == 1


def test_a_key_that_cannot_be_read_says_why(run, repo, monkeypatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", "no-such.agekey")
    result = run("apply", "accounts.yaml", "--sandbox", "--yes")
    assert result.err == (
        "Error: secrets.sops.yaml (vault): cannot decrypt it: the age key given (SOPS_AGE_KEY_FILE) cannot be "
        "read (sops: failed to open SOPS_AGE_KEY_FILE file: open no-such.agekey: no such file or directory)\n"
    )
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    monkeypatch.setenv("SOPS_AGE_KEY", "not-a-key")
    _one_line_error(
        run("plan", "accounts.yaml"),
        "the age key given (SOPS_AGE_KEY) cannot be read (sops: failed to parse 'SOPS_AGE_KEY' age identities: "
        "unknown identity type)",
    )


def test_a_public_key_given_for_the_private_one_says_so(run, repo, key, monkeypatch) -> None:
    """sops says only `unknown identity type` of a public key (age1...) given as SOPS_AGE_KEY or in a keys
    file: the line says what was given and what to give."""
    monkeypatch.setenv("SOPS_AGE_KEY", key.recipient)
    result = run("plan", "accounts.yaml")
    assert result.err == (
        "Error: secrets.sops.yaml (vault): cannot decrypt it: the age key given (SOPS_AGE_KEY) is a public key "
        "(age1...): give the private key, the AGE-SECRET-KEY-1... line\n"
    )
    assert result.code == 1
    monkeypatch.delenv("SOPS_AGE_KEY")
    (repo / "public.agekey").write_text(f"# public key: {key.recipient}\n{key.recipient}\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", "public.agekey")
    _one_line_error(
        run("plan", "accounts.yaml"),
        "the age key given (SOPS_AGE_KEY_FILE) is a public key (age1...): give the private key, the "
        "AGE-SECRET-KEY-1... line",
    )


def test_a_tampered_file_is_refused(run, repo, key, monkeypatch) -> None:
    path = repo / "secrets.sops.yaml"
    text = path.read_text()
    first, second = re.findall(r"(ENC\[AES256_GCM,[^\]]*\])", text)[:2]
    path.write_text(text.replace(first, "SWAP").replace(second, first).replace("SWAP", second))
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    assert run("validate", "accounts.yaml").code == 0  # the key names are intact
    for command in (["plan"], ["apply", "--sandbox", "--yes"]):
        result = run(*command, "accounts.yaml")
        _one_line_error(result, "secrets.sops.yaml (vault): refused: the file does not match its MAC")
        assert_no_secrets(result.err, secrets=SOPS_SECRETS)


def test_a_changed_secret_makes_a_saved_plan_stale(run, repo, key, api, monkeypatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    assert run("plan", "accounts.yaml", "--state", "state.json", "--out", "plan.json").code == 0
    encrypt(repo / "secrets.sops.yaml", _secrets_yaml(first="pw-changed-since-the-plan"), key)
    refused = run("apply", "--plan", "plan.json", "--state", "state.json", "--yes")
    _one_line_error(refused, "saved plan is stale: the secrets resolved now differ from those planned")
    assert api.stats.patched == {}
    # Encrypted again with the same values (a new data key, every ciphertext new): still the plan.
    encrypt(repo / "secrets.sops.yaml", _secrets_yaml(), key)
    assert run("apply", "--plan", "plan.json", "--state", "state.json", "--yes").code == 0
    assert set(api.stats.patched) == {"acc_1", "acc_2", "acc_3", "acc_4"}


def _fake_sops(directory: Path, script: str) -> str:
    path = directory / "fake-sops"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_sops_missing_or_too_old_is_one_line(run, repo, key, monkeypatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, str(repo / "no-such-sops"))
    _one_line_error(run("plan", "accounts.yaml"), "cannot run sops")
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, _fake_sops(repo, 'echo "sops 3.7.3 (latest)"\n'))
    _one_line_error(
        run("apply", "accounts.yaml", "--sandbox", "--yes"),
        "sops 3.7.3",
        "is too old: reconciler needs sops 3.9.0",
    )


def test_what_sops_says_is_redacted_and_escaped(run, repo, key, monkeypatch) -> None:
    # A sops that fails saying the age key it was given, the API key and control characters.
    script = (
        'if [ "$1" = --version ]; then echo "sops 3.11.0"; exit 0; fi\n'
        'printf "bad \\033[31mthing\\n  key=%s api=%s\\n" "$SOPS_AGE_KEY" "'
        + SENTINEL_KEY
        + '" >&2\nexit 7\n'
    )
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, _fake_sops(repo, script))
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    result = run("apply", "accounts.yaml", "--sandbox", "--yes")
    _one_line_error(result, "sops could not decrypt it (exit 7)", "bad \\x1b[31mthing key=*** api=")
    assert "\x1b" not in result.err
    assert_no_secrets(result.err, secrets=(key.secret,))


def test_what_sops_says_is_cut_between_words(run, repo, key, monkeypatch) -> None:
    words = " ".join(f"reason{number:03d}" for number in range(60))  # 10 characters a word and its space
    script = f'if [ "$1" = --version ]; then echo "sops 3.11.0"; exit 0; fi\necho "{words}" >&2\nexit 7\n'
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, _fake_sops(repo, script))
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    result = run("plan", "accounts.yaml")
    _one_line_error(result, "sops could not decrypt it (exit 7) (sops: reason000 reason001 ")
    quoted = result.err.split("(sops: ", 1)[1].removesuffix(")\n")
    assert quoted.endswith(" [...]") and words.startswith(quoted.removesuffix(" [...]") + " ")
    # A refusal for want of a key that sops words in a way of its own is quoted whole.
    script = 'if [ "$1" = --version ]; then echo "sops 3.11.0"; exit 0; fi\necho "no way in" >&2\nexit 128\n'
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, _fake_sops(repo, script))
    _one_line_error(
        run("plan", "accounts.yaml"),
        "secrets.sops.yaml (vault): cannot decrypt it: no key given here (SOPS_AGE_KEY) opens it (sops: no way in)",
    )


def test_sops_is_not_given_reconcilers_own_credentials(run, repo, key, monkeypatch) -> None:
    script = (
        'if [ "$1" = --version ]; then echo "sops 3.11.0"; exit 0; fi\n'
        'env | grep -c "^POSTPRESS_\\|^RECONCILER_STATE" >&2; exit 9\n'
    )
    monkeypatch.setenv(sops.PROGRAM_VARIABLE, _fake_sops(repo, script))
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("RECONCILER_STATE", "state.json")
    result = run("plan", "accounts.yaml")
    _one_line_error(result, "(exit 9) (sops: 0)")


def test_no_decrypted_value_reaches_any_byte_written(run, repo, key, api, monkeypatch) -> None:
    """The sentinel check: every output, the state, a saved plan, the report, the verbose log and the step
    summary, read raw and decoded every way, hold no decrypted value nor the age key."""
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    summary = repo / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    outputs = {}
    for name, command in {
        "validate": ["validate", "accounts.yaml"],
        "plan": ["-v", "plan", "accounts.yaml", "--state", "state.json", "--out", "plan.json"],
        "plan json": ["plan", "accounts.yaml", "--state", "state.json", "--format", "json"],
        "plan markdown": ["plan", "accounts.yaml", "--state", "state.json", "--format", "markdown"],
        "show": ["show", "plan.json"],
        "apply": [
            "-v",
            "apply",
            "--plan",
            "plan.json",
            "--state",
            "state.json",
            "--yes",
            "--report",
            "r.json",
        ],
        "state show": ["state", "show", "acc_1", "--state", "state.json"],
    }.items():
        result = run(*command)
        assert result.code == 0, (name, result.err)
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = result.out, result.err
    # A failing apply too: the API refuses one account and its answer echoes the request.
    encrypt(repo / "secrets.sops.yaml", _secrets_yaml(first="bad"), key)
    failed = run("-v", "apply", "accounts.yaml", "--state", "state.json", "--yes", "--report", "r2.json")
    assert failed.code == 3, failed.err
    outputs["failed apply stdout"], outputs["failed apply stderr"] = failed.out, failed.err
    assert set(api.stats.patched) == {"acc_1", "acc_2", "acc_3", "acc_4"}
    assert_no_secrets(
        texts=outputs,
        files=repo,
        skip=[repo / "secrets.sops.yaml", repo / "home"],
        secrets=(*SOPS_SECRETS, key.secret),
    )


def test_a_missing_secrets_file_is_a_positioned_error(run, workdir, write, key, monkeypatch) -> None:
    write("accounts.yaml", CONFIG)
    expected = "accounts.yaml:3:10: secrets.vault: cannot read secrets.sops.yaml: No such file or directory"
    assert run("validate", "accounts.yaml").err.splitlines()[0] == expected
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    result = run("apply", "accounts.yaml", "--sandbox", "--yes")
    assert result.code == 1 and result.err.splitlines()[0] == expected


def test_markers_name_variables_and_files_apart() -> None:
    """A value not known here is a NotKnown of its sources; its text names variables and files apart, and a
    saved plan's text reads back (at load) into the same NotKnown; text of another shape is no valid marker."""
    from reconciler import planfile_check
    from reconciler.planfile import changes_of
    from reconciler.secrets import NotKnown, unknown_marker

    for names, marker in [
        (["PROXY_PASSWORD"], "(not known here: PROXY_PASSWORD unset)"),
        (["vault.*"], "(not known here: vault.* not decrypted)"),
        (["A", "B", "pw.*", "vault.*"], "(not known here: A, B unset; pw.*, vault.* not decrypted)"),
    ]:
        assert unknown_marker(names) == marker == str(NotKnown(names))
        assert planfile_check.is_marker(marker)
        change = {
            "account_id": "a",
            "action": "update",
            "resync": False,
            "fields": ["proxy.password"],
            "before": None,
            "after": {"proxy": {"password": marker}},
            "resync_generation": None,
            "recorded_generation": 0,
        }
        (read,) = changes_of({"changes": [change]})  # type: ignore[typeddict-item]
        assert read.after == {"proxy": {"password": NotKnown(names)}}
        assert read.after["proxy"]["password"].sources == tuple(names)
    for text in [
        "(not known here: )",
        "(not known here: A unset; )",
        "(not known here: Vault.* not decrypted)",
    ]:
        assert not planfile_check.is_marker(text)


def test_a_plan_waiting_for_a_variable_and_a_file(run, repo, monkeypatch) -> None:
    config = CONFIG.replace("username: u1", 'username: "${PROXY_USER}"')
    (repo / "accounts.yaml").write_text(config)
    result = run("plan", "accounts.yaml")
    assert "proxy.username = (not known here: PROXY_USER unset)" in result.out
    assert (
        "Not known here: PROXY_USER unset; vault.* not decrypted (secrets.sops.yaml: no SOPS key given here); the "
        "fields that depend on them show as not known until apply." in result.out
    )
    assert result.err == ""


# -- the setup of docs/secrets-in-repository.md, as a new user follows it ------------------------------------------
SECRETS_DOC = Path(__file__).parents[2] / "docs" / "secrets-in-repository.md"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_the_documented_setup_needs_nothing_but_the_sops_extra(workdir: Path) -> None:
    """The key is made, a file encrypted and a plan decrypted with the docs' own commands, as written, in a shell
    whose PATH holds only the system's basic tools (no environment activated, no age-keygen, no sops): the
    commands name the environment's `bin` (`.venv/bin/python`, `.venv/bin/sops`), `.venv` being this one."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text("utf-8"))["project"]
    assert any(text.startswith("pyrage") for text in project["optional-dependencies"]["sops"])
    doc = SECRETS_DOC.read_text("utf-8")
    make_a_key = re.search(r"<!-- make-a-key -->\n```sh\n(.*?)```", doc, re.DOTALL)
    assert make_a_key is not None
    configuration, plaintext, sops_yaml = _blocks(doc, "yaml")[:3]
    encrypting = next(block for block in _blocks(doc, "sh") if block.startswith(".venv/bin/sops encrypt"))
    (workdir / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    environment = {
        "PATH": os.pathsep.join(("/usr/bin", "/bin")),
        "HOME": str(workdir / "home"),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }

    def shell(script: str, **more: str) -> str:
        done = subprocess.run(
            ["bash", "-euc", script], cwd=workdir, env={**environment, **more}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    # Without pyrage (a Python outside the environment), Python stops before any key file is made.
    outside = make_a_key.group(1).replace(".venv/bin/python", str(Path(sys.base_prefix) / "bin" / "python3"))
    failed = subprocess.run(["bash", "-euc", outside], cwd=workdir, env=environment, capture_output=True)
    assert failed.returncode != 0 and b"ModuleNotFoundError" in failed.stderr
    assert not (workdir / "reconciler.agekey").exists()
    printed = shell(make_a_key.group(1))
    recipient = re.fullmatch(r"# public key: (age1[0-9a-z]+)\n", printed)
    assert recipient, printed
    assert stat.S_IMODE((workdir / "reconciler.agekey").stat().st_mode) == 0o600
    example = re.search(r"age1[0-9a-z]{58}", sops_yaml)
    assert example is not None
    (workdir / ".sops.yaml").write_text(sops_yaml.replace(example.group(0), recipient.group(1)))
    (workdir / "accounts.yaml").write_text(configuration)
    (workdir / "secrets.sops.yaml").write_text(plaintext)
    shell(encrypting.splitlines()[0].split("#")[0])
    assert "s3cret-one" not in (workdir / "secrets.sops.yaml").read_text()
    key_file = (workdir / "reconciler.agekey").read_text()
    failed = subprocess.run(
        ["bash", "-euc", make_a_key.group(1)], cwd=workdir, env=environment, capture_output=True
    )
    assert failed.returncode != 0 and b"FileExistsError" in failed.stderr  # an existing key is never replaced
    assert (workdir / "reconciler.agekey").read_text() == key_file
    planned = shell(".venv/bin/reconciler plan accounts.yaml 2>&1", SOPS_AGE_KEY_FILE="reconciler.agekey")
    assert "Plan: 2 to create" in planned and "not decrypted" not in planned, planned
    assert re.search(r"proxy\.password += \(sensitive\)", planned), planned
