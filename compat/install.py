"""The clients, installed once into compat/.clients and reused by every later run.

Python clients get venvs of their own, so their dependency pins meet neither the project's
venv nor each other's where they clash (aider-chat pins every dependency exactly); the npm
clients share one `npm install --prefix`. Nothing is pinned: a group is installed when its
folder lacks the stamp naming exactly its packages, and kept as it is after that
(`make compat COMPAT_ARGS=--reinstall` takes the newest versions).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent / ".clients"
STAMP = ".compat-installed"

PIP_GROUPS = {
    "aider": ["aider-chat"],
    "sdk": [
        "openai",
        "anthropic",
        "openai-agents",
        "langchain-openai",
        "langchain-anthropic",
        "litellm",
        "llm",
    ],
}
NPM_PACKAGES = ["@anthropic-ai/claude-code", "@openai/codex"]
INSTALL_TIMEOUT_S = 1800


class InstallError(Exception):
    pass


def python_of(group: str) -> Path:
    return CLIENTS / group / "bin" / "python"


def ensure_all(reinstall: bool = False, say=print) -> None:
    for group, packages in PIP_GROUPS.items():
        _ensure(CLIENTS / group, packages, reinstall, say, partial(_pip_install, group, packages))
    _ensure(CLIENTS / "npm", NPM_PACKAGES, reinstall, say, _npm_install)


def _ensure(folder: Path, packages: list[str], reinstall: bool, say, install) -> None:
    stamp = folder / STAMP
    if not reinstall and stamp.exists() and json.loads(stamp.read_text()) == packages:
        return
    say(f"installing {' '.join(packages)} into {folder} (once; minutes) ...")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    install()
    stamp.write_text(json.dumps(packages))


def _pip_install(group: str, packages: list[str]) -> None:
    folder = CLIENTS / group
    _run([sys.executable, "-m", "venv", str(folder)], folder)
    _run([str(python_of(group)), "-m", "pip", "install", "-q", "--upgrade", "pip"], folder)
    _run([str(python_of(group)), "-m", "pip", "install", "-q", *packages], folder)


def _npm_install() -> None:
    folder = CLIENTS / "npm"
    if shutil.which("npm") is None:
        raise InstallError("npm is not on PATH: install Node.js (Debian: apt-get install nodejs npm)")
    _run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", *NPM_PACKAGES], folder)


def _run(argv: list[str], folder: Path) -> None:
    log = folder.parent / f"{folder.name}-install.log"
    with open(log, "a") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S)
    if done.returncode != 0:
        raise InstallError(f"`{' '.join(argv[:4])} ...` failed (exit {done.returncode}); see {log}")
