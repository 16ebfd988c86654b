"""`xvckit new`: a project made from each built-in template passes its own tests and lint, carries
the team's prompts and knowledge base in a form xvckit reads, and a team's own template (a
folder, a git repository) works too; a template that would run commands is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.config import load
from xvckit.errors import UserError
from xvckit.knowledge import kb, prompts_files
from xvckit.knowledge.project_templates import new_project

BIN = Path(sys.executable).parent
COMMON = {"AGENTS.md", "CLAUDE.md", "README.md", "xvckit.yaml", ".gitignore", ".copier-answers.yml"}


def run(cwd: Path, *argv: str) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_offline": "true"}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def made(tmp_path: Path, language: str) -> Path:
    result = CliRunner().invoke(
        app,
        ["new", "demo-app", "--template", language, "--dest", str(tmp_path / language), "--team", "platform"],
    )
    assert result.exit_code == 0, result.output
    project = tmp_path / language
    assert {p.name for p in project.iterdir()} >= COMMON
    assert (project / ".github" / "workflows" / "ci.yml").is_file()
    assert "@AGENTS.md" in (project / "CLAUDE.md").read_text()
    # what xvckit reads of it: the config, the prompt library, the knowledge base
    load(project / "xvckit.yaml")
    [review] = prompts_files.load_dir(project / "prompts")
    assert (review.team, review.versions[0].variables) == ("platform", ("diff",))
    entry = next((project / "kb").glob("*.md"))
    assert kb.parse(entry.read_text(), where=str(entry)).pattern.startswith("Reproduce a bug")
    return project


def test_python_project_passes_its_own_tests_and_lint(tmp_path):
    project = made(tmp_path, "python")
    assert "1 passed" in run(project, str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider")
    run(project, str(BIN / "ruff"), "check", ".")
    run(project, str(BIN / "ruff"), "format", "--check", ".")
    assert "ruff check" in (project / "AGENTS.md").read_text()


@pytest.mark.skipif(shutil.which("npm") is None, reason="node and npm are not installed")
def test_node_project_passes_its_own_tests_and_lint(tmp_path):
    project = made(tmp_path, "node")
    assert "# pass 1" in run(project, "npm", "test")
    assert "lint: 3 files parse" in run(project, "npm", "run", "lint")
    (project / "src" / "broken.js").write_text("export function (\n")
    with pytest.raises(AssertionError, match="SyntaxError"):  # the lint can fail
        run(project, "npm", "run", "lint")


@pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed (.ci/run installs golang-go)")
def test_go_project_passes_its_own_tests_and_vet(tmp_path):
    project = made(tmp_path, "go")
    assert "ok" in run(project, "go", "test", "./...")
    run(project, "go", "vet", "./...")
    assert run(project, "gofmt", "-l", ".") == ""


def _team_template(folder: Path, extra: dict | None = None) -> Path:
    folder.mkdir()
    (folder / "copier.yml").write_text(yaml.safe_dump({"project_name": {"type": "str"}, **(extra or {})}))
    (folder / "SERVICE.md.jinja").write_text("# {{ project_name }}, a service of the team\n")
    return folder


def test_a_teams_own_template_as_a_folder_or_a_git_repository(tmp_path):
    folder = _team_template(tmp_path / "team-template")
    new_project("svc-one", str(folder), tmp_path / "one")
    assert (tmp_path / "one" / "SERVICE.md").read_text() == "# svc-one, a service of the team\n"

    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "v1"],
    ):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)
    new_project("svc-two", f"git+file://{folder}", tmp_path / "two")
    assert (tmp_path / "two" / "SERVICE.md").read_text() == "# svc-two, a service of the team\n"


def test_refusals_are_clear(tmp_path):
    with pytest.raises(UserError, match="lower case letters, digits and -"):
        new_project("Demo App", "python", tmp_path / "x")
    with pytest.raises(UserError, match="not one of python, node, go, a template folder or a git URL"):
        new_project("demo", "rust", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not an empty folder"):
        new_project("demo", "python", tmp_path / "full")
    tasks = _team_template(tmp_path / "with-tasks", {"_tasks": ["touch ran-a-task"]})
    with pytest.raises(UserError, match="unsafe"):
        new_project("demo", str(tasks), tmp_path / "y")
    assert not (tmp_path / "y" / "ran-a-task").exists()
