"""A stand-in for the gh CLI: issues and labels only, kept in a JSON file.

Run as `python fake_gh.py STORE TOKENS gh-arguments...` (the runner puts a `gh` wrapper that does so on PATH).
Like gh it needs GH_TOKEN and GH_REPO; the token's grants are read from TOKENS/<token>.json, and writing issues or
labels without `issues: write` fails as GitHub answers (HTTP 403). Creating an issue with a label that does not
exist fails, as it does on GitHub. Unmodelled commands or flags are errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

BODY_LIMIT = 65_536
WRITES = {("issue", "create"), ("issue", "edit"), ("issue", "close"), ("label", "create")}


def fail(message: str) -> NoReturn:
    print(f"gh: {message}", file=sys.stderr)
    sys.exit(1)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gh")
    parser.add_argument("group", choices=["issue", "label"])
    parser.add_argument("action")
    parser.add_argument("target", nargs="?")
    for flag in ("--label", "--state", "--json", "--jq", "--title", "--body-file", "--comment", "--color"):
        parser.add_argument(flag)
    parser.add_argument("--description")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--force", action="store_true")
    return parser.parse_args(argv)


def issue_list(data: dict[str, Any], args: argparse.Namespace) -> None:
    state = args.state or "open"
    found = [
        issue
        for issue in data["issues"]
        if state in ("all", issue["state"]) and (not args.label or args.label in issue["labels"])
    ]
    found = sorted(found, key=lambda issue: -issue["number"])[: args.limit]
    fields = (args.json or "number,title").split(",")
    text = json.dumps([{name: issue[name] for name in fields} for issue in found])
    if args.jq:
        jq = shutil.which("jq") or fail("the fake gh needs jq for --jq")
        text = subprocess.run(
            [jq, "-r", args.jq], input=text, capture_output=True, text=True, check=True
        ).stdout
        text = text.rstrip("\n")
    if text:
        print(text)


def main(argv: list[str]) -> None:
    store, tokens, args = Path(argv[0]), Path(argv[1]), parse(argv[2:])
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token:
        fail("not logged in: set GH_TOKEN")
    if not os.environ.get("GH_REPO"):
        fail("no repository: set GH_REPO (there is no git remote to guess it from)")
    grants_file = tokens / f"{token}.json"
    if not grants_file.exists():
        fail("HTTP 401: Bad credentials")
    if (args.group, args.action) in WRITES and json.loads(grants_file.read_text()).get("issues") != "write":
        fail("HTTP 403: Resource not accessible by integration (issues: write is needed)")
    if args.body_file and len(Path(args.body_file).read_text()) > BODY_LIMIT:
        fail(f"HTTP 422: the body is over {BODY_LIMIT} characters")
    data = json.loads(store.read_text()) if store.exists() else {"issues": [], "labels": {}}
    command = (args.group, args.action)
    if command == ("label", "create"):
        if args.target in data["labels"] and not args.force:
            fail(f"label {args.target!r} already exists")
        data["labels"][args.target] = {"color": args.color, "description": args.description}
    elif command == ("issue", "list"):
        issue_list(data, args)
    elif command == ("issue", "create"):
        if args.label and args.label not in data["labels"]:
            fail(f"could not add label: {args.label!r} not found")
        number = max((issue["number"] for issue in data["issues"]), default=0) + 1
        data["issues"].append(
            {
                "number": number,
                "title": args.title,
                "state": "open",
                "labels": [args.label] if args.label else [],
                "body": Path(args.body_file).read_text(),
                "edits": 0,
                "comments": [],
            }
        )
        print(f"https://github.com/{os.environ['GH_REPO']}/issues/{number}")
    elif command in (("issue", "edit"), ("issue", "close")):
        issue = next((issue for issue in data["issues"] if issue["number"] == int(args.target)), None)
        if issue is None:
            fail(f"issue {args.target} not found")
        if args.action == "edit":
            issue["body"] = Path(args.body_file).read_text()
            issue["edits"] += 1
        else:
            issue["state"] = "closed"
            issue["comments"] += [args.comment] if args.comment else []
    else:
        fail(f"the harness does not model gh {args.group} {args.action}")
    store.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
