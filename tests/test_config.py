"""Configuration: defaults, env: secrets, and errors that name the field."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xvckit.config import ConfigError, from_mapping, load

BASE = {
    "providers": [
        {
            "name": "openai",
            "kind": "openai",
            "base_url": "https://api.openai.com/v1/",
            "api_keys": ["env:T_KEY"],
        }
    ],
    "models": [{"name": "gpt-4o", "provider": "openai"}, {"name": "claude-*", "provider": "openai"}],
}


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XVCKIT_CONFIG", raising=False)
    config = load()
    assert config.gateway.port == 4141 and config.gateway.host == "127.0.0.1"
    assert config.providers == [] and config.storage.url.startswith("sqlite:///")


def test_env_references_resolve_and_stay_secret(monkeypatch):
    monkeypatch.setenv("T_KEY", "sk-secret-value")
    config = from_mapping(BASE)
    provider = config.providers[0]
    assert provider.api_keys[0].get_secret_value() == "sk-secret-value"
    assert "sk-secret-value" not in repr(config)
    assert provider.base_url == "https://api.openai.com/v1"


def test_missing_env_variable_names_the_field(monkeypatch):
    monkeypatch.delenv("T_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"providers\[0\]\.api_keys\[0\]: environment variable T_KEY"):
        from_mapping(BASE)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"providers": [{"name": "x", "kind": "azure", "base_url": "http://h"}]}, r"providers\[0\]\.kind"),
        (
            {"providers": [{"name": "x", "kind": "openai", "base_url": "ftp://h"}]},
            r"providers\[0\]\.base_url",
        ),
        ({"gateway": {"port": 99999}}, r"gateway\.port"),
        ({"gateway": {"prot": 1}}, r"gateway\.prot: Extra inputs"),
        ({"models": [{"name": "m", "provider": "nope"}]}, r"models\[0\]\.provider: unknown provider 'nope'"),
        ({"storage": {"url": "mysql://x"}}, r"storage\.url"),
    ],
)
def test_errors_name_the_field_path(change, expected):
    with pytest.raises(ConfigError, match=expected):
        from_mapping(change)


def test_yaml_syntax_error_gives_line(tmp_path):
    path = tmp_path / "xvckit.yaml"
    path.write_text("gateway:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"xvckit.yaml:\d+:\d+: not valid YAML"):
        load(path)


def test_master_key_from_environment(monkeypatch):
    monkeypatch.setenv("XVCKIT_MASTER_KEY", "mk-0123456789abcdef0123456789abcdef")
    assert from_mapping({}).admin.master_key.get_secret_value() == "mk-0123456789abcdef0123456789abcdef"


def test_config_init_writes_a_valid_example(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from xvckit.cli import app

    monkeypatch.setenv("XVCKIT_UPSTREAM_OPENAI_KEY", "sk-a")
    monkeypatch.setenv("XVCKIT_UPSTREAM_ANTHROPIC_KEY", "sk-b")
    path = tmp_path / "xvckit.yaml"
    runner = CliRunner()
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 provider(s)" in result.output
    assert "sk-a" not in result.output
    again = runner.invoke(app, ["config", "init", str(path)])
    assert again.exit_code != 0


def test_the_default_store_lives_in_the_xdg_data_dir(tmp_path):
    code = "from xvckit.config import from_mapping; print(from_mapping({}).storage.url)"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"sqlite:///{tmp_path}/xvckit/xvckit.db"
