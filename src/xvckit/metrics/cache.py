"""The metrics caches: msgspec structs in msgpack files under the repository's git folder
(`.git/xvckit/`). msgpack decoded into typed structs runs no code from the file, and a file
that does not decode is ignored (then rebuilt)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)


def load(path: Path | None, kind: type[T]) -> T | None:
    """The cached value, or None when there is none or it does not decode as `kind`."""
    if path is None:
        return None
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=kind)
    except (OSError, msgspec.DecodeError):
        return None


def save(path: Path | None, value: msgspec.Struct) -> None:
    """Write a cache file atomically; a folder that cannot be written only costs the next run
    time."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(msgspec.msgpack.encode(value))
        tmp.replace(path)
    except OSError:
        pass
