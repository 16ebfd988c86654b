"""Talking to providers: one pooled keep-alive HTTP/1.1 client, URLs and headers per provider."""

from __future__ import annotations

from xvckit.asgi import Scope
from xvckit.config import GatewaySettings, Provider
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.http1 import (
    ConnectFailed,
    DeadlineExceeded,
    Origin,
    Pool,
    Response,
    Timeout,
    TooLarge,
    Upstream,
    split_url,
)
from xvckit.providers import anthropic

# Client headers that mean something to the provider and carry no client credential.
_PASS_THROUGH = frozenset({b"anthropic-version", b"anthropic-beta", b"accept"})


class Upstreams:
    def __init__(self, providers: list[Provider], settings: GatewaySettings) -> None:
        self._settings = settings
        self.providers = providers
        self._urls: dict[tuple[str, str], tuple[Origin, bytes]] = {}
        self._base_headers = {p.name: _base_headers(p) for p in providers}
        self._forwarded = {
            p.name: _PASS_THROUGH | {h.lower().encode() for h in p.forward_headers} for p in providers
        }
        self._keys = {p.name: _key_headers(p) for p in providers}
        self.max_event_bytes = int(settings.max_upstream_event_mb * 1024 * 1024)  # one SSE event
        self.pool: Pool | None = None

    async def start(self) -> None:
        settings = self._settings
        self.pool = Pool(
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            deadline_s=settings.upstream_deadline_s,
            max_head_bytes=int(settings.max_upstream_head_kb * 1024),
            max_body_bytes=int(settings.max_upstream_body_mb * 1024 * 1024),
        )

    async def close(self) -> None:
        if self.pool:
            await self.pool.close()

    async def post(
        self, provider: Provider, path: str, scope: Scope, body: bytes, key_index: int = 0
    ) -> Response:
        """Send a request to the provider with one of its keys; returns once the status and
        headers arrived."""
        origin, target = self._url(provider, path)
        return await self.pool.request(
            b"POST", origin, target, self._headers(provider, scope, key_index), body
        )

    async def request(
        self,
        method: bytes,
        provider: Provider,
        path: str,
        scope: Scope,
        body: bytes = b"",
        content_type: bytes | None = None,
    ) -> Response:
        """A call off the hot path (the batch APIs): any method, a path naming a file or a batch
        (not kept in the URL cache), the provider's first key (files and batches belong to the
        key's organisation). Returns once the status and headers arrived."""
        query = "&".join(f"{k}={v}" for k, v in provider.query.items())
        origin, target = split_url(provider.base_url + path + (f"?{query}" if query else ""))
        headers = self._headers(provider, scope, 0)
        if content_type is not None:
            headers = [(b"content-type", content_type), *(h for h in headers if h[0] != b"content-type")]
        return await self.pool.request(method, origin, target, headers, body)

    def _url(self, provider: Provider, path: str) -> tuple[Origin, bytes]:
        key = (provider.name, path)
        found = self._urls.get(key)
        if found is None:
            query = "&".join(f"{k}={v}" for k, v in provider.query.items())
            found = self._urls[key] = split_url(provider.base_url + path + (f"?{query}" if query else ""))
        return found

    def _headers(self, provider: Provider, scope: Scope, key_index: int) -> list[tuple[bytes, bytes]]:
        headers = list(self._base_headers[provider.name])
        forwarded = self._forwarded[provider.name]
        for pair in scope["headers"]:
            if pair[0] in forwarded:
                headers.append(pair)
        keys = self._keys[provider.name]
        if keys:
            headers.append(keys[key_index])
        if provider.kind == "anthropic" and not any(name == b"anthropic-version" for name, _ in headers):
            headers.append((b"anthropic-version", anthropic.VERSION.encode()))
        return headers


def _base_headers(provider: Provider) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        *((name.lower().encode(), value.encode()) for name, value in provider.headers.items()),
    ]


def _key_headers(provider: Provider) -> list[tuple[bytes, bytes]]:
    """The provider's keys, each as its ready header (the pacer picks which one a call uses)."""
    name = provider.upstream_key_header
    values = [k.get_secret_value() for k in provider.api_keys]
    if name == "authorization":
        values = [f"Bearer {v}" for v in values]
    return [(name.encode(), v.encode()) for v in values]


def failure(exc: Upstream, name: str) -> GatewayError:
    """Turn a client-side failure into the error the caller sees (never with a secret)."""
    if isinstance(exc, ConnectFailed):
        reason = (exc.os_error.strerror if exc.os_error and exc.os_error.strerror else None) or str(exc)
        return GatewayError(502, f"upstream '{name}' is unreachable: {reason}", "upstream_unreachable")
    if isinstance(exc, DeadlineExceeded):
        return GatewayError(
            504,
            f"upstream '{name}' did not complete its answer within {exc.deadline_s:g} s",
            "upstream_timeout",
        )
    if isinstance(exc, Timeout):
        return GatewayError(504, f"upstream '{name}' did not answer in time", "upstream_timeout")
    if isinstance(exc, TooLarge):
        return GatewayError(
            502,
            f"upstream '{name}' sent {exc.what} over the gateway's limit of {exc.limit} bytes",
            "upstream_too_large",
        )
    return GatewayError(
        502, f"upstream '{name}' closed the connection or answered badly", "upstream_disconnected"
    )
