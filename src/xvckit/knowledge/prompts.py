"""Prompts: named templates with immutable numbered versions and labels that move.

A reference is `name`, `name@label` or `name@version`; a bare name means `name@production`,
and `latest` is a label every prompt has (its newest version). An unknown label or version is
a NotFound naming it, never a fallback to another version. Templates are Jinja2 run in a
sandbox (a template reaches no Python internals) with StrictUndefined: a variable the caller
does not give is an error naming it, never an empty string.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from xvckit.errors import NotFound, UserError

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
LABEL = re.compile(r"[a-z][a-z0-9_-]{0,31}")
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
DEFAULT_LABEL = "production"
LATEST = "latest"  # always the newest version; never set by hand
MAX_TEMPLATE_CHARS = 100_000
MAX_RENDERED_CHARS = 1_000_000
MAX_PARAMETERS_BYTES = 16_384

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class RenderError(UserError):
    """A render that cannot be done with what was given (a missing or unknown variable)."""


@dataclass(frozen=True)
class Version:
    version: int
    template: str
    variables: tuple[str, ...]
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)
    note: str | None = None
    created_at: float | None = None
    created_by: str | None = None

    @property
    def digest(self) -> str:
        """What makes the version itself: its template, variables, model and parameters."""
        body = [self.template, list(self.variables), self.model, self.parameters]
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "template": self.template,
            "variables": list(self.variables),
            "model": self.model,
            "parameters": self.parameters,
            "note": self.note,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass
class Prompt:
    name: str
    team: str | None  # the owning team's name
    tags: tuple[str, ...]
    versions: list[Version]  # oldest first, numbered 1, 2, ...
    labels: dict[str, int]  # set by hand; `latest` is implied

    def resolve(self, selector: str | None) -> Version:
        """The version a label or a number names (None: production)."""
        number = self.number(selector)
        return self.versions[number - 1]

    def number(self, selector: str | None) -> int:
        return version_number(self.name, selector, self.labels, len(self.versions))

    def all_labels(self) -> dict[str, int]:
        return {**self.labels, LATEST: len(self.versions)}

    def summary(self) -> dict[str, Any]:
        newest = self.versions[-1]
        return {
            "name": self.name,
            "team": self.team,
            "tags": list(self.tags),
            "versions": len(self.versions),
            "labels": self.all_labels(),
            "model": newest.model,
            "variables": list(newest.variables),
        }


def version_number(name: str, selector: str | None, labels: dict[str, int], newest: int) -> int:
    """The version a label or a number names (None: production), or NotFound naming it."""
    selector = DEFAULT_LABEL if selector is None else selector
    if selector.isdigit():
        number = int(selector)
        if not 1 <= number <= newest:
            raise NotFound(f"prompt {name} has no version {selector} (1 to {newest})")
        return number
    if selector == LATEST:
        return newest
    if selector not in labels:
        known = ", ".join(sorted({*labels, LATEST}))
        raise NotFound(f"prompt {name} has no label {selector!r} (labels: {known})")
    return labels[selector]


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`name[@label|@version]` as (name, selector); a clear error for anything else."""
    name, _, selector = ref.partition("@")
    check_name(name)
    if "@" in ref and not (selector.isdigit() or LABEL.fullmatch(selector)):
        raise UserError(
            f"{ref!r}: write name@label or name@version (a label: lower case letters, digits, - _)"
        )
    return name, selector or None


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UserError(
            f"prompt name {name[:120]!r}: 1-100 lower case letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_label(label: str) -> str:
    if label == LATEST:
        raise UserError("the label 'latest' always names the newest version; it cannot be set")
    if not LABEL.fullmatch(label) or label.isdigit():
        raise UserError(
            f"label {label[:40]!r}: 1-32 lower case letters, digits, '-' or '_', starting with a letter"
        )
    return label


def new_version(
    number: int,
    template: str,
    variables: list[str] | tuple[str, ...] | None = None,
    model: str | None = None,
    parameters: dict[str, Any] | None = None,
    note: str | None = None,
) -> Version:
    """A version checked: a template that parses, within bounds, whose variables are the ones
    declared (when some are), JSON parameters."""
    if not template.strip():
        raise UserError("the template is empty")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise UserError(f"the template has {len(template):,} characters; at most {MAX_TEMPLATE_CHARS:,}")
    used = template_variables(template)
    if variables is not None:
        declared = set(variables)
        bad = [v for v in variables if not VARIABLE.fullmatch(v)]
        if bad:
            raise UserError(f"variable names must be identifiers: {', '.join(map(repr, bad))}")
        if declared != set(used):
            raise UserError(
                f"the template uses {_names(used) or 'no variables'}; declared: {_names(declared) or 'none'}"
            )
    parameters = dict(parameters or {})
    try:
        encoded = orjson.dumps(parameters)
    except TypeError as exc:
        raise UserError(f"parameters must be JSON values: {exc}") from None
    if len(encoded) > MAX_PARAMETERS_BYTES:
        raise UserError(f"parameters take {len(encoded):,} bytes as JSON; at most {MAX_PARAMETERS_BYTES:,}")
    if model is not None and not (0 < len(model) <= 128 and model.isprintable()):
        raise UserError("model: 1-128 printable characters")
    if note is not None and len(note) > 500:
        raise UserError("note: at most 500 characters")
    return Version(number, template, tuple(sorted(used)), model, parameters, note)


def template_variables(template: str) -> list[str]:
    """The variables a template reads, sorted; a syntax error says where."""
    try:
        return sorted(meta.find_undeclared_variables(_env.parse(template)))
    except TemplateSyntaxError as exc:
        raise UserError(f"template line {exc.lineno}: {exc.message}") from None


def render(prompt: str, version: Version, values: dict[str, Any]) -> str:
    """The version's template filled with `values`: every variable it declares must be given,
    and nothing else."""
    missing = [v for v in version.variables if v not in values]
    unknown = sorted(set(values) - set(version.variables))
    where = f"prompt {prompt}@{version.version}"
    if missing:
        raise RenderError(f"{where}: missing variable{'s' * (len(missing) > 1)} {_names(missing)}")
    if unknown:
        raise RenderError(
            f"{where}: unknown variable{'s' * (len(unknown) > 1)} {_names(unknown)} "
            f"(it takes {_names(version.variables) or 'none'})"
        )
    try:
        text = _env.from_string(version.template).render(values)
    except UndefinedError as exc:  # an attribute or key of a value that it lacks
        raise RenderError(f"{where}: {exc.message}") from None
    except TemplateError as exc:
        raise RenderError(f"{where}: {exc}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise RenderError(f"{where}: rendered to {len(text):,} characters; at most {MAX_RENDERED_CHARS:,}")
    return text


def diff(prompt: Prompt, old: str, new: str) -> str:
    """A unified diff of two versions (by number or label): template, then the other fields."""
    a, b = prompt.resolve(old), prompt.resolve(new)
    lines = list(
        difflib.unified_diff(
            a.template.splitlines(keepends=True),
            b.template.splitlines(keepends=True),
            f"{prompt.name}@{a.version}",
            f"{prompt.name}@{b.version}",
        )
    )
    for name in ("variables", "model", "parameters"):
        before, after = getattr(a, name), getattr(b, name)
        if before != after:
            lines.append(f"{name}: {_shown(before)} -> {_shown(after)}\n")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _shown(value: Any) -> str:
    return orjson.dumps(
        list(value) if isinstance(value, tuple) else value, option=orjson.OPT_SORT_KEYS
    ).decode()


def _names(names) -> str:
    return ", ".join(repr(n) for n in sorted(names))
