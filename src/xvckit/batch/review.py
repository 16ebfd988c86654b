"""`xvckit review`: the branch's diff reviewed file by file through the batch engine, merged
into one review.

One request per changed file: its hunks, numbered in the new file, and a context pack for it
(`xvckit.context`), with the repository's instructions from `.xvckit/review.yaml`. The requests
go through the same engine as `xvckit batch run` (paced by the gateway's answers, an
Idempotency-Key each, a cost cap, a journal in `.xvckit/review/<run-id>/`): the same command run
again after a crash sends only the files not yet answered. Files never sent: those the
repository ignores, binaries, secret-looking ones (by name or by the diff's text), changes
without text (a pure rename, a mode) and files too large for the model's window; each is listed
with its reason. The answers become one document (review_findings, `document`), which
review_formats renders as Markdown, JSON or SARIF.
"""

from __future__ import annotations

import asyncio
import glob
import time
from dataclasses import dataclass
from pathlib import Path

from xvckit import __version__
from xvckit.batch import cost, runner, runs
from xvckit.batch.client import endpoint
from xvckit.batch.items import MAX_FILE_BYTES
from xvckit.batch.journal import DONE, PENDING, Journal
from xvckit.batch.requests import Request, build, dialect_for
from xvckit.batch.review_config import ReviewConfig
from xvckit.batch.review_findings import at_or_above, findings_of, merge, parse_answer
from xvckit.batch.review_git import Change, FileDiff
from xvckit.batch.review_prompt import body_extra, render, wants_schema
from xvckit.batch.template import CONTEXT_BUDGET
from xvckit.context.files import BINARY, EXCLUDED, HUGE, SECRET, reason_by_content, reason_by_name
from xvckit.errors import UserError
from xvckit.providers.models import max_output, model_info

RUNS_DIR = Path(".xvckit") / "review"
DOCUMENT_VERSION = 1
DEFAULT_MAX_TOKENS = 4_096
NO_TEXT = "no text change"
_REASONS = {
    EXCLUDED: "ignored by .xvckit/review.yaml",
    BINARY: "binary",
    SECRET: "secret-looking",
    HUGE: f"a diff over {MAX_FILE_BYTES // 2**20} MiB",
}


@dataclass
class Options:
    """How to review, as `xvckit review` was told (the model: --model, else review.yaml's)."""

    model: str
    dialect: str | None = None
    structured: str = "auto"  # send the findings' JSON schema: auto (by model), on, off
    context_budget: int = CONTEXT_BUDGET  # 0: no context pack
    max_tokens: int | None = None
    concurrency: str = "auto"
    max_cost: float | None = None
    gateway: str | None = None
    max_attempts: int = 5


@dataclass
class Plan:
    change: Change
    config: ReviewConfig
    requests: list[Request]
    files: dict[str, FileDiff]  # the files sent, by path
    skipped: list[dict]  # {"file", "reason"}: files never sent


def plan(change: Change, config: ReviewConfig, options: Options, settings) -> Plan:
    """A request for every file worth sending; the others with their reason."""
    model = options.model
    dialect = dialect_for(model, options.dialect)
    most = max_output(model)
    max_tokens = options.max_tokens or min(DEFAULT_MAX_TOKENS, most)
    if max_tokens > most:
        raise UserError(f"--max-tokens {max_tokens}: {model} writes at most {most:,} tokens")
    window = (model_info(model) or (None, None))[1]
    extra = body_extra(dialect, wants_schema(model, options.structured))
    ignore = tuple(config.ignore)
    # Context packs leave out the ignored files, .xvckit (run journals, lock files with a process
    # id) and untracked files (the review's own outputs among them): else the next run's prompts,
    # and so its requests' keys, would change with them and every file be sent again.
    untracked = [glob.escape(path) for path in change.untracked]
    packing = settings.model_copy(update={"exclude": [*settings.exclude, *ignore, ".xvckit/*", *untracked]})
    requests, files, skipped = [], {}, []
    for diff in sorted(change.files, key=lambda d: d.path):
        reason = _never_sent(diff, ignore)
        if reason is None:
            context = _context(diff, change.root, packing, options.context_budget)
            prompt = render(diff, config.instructions, context)
            request = build(
                diff.path,
                len(requests),
                dialect,
                model,
                prompt,
                max_tokens=max_tokens,
                temperature=None,
                prompt_tokens=cost.tokens(model, prompt),
                extra=extra,
            )
            if window and request.input_tokens + max_tokens > window:
                reason = f"too large for {model}'s window ({request.input_tokens:,} tokens)"
        if reason:
            skipped.append({"file": diff.path, "reason": reason})
        else:
            requests.append(request)
            files[diff.path] = diff
    return Plan(change, config, requests, files, skipped)


def estimate(planned: Plan, prices) -> dict:
    """`--dry-run`: the files, their tokens and their cost; nothing is sent."""
    left_out: dict[str, int] = {}
    for skip in planned.skipped:
        left_out[skip["reason"]] = left_out.get(skip["reason"], 0) + 1
    return {
        "items": len(planned.requests),
        "left_out": left_out,
        "models": cost.estimate(prices, planned.requests),
        "max_tokens": planned.requests[0].max_tokens if planned.requests else 0,
    }


def execute(
    planned: Plan, options: Options, config, *, fail_on: str, key: str | None = None, view=None
) -> dict:
    """Send the plan's requests (those not answered by an earlier session) and merge the answers."""
    if not planned.requests:
        return document(planned, [], options.model, fail_on)
    spec = runs.RunSpec(
        template="review",
        model=options.model,
        dialect=options.dialect,
        root=str(planned.change.root),
        files=[planned.change.base_ref],
        max_tokens=planned.requests[0].max_tokens,
        concurrency=options.concurrency,
        max_cost=options.max_cost,
        gateway=options.gateway,
        max_attempts=options.max_attempts,
    )
    slots, adaptive = runner.concurrency(options.concurrency)
    where = endpoint(dialect_for(options.model, options.dialect), options.gateway, key)
    table = cost.prices(config.prices)
    if options.max_cost is not None and options.model not in table:
        raise UserError(
            f"--max-cost: {options.model} has no price; add it under prices: in xvckit.yaml to cap its cost"
        )
    run = runs.Run.create(planned.change.root / RUNS_DIR, spec)
    try:
        run.lock()
        journal = run.journal
        journal.set("spec", spec.as_dict())
        journal.set("state", runs.RUNNING)
        sink = ReviewSink(planned.files)
        report = asyncio.run(
            runner.run_engine(run, planned.requests, sink, slots, adaptive, where, spec, table, view)
        )
        states = journal.totals()["states"]
        journal.set("state", runs.DONE if states[DONE] == sum(states.values()) else runs.INCOMPLETE)
        journal.set("updated", time.time())
        rows = list(journal.rows())
        return document(planned, rows, options.model, fail_on, report.stopped, run.id, _usage(journal))
    finally:
        run.close()


class ReviewSink:
    """Checks each answer as it comes: one that holds no findings is that file's failure (the
    engine records it and keeps the answer); the review is made from the journal at the end."""

    def __init__(self, files: dict[str, FileDiff]) -> None:
        self.files = files

    def accept(self, request: Request, answer: str) -> dict:
        found, dropped = findings_of(parse_answer(answer), self.files[request.item_id])
        return {"findings": len(found), "dropped": dropped}

    def finish(self, journal: Journal) -> None:
        pass


def document(
    planned: Plan,
    rows: list,
    model: str,
    fail_on: str,
    stopped: str | None = None,
    run: str | None = None,
    usage: dict | None = None,
) -> dict:
    """The review as its JSON document (version DOCUMENT_VERSION; the README describes it)."""
    findings, dropped, not_reviewed = [], 0, []
    for row in rows:
        if row.state == DONE and row.answer is not None:
            found, lost = findings_of(parse_answer(row.answer), planned.files[row.item_id])
            findings.extend(found)
            dropped += lost
        else:
            error = (row.error or "").removeprefix("output: ")
            if not error and stopped and row.state == PENDING:
                error = f"not sent: {stopped}"
            not_reviewed.append({"file": row.item_id, "error": error or f"not answered ({row.state})"})
    config = planned.config
    merged = merge(findings, min_severity=config.min_severity, max_findings=config.max_findings)
    failing = fail_on != "never" and any(
        n for severity, n in merged.counts.items() if at_or_above(severity, fail_on)
    )
    change = planned.change
    return {
        "version": DOCUMENT_VERSION,
        "tool": {"name": "xvckit review", "version": __version__},
        "base": {"ref": change.base_ref, "commit": change.base},
        "head": {"commit": change.head},
        "model": model,
        "files": {
            "changed": len(change.files),
            "reviewed": len(rows) - len(not_reviewed),
            "not_reviewed": not_reviewed,
            "skipped": planned.skipped,
        },
        "findings": [f.as_dict() for f in merged.shown],
        "counts": merged.counts,
        "total": sum(merged.counts.values()),
        "omitted": merged.omitted,
        "max_findings": config.max_findings,
        "min_severity": config.min_severity,
        "below_min_severity": merged.below_minimum,
        "duplicates": merged.duplicates,
        "moved_to_file": merged.moved,
        "dropped_entries": dropped,
        "fail_on": fail_on,
        "failed": failing or bool(not_reviewed),
        "stopped": stopped,
        "run": run,
        "usage": usage or {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "replayed": 0},
    }


def _never_sent(diff: FileDiff, ignore: tuple[str, ...]) -> str | None:
    """Why the file is not sent for review, or None."""
    by_name = reason_by_name(diff.path, ignore)
    if by_name or diff.binary:
        return _REASONS[by_name or BINARY]
    if not diff.hunks:
        return NO_TEXT
    by_text = reason_by_content(diff.text().encode("utf-8"), MAX_FILE_BYTES)
    return _REASONS[by_text] if by_text else None


def _context(diff: FileDiff, root: Path, settings, budget: int) -> str:
    """The context pack for the file's change; none when the budget is 0 or nothing fits."""
    if not budget:
        return ""
    from xvckit.context.pack import build_pack

    task = " ".join([diff.path, *(hunk.heading for hunk in diff.hunks if hunk.heading)])
    try:
        return build_pack(task, root, settings, budget=budget).text
    except UserError:  # a repository with nothing else to pack, or a budget too small for it
        return ""


def _usage(journal: Journal) -> dict:
    totals = journal.totals()
    return {
        "input_tokens": totals["input_tokens"],
        "output_tokens": totals["output_tokens"],
        "cost_usd": round(totals["cost_usd"], 6),
        "replayed": totals["replayed"],
    }
