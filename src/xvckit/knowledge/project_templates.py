"""`xvckit new NAME --template python|node|go`: a project set up for AI-assisted work, made
with copier from the template shipped in the package (`templates/project`: the guidance files
AI tools read, AGENTS.md and CLAUDE.md, CI, tests and lint, an xvckit.yaml, the team's
prompts/ and kb/ folders), or from a team's own template: a folder or a git URL. Copier
records the answers (`.copier-answers.yml`), so a project made from a git template can take
its newer versions with `copier update`. Templates run no tasks (copier's unsafe mode is off).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xvckit.errors import UserError

BUILT_IN = ("python", "node", "go")
PROJECT_TEMPLATE = Path(__file__).with_name("templates") / "project"
NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_REMOTE = re.compile(r"^(gh:|gl:|git\+|git@|https?://|ssh://)")


def new_project(
    name: str, template: str, dest: Path | None = None, data: dict[str, Any] | None = None
) -> Path:
    """Make the project `name` in `dest` (default: ./NAME) from a built-in template's name,
    a template folder or a git URL; returns where it is."""
    if not NAME.fullmatch(name):
        raise UserError(
            f"project name {name[:80]!r}: lower case letters, digits and -, starting with a letter"
        )
    dest = dest or Path(name)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest}: exists and is not an empty folder")
    answers = {"project_name": name, **(data or {})}
    if template in BUILT_IN:
        source = str(PROJECT_TEMPLATE)
        answers["language"] = template
    elif _REMOTE.match(template) or Path(template).is_dir():
        source = template
    else:
        raise UserError(
            f"--template {template}: not one of {', '.join(BUILT_IN)}, a template folder or a git URL"
        )
    _copy(source, dest, answers)
    return dest


def _copy(source: str, dest: Path, answers: dict[str, Any]) -> None:
    from copier import run_copy
    from copier.errors import CopierError

    try:
        run_copy(source, dest, data=answers, defaults=True, quiet=True, unsafe=False, overwrite=False)
    except (CopierError, ValueError) as exc:
        raise UserError(f"template {source}: {_first_line(exc)}") from None
    except OSError as exc:
        raise UserError(f"template {source}: {exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
