"""What a batch works on: files matched by globs, or the lines of a JSONL file.

Each item carries the variables its template sees: `id` (the path, a JSONL line's `id`, else
"items.jsonl:3"); a file gives `path` (relative to the folder the run started in), `content`,
`language`, `name`, `stem`, `suffix` and `dir`; a JSONL line gives its own fields, and a
`path` field without `content` reads that file as above. Files
that look like secrets, binaries and files over MAX_FILE_BYTES are never sent: a glob leaves
them out (counted by reason), a JSONL line naming one is an error.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import orjson

from xvckit.context.files import reason_by_content, reason_by_name
from xvckit.context.languages import language_for
from xvckit.errors import UserError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ITEMS = 1_000_000


@dataclass(frozen=True, slots=True)
class Item:
    id: str  # the path, a JSONL line's `id`, else "items.jsonl:3"
    variables: dict


def from_files(patterns: list[str], root: Path) -> tuple[list[Item], dict[str, int]]:
    """The files the globs match (`**` crosses folders), each once, in path order; and the
    count of files left out per reason."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        base = pattern if Path(pattern).is_absolute() else str(root / pattern)
        for match in glob.glob(base, recursive=True):
            path = Path(match)
            if path.is_file():
                found.setdefault(display_path(path, root), path)
    if not found:
        raise UserError(f"--files {' '.join(patterns)}: no file matches")
    items, left_out = [], {}
    for shown in sorted(found):
        variables, reason = _file_variables(found[shown], shown)
        if reason:
            left_out[reason] = left_out.get(reason, 0) + 1
        else:
            items.append(Item(shown, {"id": shown, **variables}))
    if not items:
        reasons = ", ".join(f"{n} {why}" for why, n in left_out.items())
        raise UserError(f"--files {' '.join(patterns)}: every match was left out ({reasons})")
    return items, left_out


def from_jsonl(source: Path, root: Path) -> list[Item]:
    """One item per non-blank line, a JSON object; `id`, else `path`, names the item."""
    items, seen = [], set()
    with source.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source.name}:{number}"
            try:
                fields = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise UserError(f"{where}: not JSON ({exc})") from None
            if not isinstance(fields, dict):
                raise UserError(f"{where}: each line must be a JSON object")
            variables = dict(fields)
            if isinstance(fields.get("path"), str) and "content" not in fields:
                path = root / fields["path"]
                if not path.is_file():
                    raise UserError(f"{where}: path {fields['path']}: no such file")
                read, reason = _file_variables(path, display_path(path, root))
                if reason:
                    raise UserError(f"{where}: path {fields['path']}: left out as {reason}")
                variables = read | fields
            item_id = str(fields.get("id") or fields.get("path") or where)
            if item_id in seen:
                raise UserError(f"{where}: the id {item_id!r} is used twice")
            seen.add(item_id)
            items.append(Item(item_id, {**variables, "id": item_id}))
            if len(items) > MAX_ITEMS:
                raise UserError(f"{source}: more than {MAX_ITEMS:,} items")
    if not items:
        raise UserError(f"--input {source}: no items")
    return items


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or absolute when it is outside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def path_variables(shown: str) -> dict:
    """The variables a path gives a template or an output name."""
    pure = PurePosixPath(shown)
    lang = language_for(shown)
    language = lang.name if lang else (pure.suffix.lstrip(".").lower() or "text")
    parent = pure.parent.as_posix()
    return {
        "path": shown,
        "name": pure.name,
        "stem": pure.stem,
        "suffix": pure.suffix,
        "dir": "" if parent == "." else parent,
        "language": language,
    }


def _file_variables(path: Path, shown: str) -> tuple[dict, str | None]:
    """A file's variables, or the reason it is never sent."""
    reason = reason_by_name(shown)
    if reason:
        return {}, reason
    data = path.read_bytes()
    reason = reason_by_content(data, MAX_FILE_BYTES)
    if reason:
        return {}, reason
    return path_variables(shown) | {"content": data.decode("utf-8")}, None
