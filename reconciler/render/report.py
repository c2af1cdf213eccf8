"""The apply report: JSON (`schemas/report.schema.json`), text and markdown; pure functions of the results."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from reconciler.api.catalogue import classify
from reconciler.model import Result
from reconciler.render.escape import code_span, html_code, html_text, json_document, terminal
from reconciler.render.markdown import LIMIT, bounded

MARKER = "<!-- reconciler-report -->"


def summary(results: list[Result]) -> dict[str, int]:
    outcomes = Counter(result.outcome for result in results)
    return {"succeeded": outcomes["succeeded"], "failed": outcomes["failed"], "skipped": outcomes["skipped"]}


def document(results: list[Result]) -> dict[str, Any]:
    by_type = Counter(result.error_type for result in results if result.outcome == "failed")
    ordered = sorted(results, key=lambda r: (r.account_id, r.operation))
    return {
        "format_version": 1,
        "summary": summary(results),
        "failures_by_type": dict(sorted(by_type.items())),
        "results": [result.to_json() for result in ordered],
    }


def render_json(results: list[Result]) -> str:
    return json_document(json.dumps(document(results), indent=2, ensure_ascii=False)) + "\n"


def _groups(results: list[Result]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        if result.outcome == "failed":
            groups[result.error_type or "unknown"].append(result)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def _counts_line(results: list[Result]) -> str:
    counts = summary(results)
    syncs = Counter(r.outcome for r in results if r.operation == "resync")
    line = f"Apply: {counts['succeeded']} succeeded, {counts['failed']} failed, {counts['skipped']} skipped."
    if syncs:
        running = sum(1 for r in results if r.error_type == "sync_timeout")
        line += (
            f" Resyncs: {syncs['succeeded']} done, {syncs['failed'] - running} failed, {running} still running"
            f" at the timeout, {syncs['skipped']} skipped."
        )
    return line


def _group_counts(group: list[Result]) -> str:
    statuses = sorted({str(r.http_status) for r in group if r.http_status is not None})
    status = f"HTTP {', '.join(statuses)}" if statuses else "no HTTP answer"
    return f"({status}, {len(group)} operation(s))"


def render_text(results: list[Result], stop_reason: str | None = None, shown_per_group: int = 20) -> str:
    out = [_counts_line(results)]
    if stop_reason:
        out.append(f"Stopped early: {stop_reason}; the remaining operations were skipped.")
    for error_type, group in _groups(results).items():
        out.append("")
        out.append(f"{error_type} {_group_counts(group)}")
        out.append(f"  what to do: {classify(error_type, group[0].http_status).hint}")
        for result in group[:shown_per_group]:
            out.append(
                f"  {result.account_id} ({result.operation}, {result.attempts} attempt(s)): {result.message}"
            )
        if len(group) > shown_per_group:
            out.append(f"  ... and {len(group) - shown_per_group} more")
    return "\n".join(terminal(line) for line in out) + "\n"


def render_markdown(results: list[Result], stop_reason: str | None = None, limit: int = LIMIT) -> str:
    header = [MARKER, "### reconciler apply", "", f"**{_counts_line(results)}**"]
    if stop_reason:
        header += ["", f"Stopped early: {code_span(stop_reason)}; the remaining operations were skipped."]
    sections = []
    for error_type, group in _groups(results).items():
        hint = classify(error_type, group[0].http_status).hint
        entries = [[f"- {r.account_id} ({r.operation}, {r.attempts} attempt(s)): {r.message}"] for r in group]
        sections.append((f"{html_code(error_type)} {_group_counts(group)}: {html_text(hint)}", entries))
    return bounded(header, sections, "failures", limit)
