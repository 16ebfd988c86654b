"""The conversations the simulator's Responses API keeps for `previous_response_id`, per API
key, bounded in bytes (the oldest go first): the simulator may run in the gateway's own process
(`xvckit up` without providers), where a few large conversations must not take its memory."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

MAX_BYTES = 64 << 20


class KeptConversations:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._kept: OrderedDict[tuple[bytes, str], bytes] = OrderedDict()

    def get(self, api_key: bytes, response_id: str) -> list[dict[str, Any]] | None:
        found = self._kept.get((api_key, response_id))
        return None if found is None else orjson.loads(found)

    def put(self, api_key: bytes, response_id: str, items: list[dict[str, Any]]) -> None:
        data = orjson.dumps(items)
        if len(data) > self._max_bytes:
            return
        old = self._kept.pop((api_key, response_id), None)
        self._bytes += len(data) - (len(old) if old else 0)
        self._kept[(api_key, response_id)] = data
        while self._bytes > self._max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= len(dropped)
