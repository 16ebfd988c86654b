"""`xvckit sim`: the simulated provider."""

from __future__ import annotations

from enum import StrEnum

import typer


class Tier(StrEnum):
    basic = "basic"
    professional = "professional"
    enterprise = "enterprise"


def sim(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(4242, help="port to listen on (0: any free port)"),
    tier: Tier = typer.Option(Tier.professional, help="the guide's API tier to imitate"),
    latency_ms: float | None = typer.Option(None, help="response time (default: the tier's)"),
    fail_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="share of requests answered 500"),
) -> None:
    """Run a simulated OpenAI- and Anthropic-compatible provider."""
    from xvckit.sim import serve

    serve(host=host, port=port, tier=tier.value, latency_ms=latency_ms, fail_rate=fail_rate)
