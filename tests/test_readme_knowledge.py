"""The README's team-knowledge commands as a user pastes them, in order, in a fresh home folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_readme_first_hour import _shell_block


def test_team_knowledge_commands_work_as_pasted(tmp_path, tiktoken_encodings):
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XVCKIT_", "XDG_"))},
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    outputs = []
    for line in _shell_block("Team knowledge: prompts, knowledge base, MCP, project templates"):
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", line],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, (
            f"{line}\n{done.stdout}\n{done.stderr}"
        )
        outputs.append(done.stdout)
    rendered = next(json.loads(out) for out in outputs if out.startswith("{"))
    assert rendered["text"] == "Review this diff for bugs:\n- x = 1\n"
    assert "write-the-test-first" in outputs[-2]  # the search found the new project's entry
    assert "## kb/write-the-test-first" in (home / "pack.md").read_text()
