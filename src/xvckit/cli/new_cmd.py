"""`xvckit new NAME`: a new project from a template (copier)."""

from __future__ import annotations

from pathlib import Path

import typer

from xvckit.errors import UserError


def new(
    name: str = typer.Argument(..., help="the project's name (lower case letters, digits and -)"),
    template: str = typer.Option(
        "python", "--template", "-t", help="python, node, go, or a template folder or git URL of your team's"
    ),
    dest: Path | None = typer.Option(None, "--dest", help="where to make it (default: ./NAME)"),
    description: str | None = typer.Option(None, "--description", help="what it does, in a line"),
    team: str | None = typer.Option(None, "--team", help="the team that owns its prompts and knowledge"),
    data: list[str] | None = typer.Option(
        None, "--data", metavar="NAME=VALUE", help="an answer to one of the template's questions"
    ),
) -> None:
    """Make a project set up for AI-assisted work: AGENTS.md and CLAUDE.md, CI, tests and lint,
    an xvckit.yaml, and prompts/ and kb/ folders for the team's prompts and knowledge base."""
    from xvckit.knowledge.project_templates import new_project

    answers = {}
    for item in data or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--data {item!r}: write NAME=VALUE")
        answers[key] = value
    if description is not None:
        answers["description"] = description
    if team is not None:
        answers["team"] = team
    made = new_project(name, template, dest, answers)
    typer.echo(f"made {made} from the {template} template")
