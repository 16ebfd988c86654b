"""Prompts kept as files in a repository (`prompts/NAME.yaml`), reviewed in git like code.

    name: review                 # the file's stem
    owner: platform              # the owning team (its keys render it through the gateway)
    tags: [code]
    labels: {production: 1, staging: 2}
    versions:
      - version: 1
        template: |
          Review this diff: {{ diff }}
        variables: [diff]        # optional; when given, exactly the template's
        model: gpt-4o-mini
        parameters: {temperature: 0.2}

Versions are appended, never rewritten: `add` writes a new one at the end, and `push` (into
the store) refuses a file whose version N differs from the store's version N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xvckit.config.loader import format_errors
from xvckit.errors import NotFound, UserError
from xvckit.knowledge.prompts import Prompt, Version, check_label, check_name, new_version

MAX_FILE_BYTES = 1 << 20


class _VersionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    template: str
    variables: list[str] | None = None
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None


class _PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, int] = Field(default_factory=dict)
    versions: list[_VersionFile] = Field(min_length=1)


def load_dir(folder: Path) -> list[Prompt]:
    """Every prompt file in `folder` (`*.yaml`, `*.yml`), by name."""
    if not folder.is_dir():
        raise UserError(f"--dir {folder}: not a folder")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return sorted((load_file(path) for path in files), key=lambda p: p.name)


def find(folder: Path, name: str) -> Prompt:
    path = path_of(folder, name)
    if path is None:
        raise NotFound(f"no prompt {name!r} in {folder}")
    return load_file(path)


def path_of(folder: Path, name: str) -> Path | None:
    check_name(name)
    return next((p for p in (folder / f"{name}.yaml", folder / f"{name}.yml") if p.is_file()), None)


def load_file(path: Path) -> Prompt:
    """One prompt file, checked: every problem names the file and the field."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        parsed = _PromptFile.model_validate(data)
    except ValidationError as exc:
        raise UserError("\n".join(f"{path}: {line}" for line in format_errors(exc))) from None
    try:
        return _prompt(parsed, path.stem)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def _prompt(parsed: _PromptFile, stem: str) -> Prompt:
    check_name(parsed.name)
    if parsed.name != stem:
        raise UserError(f"name: {parsed.name!r} differs from the file's name {stem!r}")
    versions = []
    for i, v in enumerate(parsed.versions):
        if v.version != i + 1:
            raise UserError(f"versions[{i}].version: {v.version}; versions are numbered 1, 2, ... in order")
        try:
            versions.append(new_version(v.version, v.template, v.variables, v.model, v.parameters, v.note))
        except UserError as exc:
            raise UserError(f"versions[{i}]: {exc}") from None
    for label, number in parsed.labels.items():
        check_label(label)
        if not 1 <= number <= len(versions):
            raise UserError(f"labels.{label}: no version {number}")
    return Prompt(parsed.name, parsed.owner, tuple(parsed.tags), versions, dict(parsed.labels))


def save(folder: Path, prompt: Prompt) -> Path:
    """Write a prompt's file (a new one, or one whose versions only grew), templates as blocks."""
    path = path_of(folder, prompt.name) or folder / f"{prompt.name}.yaml"
    data: dict[str, Any] = {"name": prompt.name}
    if prompt.team:
        data["owner"] = prompt.team
    if prompt.tags:
        data["tags"] = list(prompt.tags)
    if prompt.labels:
        data["labels"] = dict(prompt.labels)
    data["versions"] = [_version_data(v) for v in prompt.versions]
    path.write_text(yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100))
    return path


def _version_data(version: Version) -> dict[str, Any]:
    data: dict[str, Any] = {"version": version.version, "template": version.template}
    data["variables"] = list(version.variables)
    for name in ("model", "parameters", "note"):
        value = getattr(version, name)
        if value:
            data[name] = value
    return data


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a template reads in a diff as it is."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
