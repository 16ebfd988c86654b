"""The guide's LLM API service tiers as data, with the numbers the simulator imitates.

Source: seed guide `000_07c826429273f59b.txt`, section "3. API Service Tiers" (lines 54-84):

    Basic        10-20 requests/minute, 8K context, 5-10 s responses,        $20-50/month,  3-5x
    Professional 100+ requests/minute, 32K-128K context, <2 s responses,    $200-500/month, 7-10x
    Enterprise   no rate limits, maximum context windows, sub-second,       $2000+/month,  10-15x

The guide states ranges; a simulator needs one number. The rule for the presets: the middle
of a closed range, the stated bound of an open one ("100+" -> 100, "<2 s" -> 1.5 s, inside it).
The guide gives no tokens-per-minute, so TPM comes from the providers' published entry tiers:
30,000 is OpenAI Tier 1 for gpt-4o and Anthropic Tier 1 ITPM for Sonnet; 450,000 is Anthropic
Tier 2 ITPM (https://docs.anthropic.com/en/api/rate-limits,
https://platform.openai.com/docs/guides/rate-limits). `None` means no limit.

The guide's response time is the simulator's time to first token (what `doctor --probe-api`
measures with its one-token request); the reply then streams at `tokens_per_s`, from
Artificial Analysis's published medians of output speed (artificialanalysis.ai, as quoted in
June 2026): 45 tokens/s for the slow end (Claude Opus 4.1), 104 for Claude Sonnet 4.6, 131 for
GPT-4o. The guide gives no context window per request worth imitating: a model's own window
(providers/models.py) applies, whatever the tier.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float, float | None]  # (low, high); high None: open-ended ("100+")


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    # What the guide says (guide lines 59-84).
    rpm_range: Range | None  # None: "no rate limits"
    context_range: Range | None  # None: "maximum context windows"
    response_s_range: Range
    monthly_cost_usd: Range
    velocity: Range  # the guide's "xVC velocity" multiplier
    # What the simulator does with it.
    rpm: int | None
    tpm: int | None
    latency_ms: float  # time to first token
    tokens_per_s: float  # output speed after the first token


TIERS: dict[str, Tier] = {
    tier.name: tier
    for tier in (
        Tier(
            name="basic",
            rpm_range=(10, 20),
            context_range=(8_192, 8_192),
            response_s_range=(5, 10),
            monthly_cost_usd=(20, 50),
            velocity=(3, 5),
            rpm=15,
            tpm=30_000,
            latency_ms=7_500,
            tokens_per_s=45,
        ),
        Tier(
            name="professional",
            rpm_range=(100, None),
            context_range=(32_768, 131_072),
            response_s_range=(0, 2),
            monthly_cost_usd=(200, 500),
            velocity=(7, 10),
            rpm=100,
            tpm=450_000,
            latency_ms=1_500,
            tokens_per_s=104,
        ),
        Tier(
            name="enterprise",
            rpm_range=None,
            context_range=None,
            response_s_range=(0, 1),
            monthly_cost_usd=(2_000, None),
            velocity=(10, 15),
            rpm=None,
            tpm=None,
            latency_ms=500,
            tokens_per_s=131,
        ),
    )
}


def tier(name: str) -> Tier:
    """The tier called `name`; a ValueError naming the choices otherwise."""
    try:
        return TIERS[name]
    except KeyError:
        raise ValueError(f"unknown tier {name!r}: choose one of {', '.join(TIERS)}") from None
