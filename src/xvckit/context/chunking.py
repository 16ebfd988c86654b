"""Files cut into chunks that a pack can keep whole, stripped, as a signature, or leave out.

A chunk is a definition (function, method, class, impl, ...), a run of top-level code between
definitions, a Markdown section (heading to next heading), or, in files without a grammar, a
window of lines. Top-level chunks cover every line of the file, so a file whose chunks are all
kept renders exactly as it is. Containers (classes, impls, namespaces) have their members as
child chunks; a container's own lines are its header, fields and closing brace.

Comments just above a definition belong to it. Chunking is deterministic for given bytes: the
index stores chunk boundaries and token counts, and the renderer re-chunks the few files it
shows to get their text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from xvckit.context.languages import Language, language_for, parser_for

FULL = "full"
STRIPPED = "stripped"
SIGNATURE = "signature"
WINDOW = 60  # lines per chunk for text without a grammar and for long runs of top-level code

_NAME_FIELDS = ("name", "declarator", "type")
_DECLARATORS = frozenset(
    {"variable_declarator", "const_spec", "var_spec", "init_declarator", "assignment", "expression_statement"}
)
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class"}
)
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_HEADINGS = frozenset({"atx_heading", "setext_heading"})


@dataclass(slots=True)
class Chunk:
    name: str
    kind: str  # definition node type, or "block", "section", "lines"
    start: int  # first line, 0-based
    end: int  # line after the last
    parent: int = -1  # index of the enclosing container, -1 at top level
    defines: tuple[str, ...] = ()
    header: str | None = None  # the signature without its elision marker; None: nothing to elide


@dataclass(slots=True)
class Chunked:
    """A file's chunks and what rendering them needs."""

    lines: list[bytes]
    chunks: list[Chunk]
    segments: list[tuple[int, int, int]]  # (chunk, first line, line after): the file in order
    strip_spans: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # line -> byte spans
    braces: bool = True

    def signature(self, index: int, open_: bool = False) -> str | None:
        """The chunk's header with its body elided, or opening its kept members (`open_`)."""
        chunk = self.chunks[index]
        if chunk.header is None or chunk.kind == "section":
            return chunk.header
        if self.braces:
            return chunk.header + (" {" if open_ else " { ... }")
        return chunk.header if open_ else chunk.header + " ..."

    def full(self, start: int, end: int) -> str:
        return b"\n".join(self.lines[start:end]).decode("utf-8", "replace")

    def stripped(self, start: int, end: int) -> str:
        """Lines `start`..`end` without comments, docstrings and blank lines."""
        kept = []
        for row in range(start, end):
            line = self.lines[row]
            spans = self.strip_spans.get(row)
            if spans:
                pieces, at = [], 0
                for a, b in spans:
                    pieces.append(line[at:a])
                    at = max(at, b)
                pieces.append(line[at:])
                line = b"".join(pieces)
            line = line.rstrip()
            if line.strip():
                kept.append(line)
        return b"\n".join(kept).decode("utf-8", "replace")

    def blank(self, start: int, end: int) -> bool:
        return not any(self.lines[row].strip() for row in range(start, end))

    def own(self, index: int) -> list[tuple[int, int]]:
        """The line ranges of chunk `index` that none of its members cover."""
        return [(a, b) for i, a, b in self.segments if i == index]


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def from_index(
    data: bytes, chunks: list[Chunk], spans: dict[int, list[tuple[int, int]]], braces: bool
) -> Chunked:
    """A Chunked from what the index stored of these bytes: no parsing needed to render them."""
    return _finish(split_lines(data), chunks, spans, braces)


def chunk_file(path: str, data: bytes) -> Chunked:
    """`data` (the bytes of `path`) cut into chunks by its grammar, or into line windows."""
    lines = split_lines(data)
    lang = language_for(path)
    if lang is None or not lines:
        return _finish(lines, _windows(0, len(lines), "lines"), {}, braces=False)
    parser, query = parser_for(lang.name)
    tree = parser.parse(data)
    if lang.name == "markdown":
        chunks = _sections(tree.root_node, lines)
    else:
        builder = _Builder(lang, data, lines)
        builder.scope(tree.root_node, -1, 0, len(lines))
        chunks = builder.with_blocks()
    spans: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if query is not None:
        import tree_sitter

        for nodes in tree_sitter.QueryCursor(query).captures(tree.root_node).values():
            for node in nodes:
                (sr, sc), (er, ec) = node.start_point, node.end_point
                for row in range(sr, min(er, len(lines) - 1) + 1):
                    spans[row].append((sc if row == sr else 0, ec if row == er else len(lines[row])))
    for row_spans in spans.values():
        row_spans.sort()
    return _finish(lines, chunks, dict(spans), braces=lang.braces)


def _finish(lines: list[bytes], chunks: list[Chunk], spans, braces: bool) -> Chunked:
    """Chunks in line order (parents before members) and the segments covering the file."""
    parents = [chunks[c.parent] if c.parent >= 0 else None for c in chunks]
    pairs = sorted(zip(chunks, parents, strict=True), key=lambda pair: (pair[0].start, -pair[0].end))
    chunks = [chunk for chunk, _ in pairs]
    order = {id(chunk): i for i, chunk in enumerate(chunks)}
    members: dict[int, list[int]] = defaultdict(list)
    for i, (chunk, parent) in enumerate(pairs):
        chunk.parent = order[id(parent)] if parent is not None else -1
        members[chunk.parent].append(i)
    segments: list[tuple[int, int, int]] = []

    def walk(i: int) -> None:
        row = chunks[i].start
        for k in members[i]:
            if chunks[k].start > row:
                segments.append((i, row, chunks[k].start))
            walk(k)
            row = chunks[k].end
        if chunks[i].end > row:
            segments.append((i, row, chunks[i].end))

    for i in members[-1]:
        walk(i)
    return Chunked(lines, chunks, segments, spans, braces)


def _windows(start: int, end: int, kind: str) -> list[Chunk]:
    return [
        Chunk(f"lines {a + 1}-{min(a + WINDOW, end)}", kind, a, min(a + WINDOW, end))
        for a in range(start, end, WINDOW)
    ]


def _last_row(node) -> int:
    (sr, _), (er, ec) = node.start_point, node.end_point
    return er - 1 if ec == 0 and er > sr else er


def _text(node) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def _name(node) -> str:
    """The name a definition node declares (through C declarators, Go type specs, JS declarators)."""
    for candidate in (node, *node.named_children[:1]):
        for name_field in _NAME_FIELDS:
            child = candidate.child_by_field_name(name_field)
            while child is not None and child.child_by_field_name("declarator") is not None:
                child = child.child_by_field_name("declarator")
            if child is not None and child.named_child_count <= 2:
                return _text(child)
    return node.type


def _short(name: str) -> str:
    """The identifier a qualified name ends with (`Foo::bar` -> bar, `Point<T>` -> Point)."""
    words = _IDENT.findall(re.split(r"[<(\[]", name, maxsplit=1)[0])
    return words[-1] if words else name


def _declared(node, depth: int = 0) -> list[str]:
    """Names a top-level statement declares (assignments, constants, variables, prototypes)."""
    for name_field in ("name", "left", "declarator"):
        child = node.child_by_field_name(name_field)
        if child is not None:
            if child.named_child_count == 0:
                return [_text(child)]
            return _declared(child, depth + 1) if depth < 3 else []
    if depth >= 2:
        return []
    return [name for c in node.named_children if c.type in _DECLARATORS for name in _declared(c, depth + 1)]


class _Builder:
    def __init__(self, lang: Language, data: bytes, lines: list[bytes]) -> None:
        self.lang, self.data, self.lines = lang, data, lines
        self.chunks: list[Chunk] = []
        self.loose: list[tuple[int, list[str]]] = []  # top-level statements: (row, names declared)

    def children(self, node):
        for child in node.named_children:
            if child.type in self.lang.transparent:
                yield from self.children(child)
            else:
                yield child

    def definition(self, node):
        """The definition `node` is or wraps (decorators, export, template), or None."""
        kind = node.type
        if kind in self.lang.wrappers:
            return next((d for c in node.named_children if (d := self.definition(c)) is not None), None)
        if kind in self.lang.defs:
            return node
        if kind in self.lang.value_defs:
            value = self._value(node)
            return node if value is not None and value.type in _FUNCTION_VALUES else None
        return None

    @staticmethod
    def _value(node):
        declarator = next((c for c in node.named_children if c.type == "variable_declarator"), None)
        return declarator.child_by_field_name("value") if declarator is not None else None

    def scope(self, node, parent: int, min_row: int, max_row: int) -> None:
        """Chunks for the definitions directly in `node`, between lines `min_row` and `max_row`."""
        lang = self.lang
        pending, last = None, -2
        prev: Chunk | None = None
        for child in self.children(node):
            row = child.start_point.row
            if child.type in lang.comments or child.type in lang.attached:
                if pending is None or row > last + 1:
                    pending = row
                last = _last_row(child)
                continue
            inner = self.definition(child)
            start = pending if pending is not None and row <= last + 1 else row
            pending = None
            if inner is None:
                if parent < 0:
                    self.loose.append((row, _declared(child)))
                continue
            start, end = max(start, min_row), min(_last_row(child) + 1, max_row)
            if row < min_row or end <= start:
                continue
            name = _name(inner)
            if prev is not None and start < prev.end:  # two definitions share a line
                prev.end = max(prev.end, end)
                prev.defines += (_short(name),)
                continue
            body = inner.child_by_field_name("body")
            if body is None and inner.type in lang.value_defs:
                body = self._value(inner).child_by_field_name("body")
            header = None
            if body is not None and body.start_point.row < end:
                indent = self.lines[child.start_point.row][: child.start_point.column]
                head = self.data[child.start_byte : body.start_byte].rstrip()
                header = ((indent if not indent.strip() else b"") + head).decode("utf-8", "replace")
            container = inner.type in lang.containers and body is not None
            prev = Chunk(name, inner.type, start, end, parent, (_short(name),), header)
            self.chunks.append(prev)
            if container:
                self.scope(body, len(self.chunks) - 1, child.start_point.row + 1, end)

    def with_blocks(self) -> list[Chunk]:
        """The definitions plus chunks for the top-level code between them; blank runs join a neighbour."""
        top = sorted((c for c in self.chunks if c.parent == -1), key=lambda c: c.start)
        blocks: list[Chunk] = []
        row, before = 0, None
        for chunk in [*top, None]:
            gap_end = chunk.start if chunk is not None else len(self.lines)
            if gap_end > row:
                if all(not self.lines[r].strip() for r in range(row, gap_end)):
                    if before is not None:
                        before.end = gap_end
                    elif chunk is not None:
                        chunk.start = row
                else:
                    blocks.extend(self._blocks(row, gap_end))
            if chunk is not None:
                before, row = chunk, chunk.end
        return self.chunks + blocks  # appended: the members' parent indices stay valid

    def _blocks(self, start: int, end: int) -> list[Chunk]:
        blocks = _windows(start, end, "block")
        for block in blocks:
            names = [n for row, declared in self.loose if block.start <= row < block.end for n in declared]
            block.defines = tuple(dict.fromkeys(names))
            block.name = names[0] if names else "(top level)"
        return blocks


def _sections(root, lines: list[bytes]) -> list[Chunk]:
    """Markdown: a chunk per heading, up to the next heading of any level."""
    headings = []
    stack = [root]
    while stack:
        node = stack.pop()
        for child in reversed(node.named_children):
            if child.type in _HEADINGS:
                headings.append(child)
            elif child.type in ("section", "document"):
                stack.append(child)
    headings.sort(key=lambda h: h.start_point.row)
    chunks = []
    first = headings[0].start_point.row if headings else len(lines)
    if first > 0:
        chunks.extend(_windows(0, first, "block"))
    for i, heading in enumerate(headings):
        start = heading.start_point.row
        end = headings[i + 1].start_point.row if i + 1 < len(headings) else len(lines)
        if end <= start:
            continue
        title = b"\n".join(lines[start : _last_row(heading) + 1]).decode("utf-8", "replace")
        name = title.splitlines()[0].lstrip("#").strip() if title else ""
        chunks.append(Chunk(name or "(heading)", "section", start, end, header=title))
    return chunks
