"""Where answers go: one file per item named by a pattern, or one JSONL file of results.

A name pattern takes the item's `path`, `name`, `stem`, `suffix`, `dir`, `id` and `seq`
(`--out docs --name '{stem}.md'`; `--name '{dir}/{stem}.md'` writes beside the sources).
Every name is checked before anything is sent: inside the output folder, one item per name,
never a source of the run itself (changing sources is `--apply-edits`, which can be undone).
Files are written whole (a temporary file renamed over the old one), so a killed run leaves
either the old file or the new one. The JSONL file is written at the end of every session
from the journal, in item order, so a re-run never duplicates a line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson

from xvckit.batch.journal import Journal
from xvckit.batch.requests import Request
from xvckit.errors import UserError

DEFAULT_NAME = "{path}.md"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def target_path(folder: Path, pattern: str, item_id: str, seq: int, names: dict[str, str]) -> Path:
    """The file `pattern` names for an item, under the resolved `folder`."""
    fields = {"id": item_id, "seq": seq, **names}
    try:
        name = pattern.format(**fields).lstrip("/")  # '{dir}/...' for a file at the top
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"--name {pattern}: item {item_id}: {exc!r} is not one of {', '.join(sorted(fields))}"
        ) from None
    target = (folder / name).resolve()
    if not name or not target.is_relative_to(folder) or target == folder:
        raise UserError(f"--name {pattern}: item {item_id}: {name!r} is not a file in {folder}")
    return target


class FilesSink:
    """One file per item under `folder`, named by `pattern`."""

    def __init__(self, folder: Path, pattern: str, requests: list[Request], root: Path) -> None:
        self.folder = folder.resolve()
        self.targets: dict[str, Path] = {}
        sources = {(root / r.names["path"]).resolve() for r in requests if "path" in r.names}
        owners: dict[Path, str] = {}
        for r in requests:
            target = target_path(self.folder, pattern, r.item_id, r.seq, r.names)
            if target in sources:
                raise UserError(f"--name {pattern}: item {r.item_id} would overwrite a source ({target})")
            if target in owners:
                raise UserError(
                    f"--name {pattern}: items {owners[target]} and {r.item_id} both write {target}"
                )
            owners[target] = r.item_id
            self.targets[r.hash] = target

    def accept(self, request: Request, answer: str) -> dict:
        target = self.targets[request.hash]
        write_atomic(target, answer.encode())
        return {"file": str(target)}

    def finish(self, journal: Journal) -> None:
        pass


class JsonlSink:
    """Every item's result, one JSON object a line, in item order."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def accept(self, request: Request, answer: str) -> None:
        return None

    def finish(self, journal: Journal) -> None:
        lines = []
        for row in journal.rows():
            record = {
                "id": row.item_id,
                "state": row.state,
                "answer": row.answer,
                "input_tokens": row.input_tokens if row.answer is not None else None,
                "output_tokens": row.output_tokens if row.answer is not None else None,
                "cost_usd": row.cost_usd,
                "error": row.error,
                "request_sha256": row.hash,
            }
            lines.append(orjson.dumps(record))
        write_atomic(self.path, b"\n".join(lines) + (b"\n" if lines else b""))


class Sinks:
    """Several sinks as one: what each did, merged."""

    def __init__(self, sinks: list) -> None:
        self.sinks = sinks

    def accept(self, request: Request, answer: str) -> dict | None:
        merged: dict = {}
        for sink in self.sinks:
            merged |= sink.accept(request, answer) or {}
        return merged or None

    def finish(self, journal: Journal) -> None:
        for sink in self.sinks:
            sink.finish(journal)
