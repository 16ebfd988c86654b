"""Who is calling: the key from `Authorization: Bearer` or `x-api-key`, checked in constant time."""

from __future__ import annotations

import hmac

from xvckit.asgi import Scope
from xvckit.gateway.dialects import GatewayError


def presented_key(scope: Scope) -> bytes | None:
    """The credential a client sent, whichever of the two dialects' headers carries it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value
    return None


class Authenticator:
    """Accepts the master key; virtual team keys join it later in the same place."""

    def __init__(self, master_key: str) -> None:
        self._master = master_key.encode()

    def check(self, scope: Scope) -> None:
        key = presented_key(scope)
        if key is None:
            raise GatewayError(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                "missing_api_key",
            )
        if not hmac.compare_digest(key, self._master):
            raise GatewayError(401, "invalid API key", "invalid_api_key")
