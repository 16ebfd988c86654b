"""`xvckit sim`: the simulated provider."""

from __future__ import annotations

from enum import StrEnum

import typer

from xvckit.cli.options import check_port


class Tier(StrEnum):
    basic = "basic"
    professional = "professional"
    enterprise = "enterprise"


def sim(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(4242, callback=check_port, help="port to listen on (0: any free port)"),
    tier: Tier = typer.Option(Tier.professional, help="the guide's API tier to imitate"),
    latency_ms: float | None = typer.Option(
        None, min=0, help="time to first token (default: the tier's; given alone, the whole response time)"
    ),
    tokens_per_s: float | None = typer.Option(
        None, min=0, help="output tokens per second after the first (default: the tier's; 0: at once)"
    ),
    fail_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="share of requests answered 500 (Anthropic: 500 or 529)"
    ),
    drop_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="share of connections closed unanswered"),
    rpm: int | None = typer.Option(
        None, min=0, help="requests per minute per key (default: the tier's; 0: none)"
    ),
    tpm: int | None = typer.Option(
        None, min=0, help="tokens per minute per key (default: the tier's; 0: none)"
    ),
    rate_window: float | None = typer.Option(
        None,
        min=1.0,
        max=60.0,
        help="seconds the per-minute limits are enforced over (default 60; 1: 600 RPM as 10 a second)",
    ),
    context_window: int | None = typer.Option(
        None, min=1, help="cap on every model's context window in tokens (default: each model's own)"
    ),
    model: list[str] = typer.Option(
        [], "--model", metavar="NAME", help="a model name to serve besides the known families (repeatable)"
    ),
    chunk_delay_ms: float = typer.Option(0.0, min=0, help="pause between two events of a stream"),
    api_key: str | None = typer.Option(
        None, envvar="XVCKIT_SIM_API_KEY", help="the only key accepted (default: any non-empty key)"
    ),
    seed: int = typer.Option(0, help="seed of the random faults and ids"),
) -> None:
    """Run a simulated OpenAI- and Anthropic-compatible provider."""
    from xvckit.sim import SimSettings, serve

    try:
        settings = SimSettings(
            tier=tier.value,
            latency_ms=latency_ms,
            tokens_per_s=tokens_per_s,
            rpm=rpm,
            tpm=tpm,
            rate_window_s=rate_window,
            context_window=context_window,
            models=tuple(model),
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            chunk_delay_ms=chunk_delay_ms,
            api_key=api_key,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    def ready(url: str) -> None:
        limits = ", ".join(
            f"{value} {name}" if value else f"no {name} limit"
            for name, value in (("rpm", settings.rpm), ("tpm", settings.tpm))
        )
        typer.echo(
            f"xvckit sim on {url} ({settings.tier}: {limits}, time to first token "
            f"{settings.latency_ms:g} ms, {settings.tokens_per_s:g} tokens/s)\n"
            f"  OpenAI base URL {url}/v1, Anthropic base URL {url}",
            err=True,
        )

    serve(settings, host=host, port=port, on_ready=ready)
