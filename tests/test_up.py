"""`xvckit up` as a user runs it: a real process, the built-in simulator, the export lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import openai

from test_ledger_crash import _free_port


def test_up_serves_offline_from_its_data_dir_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XVCKIT_MASTER_KEY", "XVCKIT_CONFIG")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # must not be used: --data-dir wins
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xvckit",
            "up",
            "--port",
            str(port),
            "--data-dir",
            "data",  # relative: the banner shows where it is
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exports = {}
    try:
        banner = process.stdout.readline().strip()
        data = tmp_path.resolve() / "data"
        assert (
            banner
            == f"# xvckit gateway on http://127.0.0.1:{port}, store {data}/xvckit.db, data folder {data}"
        )
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if len(exports) == 4:
                break
        assert exports["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        assert exports["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert exports["OPENAI_API_KEY"] == exports["ANTHROPIC_API_KEY"]
        client = openai.OpenAI(
            base_url=exports["OPENAI_BASE_URL"], api_key=exports["OPENAI_API_KEY"], max_retries=0
        )
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-latency-ms": "0"},
        )
        assert reply.choices[0].message.content
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert (tmp_path / "data" / "xvckit.db").exists() and (tmp_path / "data" / "master.key").exists()
    assert (tmp_path / "data" / "master.key").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "xdg").exists()
