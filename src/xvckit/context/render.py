"""Pack text: a file's kept chunks at their levels, outline lines, and sections as Markdown or XML.

Within a file, chunks come in source order; where lines were left out a `⋮` line says so.
A member kept inside a container that was not kept brings the container's header with it.
"""

from __future__ import annotations

from xvckit.context.chunking import FULL, SIGNATURE, STRIPPED, Chunked

ELIDED = "⋮"
MAX_SYMBOLS = 8
FENCE_LANG = {"python": "python", "javascript": "js", "typescript": "ts", "tsx": "tsx", "go": "go"} | {
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "markdown": "markdown",
}


def file_body(chunked: Chunked, levels: list[str | None]) -> str:
    """The file's text with each chunk at its level (None: left out)."""
    opened = set()
    for i, level in enumerate(levels):
        parent = chunked.chunks[i].parent if level is not None else -1
        while parent >= 0:
            opened.add(parent)
            parent = chunked.chunks[parent].parent
    pieces: list[str] = []
    skipped, seen = False, set()
    for i, start, end in chunked.segments:
        level = levels[i]
        first = i not in seen
        seen.add(i)
        text = None
        if level == FULL:
            text = chunked.full(start, end)
        elif level == STRIPPED:
            text = chunked.stripped(start, end)
        elif (level == SIGNATURE or i in opened) and first:
            text = chunked.signature(i, open_=i in opened)
        if text is None or not text.strip():
            skipped |= text is None and not chunked.blank(start, end)
            continue
        if skipped:
            pieces.append(ELIDED)
        pieces.append(text)
        # A Markdown heading alone, or a container's header, leaves lines out without a marker.
        skipped = level not in (FULL, STRIPPED) and (chunked.chunks[i].kind == "section" or i in opened)
    if skipped:
        pieces.append(ELIDED)
    return "\n".join(pieces)


def outline_line(path: str, symbols: list[str]) -> str:
    """`path: a, b, c (+4)`: the file and the first names it defines."""
    if not symbols:
        return path
    shown = ", ".join(symbols[:MAX_SYMBOLS])
    more = f" (+{len(symbols) - MAX_SYMBOLS})" if len(symbols) > MAX_SYMBOLS else ""
    return f"{path}: {shown}{more}"


def fence_for(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return fence


def file_block(path: str, body: str, language: str | None, fmt: str) -> str:
    if fmt == "xml":
        return f'<file path="{path}">\n{body}\n</file>\n'
    fence = fence_for(body)
    return f"## {path}\n{fence}{FENCE_LANG.get(language or '', '')}\n{body}\n{fence}\n"


def section(title: str, tag: str, parts: list[str], fmt: str) -> str:
    """A titled section around `parts`; empty when there are none."""
    if not parts:
        return ""
    if fmt == "xml":
        return f"<{tag}>\n" + "".join(parts) + f"</{tag}>\n"
    return f"# {title}\n\n" + "".join(parts) + "\n"


def lines_part(lines: list[str]) -> list[str]:
    return ["".join(line + "\n" for line in lines)] if lines else []
