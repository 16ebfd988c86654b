"""A user's mistake on the command line is one line, `xvckit: ...`, and exit status 2, before
any work is done: a missing input file, an output folder that does not exist, a port that is
not one (a data folder that is a file: test_cli_data_dir). Real processes, as a user runs them."""

from __future__ import annotations

import pytest

from test_sec_start import cli_env, run_cli

CONVERSATION = '{"messages": [{"role": "user", "content": "hi"}]}'
NO_FOLDER = "the folder nodir does not exist"
NOT_A_PORT = "not a port (0 to 65535; 0: any free port)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("config", "check", "--config", "nope.yaml"), "nope.yaml: cannot read: No such file or directory"),
        (("keys", "list", "--config", "nope.yaml"), "nope.yaml: cannot read: No such file or directory"),
        (("context", "window", "--budget", "100", "--in", "nope.json"), "--in nope.json: no such file"),
        (("context", "window", "--budget", "100", "--in", "."), "--in .: is a folder, not a file"),
        (("config", "init", "nodir/x.yaml"), f"nodir/x.yaml: {NO_FOLDER}"),
        (
            ("audit", "export", "--out", "nodir/x.jsonl"),
            f"--out nodir/x.jsonl: {NO_FOLDER}",
        ),
        (("audit", "export", "--out", "."), "--out .: is a folder; name a file in it"),
        (
            ("context", "pack", "fix", "--out", "nodir/x.md"),
            f"--out nodir/x.md: {NO_FOLDER}",
        ),
        (
            ("context", "window", "--budget", "100", "--out", "nodir/x.json"),
            f"--out nodir/x.json: {NO_FOLDER}",
        ),
        (("up", "--port", "99999"), f"--port 99999: {NOT_A_PORT}"),
        (("gateway", "serve", "--port", "-1"), f"--port -1: {NOT_A_PORT}"),
        (("sim", "--port", "65536"), f"--port 65536: {NOT_A_PORT}"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_a_mistake_is_one_line_and_exit_2(tmp_path, args, expected):
    done = run_cli(tmp_path, *args, env=cli_env(tmp_path), stdin=CONVERSATION)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"xvckit: {expected}\n")
    assert not (tmp_path / "xdg").exists()  # refused before the store was touched
