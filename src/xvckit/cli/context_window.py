"""`xvckit context window`: a conversation that overflows fitted into a token budget."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import typer

from xvckit.cli.options import input_file, output_file
from xvckit.context.conversation import Tokenizer
from xvckit.context.summarize import through_gateway
from xvckit.context.window import DEFAULT_KEEP_TURNS, SUMMARY_MAX_TOKENS, SUMMARY_SHARE, fit
from xvckit.errors import UserError


def _known_model(value: str | None) -> str | None:
    """An unknown --model is an error before the conversation is read, as in `context pack`."""
    if value:
        Tokenizer(value)
    return value


def window(
    budget: int = typer.Option(..., "--budget", min=1, help="tokens the conversation may use"),
    source: Path | None = typer.Option(
        None, "--in", callback=input_file, help="conversation JSON (default: stdin)"
    ),
    out: Path | None = typer.Option(
        None, "--out", callback=output_file, help="write the conversation here (default: stdout)"
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        callback=_known_model,
        help="count with this model's encoding, or a tiktoken encoding (default o200k_base)",
    ),
    keep_turns: int = typer.Option(
        DEFAULT_KEEP_TURNS, "--keep-turns", min=1, help="recent turns kept verbatim if they fit"
    ),
    summary_tokens: int | None = typer.Option(
        None,
        "--summary-tokens",
        min=1,
        help=f"most tokens a summary takes (default budget/{SUMMARY_SHARE}, at most {SUMMARY_MAX_TOKENS:,})",
    ),
    summarize_model: str | None = typer.Option(
        None, "--summarize-model", help="summarize with this model through the gateway (default: extractive)"
    ),
    gateway: str | None = typer.Option(
        None, "--gateway", help="the gateway's URL for --summarize-model (default: $OPENAI_BASE_URL)"
    ),
    json_report: bool = typer.Option(False, "--json-report", help="print the report on stderr as JSON"),
) -> None:
    """Fit a conversation (OpenAI or Anthropic messages) into a token budget, in the same format:
    system and recent turns verbatim, old tool outputs pruned first, older turns summarized."""
    try:
        conversation = orjson.loads(source.read_bytes() if source else sys.stdin.buffer.read())
    except orjson.JSONDecodeError as exc:
        raise UserError(f"the conversation is not JSON: {exc}") from exc
    options = {"model": model, "keep_turns": keep_turns, "summary_tokens": summary_tokens}
    if summarize_model:
        options["summarizer"] = through_gateway(summarize_model, _gateway_url(gateway), _gateway_key())
    fitted, report = fit(conversation, budget, **options)
    output = orjson.dumps(fitted) + b"\n"
    if out:
        out.write_bytes(output)
    else:
        sys.stdout.buffer.write(output)
    line = orjson.dumps(report.as_dict()).decode() if json_report else f"context window: {report.line()}"
    typer.echo(line, err=True)


def _gateway_url(option: str | None) -> str:
    """The gateway's OpenAI base URL; one given without its /v1 gets it."""
    url = (option or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
    if not url:
        raise UserError("--summarize-model needs the gateway: pass --gateway URL or set OPENAI_BASE_URL")
    return url if url.endswith("/v1") else f"{url}/v1"


def _gateway_key() -> str:
    key = os.environ.get("OPENAI_API_KEY") or os.environ.get("XVCKIT_MASTER_KEY")
    if not key:
        raise UserError("--summarize-model needs a gateway key: set OPENAI_API_KEY or XVCKIT_MASTER_KEY")
    return key
