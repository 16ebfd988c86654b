"""What a chunk is in each language: the tree-sitter node types of definitions and containers.

One table, so that adding a language is adding a row. Grammars come from the per-language
wheels (tree-sitter-python, ...), which work offline; each is loaded once per process.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from functools import cache

_JS_DEFS = frozenset(
    {"function_declaration", "generator_function_declaration", "class_declaration", "method_definition"}
)
_C_DEFS = frozenset({"function_definition", "struct_specifier", "union_specifier", "enum_specifier"})
_C_TRANSPARENT = frozenset(
    {"preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif", "preproc_elifdef"}
    | {"linkage_specification", "declaration_list"}
)


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    module: str  # the grammar wheel's module
    function: str  # its function returning the language pointer
    defs: frozenset[str]  # node types that are a chunk of their own
    containers: frozenset[str] = frozenset()  # defs whose members are chunks too (classes, impls)
    wrappers: frozenset[str] = frozenset()  # decorators, export, template: span the inner def
    transparent: frozenset[str] = frozenset()  # #ifdef, extern "C": children sit at the same level
    value_defs: frozenset[str] = frozenset()  # `const f = () => ...`: a def when the value is a function
    comments: frozenset[str] = frozenset({"comment"})
    attached: frozenset[str] = frozenset()  # besides comments, what sticks to the next def (#[derive])
    braces: bool = True  # signature marker: `{ ... }` (else Python's `: ...`)
    docstrings: bool = False

    @property
    def strip_query(self) -> str:
        """Comments (and Python docstrings) to leave out of a stripped chunk."""
        query = " ".join(f"({kind}) @c" for kind in sorted(self.comments))
        if self.docstrings:
            query += (
                " (module . (expression_statement (string)) @c) (block . (expression_statement (string)) @c)"
            )
        return query


_JS = Language(
    "javascript",
    "tree_sitter_javascript",
    "language",
    defs=_JS_DEFS,
    containers=frozenset({"class_declaration", "class"}),
    wrappers=frozenset({"export_statement"}),
    value_defs=frozenset({"lexical_declaration", "variable_declaration"}),
)
_TS_EXTRA = frozenset(
    {"interface_declaration", "type_alias_declaration", "enum_declaration", "abstract_class_declaration"}
    | {"internal_module", "module", "function_signature", "abstract_method_signature"}
)
_TS = Language(
    "typescript",
    "tree_sitter_typescript",
    "language_typescript",
    defs=_JS_DEFS | _TS_EXTRA,
    containers=_JS.containers | {"abstract_class_declaration", "internal_module", "module"},
    wrappers=_JS.wrappers | {"ambient_declaration", "expression_statement"},
    value_defs=_JS.value_defs,
)
_C = Language(
    "c",
    "tree_sitter_c",
    "language",
    defs=_C_DEFS | {"type_definition"},
    transparent=_C_TRANSPARENT,
)
_CPP = Language(
    "cpp",
    "tree_sitter_cpp",
    "language",
    defs=_C_DEFS | {"type_definition", "class_specifier", "namespace_definition"},
    containers=frozenset({"class_specifier", "struct_specifier", "union_specifier", "namespace_definition"}),
    wrappers=frozenset({"template_declaration"}),
    transparent=_C_TRANSPARENT,
)

LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language(
            "python",
            "tree_sitter_python",
            "language",
            defs=frozenset({"function_definition", "class_definition"}),
            containers=frozenset({"class_definition"}),
            wrappers=frozenset({"decorated_definition"}),
            braces=False,
            docstrings=True,
        ),
        _JS,
        _TS,
        replace(_TS, name="tsx", function="language_tsx"),
        Language(
            "go",
            "tree_sitter_go",
            "language",
            defs=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
        ),
        Language(
            "rust",
            "tree_sitter_rust",
            "language",
            defs=frozenset(
                {"function_item", "function_signature_item", "struct_item", "enum_item", "union_item"}
                | {"trait_item", "impl_item", "mod_item", "macro_definition", "type_item"}
            ),
            containers=frozenset({"impl_item", "trait_item", "mod_item"}),
            comments=frozenset({"line_comment", "block_comment"}),
            attached=frozenset({"attribute_item"}),
        ),
        Language(
            "java",
            "tree_sitter_java",
            "language",
            defs=frozenset(
                {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}
                | {"annotation_type_declaration", "method_declaration", "constructor_declaration"}
            ),
            containers=frozenset(
                {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}
            ),
            transparent=frozenset({"enum_body_declarations"}),
            comments=frozenset({"line_comment", "block_comment"}),
        ),
        _C,
        _CPP,
        Language(
            "markdown",
            "tree_sitter_markdown",
            "language",
            defs=frozenset(),
            comments=frozenset(),
            braces=False,
        ),
    )
}

SUFFIXES: dict[str, str] = {
    **dict.fromkeys((".py", ".pyi"), "python"),
    **dict.fromkeys((".js", ".jsx", ".mjs", ".cjs"), "javascript"),
    **dict.fromkeys((".ts", ".mts", ".cts"), "typescript"),
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    **dict.fromkeys((".c", ".h"), "c"),
    **dict.fromkeys((".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp"), "cpp"),
    **dict.fromkeys((".md", ".markdown", ".mdx"), "markdown"),
}


def language_for(path: str) -> Language | None:
    """The language of `path` by its suffix; None for files chunked by line windows."""
    dot = path.rfind(".")
    name = SUFFIXES.get(path[dot:].lower()) if dot > path.rfind("/") else None
    return LANGUAGES[name] if name else None


@cache
def parser_for(name: str):
    """A tree-sitter parser and the strip query for language `name` (made once per process)."""
    import tree_sitter

    lang = LANGUAGES[name]
    grammar = tree_sitter.Language(getattr(importlib.import_module(lang.module), lang.function)())
    query = tree_sitter.Query(grammar, lang.strip_query) if lang.strip_query else None
    return tree_sitter.Parser(grammar), query
