"""How the simulated provider behaves: a guide tier's limits and speed, plus injected faults."""

from __future__ import annotations

from dataclasses import dataclass

from xvckit.providers.tiers import tier as find_tier

MAX_MODELS = 1000
MAX_MODEL_NAME = 256


@dataclass(slots=True)
class SimSettings:
    """For `latency_ms`, `tokens_per_s`, `rpm` and `tpm`, None takes the tier's value (but a
    `latency_ms` given alone is the whole response time: no `tokens_per_s` then).

    After construction every field holds the value in force; an `rpm` or `tpm` of 0 means
    no limit (pass 0 to lift a tier's limit), a `tokens_per_s` of 0 no pacing of the reply.
    Limits apply per API key, over a true 60 s sliding window (or `rate_window_s`), like a
    provider's per-organization limits. Each model has its own context window and output
    maximum (providers/models.py); `context_window`, when set, caps every model's window, for
    tests of what happens beyond it. `models` are names known besides the model table's.
    """

    tier: str = "professional"
    latency_ms: float | None = None  # time to first token
    tokens_per_s: float | None = None  # output speed after the first token
    rpm: int | None = None
    tpm: int | None = None
    context_window: int | None = None  # None: each model's own
    models: tuple[str, ...] = ()
    fail_rate: float = 0.0  # share answered 500 (Anthropic: 500 or 529, evenly)
    drop_rate: float = 0.0  # share of connections closed without a response
    chunk_delay_ms: float = 0.0  # pause between two events of a stream
    api_key: str | None = None  # None: any non-empty key is accepted
    seed: int = 0  # for the random faults and ids
    rate_window_s: float | None = None  # the window the per-minute limits are enforced over (1..60)
    batch_ms: float = 0.0  # how long a batch takes (0: ended by the first read after it was made)

    def __post_init__(self) -> None:
        preset = find_tier(self.tier)
        if self.tokens_per_s is None:
            # A latency given alone is the whole response time, as x-sim-latency-ms is.
            self.tokens_per_s = preset.tokens_per_s if self.latency_ms is None else 0
        if self.latency_ms is None:
            self.latency_ms = preset.latency_ms
        if self.rpm is None:
            self.rpm = preset.rpm or 0
        if self.tpm is None:
            self.tpm = preset.tpm or 0
        for name in ("fail_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if self.fail_rate + self.drop_rate > 1.0:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        for name in ("latency_ms", "tokens_per_s", "rpm", "tpm", "chunk_delay_ms", "batch_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        if self.rate_window_s is not None and not 1 <= self.rate_window_s <= 60:
            raise ValueError(f"rate_window_s must be 1 to 60 seconds, not {self.rate_window_s}")
        if self.context_window is not None and self.context_window <= 0:
            raise ValueError(f"context_window must be positive, not {self.context_window}")
        if isinstance(self.models, str):
            raise ValueError("models must be a sequence of names, not one string")
        self.models = tuple(self.models)
        if len(self.models) > MAX_MODELS:
            raise ValueError(f"at most {MAX_MODELS} models, not {len(self.models)}")
        for name in self.models:
            if not isinstance(name, str) or not 0 < len(name) <= MAX_MODEL_NAME or name != name.strip():
                raise ValueError(
                    f"model {name!r}: a name of 1-{MAX_MODEL_NAME} characters, no blanks around it"
                )
        if self.api_key == "":
            raise ValueError("api_key must not be empty (None accepts any key)")
