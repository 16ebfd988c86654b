"""What `xvckit up`, `gateway serve` and `config check` refuse or keep quiet at start, as a user
runs them (real processes): the gateway's own keys as provider keys, URLs with credentials,
and the master key or a database password on the terminal."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

# Variables of the user's shell that would change what the commands do.
_USER_VARIABLES = ("XVCKIT_MASTER_KEY", "XVCKIT_CONFIG", "XVCKIT_SECRET_KEY", "OPENAI_API_KEY")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _USER_VARIABLES}
    return {**env, "XDG_DATA_HOME": str(tmp_path / "xdg"), **extra}


def run_cli(tmp_path: Path, *args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    """A command that ends by itself (a refused start included)."""
    return subprocess.run(
        [sys.executable, "-m", "xvckit", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Running:
    """`xvckit up` or `gateway serve` as a process: its stdout read up to the line wanted,
    stopped with Ctrl-C as a user stops it."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xvckit", *args, "--log-level", "warning"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr = ""

    def read_until(self, prefix: str, count: int = 1) -> list[str]:
        """The lines printed so far once `count` of them start with `prefix`."""
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if sum(seen.startswith(prefix) for seen in self.lines) == count:
                return self.lines
        raise AssertionError(f"the process ended: {self.process.stderr.read()}")

    def exports(self) -> dict[str, str]:
        lines = self.read_until("export ", count=4)
        return dict(line.removeprefix("export ").partition("=")[::2] for line in lines if "=" in line)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.send_signal(signal.SIGINT)
        _, self.stderr = self.process.communicate(timeout=30)


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "xvckit.yaml"
    path.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path}/xvckit.db"}, **config}))
    return path


def provider_config(*keys: str, base_url: str = "http://127.0.0.1:9/v1") -> dict:
    return {
        "providers": [{"name": "openai", "kind": "openai", "base_url": base_url, "api_keys": list(keys)}],
        "models": [{"name": "gpt-4o", "provider": "openai"}],
    }


def test_the_template_reads_no_variable_that_up_tells_users_to_export(tmp_path):
    with Running(
        tmp_path, "up", "--port", "0", "--data-dir", str(tmp_path / "data"), env=cli_env(tmp_path)
    ) as up:
        exported = set(up.exports())
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= exported
    assert run_cli(tmp_path, "config", "init", "t.yaml", env=cli_env(tmp_path)).returncode == 0
    read = set(re.findall(r"api_keys: \[env:(\w+)\]", (tmp_path / "t.yaml").read_text()))
    assert read and not read & exported


SERVE = ("gateway", "serve", "--port", "0", "--log-level", "warning")


@pytest.mark.parametrize("command", [("config", "check"), SERVE])
@pytest.mark.parametrize("pasted", ["generated", "chosen"])
def test_a_key_of_the_gateway_is_refused_as_a_provider_key(tmp_path, command, pasted):
    """The user pasted `up`'s exports, then started with a config reading env:OPENAI_API_KEY:
    with the generated master key (xvc-...) or with a master key of their own choosing."""
    if pasted == "generated":
        master = "xvc-master-" + secrets.token_urlsafe(32)
        env = cli_env(tmp_path, OPENAI_API_KEY=master)
        write_config(tmp_path, provider_config("env:OPENAI_API_KEY"))
        (tmp_path / "master.key").write_text(master + "\n")  # beside the database: `up` made it
        # `config check` sees the prefix; the start reads the master key and knows it for one.
        what = "is an xvckit key (xvc-...)" if command[0] == "config" else "is this gateway's master key"
    else:
        master = "our-team-master-" + secrets.token_hex(16)
        env = cli_env(tmp_path, OPENAI_API_KEY=master, XVCKIT_MASTER_KEY=master)
        write_config(tmp_path, provider_config("env:OPENAI_API_KEY"))
        what = "is this gateway's master key"
    result = run_cli(tmp_path, *command, "--config", "xvckit.yaml", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith("xvckit: xvckit.yaml: providers[0].api_keys[0]: ") and what in message
    assert "\n" not in message and master not in message


@pytest.mark.parametrize("command", [("config", "check"), SERVE])
def test_a_stored_secret_holding_a_gateway_key_is_refused_at_start(tmp_path, command):
    """Both decrypt `secret:` keys first (`config check` opens the store for them)."""
    env = cli_env(tmp_path)
    write_config(tmp_path, provider_config("secret:openai-prod"))
    virtual = "xvc-" + secrets.token_urlsafe(32)
    stored = run_cli(
        tmp_path, "secrets", "set", "openai-prod", "--config", "xvckit.yaml", env=env, stdin=virtual
    )
    assert stored.returncode == 0, stored.stderr
    result = run_cli(tmp_path, *command, "--config", "xvckit.yaml", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "providers[0].api_keys[0]: is an xvckit key" in result.stderr and virtual not in result.stderr


def test_a_provider_key_of_its_own_is_accepted(tmp_path):
    env = cli_env(tmp_path, XVCKIT_UPSTREAM_OPENAI_KEY="sk-proj-" + secrets.token_hex(8))
    write_config(tmp_path, provider_config("env:XVCKIT_UPSTREAM_OPENAI_KEY"))
    result = run_cli(tmp_path, "config", "check", "--config", "xvckit.yaml", env=env)
    assert result.returncode == 0 and result.stdout.startswith("ok: xvckit.yaml: 1 provider(s)")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (
            "https://alice:pw-4f9a2c@api.example.com/v1",
            "must not hold user:password; put the key in api_keys or headers",
        ),
        ("https:///v1", "must be an http:// or https:// URL with a host"),
        ("http://api.example.com:99999/v1", "Port out of range 0-65535"),
    ],
)
def test_config_check_rejects_a_base_url_the_client_cannot_use(tmp_path, base_url, expected):
    write_config(tmp_path, provider_config("sk-test", base_url=base_url))
    result = run_cli(tmp_path, "config", "check", "--config", "xvckit.yaml", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"xvckit: xvckit.yaml: providers[0].base_url: {expected}\n"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # empty: no other test's secrets
def test_serve_prints_the_store_url_without_its_password(tmp_path, store_url):
    password = "pw-" + secrets.token_hex(8)
    url = store_url.replace("://postgres@", f"://postgres:{password}@")  # trust auth ignores it
    assert password in url
    config = tmp_path / "pg.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": url}}))
    env = cli_env(tmp_path, XVCKIT_MASTER_KEY="xvc-" + secrets.token_urlsafe(32))
    with Running(tmp_path, "gateway", "serve", "--port", "0", "--config", str(config), env=env) as serve:
        (line,) = serve.read_until("# xvckit gateway on ")
    assert "postgresql://postgres:***@127.0.0.1:5432/" in line
    assert password not in line and password not in serve.stderr


def test_up_refers_to_a_master_key_from_the_environment_without_printing_it(tmp_path):
    master = "our-team-master-" + secrets.token_hex(16)
    env = cli_env(tmp_path, XVCKIT_MASTER_KEY=master)
    data = tmp_path / "data"
    with Running(tmp_path, "up", "--port", "0", "--data-dir", str(data), env=env) as up:
        exports = up.exports()
        printed = "\n".join(up.lines)
        assert master not in printed and "the master key is $XVCKIT_MASTER_KEY (our-team...)" in printed
        assert exports["OPENAI_API_KEY"] == exports["ANTHROPIC_API_KEY"] == '"$XVCKIT_MASTER_KEY"'
        # The lines work as pasted into a shell where the variable is set.
        script = "\n".join(line for line in up.lines if line.startswith("export "))
        shell = subprocess.run(
            ["bash", "-c", f'{script}\nprintf "%s %s" "$OPENAI_BASE_URL" "$OPENAI_API_KEY"'],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        base_url, api_key = shell.stdout.split(" ")
        assert api_key == master
        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-latency-ms": "0"},
        )
        assert reply.choices[0].message.content
    assert master not in up.stderr and not (data / "master.key").exists()
