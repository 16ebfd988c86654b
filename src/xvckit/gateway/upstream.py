"""Talking to providers: one pooled keep-alive HTTP client, URLs and headers per provider."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from yarl import URL

from xvckit.asgi import Scope
from xvckit.config import GatewaySettings, Provider
from xvckit.gateway.dialects import GatewayError

# Client headers that mean something to the provider and carry no client credential.
_PASS_THROUGH = frozenset({b"anthropic-version", b"anthropic-beta", b"accept"})


class Upstreams:
    def __init__(self, providers: list[Provider], settings: GatewaySettings) -> None:
        self._settings = settings
        self._urls: dict[tuple[str, str], URL] = {}
        self._base_headers = {p.name: {"content-type": "application/json", **p.headers} for p in providers}
        self._forwarded = {
            p.name: _PASS_THROUGH | {h.lower().encode() for h in p.forward_headers} for p in providers
        }
        self._keys = {
            p.name: itertools.cycle([k.get_secret_value() for k in p.api_keys]) if p.api_keys else None
            for p in providers
        }
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._settings.connect_timeout_s, sock_read=self._settings.read_timeout_s
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",), raise_for_status=False
        )

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    def url(self, provider: Provider, path: str) -> URL:
        key = (provider.name, path)
        url = self._urls.get(key)
        if url is None:
            url = URL(provider.base_url + path)
            if provider.query:
                url = url.update_query(provider.query)
            self._urls[key] = url
        return url

    def headers(self, provider: Provider, scope: Scope) -> dict[str, str]:
        headers = dict(self._base_headers[provider.name])
        forwarded = self._forwarded[provider.name]
        for name, value in scope["headers"]:
            if name in forwarded:
                headers[name.decode()] = value.decode("latin-1")
        keys = self._keys[provider.name]
        if keys is not None:
            key = next(keys)
            kind = provider.upstream_key_header
            headers[kind] = f"Bearer {key}" if kind == "authorization" else key
        if provider.kind == "anthropic":
            headers.setdefault("anthropic-version", "2023-06-01")
        return headers


def failure(exc: BaseException, name: str) -> GatewayError:
    """Turn a client-side exception into the error the caller sees (never with a secret)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return GatewayError(502, f"upstream '{name}' is unreachable: {reason}", "upstream_unreachable")
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return GatewayError(504, f"upstream '{name}' did not answer in time", "upstream_timeout")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return GatewayError(502, f"upstream '{name}' closed the connection", "upstream_disconnected")
    return GatewayError(502, f"upstream '{name}' failed: {type(exc).__name__}", "upstream_error")
