"""The apply report: JSON (`schemas/report.schema.json`), text and markdown; pure functions of the results."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from reconciler.api.catalogue import classify
from reconciler.escape import (
    code_span,
    html_code,
    html_text,
    json_document,
    no_workflow_command,
    terminal,
)
from reconciler.model import PaceSummary, Result, no_requests
from reconciler.render.markdown import LIMIT, bounded, left_out_line

MARKER = "<!-- reconciler-report -->"


def _operations(results: list[Result]) -> list[Result]:
    """The results of API operations (PATCH and resync); forgets are local and counted apart."""
    return [result for result in results if result.operation != "forget"]


def summary(results: list[Result]) -> dict[str, int]:
    """Counts of operations by outcome, and of what was done by kind: they add up the same in every format.

    `succeeded + failed + skipped` is the number of `results` (PATCHes and resyncs); `patched + resynced` is
    `succeeded`; forgets make no API call and are only `forgotten`; `polls` are resync status requests after the
    starting one, and `retries` every request sent again after a failed attempt.
    """
    operations = _operations(results)
    outcomes = Counter(result.outcome for result in operations)
    done = Counter(result.operation for result in operations if result.outcome == "succeeded")
    return {
        "succeeded": outcomes["succeeded"],
        "failed": outcomes["failed"],
        "skipped": outcomes["skipped"],
        "accounts": len({result.account_id for result in results}),
        "patched": done["patch"],
        "resynced": done["resync"],
        "forgotten": sum(1 for result in results if result.operation == "forget"),
        "polls": sum(result.polls for result in operations),
        "retries": sum(max(result.attempts - 1, 0) for result in operations),
    }


def document(results: list[Result], pace: PaceSummary | None = None) -> dict[str, Any]:
    by_type = Counter(result.error_type for result in results if result.outcome == "failed")
    ordered = sorted(_operations(results), key=lambda r: (r.account_id, r.operation))
    return {
        "format_version": 1,
        "summary": summary(results),
        "failures_by_type": dict(sorted(by_type.items())),
        "results": [result.to_json() for result in ordered],
        "forgotten": sorted(result.account_id for result in results if result.operation == "forget"),
        "pace": (no_requests() if pace is None else pace).to_json(),
    }


def render_json(results: list[Result], pace: PaceSummary | None = None) -> str:
    return json_document(json.dumps(document(results, pace), indent=2, ensure_ascii=False)) + "\n"


def pace_line(pace: PaceSummary | None) -> str | None:
    """One line when the API pushed back: how often, the pace held, the time requests waited for it."""
    if pace is None or not (pace.throttled or pace.slowdowns):
        return None
    if not pace.throttled:
        return (
            f"The API pushed back with timeouts or rising latency: the pace slowed down {pace.slowdowns} time(s) "
            f"(a window of {pace.window} at the end)."
        )
    share = pace.throttled / max(pace.requests, 1)
    held = "" if pace.held_rate is None else f"held ~{pace.held_rate:,.0f} requests/s "
    return (
        f"The API throttled {pace.throttled:,} of {pace.requests:,} requests ({share:.1%}): {held}"
        f"(a window of {pace.window}); requests waited {pace.waited:.1f} s in all for the pace."
    )


def pace_table(pace: PaceSummary) -> list[str]:
    """The pace over the run, a row per span of seconds (numbers only: nothing to escape)."""
    if not pace.throttled or not pace.timeline:
        return []
    rows = [
        "",
        "| seconds | requests/s | throttled | rate set (requests/s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in pace.timeline:
        start = int(row["from_second"] or 0)
        span = f"{start}-{start + int(row['seconds'] or 0)}"
        rate = "" if row["rate_set"] is None else f"{row['rate_set']:,}"
        rows.append(f"| {span} | {row['requests_per_second']:,} | {row['throttled']:,} | {rate} |")
    return rows


def _groups(results: list[Result]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        if result.outcome == "failed":
            groups[result.error_type or "unknown"].append(result)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def held_back(results: list[Result]) -> int:
    """Accounts whose requests failed for a cause of the run, not their own (a wrong key, a dead API, a URL that
    is not the API): their operations were sent, then reported `skipped` with the run's reason."""
    return len({r.account_id for r in _operations(results) if r.held_back})


def _counts_line(results: list[Result]) -> str:
    """The counts, each saying what it counts: accounts (acted on, PATCHed, resynced, forgotten), then operations
    (a PATCH and a resync are two) by outcome. Failures held back as the run's are counted by account apart,
    instead of a `0 failed` that would hide them."""
    counts = summary(results)
    operations = counts["succeeded"] + counts["failed"] + counts["skipped"]
    held = held_back(results)
    failed = f"{counts['failed']} failed, " if counts["failed"] or not held else ""
    line = (
        f"Apply: {counts['accounts']} account(s): {counts['patched']} PATCHed, {counts['resynced']} resynced, "
        f"{counts['forgotten']} forgotten; {operations} operation(s): {counts['succeeded']} succeeded, "
        f"{failed}{counts['skipped']} skipped."
    )
    if held:
        line += (
            f" {held} account(s) failed for the run's cause below, not their own: reported skipped, not recorded "
            "as failed."
        )
    if counts["polls"] or counts["retries"]:
        line += f" Also sent: {counts['polls']} resync poll(s), {counts['retries']} retry(ies)."
    return line


def _tries(result: Result) -> str:
    polls = f", {result.polls} poll(s)" if result.polls else ""
    return f"{result.operation}, {result.attempts} attempt(s){polls}"


def _group_counts(group: list[Result]) -> str:
    statuses = sorted({str(r.http_status) for r in group if r.http_status is not None})
    status = f"HTTP {', '.join(statuses)}" if statuses else "no HTTP answer"
    return f"({status}, {len(group)} operation(s))"


def clause(text: str) -> str:
    """`text` without a full stop at its end (an ellipsis kept), to go on with `; ...` after it: a reason that
    came from elsewhere (an exception's text) may end in one."""
    if text.endswith(".") and not text.endswith("..."):
        return text[:-1]
    return text


def render_text(
    results: list[Result],
    stop_reason: str | None = None,
    pace: PaceSummary | None = None,
    shown_per_group: int = 20,
) -> str:
    out = [_counts_line(results)]
    pace_said = pace_line(pace)
    if pace_said:
        out.append(pace_said)
    if stop_reason:
        out.append(f"Stopped early: {clause(stop_reason)}; the remaining operations were skipped.")
    for error_type, group in _groups(results).items():
        out.append("")
        out.append(f"{error_type} {_group_counts(group)}")
        out.append(f"  what to do: {classify(error_type, group[0].http_status).hint}")
        for result in group[:shown_per_group]:
            out.append(f"  {result.account_id} ({_tries(result)}): {result.message}")
        if len(group) > shown_per_group:
            out.append(f"  ... and {len(group) - shown_per_group} more")
    return no_workflow_command("\n".join(terminal(line) for line in out)) + "\n"


def render_markdown(
    results: list[Result],
    stop_reason: str | None = None,
    pace: PaceSummary | None = None,
    limit: int = LIMIT,
    timeline: bool = False,
) -> str:
    """The report for a pull request or a job summary; `timeline` adds the pace over the run as a table."""
    header = [MARKER, "### reconciler apply", "", f"**{_counts_line(results)}**"]
    pace_said = pace_line(pace)
    if pace_said:
        header += ["", pace_said]
        if timeline and pace is not None:
            header += pace_table(pace)
    if stop_reason:
        header += [
            "",
            f"Stopped early: {code_span(clause(stop_reason))}; the remaining operations were skipped.",
        ]
    sections = []
    for error_type, group in _groups(results).items():
        hint = classify(error_type, group[0].http_status).hint
        entries = [[f"- {r.account_id} ({_tries(r)}): {r.message}"] for r in group]
        sections.append(
            (f"{html_code(error_type)} {_group_counts(group)}: {html_text(hint)}", entries, error_type)
        )
    return bounded(header, sections, left_out_line("failures", limit, "see the JSON output"), limit)
