"""The files and batches the simulator keeps for its batch APIs, per API key, bounded in bytes
(the oldest go first): the simulator may run in the gateway's own process (`xvckit up` without
providers), where a few large uploads must not take its memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_BYTES = 256 << 20


@dataclass(slots=True)
class StoredFile:
    id: str
    owner: bytes  # the API key that uploaded it (or whose batch wrote it)
    purpose: str
    filename: str
    data: bytes
    created_at: int


@dataclass(frozen=True, slots=True)
class Answer:
    """One request of a batch, answered by the chat or messages route when the batch was made."""

    custom_id: str
    status: int
    body: bytes


@dataclass(slots=True)
class StoredBatch:
    id: str
    owner: bytes
    api: str  # "openai" or "anthropic"
    created: float
    duration_s: float  # how long it takes to answer all its requests
    expires: bool  # its time runs out half way (`x-sim-batch: expire`)
    answers: list[Answer]
    endpoint: str = ""  # OpenAI's
    input_file_id: str = ""
    metadata: dict | None = None
    errors: list[dict] = field(default_factory=list)  # OpenAI: the input file failed validation
    cancelled_at: float | None = None
    done_at_cancel: int = 0
    ended_at: float | None = None
    outcome: str | None = None  # completed, expired, cancelled, failed
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes | None = None  # Anthropic's results file


class BatchStore:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, tuple[StoredFile | StoredBatch, int]] = OrderedDict()

    def put(self, item: StoredFile | StoredBatch) -> None:
        size = _size(item)
        old = self._items.pop(item.id, None)
        self._bytes += size - (old[1] if old else 0)
        self._items[item.id] = (item, size)
        while self._bytes > self._max_bytes and len(self._items) > 1:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped

    def file(self, ident: str, owner: bytes) -> StoredFile | None:
        found = self._items.get(ident)
        item = found[0] if found else None
        return item if isinstance(item, StoredFile) and item.owner == owner else None

    def batch(self, ident: str, owner: bytes, api: str) -> StoredBatch | None:
        found = self._items.get(ident)
        item = found[0] if found else None
        return item if isinstance(item, StoredBatch) and item.owner == owner and item.api == api else None

    def files(self, owner: bytes) -> list[StoredFile]:
        return [i for i, _ in self._items.values() if isinstance(i, StoredFile) and i.owner == owner]

    def batches(self, owner: bytes, api: str) -> list[StoredBatch]:
        return [
            i
            for i, _ in self._items.values()
            if isinstance(i, StoredBatch) and i.owner == owner and i.api == api
        ]


def _size(item: StoredFile | StoredBatch) -> int:
    if isinstance(item, StoredFile):
        return len(item.data) + 256
    return sum(len(a.body) + len(a.custom_id) for a in item.answers) + len(item.results or b"") + 256
