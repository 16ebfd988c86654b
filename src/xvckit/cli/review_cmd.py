"""`xvckit review`: the branch's diff reviewed by a model through the gateway, for people and CI."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from xvckit.cli.batch_cmd import ConcurrencyOption, DialectName, GatewayOption, KeyOption, MaxCostOption
from xvckit.cli.options import ConfigOption, JsonOption, output_file
from xvckit.errors import UserError


class Format(StrEnum):
    markdown = "markdown"
    json = "json"
    sarif = "sarif"


class Threshold(StrEnum):
    error = "error"
    warning = "warning"
    note = "note"
    never = "never"


class Structured(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


def review(
    base: str = typer.Option("main", "--base", help="the branch or commit the branch is compared with"),
    model: str | None = typer.Option(
        None, "--model", help="the model that reviews (default: model: in .xvckit/review.yaml)"
    ),
    fmt: Format = typer.Option(Format.markdown, "--format", help="markdown (a PR comment), json or sarif"),
    as_json: bool = JsonOption,
    fail_on: Threshold | None = typer.Option(
        None,
        "--fail-on",
        help="exit 1 when a finding is at least this severe "
        "(default: fail_on: in .xvckit/review.yaml, else error)",
    ),
    out: Path | None = typer.Option(
        None, "--out", callback=output_file, help="write the review to this file (default: stdout)"
    ),
    unified: int = typer.Option(
        5, "--unified", "-U", min=0, max=100, help="lines of context around each change"
    ),
    context_budget: int | None = typer.Option(
        None, "--context-budget", min=0, help="tokens of each file's context pack (default 8000; 0: none)"
    ),
    structured: Structured = typer.Option(
        Structured.auto,
        "--structured",
        help="send the findings' JSON schema as structured output: auto (models known to take one), on, off",
    ),
    dialect: DialectName | None = typer.Option(
        None, "--dialect", help="wire format (default: anthropic for claude-*, else openai)"
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="output tokens a file's answer may use (default 4096)"
    ),
    concurrency: str = ConcurrencyOption,
    max_cost: float | None = MaxCostOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="print the files, tokens and cost; send nothing"),
    gateway: str | None = GatewayOption,
    key: str | None = KeyOption,
    max_attempts: int = typer.Option(5, "--max-attempts", min=1, max=20, help="tries per file"),
    config: ConfigOption = None,
) -> None:
    """Review the branch's changes since it left --base, one request per changed file, merged
    into one review. Exit status: 0, or 1 when a finding is at or above --fail-on or a file
    could not be reviewed (2: a mistake in the command or in .xvckit/review.yaml)."""
    from xvckit.batch import cost, review_config, review_formats, review_git
    from xvckit.batch import review as rv
    from xvckit.cli import batch_view
    from xvckit.config import load

    loaded = load(config)
    change = review_git.changes(Path.cwd(), base, unified)
    settings = review_config.load(change.root)
    chosen = model or settings.model
    if not chosen:
        raise UserError("say which model reviews: --model M, or model: in .xvckit/review.yaml")
    options = rv.Options(
        model=chosen,
        dialect=dialect.value if dialect else None,
        structured=structured.value,
        max_tokens=max_tokens,
        concurrency=concurrency,
        max_cost=max_cost,
        gateway=gateway,
        max_attempts=max_attempts,
    )
    if context_budget is not None:
        options.context_budget = context_budget
    planned = rv.plan(change, settings, options, loaded.context)
    if dry_run:
        estimate = rv.estimate(planned, cost.prices(loaded.prices))
        if as_json:
            batch_view.print_json(estimate)
            return
        batch_view.print_estimate({**estimate, "left_out": {}})
        for skipped in planned.skipped:
            typer.echo(f"not sent: {skipped['file']} ({skipped['reason']})")
        return
    view = batch_view.ProgressView() if batch_view.ProgressView.wanted() else None
    threshold = fail_on.value if fail_on else settings.fail_on
    document = rv.execute(planned, options, loaded, fail_on=threshold, key=key, view=view)
    text = review_formats.render(document, "json" if as_json else fmt.value)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    typer.echo(f"xvckit review: {review_formats.summary(document)}", err=True)
    for failure in document["files"]["not_reviewed"]:
        typer.echo(f"xvckit review: not reviewed: {failure['file']}: {failure['error']}", err=True)
    if document["failed"]:
        raise typer.Exit(1)
