"""Git repositories built for tests: commits with given authors and times."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
H = 3600
D = 86400


class Git:
    """A repository in a folder, commits made with given authors and times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self("init", "-q", "-b", "main")

    def __call__(self, *args: str, who: str = "alice", when: float = T0) -> str:
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": who.title(),
            "GIT_AUTHOR_EMAIL": f"{who}@example.org",
            "GIT_AUTHOR_DATE": f"@{int(when)} +0000",
            "GIT_COMMITTER_NAME": who.title(),
            "GIT_COMMITTER_EMAIL": f"{who}@example.org",
            "GIT_COMMITTER_DATE": f"@{int(when)} +0000",
        }
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def commit(self, message: str, files: dict[str, str | None], who: str, when: float) -> str:
        for name, text in files.items():
            path = self.path / name
            if text is None:
                self("rm", "-q", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            self("add", name)
        self("commit", "-q", "-m", message, who=who, when=when)
        return self("rev-parse", "HEAD")
