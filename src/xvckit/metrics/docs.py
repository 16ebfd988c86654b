"""Documentation completeness: the share of public modules, classes and functions that carry
documentation, in the tree of one commit.

Python is read with `ast`: a public module (no part of its path starts with `_`, `__init__.py`
aside) counts itself (documented by a module docstring), its public top-level functions and
classes, and the public methods and nested classes of its public classes (documented by a
docstring; property setters, deleters and `@overload` stubs are left out). A private module's
names are not counted.

Other languages are read with the tree-sitter grammars the context index ships
(context/languages.py); a definition is documented by a comment that ends on the line above it
(attributes such as Rust's `#[derive]` may sit between), of the language's doc-comment kind:
- Go: exported (capitalized) functions, methods and types; any `//` comment.
- Rust: `pub` items, the members of `pub` traits and the `pub` members of impl blocks; `///`
  or `/** */`.
- Java: `public` classes, interfaces, enums, records, methods and constructors, and the members
  of public interfaces; `/** */`.
- JavaScript and TypeScript: exported declarations and the methods of exported classes (not
  `#private`, `_private`, `private`, `protected` or the constructor); `/** */`.
- C and C++: functions that are not `static`, named structs, unions, enums, classes and
  typedefs; any comment.

Files: the commit's tracked files in those languages, outside test folders and files
(`tests/`, `test_*.py`, `*_test.go`, `*.spec.ts`, ...) and vendored folders, up to 1 MB.
Counts are cached per blob (`.git/xvckit/metrics-docs.msgpack`): a re-run parses only files
whose content changed.
"""

from __future__ import annotations

import ast
import re
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from xvckit.context.languages import language_for, parser_for
from xvckit.metrics.gitlog import git

MAX_BYTES = 1 << 20
_SKIPPED_DIRS = frozenset(
    {"test", "tests", "testing", "__tests__", "spec", "specs", "vendor", "node_modules", "third_party"}
)
_TEST_FILE = re.compile(
    r"(^test_.*\.py$|.*_test\.py$|^conftest\.py$|.*_test\.go$|.*\.(test|spec)\.[cm]?[jt]sx?$|.*Test\.java$)"
)

# per blob and language: (module docstring, public symbols, documented symbols)
Counts = tuple[bool, int, int]


class DocsCache(msgspec.Struct):
    version: int = 1
    blobs: dict[str, Counts] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    blob: str
    language: str


def counted_files(listing: Iterable[tuple[str, str, int]]) -> list[Entry]:
    """The (path, blob, size) entries whose documentation is counted."""
    out = []
    for path, blob, size in listing:
        parts = path.split("/")
        if size > MAX_BYTES or _SKIPPED_DIRS.intersection(parts[:-1]) or _TEST_FILE.match(parts[-1]):
            continue
        lang = language_for(path)
        if lang is None or lang.name == "markdown":
            continue
        out.append(Entry(path, blob, lang.name))
    return out


def completeness(repo: Path, commit: str, cache: DocsCache, used: set[str]) -> dict[str, list[int]]:
    """Per language, [public, documented] at `commit` (modules count for Python); the blobs'
    cache keys go into `used`."""
    entries = counted_files(_tree(repo, commit))
    missing = [e for e in entries if _key(e) not in cache.blobs]
    for entry, data in zip(missing, _blobs(repo, [e.blob for e in missing]), strict=True):
        cache.blobs[_key(entry)] = count(entry.language, data)
    totals: dict[str, list[int]] = {}
    for entry in entries:
        key = _key(entry)
        used.add(key)
        has_doc, public, documented = cache.blobs[key]
        if entry.language == "python":
            if not _public_module(entry.path):
                continue
            public, documented = public + 1, documented + has_doc
        total = totals.setdefault(entry.language, [0, 0])
        total[0] += public
        total[1] += documented
    return totals


def _key(entry: Entry) -> str:
    return f"{entry.blob}:{entry.language}"


def _public_module(path: str) -> bool:
    parts = path.split("/")
    parts[-1] = parts[-1].rsplit(".", 1)[0]
    return not any(part.startswith("_") for part in parts if part != "__init__")


def _tree(repo: Path, commit: str) -> list[tuple[str, str, int]]:
    """(path, blob, size) of every file in `commit`'s tree."""
    out = []
    for record in git(repo, "ls-tree", "-r", "-z", "-l", "--full-tree", commit).split("\0"):
        meta, _, path = record.partition("\t")
        fields = meta.split()
        # files only: not submodules (commit), nor symbolic links (mode 120000)
        if len(fields) == 4 and fields[1] == "blob" and fields[0] != "120000" and fields[3].isdigit():
            out.append((path, fields[2], int(fields[3])))
    return out


def _blobs(repo: Path, shas: list[str]) -> list[bytes]:
    """The contents of `shas`, in order, from one `git cat-file --batch`."""
    if not shas:
        return []
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            proc.stdin.write("".join(f"{sha}\n" for sha in shas).encode())
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = []
    try:
        for _ in shas:
            header = proc.stdout.readline().split()
            if len(header) != 3:  # "<sha> missing"
                out.append(b"")
                continue
            size = int(header[2])
            out.append(proc.stdout.read(size))
            proc.stdout.read(1)
    finally:
        proc.stdout.close()
        writer.join()
        proc.wait()
    return out


def count(language: str, data: bytes) -> Counts:
    """(module docstring, public symbols, documented symbols) of one file."""
    if language == "python":
        return _python(data)
    rules = RULES.get(language)
    if rules is None:
        return (False, 0, 0)
    parser, _ = parser_for(language)
    counts = [0, 0]
    _walk(parser.parse(data).root_node, rules, counts, None)
    return (False, counts[0], counts[1])


# Python


def _python(data: bytes) -> Counts:
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return (False, 0, 0)
    counts = [0, 0]
    for node in tree.body:
        if isinstance(node, _PY_DEFS) and not node.name.startswith("_"):
            _py_count(node, counts)
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, _PY_DEFS) and not member.name.startswith("_") and _py_real(member):
                        _py_count(member, counts)
    return (ast.get_docstring(tree) is not None, counts[0], counts[1])


_PY_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _py_count(node: ast.AST, counts: list[int]) -> None:
    counts[0] += 1
    counts[1] += ast.get_docstring(node) is not None  # type: ignore[arg-type]


def _py_real(node: ast.AST) -> bool:
    """Not a property's setter or deleter, nor an `@overload` stub."""
    for decorator in getattr(node, "decorator_list", ()):
        if isinstance(decorator, ast.Attribute) and decorator.attr in ("setter", "deleter"):
            return False
        name = decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", "")
        if name == "overload":
            return False
    return True


# tree-sitter languages


@dataclass(frozen=True, slots=True)
class Rules:
    """What counts in one language: `counted` node types, each public when `public(node,
    context)` says so (context: the public container it is in, or None at the top), members
    read from the bodies of `containers` (containers not counted themselves are in `only_in`),
    documented by a comment of `comments` starting with one of `doc` (any when empty)."""

    counted: frozenset[str]
    public: Callable[..., bool]
    containers: frozenset[str] = frozenset()
    only_in: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    doc: tuple[str, ...] = ()
    attached: frozenset[str] = frozenset()
    transparent: frozenset[str] = frozenset()
    wrappers: frozenset[str] = frozenset()


def _name(node) -> str:
    named = node.child_by_field_name("name")
    if named is None:
        for child in node.named_children:
            if child.type in ("type_spec", "type_alias"):
                return _name(child)
        return ""
    return named.text.decode(errors="replace")


def _has_child(node, kind: str, text: str | None = None) -> bool:
    return any(
        child.type == kind and (text is None or text in child.text.decode(errors="replace").split())
        for child in node.children
    )


def _go_public(node, _context) -> bool:
    return _name(node)[:1].isupper()


def _rust_public(node, context) -> bool:
    if node.type in ("impl_item",):
        return True  # read for its members; never counted
    if context is not None and context.type == "trait_item":
        return True
    return _has_child(node, "visibility_modifier")


def _java_public(node, context) -> bool:
    if context is not None and context.type == "interface_declaration":
        return True
    modifiers = next((c for c in node.children if c.type == "modifiers"), None)
    return modifiers is not None and "public" in modifiers.text.decode(errors="replace").split()


def _js_public(node, context) -> bool:
    if context is None:
        return node.parent is not None and node.parent.type == "export_statement"
    name = _name(node)
    if not name or name[0] in "#_" or name == "constructor":
        return False
    return not any(
        c.type == "accessibility_modifier" and c.text.decode() in ("private", "protected")
        for c in node.children
    )


def _c_public(node, _context) -> bool:
    if node.type == "function_definition":
        return not _has_child(node, "storage_class_specifier", "static")
    if node.type == "namespace_definition":
        return True  # read for its members; never counted
    return node.type == "type_definition" or (
        node.child_by_field_name("name") is not None and node.child_by_field_name("body") is not None
    )


_JS_RULES = Rules(
    counted=frozenset({"function_declaration", "generator_function_declaration", "class_declaration"})
    | {"method_definition", "abstract_class_declaration", "interface_declaration", "enum_declaration"}
    | {"type_alias_declaration"},
    public=_js_public,
    containers=frozenset({"class_declaration", "abstract_class_declaration"}),
    doc=("/**",),
    wrappers=frozenset({"export_statement"}),
)
_C_RULES = Rules(
    counted=frozenset({"function_definition", "struct_specifier", "union_specifier", "enum_specifier"})
    | {"type_definition", "class_specifier", "namespace_definition"},
    public=_c_public,
    containers=frozenset({"namespace_definition"}),
    only_in=frozenset({"namespace_definition"}),
    transparent=frozenset({"preproc_ifdef", "preproc_if", "preproc_else", "linkage_specification"})
    | {"declaration_list"},
)

RULES: dict[str, Rules] = {
    "go": Rules(
        counted=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
        public=_go_public,
    ),
    "rust": Rules(
        counted=frozenset({"function_item", "function_signature_item", "struct_item", "enum_item"})
        | {"union_item", "trait_item", "mod_item", "macro_definition", "type_item", "impl_item"},
        public=_rust_public,
        containers=frozenset({"impl_item", "trait_item", "mod_item"}),
        only_in=frozenset({"impl_item"}),
        comments=frozenset({"line_comment", "block_comment"}),
        doc=("///", "/**"),
        attached=frozenset({"attribute_item"}),
    ),
    "java": Rules(
        counted=frozenset({"class_declaration", "interface_declaration", "enum_declaration"})
        | {"record_declaration", "annotation_type_declaration", "method_declaration"}
        | {"constructor_declaration"},
        public=_java_public,
        containers=frozenset({"class_declaration", "interface_declaration", "enum_declaration"})
        | {"record_declaration"},
        comments=frozenset({"line_comment", "block_comment"}),
        doc=("/**",),
        transparent=frozenset({"enum_body_declarations"}),
    ),
    "javascript": _JS_RULES,
    "typescript": _JS_RULES,
    "tsx": _JS_RULES,
    "c": _C_RULES,
    "cpp": _C_RULES,
}


def _walk(node, rules: Rules, counts: list[int], context) -> None:
    """Count the definitions among `node`'s children (and in the bodies of public containers)."""
    comment = None  # the doc comment candidate: the last comment, and the row it ends on
    for child in node.named_children:
        kind = child.type
        if kind in rules.comments:
            comment = child
            continue
        if kind in rules.attached:
            continue
        target = child
        if kind in rules.wrappers:
            target = child.child_by_field_name("declaration") or child
        if kind in rules.transparent:
            _walk(child, rules, counts, context)
        elif target.type in rules.counted and rules.public(target, context):
            if target.type not in rules.only_in:
                counts[0] += 1
                counts[1] += _documented(comment, child, rules)
            body = target.child_by_field_name("body")
            if target.type in rules.containers and body is not None:
                _walk(body, rules, counts, target)
        comment = None


def _documented(comment, node, rules: Rules) -> bool:
    if comment is None or comment.end_point[0] < node.start_point[0] - 1 - _attached_rows(node, rules):
        return False
    text = comment.text.decode(errors="replace")
    return not rules.doc or text.startswith(rules.doc)


def _attached_rows(node, rules: Rules) -> int:
    """Rows taken by attributes between the doc comment and `node` (Rust's `#[derive]`)."""
    rows = 0
    sibling = node.prev_named_sibling
    while sibling is not None and sibling.type in rules.attached:
        rows += sibling.end_point[0] - sibling.start_point[0] + 1
        sibling = sibling.prev_named_sibling
    return rows
