"""Which provider serves a requested model, and under which upstream id."""

from __future__ import annotations

from dataclasses import dataclass, field

from xvckit.config import Config, ModelRoute, Provider
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.pacing import Lane


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: Provider
    model: str  # the id the upstream knows
    rpm: int | None = None  # per upstream key: the model's own limit, else the provider's
    tpm: int | None = None
    fallbacks: tuple[str, ...] = ()
    weight: float = 1.0
    cache: str = "off"  # the route's response-cache setting: off | on | deterministic
    name: str = field(init=False, compare=False)  # "provider/model", used several times a call

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.provider.name}/{self.model}")

    def lanes(self) -> list[Lane]:
        """One pacing lane per upstream key of the provider."""
        return [Lane(self.provider.name, i, self.model) for i in range(max(1, len(self.provider.api_keys)))]


def _deployment(route: ModelRoute, provider: Provider, model: str) -> Deployment:
    return Deployment(
        provider,
        model,
        route.rpm or provider.rpm,
        route.tpm or provider.tpm,
        tuple(route.fallbacks),
        route.weight,
        route.cache,
    )


class Router:
    """Exact names win over globs; globs are tried in the order the config lists them.
    Several routes with one exact name are deployments of one model (see `group`)."""

    def __init__(self, config: Config) -> None:
        self._exact: dict[str, Deployment] = {}
        self._groups: dict[str, list[Deployment]] = {}
        self._globs = []
        for route in config.models:
            provider = config.provider(route.provider)
            if route.is_glob:
                self._globs.append((route, provider))
            else:
                deployment = _deployment(route, provider, route.model or route.name)
                self._exact.setdefault(route.name, deployment)
                self._groups.setdefault(route.name, []).append(deployment)
        self._cache: dict[str, Deployment] = {}

    def resolve(self, requested: object) -> Deployment:
        if not isinstance(requested, str) or not requested:
            raise GatewayError(400, "the request has no 'model' (a non-empty string)", "missing_model")
        found = self._exact.get(requested) or self._cache.get(requested)
        if found:
            return found
        for route, provider in self._globs:
            if route.matches(requested):
                found = _deployment(route, provider, route.model or requested)
                if len(self._cache) < 10_000:
                    self._cache[requested] = found
                return found
        raise GatewayError(
            404,
            f"The model '{requested}' does not exist or is not configured on this gateway.",
            "model_not_found",
        )

    def group(self, requested: str) -> list[Deployment]:
        """Every deployment that serves a model name, in config order."""
        return self._groups.get(requested) or [self.resolve(requested)]

    def upstream_models(self) -> set[str]:
        """The upstream ids the routes name (a glob route's pattern where it names none)."""
        exact = {d.model for d in self._exact.values()}
        return exact | {route.model or route.name for route, _ in self._globs}

    def listed_models(self) -> list[tuple[str, str]]:
        """(model name, provider name) of every exact route, for GET /v1/models."""
        return [(name, d.provider.name) for name, d in self._exact.items()]
