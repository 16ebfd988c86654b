"""Chunking per language and the compression levels (issue 6)."""

from __future__ import annotations

import pytest

from xvckit.context.chunking import FULL, SIGNATURE, STRIPPED, chunk_file
from xvckit.context.render import ELIDED, file_body

pytestmark = pytest.mark.usefixtures("tiktoken_encodings")

SOURCES = {
    "a.py": (
        '"""Module doc."""\nimport os\n\nLIMIT = 3  # max\n\n\n# about f\n@cached\ndef f(a, b):\n'
        '    """Doc."""\n    # add\n    return a + b\n\n\nclass C(Base):\n    """C doc."""\n\n'
        "    attr = 2\n\n    def m(self):\n        return f(1, 2)\n"
    ),
    "a.js": (
        '// lib\nimport x from "y";\n/** Adds. */\nexport function add(a, b) {\n  return a + b;\n}\n'
        "class Bar extends Base {\n  method(x) {\n    return x;\n  }\n}\nconst twice = (q) => {\n"
        "  return q * 2;\n};\n"
    ),
    "a.ts": (
        "interface Shape {\n  area(): number;\n}\nexport class Circle implements Shape {\n  r = 1;\n"
        "  area(): number {\n    return 3.14 * this.r;\n  }\n}\nfunction f<T>(x: T): T {\n  return x;\n}\n"
    ),
    "a.go": (
        'package main\n\nimport "fmt"\n\n// Point is a point.\ntype Point struct {\n\tX int\n}\n\n'
        "func (p *Point) Move(dx int) {\n\tp.X += dx\n}\n\nfunc main() {\n\tfmt.Println(1)\n}\n"
    ),
    "a.rs": (
        "use std::fmt;\n/// A point\n#[derive(Debug)]\npub struct Point {\n    x: i32,\n}\nimpl Point {\n"
        "    pub fn new() -> Self {\n        Point { x: 0 }\n    }\n}\nfn main() {\n    let _ = 1;\n}\n"
    ),
    "A.java": (
        "package a;\nimport b.C;\n/** Doc */\npublic class A extends B {\n  private int x;\n"
        "  public int get(int y) {\n    return x; // it\n  }\n}\n"
    ),
    "a.c": (
        "#include <stdio.h>\n/* adds */\nint add(int a, int b) {\n    return a + b;\n}\n"
        "struct point {\n    int x;\n};\nint main(void) {\n    return add(1, 2);\n}\n"
    ),
    "a.cpp": (
        "#include <vector>\nnamespace ns {\nclass Foo {\n public:\n  int get() const {\n    return x_;\n"
        "  }\n private:\n  int x_;\n};\ntemplate <typename T> T biggest(T a, T b) {\n"
        "  return a > b ? a : b;\n}\n}  // namespace ns\n"
    ),
    "a.md": "intro\n# Title\ntext\n\n```sh\n# not a heading\n```\n## Usage\nrun it\n",
}

# (path, names of the chunks defined, as (name, parent name or None))
EXPECTED = {
    "a.py": {("LIMIT", None), ("f", None), ("C", None), ("m", "C")},
    "a.js": {("add", None), ("Bar", None), ("method", "Bar"), ("twice", None), ("(top level)", None)},
    "a.ts": {("Shape", None), ("Circle", None), ("area", "Circle"), ("f", None)},
    "a.go": {("(top level)", None), ("Point", None), ("Move", None), ("main", None)},
    "a.rs": {("(top level)", None), ("Point", None), ("new", "Point"), ("main", None)},
    "A.java": {("(top level)", None), ("A", None), ("get", "A")},
    "a.c": {("(top level)", None), ("add", None), ("point", None), ("main", None)},
    "a.cpp": {("(top level)", None), ("ns", None), ("Foo", "ns"), ("get", "Foo"), ("biggest", "ns")},
    "a.md": {("Title", None), ("Usage", None)},
}


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_each_language_chunks_definitions_and_covers_every_line(path):
    data = SOURCES[path].encode()
    chunked = chunk_file(path, data)
    names = {
        (c.name, chunked.chunks[c.parent].name if c.parent >= 0 else None)
        for c in chunked.chunks
        if c.kind != "block" or c.name == "(top level)" or path.endswith(".py")
    }
    assert EXPECTED[path] <= names, names
    # Segments cover the file in order, so all-full renders the file exactly.
    rows = [row for _, a, b in chunked.segments for row in range(a, b)]
    assert rows == list(range(len(chunked.lines)))
    assert file_body(chunked, [FULL] * len(chunked.chunks)) == SOURCES[path].rstrip("\n")


def test_comments_attach_to_the_next_definition():
    chunked = chunk_file("a.py", SOURCES["a.py"].encode())
    f = next(c for c in chunked.chunks if c.name == "f")
    assert chunked.lines[f.start] == b"# about f"
    go = chunk_file("a.go", SOURCES["a.go"].encode())
    point = next(c for c in go.chunks if c.name == "Point")
    assert go.lines[point.start] == b"// Point is a point."


def test_markdown_headings_in_code_fences_are_not_sections():
    chunked = chunk_file("a.md", SOURCES["a.md"].encode())
    assert [c.name for c in chunked.chunks if c.kind == "section"] == ["Title", "Usage"]


def test_compression_levels_python():
    chunked = chunk_file("a.py", SOURCES["a.py"].encode())
    names = [c.name for c in chunked.chunks]
    f, c, m = names.index("f"), names.index("C"), names.index("m")
    levels = [None] * len(names)
    levels[f] = STRIPPED
    stripped = file_body(chunked, levels)
    assert "return a + b" in stripped and "Doc." not in stripped and "# add" not in stripped
    assert stripped.startswith(ELIDED)
    levels[f] = SIGNATURE
    assert "@cached\ndef f(a, b): ..." in file_body(chunked, levels)
    # A method kept in a class left out brings the class header, without a marker of its own.
    levels = [None] * len(names)
    levels[m] = FULL
    body = file_body(chunked, levels)
    assert "class C(Base):\n" in body and "    def m(self):\n        return f(1, 2)" in body
    assert "C doc" not in body and "attr" not in body
    levels[c] = SIGNATURE
    levels[m] = SIGNATURE
    assert "class C(Base):\n" in file_body(chunked, levels) and "def m(self): ..." in file_body(
        chunked, levels
    )
    assert file_body(chunked, [None] * len(names)) == ELIDED


def test_compression_levels_braces():
    chunked = chunk_file("a.js", SOURCES["a.js"].encode())
    names = [c.name for c in chunked.chunks]
    levels = [None] * len(names)
    levels[names.index("add")] = SIGNATURE
    levels[names.index("twice")] = STRIPPED
    body = file_body(chunked, levels)
    assert "export function add(a, b) { ... }" in body
    assert "const twice = (q) => {\n  return q * 2;\n};" in body
    assert "Adds" not in body


def test_files_without_grammar_are_line_windows():
    text = "".join(f"line {i}\n" for i in range(130))
    chunked = chunk_file("notes.txt", text.encode())
    assert [(c.start, c.end) for c in chunked.chunks] == [(0, 60), (60, 120), (120, 130)]
    assert all(chunked.signature(i) is None for i in range(3))
