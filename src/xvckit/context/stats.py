"""`xvckit context stats`: where a repository's tokens are, as a tree by directory, largest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xvckit.config.schema import ContextSettings
from xvckit.context.index import Index, build
from xvckit.errors import UserError


@dataclass
class Node:
    name: str
    tokens: int = 0
    files: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def as_dict(self, depth: int) -> dict:
        out: dict = {"name": self.name, "tokens": self.tokens, "files": self.files}
        if depth > 0 and self.children:
            out["children"] = [child.as_dict(depth - 1) for child in self.ordered()]
        return out

    def ordered(self) -> list[Node]:
        return sorted(self.children.values(), key=lambda n: (-n.tokens, n.name))

    def lines(self, depth: int, indent: str = "") -> list[str]:
        """`tokens  files  name` per node, children indented under their directory."""
        out = [f"{self.tokens:>12,}  {self.files:>6,}  {indent}{self.name}"]
        if depth > 0:
            for child in self.ordered():
                out += child.lines(depth - 1, indent + "  ")
        return out


def tree(index: Index) -> Node:
    """Token counts of the indexed files summed up their directories (the root is `.`)."""
    root = Node(".")
    for indexed in index.files:
        node = root
        parts = indexed.path.split("/")
        for i, part in enumerate(parts):
            node.tokens += indexed.parse.tokens
            node.files += 1
            name = part + ("/" if i < len(parts) - 1 else "")
            node = node.children.setdefault(name, Node(name))
        node.tokens += indexed.parse.tokens
        node.files += 1
    return root


def repo_stats(repo: Path, settings: ContextSettings) -> tuple[Node, dict[str, int]]:
    """The token tree of `repo`'s index and the count of files left out, by reason."""
    if not repo.is_dir():
        raise UserError(f"--repo {repo}: not a directory")
    index = build(repo, max_bytes=settings.max_file_kb * 1024, exclude=tuple(settings.exclude))
    return tree(index), dict(sorted(index.excluded.items()))
