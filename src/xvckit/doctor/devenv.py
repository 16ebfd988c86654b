"""The tools section: what the guide calls the essential development environment (§4: git
with LFS, an AI-aware editor, tmux/screen, the toolchains the repository needs, the latter
read from the files at its root) and the AI coding tools on PATH."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from xvckit.doctor.runner import Deliver, Job, Promise
from xvckit.doctor.setup import Setup

EDITORS = (
    "code",
    "code-insiders",
    "cursor",
    "windsurf",
    "zed",
    "zeditor",
    "nvim",
    "idea",
    "pycharm",
    "webstorm",
)
MAC_APPS = {"Visual Studio Code": "code", "Cursor": "cursor", "Zed": "zed", "Windsurf": "windsurf"}
MULTIPLEXERS = ("tmux", "screen", "zellij")
AI_TOOLS = (
    "claude",
    "codex",
    "aider",
    "cursor-agent",
    "gemini",
    "copilot",
    "goose",
    "opencode",
    "amp",
    "crush",
)
# Files at the repository's root -> the commands that build it. Gradle projects carry their
# wrapper (gradlew), which needs only a JDK.
TOOLCHAINS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt"), ("python3",)),
    (("uv.lock",), ("uv",)),
    (("poetry.lock",), ("poetry",)),
    (("package.json",), ("node",)),
    (("package-lock.json",), ("npm",)),
    (("pnpm-lock.yaml",), ("pnpm",)),
    (("yarn.lock",), ("yarn",)),
    (("bun.lock", "bun.lockb"), ("bun",)),
    (("Cargo.toml",), ("cargo",)),
    (("go.mod",), ("go",)),
    (("pom.xml",), ("mvn",)),
    (("build.gradle", "build.gradle.kts"), ("java",)),
    (("CMakeLists.txt",), ("cmake",)),
    (("meson.build",), ("meson", "ninja")),
    (("Makefile", "GNUmakefile"), ("make",)),
    (("Gemfile",), ("bundle",)),
    (("composer.json",), ("composer",)),
    (("mix.exs",), ("mix",)),
    (("Package.swift",), ("swift",)),
    (("pubspec.yaml",), ("dart",)),
    (("deno.json", "deno.jsonc"), ("deno",)),
    (("justfile", "Justfile"), ("just",)),
    (("*.csproj", "*.fsproj", "*.sln"), ("dotnet",)),
)
VERSION_ARGS = {"go": ("version",), "git-lfs": ("version",), "java": ("-version",)}
VERSION_TIMEOUT_S = 3.0

PROMISES = [
    Promise("tools.git", "git"),
    Promise("tools.git_lfs", "git-lfs"),
    Promise("tools.editor", "AI-aware editor"),
    Promise("tools.multiplexer", "terminal multiplexer"),
    Promise("tools.toolchains", "build toolchains"),
    Promise("tools.ai_tools", "AI coding tools"),
]


def repository_root(directory: Path) -> Path:
    """The nearest directory at or above `directory` holding .git, else `directory`."""
    directory = directory.resolve()
    return next((d for d in (directory, *directory.parents) if (d / ".git").exists()), directory)


def jobs(setup: Setup) -> list[Job]:
    return [Job(PROMISES, lambda deliver: _tools(setup, deliver))]


def required_toolchains(root: Path) -> list[str]:
    """The commands the repository's own files ask for, in the table's order."""
    needed: list[str] = []
    for patterns, commands in TOOLCHAINS:
        if any(any(root.glob(pattern)) for pattern in patterns):
            needed += [c for c in commands if c not in needed]
    return needed


async def version(command: str) -> str | None:
    """The command's version (the first version-like word it prints), "installed" if it
    prints none in time, None when it is not on PATH."""
    path = shutil.which(command)
    if path is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            *VERSION_ARGS.get(command, ("--version",)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError:
        return "installed"
    try:
        out, _ = await asyncio.wait_for(process.communicate(), VERSION_TIMEOUT_S)
    except TimeoutError:
        return "installed"
    finally:  # timed out, or the doctor's deadline cancelled the wait: leave no process behind
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # a wrapper script's children too
            await process.wait()
    found = re.search(r"\d+(?:\.\d+)+", out.decode(errors="replace"))
    return found[0] if found else "installed"


def _on_path(names: tuple[str, ...]) -> list[str]:
    found = [name for name in names if shutil.which(name)]
    if sys.platform == "darwin":
        found += [
            cmd
            for app, cmd in MAC_APPS.items()
            if Path(f"/Applications/{app}.app").exists() and cmd not in found
        ]
    return found


def _install(package: str) -> str:
    for manager, command in (
        ("apt-get", "sudo apt-get install"),
        ("dnf", "sudo dnf install"),
        ("brew", "brew install"),
    ):
        if shutil.which(manager):
            return f"{command} {package}"
    return f"install {package}"


async def _tools(setup: Setup, deliver: Deliver) -> None:
    judge = setup.judge
    needed = required_toolchains(setup.root)
    git, lfs, *toolchain_versions = await asyncio.gather(
        version("git"), version("git-lfs"), *map(version, needed)
    )
    git_p, lfs_p, editor_p, mux_p, chains_p, ai_p = PROMISES

    for promise, found, fix in (
        (git_p, git, _install("git")),
        (lfs_p, lfs, f"{_install('git-lfs')} && git lfs install"),
    ):
        value, measure = (found, 1) if found else ("missing", 0)
        deliver(judge.measured(promise.id, promise.title, promise.threshold, value, measure=measure, fix=fix))

    for promise, names, fix in (
        (editor_p, EDITORS, "install an AI-aware editor: VS Code, Cursor, Zed or Neovim"),
        (mux_p, MULTIPLEXERS, _install("tmux")),
        (ai_p, AI_TOOLS, "e.g. npm install -g @anthropic-ai/claude-code, or pipx install aider-chat"),
    ):
        found = _on_path(names)
        deliver(
            judge.measured(promise.id, promise.title, promise.threshold, found, measure=len(found), fix=fix)
        )

    chains = dict(zip(needed, toolchain_versions, strict=True))
    missing = [name for name, found in chains.items() if found is None]
    detail = (
        f"asked for by the files in {setup.root}" if needed else f"no build files recognized in {setup.root}"
    )
    shown = {name: found or "missing" for name, found in chains.items()}
    fix = f"install: {', '.join(missing)}"
    deliver(
        judge.measured(
            chains_p.id,
            chains_p.title,
            chains_p.threshold,
            shown,
            measure=len(missing),
            fix=fix,
            detail=detail,
        )
    )
