"""The toolchain: the lock file .ci/run installs from holds what pyproject.toml asks for, and every third-party
action is named at a commit, with the release tag it was read from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.workflow_lint import ACTION, workflow_files

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "test.lock"
LOCK_INPUT = ROOT / "requirements" / "test.in"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
USES = re.compile(r"^[ \t]*(?:-[ \t]+)?uses:[ \t]*(\S+)(.*)$", re.MULTILINE)
OURS = "postpress/reconciler@"


def locked() -> dict[str, Version]:
    text = LOCK.read_text("utf-8")
    return {canonicalize_name(name): Version(version) for name, version in PINNED.findall(text)}


def input_requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in LOCK_INPUT.read_text("utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def requirements_of_the_tests() -> list[Requirement]:
    """The package's requirements with its [test] extra (the extras of this project it names, expanded), and
    what requirements/test.in adds."""
    project = PYPROJECT["project"]
    own = canonicalize_name(project["name"])
    found = [Requirement(text) for text in project["dependencies"]]
    todo, seen = ["test"], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return found + input_requirements()


def test_the_lock_pins_every_test_requirement_within_its_range() -> None:
    pins = locked()
    problems = []
    for requirement in requirements_of_the_tests():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform (uvloop on Windows)
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement}: not in the lock")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement}: locked at {pins[name]}")
    assert problems == [], "refresh requirements/test.lock as CONTRIBUTING.md says"


def test_the_lock_builds_with_the_backend_of_build_system() -> None:
    backend = {str(Requirement(text)) for text in PYPROJECT["build-system"]["requires"]}
    assert backend <= {str(requirement) for requirement in input_requirements()}


def test_the_lock_was_made_by_the_documented_command() -> None:
    header = re.search(r"^#    (uv pip compile .*)$", LOCK.read_text("utf-8"), re.MULTILINE)
    assert header is not None
    assert "--generate-hashes" in header.group(1) and "--universal" in header.group(1)
    assert header.group(1) in (ROOT / "CONTRIBUTING.md").read_text("utf-8")


def test_third_party_actions_are_named_at_a_commit_with_its_tag() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    problems = []
    for path in [*workflow_files(), ACTION, ROOT / "docs" / "gitops.md", ROOT / "README.md"]:
        for uses, rest in USES.findall(path.read_text("utf-8")):
            if uses.startswith(("./", OURS)):
                continue
            name, _, ref = uses.partition("@")
            tag = re.fullmatch(r"[ \t]+# (v\d+\.\d+\.\d+)", rest)
            if re.fullmatch(r"[0-9a-f]{40}", ref) and tag:
                pins.setdefault(name, set()).add((ref, tag.group(1)))
            else:
                problems.append(f"{path.relative_to(ROOT)}: uses: {uses}{rest}")
    assert problems == []  # a full commit SHA, then `# vX.Y.Z`: the tag it was read from
    assert {name for name, found in pins.items() if len(found) > 1} == set()  # one commit per action
    assert "actions/checkout" in pins
