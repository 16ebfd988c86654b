"""`.xvckit/review.yaml`: what a repository asks of its reviews.

    instructions: |            # added to every file's prompt
      We use Decimal for money; flag float arithmetic on amounts.
    ignore: ["docs/**", "*.lock"]   # never sent, neither for review nor in context packs
    max_findings: 30           # the most findings a review shows (the rest are counted)
    min_severity: warning      # findings below it are left out (error, warning, note)
    fail_on: error             # the exit status's threshold when --fail-on is not given
    model: gpt-4o-mini         # when --model is not given

The file is read from the working tree, so a branch can change its own settings: CI should
pass --fail-on itself. A mistake is an error naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xvckit.config.loader import format_errors
from xvckit.errors import UserError

CONFIG_PATH = Path(".xvckit") / "review.yaml"
MAX_BYTES = 256 * 1024
SEVERITIES = ("error", "warning", "note")  # most severe first
Severity = Literal["error", "warning", "note"]
FailOn = Literal["error", "warning", "note", "never"]


class ReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = Field("", max_length=20_000)
    ignore: list[str] = Field(default_factory=list, max_length=1_000)
    max_findings: int = Field(50, ge=1, le=10_000)
    min_severity: Severity = "note"
    fail_on: FailOn = "error"
    model: str | None = Field(None, min_length=1)

    @field_validator("ignore")
    @classmethod
    def _globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob.strip():
                raise ValueError("an empty glob would match nothing; remove it")
        return globs


def load(root: Path) -> ReviewConfig:
    """The repository's review settings (the defaults when it has no file)."""
    path = root / CONFIG_PATH
    if not path.exists():
        return ReviewConfig()
    shown = CONFIG_PATH.as_posix()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{shown}: larger than {MAX_BYTES:,} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shown}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{shown}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return ReviewConfig()
    if not isinstance(data, dict):
        raise UserError(f"{shown}: the top level must be a mapping, not {type(data).__name__}")
    try:
        return ReviewConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError("\n".join(f"{shown}: {line}" for line in format_errors(exc))) from None
