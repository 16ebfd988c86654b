"""The repository index: every candidate file's chunks, token counts and terms, cached on disk.

Parsing is the expensive part, so it happens once per content: the cache maps a content hash
to its parse, and a manifest maps each path to its size, mtime and hash. A re-run stats every
file, reads only those whose size or mtime moved, and parses only those whose hash is new
(`Index.parsed` counts them). Cold runs parse in a process pool, one worker per core.

The cache lives in `$XDG_CACHE_HOME/xvckit/context/<repo hash>/` (~/.cache by default), one
pickle written atomically; a cache that cannot be read is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from array import array
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from xvckit.context import files as filesmod
from xvckit.context.chunking import Chunk, Chunked, chunk_file, from_index
from xvckit.context.languages import language_for
from xvckit.context.terms import words
from xvckit.context.tokens import count

FORMAT = 3  # bump when what a parse holds changes
POOL_THRESHOLD = 64  # fewer files than this are parsed in-process: a pool costs more to start


class ChunkMeta(NamedTuple):
    name: str
    kind: str
    start: int
    end: int
    parent: int
    defines: tuple[str, ...]
    full: int  # tokens of the chunk's own lines
    stripped: int  # without comments, docstrings and blank lines
    signature: int  # header with the body elided; 0: none
    header: str | None  # the signature's text without its marker


class Parse(NamedTuple):
    """What the index keeps of one file content."""

    reason: str | None  # why the file is left out, None if indexed
    tokens: int
    chunks: tuple[ChunkMeta, ...]
    terms: bytes  # postings: global term ids (int32) ...
    docs: bytes  # ... the chunk each is in (uint16) ...
    tfs: bytes  # ... and how often (uint16)
    spans: bytes  # what stripping removes: (line, start byte, end byte) triples (uint32)
    generated: bool  # its first lines say it is generated


@dataclass(slots=True)
class IndexedFile:
    path: str
    parse: Parse

    @property
    def demoted(self) -> str | None:
        """Changelog, lock or generated: ranked last unless the task names it (files.demoted)."""
        return filesmod.demoted(self.path, self.parse.generated)


@dataclass
class Index:
    repo: Path
    files: list[IndexedFile]  # indexed files, in path order
    excluded: Counter[str]  # files left out, by reason
    vocab: list[str] = field(repr=False)
    parsed: int = 0  # files parsed by this run (the rest came from the cache)
    fingerprint: str = ""  # changes when any indexed file does: the key of caches derived from it
    _term_ids: dict[str, int] | None = field(default=None, repr=False)

    def term_id(self, term: str) -> int | None:
        if self._term_ids is None:
            self._term_ids = {t: i for i, t in enumerate(self.vocab)}
        return self._term_ids.get(term)


def cache_dir(repo: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.blake2b(str(repo.resolve()).encode(), digest_size=8).hexdigest()
    return base / "xvckit" / "context" / digest


def build(repo: Path, *, max_bytes: int = 512 * 1024, exclude: tuple[str, ...] = ()) -> Index:
    """The index of `repo`, brought up to date with the files on disk."""
    repo = repo.resolve()
    snapshot = _load(cache_dir(repo) / "index.pickle", max_bytes, exclude)
    manifest: dict[str, tuple[int, int, str]] = snapshot["manifest"]
    parses: dict[str, Parse] = snapshot["parses"]
    vocab: list[str] = snapshot["vocab"]
    new_manifest: dict[str, tuple[int, int, str]] = {}
    excluded: Counter[str] = Counter()
    todo: dict[str, tuple[str, bytes]] = {}  # key -> (path, data) to parse
    for path in filesmod.list_files(repo):
        reason = filesmod.reason_by_name(path, exclude)
        if reason:
            excluded[reason] += 1
            continue
        try:
            st = os.stat(repo / path)
        except OSError:
            continue  # deleted but still tracked
        if st.st_size > max_bytes:
            excluded[filesmod.HUGE] += 1
            continue
        old = manifest.get(path)
        if old is not None and old[:2] == (st.st_size, st.st_mtime_ns) and old[2] in parses:
            new_manifest[path] = old
            continue
        try:
            data = (repo / path).read_bytes()
        except OSError:
            continue
        lang = language_for(path)
        key = hashlib.blake2b(data, digest_size=16).hexdigest() + ":" + (lang.name if lang else "")
        new_manifest[path] = (st.st_size, st.st_mtime_ns, key)
        if key not in parses:
            todo[key] = (path, data)
    term_ids = {t: i for i, t in enumerate(vocab)}
    for key, raw in _parse_all(todo, max_bytes):
        parses[key] = _globalize(raw, vocab, term_ids)
    live = set(k for _, _, k in new_manifest.values())
    parses = {k: v for k, v in parses.items() if k in live}
    indexed = []
    for path in sorted(new_manifest):
        parse = parses[new_manifest[path][2]]
        if parse.reason:
            excluded[parse.reason] += 1
        else:
            indexed.append(IndexedFile(path, parse))
    if todo or new_manifest.keys() != manifest.keys():
        _save(
            cache_dir(repo) / "index.pickle",
            {"format": FORMAT, "max_bytes": max_bytes, "exclude": exclude, "manifest": new_manifest}
            | {"parses": parses, "vocab": vocab},
        )
    fingerprint = hashlib.blake2b(
        "\n".join(f"{f.path}\0{new_manifest[f.path][2]}" for f in indexed).encode(), digest_size=16
    ).hexdigest()
    index = Index(repo, indexed, excluded, vocab, parsed=len(todo), fingerprint=fingerprint)
    index._term_ids = term_ids
    return index


def _parse_all(todo: dict[str, tuple[str, bytes]], max_bytes: int):
    """(key, raw parse) for each file to parse, in a process pool when there are many."""
    keys = list(todo)
    paths = [todo[k][0] for k in keys]
    datas = [todo[k][1] for k in keys]
    if len(keys) < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        yield from zip(keys, map(parse_file, paths, datas, [max_bytes] * len(keys)), strict=True)
        return
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        yield from zip(
            keys, pool.map(parse_file, paths, datas, [max_bytes] * len(keys), chunksize=16), strict=True
        )


def parse_file(path: str, data: bytes, max_bytes: int):
    """A file's chunks, token counts and per-chunk term counts (local term ids); run in workers."""
    reason = filesmod.reason_by_content(data, max_bytes)
    if reason:
        return reason, 0, (), [], [], [], [], b"", False
    chunked = chunk_file(path, data)
    metas, local_terms = [], {}
    docs, term_list, tfs = array("H"), array("I"), array("H")
    for i, chunk in enumerate(chunked.chunks):
        full, stripped, signature = texts(chunked, i)
        tokens = count(full)
        metas.append(
            ChunkMeta(
                chunk.name,
                chunk.kind,
                chunk.start,
                chunk.end,
                chunk.parent,
                chunk.defines,
                tokens,
                count(stripped) if stripped != full else tokens,
                count(signature) if signature else 0,
                chunk.header,
            )
        )
        for term, n in words(full).items():
            docs.append(min(i, 0xFFFF))
            term_list.append(local_terms.setdefault(term, len(local_terms)))
            tfs.append(min(n, 0xFFFF))
    total = sum(meta.full for meta in metas)  # the file's own count, but for joins at line ends
    spans = array(
        "I", (v for row, row_spans in chunked.strip_spans.items() for a, b in row_spans for v in (row, a, b))
    )
    generated = filesmod.generated_header(data)
    return None, total, tuple(metas), list(local_terms), term_list, docs, tfs, spans.tobytes(), generated


def rebuild(path: str, data: bytes, parse: Parse) -> Chunked:
    """The file's Chunked from its stored parse, without tree-sitter (for rendering)."""
    chunks = [Chunk(m.name, m.kind, m.start, m.end, m.parent, m.defines, m.header) for m in parse.chunks]
    flat = array("I", parse.spans)
    spans: dict[int, list[tuple[int, int]]] = {}
    for i in range(0, len(flat), 3):
        spans.setdefault(flat[i], []).append((flat[i + 1], flat[i + 2]))
    lang = language_for(path)
    return from_index(data, chunks, spans, lang.braces if lang else False)


def texts(chunked: Chunked, index: int) -> tuple[str, str, str | None]:
    """The chunk's own lines full and stripped, and its signature."""
    own = chunked.own(index)
    full = "\n".join(chunked.full(a, b) for a, b in own)
    stripped = "\n".join(s for a, b in own if (s := chunked.stripped(a, b)))
    return full, stripped, chunked.signature(index)


def _globalize(raw, vocab: list[str], term_ids: dict[str, int]) -> Parse:
    reason, tokens, metas, local_terms, term_list, docs, tfs, spans, generated = raw
    mapping = []
    for term in local_terms:
        tid = term_ids.get(term)
        if tid is None:
            tid = term_ids[term] = len(vocab)
            vocab.append(term)
        mapping.append(tid)
    global_terms = array("i", (mapping[t] for t in term_list))
    return Parse(reason, tokens, metas, global_terms.tobytes(), bytes(docs), bytes(tfs), spans, generated)


def _load(path: Path, max_bytes: int, exclude: tuple[str, ...]) -> dict:
    empty = {"manifest": {}, "parses": {}, "vocab": []}
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        return empty
    if (data.get("format"), data.get("max_bytes"), data.get("exclude")) != (FORMAT, max_bytes, exclude):
        return empty
    return data


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
