"""A batch run from its spec: items rendered into requests, the engine, the sinks, the summary."""

from __future__ import annotations

import asyncio
import glob
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xvckit.batch import cost, edits, items, runs
from xvckit.batch.client import GatewayClient, endpoint
from xvckit.batch.engine import Engine, Report, Stats
from xvckit.batch.outputs import DEFAULT_NAME, FilesSink, JsonlSink, Sinks, target_path
from xvckit.batch.pacing import AUTO_MAX, AUTO_START, MAX_CONCURRENCY, Gate
from xvckit.batch.provider_batch import CANCELLED, INTERRUPTED, BatchAPI, ProviderBatchRun, described
from xvckit.batch.requests import Request, build, dialect_for
from xvckit.batch.template import CONTEXT_BUDGET, Template, context_pack
from xvckit.errors import UserError
from xvckit.providers.batches import PRICE_SHARE
from xvckit.providers.models import max_output, model_info

VIEW_REFRESH_S = 0.25


@dataclass
class Plan:
    requests: list[Request]
    left_out: dict[str, int]  # files a glob matched that are never sent, per reason


def plan(spec: runs.RunSpec, settings) -> Plan:
    """Every item rendered into its request; a template or item mistake is a UserError."""
    root = Path(spec.root)
    if spec.input:
        found, left_out = items.from_jsonl(Path(spec.input), root), {}
    else:
        found, left_out = items.from_files(spec.files, root)
    template = Template(Path(spec.template))
    if spec.context_budget is not None and not template.wants_context:
        raise UserError(
            f"--context-budget: the template {Path(spec.template).name} does not use {{{{ context }}}}"
        )
    dialect = dialect_for(spec.model, spec.dialect)
    most = max_output(spec.model)
    if spec.max_tokens > most:
        raise UserError(f"--max-tokens {spec.max_tokens}: {spec.model} writes at most {most:,} tokens")
    window = (model_info(spec.model) or (None, None))[1]
    repo = Path(spec.repo or spec.root)
    names_of = [items.path_variables(item.variables.get("path", item.id)) for item in found]
    if template.wants_context:
        written = _written(spec, found, names_of, repo)
        settings = settings.model_copy(update={"exclude": [*settings.exclude, *written]})
    requests = []
    for seq, (item, names) in enumerate(zip(found, names_of, strict=True)):
        extra = {}
        if template.wants_context:
            extra["context"] = context_pack(item, repo, settings, spec.context_budget or CONTEXT_BUDGET)
        prompt = template.render(item, extra)
        request = build(
            item.id,
            seq,
            dialect,
            spec.model,
            prompt,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            prompt_tokens=cost.tokens(spec.model, prompt),
            names=names,
        )
        if window and request.input_tokens + request.max_tokens > window:
            raise UserError(
                f"item {item.id}: {request.input_tokens:,} input tokens and "
                f"--max-tokens {request.max_tokens:,} exceed {spec.model}'s window of {window:,}"
            )
        requests.append(request)
    return Plan(requests, left_out)


def _written(spec: runs.RunSpec, found: list, names_of: list[dict], repo: Path) -> list[str]:
    """What the run itself writes (journals and lock files under .xvckit, its outputs), as
    patterns to leave out of context packs: else the next run's prompts, and so its requests'
    keys, would change with what this one wrote, and every item be sent again."""
    repo = repo.resolve()
    paths = []
    if spec.out or spec.name:
        folder = Path(spec.out or spec.root).resolve()
        pattern = spec.name or DEFAULT_NAME
        for seq, (item, names) in enumerate(zip(found, names_of, strict=True)):
            paths.append(target_path(folder, pattern, item.id, seq, names))
    if spec.results:
        paths.append(Path(spec.results).resolve())
    runs_dir = Path(spec.root).resolve() / ".xvckit"
    written = (
        [f"{glob.escape(runs_dir.relative_to(repo).as_posix())}/*"] if runs_dir.is_relative_to(repo) else []
    )
    return written + [glob.escape(p.relative_to(repo).as_posix()) for p in paths if p.is_relative_to(repo)]


def estimate(spec: runs.RunSpec, config) -> dict:
    """`--dry-run`: the items, their tokens and their cost per model (at the batch price in
    provider-batch mode); nothing is sent."""
    planned = plan(spec, config.context)
    table = cost.prices(config.prices)
    share = PRICE_SHARE if spec.mode == runs.PROVIDER_BATCH else 1.0
    return {
        "items": len(planned.requests),
        "left_out": planned.left_out,
        "models": cost.estimate(table, planned.requests, share),
        "max_tokens": spec.max_tokens,
        "price_share": share,
    }


def concurrency(value: str) -> tuple[int, bool]:
    """(slots to start with, adaptive) from `auto` or a number."""
    if value == "auto":
        return AUTO_START, True
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_CONCURRENCY:
        raise UserError(f"--concurrency {value}: auto or a number from 1 to {MAX_CONCURRENCY}")
    return number, False


class View:
    """What shows a run's progress (the CLI's Rich view; nothing when quiet)."""

    def start(self, stats: Stats) -> None: ...

    def update(self, stats: Stats) -> None: ...

    def stop(self, stats: Stats) -> None: ...


def execute(
    spec: runs.RunSpec,
    config,
    runs_dir: Path,
    *,
    key: str | None = None,
    view: View | None = None,
    on_plan: Callable[[runs.Run, Plan], None] | None = None,
) -> dict:
    """Run (or continue) the batch `spec` describes; its summary."""
    slots, adaptive = concurrency(spec.concurrency)
    dialect = dialect_for(spec.model, spec.dialect)
    where = endpoint(dialect, spec.gateway, key)
    table = cost.prices(config.prices)
    if spec.max_cost is not None and spec.model not in table:
        raise UserError(
            f"--max-cost: {spec.model} has no price; add it under prices: in xvckit.yaml to cap its cost"
        )
    if not (spec.out or spec.name or spec.results or spec.apply_edits):
        raise UserError("say where answers go: --out DIR [--name PATTERN], --results FILE or --apply-edits")
    planned = plan(spec, config.context)
    run = runs.Run.create(runs_dir, spec)
    try:
        run.lock()
        journal = run.journal
        waiting = journal.provider_batches(open_only=True)
        if waiting and spec.mode != runs.PROVIDER_BATCH:
            raise UserError(
                f"run {run.id} has a provider batch open ({waiting[0].id}): run it again with "
                f"--mode provider-batch to collect it, or `xvckit batch cancel {run.id}`"
            )
        journal.set("spec", spec.as_dict())
        journal.set("cancel", False)
        journal.set("state", runs.RUNNING)
        sinks = []
        if spec.out or spec.name:
            folder = Path(spec.out or spec.root)
            sinks.append(FilesSink(folder, spec.name or DEFAULT_NAME, planned.requests, Path(spec.root)))
        if spec.results:
            sinks.append(JsonlSink(Path(spec.results)))
        if spec.apply_edits:
            sinks.append(edits.EditsSink(Path(spec.root), run.folder, journal))
        if on_plan:
            on_plan(run, planned)
        if spec.mode == runs.PROVIDER_BATCH:
            report = asyncio.run(
                run_provider_batch(run, planned.requests, Sinks(sinks), where, spec, table, view)
            )
        else:
            report = asyncio.run(
                run_engine(run, planned.requests, Sinks(sinks), slots, adaptive, where, spec, table, view)
            )
        state = _final_state(report, run)
        journal.set("state", state)
        journal.set("updated", time.time())
        result = summary(run, report, state)
        result["left_out"] = planned.left_out
        journal.set("last_session", {k: v for k, v in result.items() if k != "failures"})
        return result
    finally:
        run.close()


async def run_engine(
    run: runs.Run,
    requests,
    sink,
    slots: int,
    adaptive: bool,
    where,
    spec: runs.RunSpec,
    table,
    view: View | None,
) -> Report:
    """`requests` through the engine into `sink` (a batch run's sinks, a review's), Ctrl-C and
    SIGTERM a clean stop, the view refreshed while it runs."""
    gate = Gate(slots, adaptive)
    client = GatewayClient(
        where,
        dialect_for(spec.model, spec.dialect),
        pool=AUTO_MAX if adaptive else slots,
        max_attempts=spec.max_attempts,
        timeout_s=spec.timeout_s,
    )
    engine = Engine(
        run.journal, client, gate, table, max_cost_usd=spec.max_cost, should_stop=_cancel_asked(run.journal)
    )
    try:
        return await _drive(engine, requests, sink, view)
    finally:
        await client.aclose()


async def run_provider_batch(
    run: runs.Run, requests, sink, where, spec: runs.RunSpec, table, view: View | None
) -> Report:
    """`requests` through the provider's batch API (`provider_batch.py`) into `sink`."""
    batches = BatchAPI(where, dialect_for(spec.model, spec.dialect), spec.timeout_s)
    sender = ProviderBatchRun(
        run.journal,
        batches,
        table,
        run.id,
        poll_s=spec.poll_s,
        max_cost_usd=spec.max_cost,
        should_stop=_cancel_asked(run.journal),
    )
    try:
        return await _drive(sender, requests, sink, view)
    finally:
        await batches.aclose()


def _cancel_asked(journal) -> Callable[[], str | None]:
    """`batch cancel` from another shell, as a stop reason."""
    return lambda: CANCELLED if journal.get("cancel") else None


async def _drive(sender: Engine | ProviderBatchRun, requests, sink, view: View | None) -> Report:
    """Run `sender` with Ctrl-C and SIGTERM a clean stop and the view refreshed while it runs."""
    loop = asyncio.get_running_loop()

    def interrupted(signum: int) -> None:
        sender.stop(f"{INTERRUPTED} ({signal.Signals(signum).name})")
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second one ends the process at once
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted, sig)
    refresher = asyncio.create_task(_refresh(view, sender.stats)) if view else None
    if view:
        view.start(sender.stats)
    try:
        return await sender.run(requests, sink)
    finally:
        if refresher:
            refresher.cancel()
            view.stop(sender.stats)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _refresh(view: View, stats: Stats) -> None:
    while True:
        await asyncio.sleep(VIEW_REFRESH_S)
        view.update(stats)


def _final_state(report: Report, run: runs.Run) -> str:
    if report.stopped and report.stopped.startswith("cancelled"):
        return runs.CANCELLED
    states = run.journal.totals()["states"]
    return runs.DONE if states["done"] == sum(states.values()) else runs.INCOMPLETE


def summary(run: runs.Run, report: Report, state: str) -> dict:
    stats = report.stats
    totals = run.journal.totals()
    result = {
        "run": run.id,
        "state": state,
        "items": stats.total,
        "done": stats.done,
        "done_before": stats.done_before,
        "failed": stats.failed,
        "skipped": report.skipped,
        "replayed": stats.replayed,
        "retried": stats.retried,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "cost_usd": round(stats.cost_usd, 6),
        "cost_total_usd": round(totals["cost_usd"], 6),
        "elapsed_s": round(report.elapsed_s, 3),
        "stopped": report.stopped,
        "skipped_worst_usd": round(report.skipped_worst_usd, 6),
        "failures": [{"item": item, "error": error} for item, error in report.failures],
    }
    if run.spec.apply_edits:
        result["edits"] = edits.summary(run.journal)
    if run.spec.mode == runs.PROVIDER_BATCH:
        result["provider_batches"] = described(run.journal)
    return result
