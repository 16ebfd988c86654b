"""The models the simulator serves, and each one's context window and output maximum.

A provider answers a model it does not serve with 404: OpenAI `{"error": {"message": "The model
`X` does not exist or you do not have access to it.", "type": "invalid_request_error", "param":
null, "code": "model_not_found"}}`, Anthropic `{"type": "error", "error": {"type":
"not_found_error", "message": "model: X"}}`. The simulator knows the model table's families
(providers/models.py: a lower-case name starting with one of its prefixes, no `provider/`),
OpenAI's embedding models, and the names given with `--model` (SimSettings.models). Limits
come from the same table (its defaults for a `--model` name it does not cover); a
`--context-window` caps every window.
"""

from __future__ import annotations

from dataclasses import dataclass

from xvckit.providers import models
from xvckit.sim.settings import SimSettings

EMBEDDING_PREFIX = "text-embedding-"
# What GET /v1/models lists, besides the `--model` names.
OPENAI_MODELS = (
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
ANTHROPIC_MODELS = (
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-opus-4-7", "Claude Opus 4.7"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
)


@dataclass(frozen=True, slots=True)
class Limits:
    window: int  # input and output together
    max_output: int


class Catalog:
    def __init__(self, settings: SimSettings) -> None:
        self._named = settings.models
        self._cap = settings.context_window

    def known(self, model: str) -> bool:
        if model in self._named:
            return True
        if "/" in model or model != model.lower():
            return False
        return model.startswith(EMBEDDING_PREFIX) or models.model_info(model) is not None

    def limits(self, model: str) -> Limits:
        info = models.model_info(model)
        window = info[1] if info else models.DEFAULT_WINDOW
        if self._cap is not None:
            window = min(window, self._cap)
        return Limits(window, models.max_output(model))

    def openai_ids(self) -> list[str]:
        return [*OPENAI_MODELS, *(name for name in self._named if name not in OPENAI_MODELS)]

    def anthropic_models(self) -> list[tuple[str, str]]:
        """(id, display name) of each model; a `--model` name is its own display name."""
        listed = {id_ for id_, _ in ANTHROPIC_MODELS}
        return [*ANTHROPIC_MODELS, *((name, name) for name in self._named if name not in listed)]
