"""`xvckit batch`: one prompt template over many files or items, through the gateway."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from xvckit.cli.options import ConfigOption, JsonOption, input_file, output_file
from xvckit.errors import UserError

app = typer.Typer(
    no_args_is_help=True,
    help="Prompts over many files through the gateway: paced, resumable, cost-capped, with edits and undo.",
)

RunsDirOption = typer.Option(None, "--runs-dir", help="where runs are kept (default: ./.xvckit/batch)")
KeyOption = typer.Option(
    None, "--key", help="the gateway key (default: $OPENAI_API_KEY or $ANTHROPIC_API_KEY by dialect)"
)
GatewayOption = typer.Option(
    None, "--gateway", help="the gateway's URL (default: $OPENAI_BASE_URL or $ANTHROPIC_BASE_URL by dialect)"
)
ConcurrencyOption = typer.Option(
    "auto", "--concurrency", help="requests in flight: auto (follows the gateway's answers) or a number"
)
MaxCostOption = typer.Option(
    None, "--max-cost", min=0.0, help="stop before the run could spend more than this (USD, whole run)"
)


class DialectName(StrEnum):
    openai = "openai"
    anthropic = "anthropic"


class Mode(StrEnum):
    live = "live"
    provider_batch = "provider-batch"


PollOption = typer.Option(
    None, "--poll", min=0.01, help="provider-batch mode: seconds between two polls of the batch (default 60)"
)


@app.command()
def run(
    template: Path = typer.Argument(..., callback=input_file, help="the Jinja2 prompt template"),
    more_files: list[str] | None = typer.Argument(None, hidden=True),
    files: list[str] | None = typer.Option(
        None, "--files", metavar="GLOB", help="files to work on ('src/**/*.py'; several globs may follow)"
    ),
    input_items: Path | None = typer.Option(
        None, "--input", callback=input_file, help="items as JSONL, one JSON object a line"
    ),
    model: str = typer.Option(..., "--model", help="the model every item goes to"),
    dialect: DialectName | None = typer.Option(
        None, "--dialect", help="wire format (default: anthropic for claude-*, else openai)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="write one file per item into this folder (made when missing)"
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="output file names: a pattern of the item's path, dir, stem, name, suffix, id and seq, "
        "each in curly braces (default: the path and .md)",
    ),
    results: Path | None = typer.Option(
        None, "--results", callback=output_file, help="write every item's result to this JSONL file"
    ),
    apply_edits: bool = typer.Option(
        False, "--apply-edits", help="apply the unified diffs or SEARCH/REPLACE blocks in the answers"
    ),
    concurrency: str = ConcurrencyOption,
    max_cost: float | None = MaxCostOption,
    max_tokens: int = typer.Option(2048, "--max-tokens", min=1, help="output tokens an item may use"),
    temperature: float | None = typer.Option(None, "--temperature", min=0.0, max=2.0),
    context_budget: int | None = typer.Option(
        None, "--context-budget", min=1, help="tokens of the context pack a template's {{ context }} gets"
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="the repository context packs come from (default: .)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the items, tokens and cost; send nothing"),
    gateway: str | None = GatewayOption,
    key: str | None = KeyOption,
    max_attempts: int = typer.Option(5, "--max-attempts", min=1, max=20, help="tries per item"),
    mode: Mode = typer.Option(
        Mode.live,
        "--mode",
        help="live: each item a request now; provider-batch: one batch through the provider's batch API "
        "(half price, done within 24 h)",
    ),
    poll: float | None = PollOption,
    runs_dir: Path | None = RunsDirOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
) -> None:
    """Render TEMPLATE for each file or item and send it through the gateway. Running the same
    command again continues the run: only items not done, or changed, are sent."""
    from xvckit.batch import runs

    if more_files and not files:
        raise UserError(f"unexpected argument {more_files[0]!r}: files go after --files")
    patterns = [*(files or []), *(more_files or [])]
    if bool(patterns) == bool(input_items):
        raise UserError("give the items: --files GLOB... or --input items.jsonl (one of them)")
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    root = Path.cwd()
    spec = runs.RunSpec(
        template=str(template.resolve()),
        model=model,
        dialect=dialect.value if dialect else None,
        root=str(root),
        files=patterns,
        input=str(input_items.resolve()) if input_items else None,
        out=str(out.resolve()) if out else None,
        name=name,
        results=str(results.resolve()) if results else None,
        apply_edits=apply_edits,
        context_budget=context_budget,
        repo=str(repo.resolve()) if repo else None,
        max_tokens=max_tokens,
        temperature=temperature,
        concurrency=concurrency,
        max_cost=max_cost,
        gateway=gateway,
        max_attempts=max_attempts,
        mode=mode.value,
        poll_s=poll or runs.RunSpec.poll_s,
    )
    _run(spec, runs.runs_dir(runs_dir), key, as_json, config, dry_run)


def _run(spec, runs_dir: Path, key: str | None, as_json: bool, config, dry_run: bool = False) -> None:
    from xvckit.batch import runner
    from xvckit.cli import batch_view
    from xvckit.config import load

    loaded = load(config)
    if dry_run:
        estimate = runner.estimate(spec, loaded)
        batch_view.print_json(estimate) if as_json else batch_view.print_estimate(estimate)
        return
    view = batch_view.ProgressView() if not as_json and batch_view.ProgressView.wanted() else None
    result = runner.execute(spec, loaded, runs_dir, key=key, view=view)
    batch_view.print_json(result) if as_json else batch_view.print_summary(result)
    if result["state"] != "done":
        raise typer.Exit(1)


@app.command("list")
def list_runs(runs_dir: Path | None = RunsDirOption, as_json: bool = JsonOption) -> None:
    """The runs in this folder, newest first."""
    from xvckit.batch import runs
    from xvckit.cli.render import print_rows

    rows = []
    for folder in runs.all_runs(runs.runs_dir(runs_dir)):
        run = runs.Run(folder)
        try:
            rows.append(run.overview())
        finally:
            run.close()
    rows.sort(key=lambda row: row["created"] or 0, reverse=True)
    for row in rows:
        row["created_at"] = row.pop("created")
        row["updated_at"] = row.pop("updated")
    columns = ["run", "state", "model", "items", "done", "failed", "cost_usd", "created_at"]
    print_rows(rows, columns, as_json=as_json)


@app.command()
def show(
    run_ref: str = typer.Argument(..., metavar="RUN", help="a run id, or its start"),
    items: bool = typer.Option(False, "--items", help="list every item with its state"),
    runs_dir: Path | None = RunsDirOption,
    as_json: bool = JsonOption,
) -> None:
    """A run's state, counts, spend, failures and edits."""
    from xvckit.batch import edits, runs
    from xvckit.batch.journal import FAILED
    from xvckit.batch.provider_batch import described
    from xvckit.cli import batch_view

    with runs.opened(runs.runs_dir(runs_dir), run_ref) as run:
        data = run.overview()
        spec = run.spec
        data["states"] = run.journal.totals()["states"]
        data["outputs"] = {
            name: value
            for name, value in (("out", spec.out), ("name", spec.name), ("results", spec.results))
            if value
        }
        data["sources"] = spec.input or spec.files
        data["last_session"] = run.journal.get("last_session")
        data["mode"] = spec.mode
        data["provider_batches"] = described(run.journal)
        data["failures"] = [{"item": r.item_id, "error": r.error} for r in run.journal.rows() if r.error][:50]
        if spec.apply_edits:
            data["edits"] = edits.summary(run.journal)
        if items:
            data["item_rows"] = [
                {
                    "item": r.item_id,
                    "state": r.state,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_usd": r.cost_usd,
                    "replayed": r.replayed,
                    "error": r.error if r.state in (FAILED, "answered") else None,
                }
                for r in run.journal.rows()
            ]
    batch_view.print_json(data) if as_json else batch_view.print_show(data)


@app.command()
def resume(
    run_ref: str = typer.Argument(..., metavar="RUN", help="a run id, or its start"),
    concurrency: str | None = typer.Option(
        None, "--concurrency", help="auto or a number (default: the run's)"
    ),
    max_cost: float | None = MaxCostOption,
    poll: float | None = PollOption,
    gateway: str | None = GatewayOption,
    key: str | None = KeyOption,
    runs_dir: Path | None = RunsDirOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
) -> None:
    """Continue a run (interrupted, cancelled, stopped by its cost cap) where it stopped; a
    provider-batch run polls its open batch again and collects it."""
    from xvckit.batch import runs

    folder = runs.runs_dir(runs_dir)
    with runs.opened(folder, run_ref) as run:
        spec = run.spec
    spec.poll_s = poll or spec.poll_s
    spec.concurrency = concurrency or spec.concurrency
    spec.max_cost = max_cost if max_cost is not None else spec.max_cost
    spec.gateway = gateway or spec.gateway
    _run(spec, folder, key, as_json, config)


@app.command()
def cancel(
    run_ref: str = typer.Argument(..., metavar="RUN", help="a run id, or its start"),
    gateway: str | None = GatewayOption,
    key: str | None = KeyOption,
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Stop a run: it sends nothing more, and what is in flight finishes and is recorded. A
    provider-batch run's open batch is cancelled at the provider (what it did is kept)."""
    from xvckit.batch import runs

    with runs.opened(runs.runs_dir(runs_dir), run_ref) as run:
        elsewhere = run.running_elsewhere()
        if elsewhere:  # first: the run that sees its batch cancelled sees why
            run.journal.set("cancel", True)
        if run.journal.provider_batches(open_only=True):
            _cancel_at_provider(run, gateway, key)
        if elsewhere:
            typer.echo(f"run {run.id}: cancel requested; it stops once its requests in flight are answered")
        else:
            run.journal.set("state", runs.CANCELLED)
            typer.echo(
                f"run {run.id} was not running: marked cancelled "
                f"(`xvckit batch resume {run.id}` continues it)"
            )


@app.command()
def undo(
    run_ref: str = typer.Argument(..., metavar="RUN", help="a run id, or its start"),
    force: bool = typer.Option(False, "--force", help="restore files changed since the run too"),
    runs_dir: Path | None = RunsDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Restore the files a run's --apply-edits changed (and remove the ones it created)."""
    from xvckit.batch import edits, runs
    from xvckit.cli.render import print_rows

    with runs.opened(runs.runs_dir(runs_dir), run_ref) as run:
        if run.running_elsewhere():
            raise UserError(f"run {run.id} is running: cancel it first")
        results = edits.undo(run.journal, run.folder, Path(run.spec.root), force=force)
    print_rows(results, ["path", "status"], as_json=as_json)


def _cancel_at_provider(run, gateway: str | None, key: str | None) -> None:
    import asyncio

    from xvckit.batch.client import endpoint
    from xvckit.batch.provider_batch import BatchAPI, cancel_open
    from xvckit.batch.requests import dialect_for

    spec = run.spec
    dialect = dialect_for(spec.model, spec.dialect)
    batches = BatchAPI(endpoint(dialect, gateway or spec.gateway, key), dialect, spec.timeout_s)

    async def cancel() -> list[tuple[str, str]]:
        try:
            return await cancel_open(run.journal, batches)
        finally:
            await batches.aclose()

    for batch_id, status in asyncio.run(cancel()):
        typer.echo(f"run {run.id}: provider batch {batch_id} {status}")
