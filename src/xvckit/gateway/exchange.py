"""What the gateway knows about one request once it is over; logged, and later ledgered."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from xvckit.providers import Usage

access_log = logging.getLogger("xvckit.access")

_VALID_ID = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def request_id(incoming: bytes | None) -> str:
    """Keep a caller's sane `x-request-id` (so traces join up), else make one."""
    if incoming and len(incoming) <= 128 and all(b in _VALID_ID for b in incoming):
        return incoming.decode()
    return "req_" + os.urandom(12).hex()


@dataclass(slots=True)
class Exchange:
    request_id: str
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int = 0
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    upstream_started: float | None = None
    upstream_ms: float = 0.0
    ttft_ms: float | None = None
    overhead_ms: float = 0.0

    def overhead_header(self) -> tuple[bytes, bytes]:
        return (b"x-xvckit-overhead-ms", f"{self.overhead_ms:.3f}".encode())

    def finish(self) -> None:
        if access_log.isEnabledFor(logging.INFO):
            u = self.usage
            access_log.info(
                "%s %s model=%s provider=%s status=%d stream=%s in=%d out=%d cached=%d "
                "total_ms=%.1f ttft_ms=%s overhead_ms=%.3f%s",
                self.request_id,
                self.endpoint,
                self.model,
                self.provider,
                self.status,
                self.stream,
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                (time.perf_counter() - self.started) * 1000,
                "-" if self.ttft_ms is None else f"{self.ttft_ms:.1f}",
                self.overhead_ms,
                f" error={self.error}" if self.error else "",
            )
