"""The prompt template: Jinja2, rendered once per item with the item's variables, in Jinja's
sandbox (a template from a shared repository reaches no Python internals).

Strict: a variable the item does not have is an error that names the item and the variable,
never an empty string in a prompt that is then paid for. A template that uses `context`
gets a context pack for the item (`xvckit.context`), for the task "<the item's path>
<its `task` field>", within `--context-budget` tokens (CONTEXT_BUDGET when not given).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from xvckit.batch.items import Item
from xvckit.errors import UserError

CONTEXT_BUDGET = 8_000


class Template:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"template {path}: cannot read: {exc}") from None
        env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(path.parent),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # prompts, not HTML
        )
        try:
            self.uses = meta.find_undeclared_variables(env.parse(source))
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"template {path}, line {exc.lineno}: {exc.message}") from None

    @property
    def wants_context(self) -> bool:
        return "context" in self.uses

    def render(self, item: Item, extra: dict | None = None) -> str:
        variables = item.variables | (extra or {})
        try:
            return self._template.render(variables)
        except jinja2.UndefinedError as exc:
            has = ", ".join(sorted(variables)) or "none"
            raise UserError(
                f"template {self.path.name}: item {item.id}: {exc.message} (its variables: {has})"
            ) from None
        except jinja2.TemplateError as exc:
            raise UserError(f"template {self.path.name}: item {item.id}: {exc}") from None


def context_pack(item: Item, repo: Path, settings, budget: int) -> str:
    """The context pack for `item`: the code around its path (and its `task` field)."""
    from xvckit.context.pack import build_pack

    task = " ".join(str(item.variables.get(name) or "") for name in ("path", "task")).strip() or item.id
    return build_pack(task, repo, settings, budget=budget).text
