"""The README's commands as a new user pastes them: in order, in a fresh home folder, before
any gateway has started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _shell_block(section: str) -> list[str]:
    """The command lines of the first ```sh block under a README heading, comments removed."""
    text = README.read_text()
    body = text[text.index(f"## {section}\n") :]
    block = re.search(r"```sh\n(.*?)```", body, re.S).group(1)
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_team_keys_budgets_and_usage_commands_work_on_a_fresh_data_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XVCKIT_", "XDG_"))},
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "XVCKIT_UPSTREAM_OPENAI_KEY": "sk-provider-key-for-the-readme-test",
    }
    key_id = None
    for line in _shell_block("Team keys, budgets and usage"):
        if key_id:
            line = line.replace("KEY_ID", key_id)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", line],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        if "keys create" in line:  # KEY_ID: the newest key (the first, alice, gets revoked)
            key_id = re.search(r"\bkey_[0-9a-f]{12}\b", done.stdout).group(0)
    assert (home / ".local/share/xvckit/xvckit.db").is_file()
