"""Configuration: defaults, env: secrets, and errors that name the field."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

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


# --- `config check`: what the file refers to, every problem on a line of its own ----------------


def check(tmp_path, config: dict, **env: str):
    """`xvckit config check` on `config` as a user runs it (the store beside it)."""
    from test_sec_start import cli_env, run_cli

    config = {"storage": {"url": f"sqlite:///{tmp_path}/xvckit.db"}, **config}
    (tmp_path / "xvckit.yaml").write_text(yaml.safe_dump(config))
    return run_cli(tmp_path, "config", "check", "--config", "xvckit.yaml", env=cli_env(tmp_path, **env))


def provider(name: str, *keys: str, base_url: str = "http://127.0.0.1:9/v1") -> dict:
    return {"name": name, "kind": "openai", "base_url": base_url, "api_keys": list(keys)}


def test_config_check_lists_every_problem_on_a_line_of_its_own(tmp_path):
    done = check(
        tmp_path,
        {
            "providers": [
                provider("a", base_url="https://alice:pw-4f9a2c@api.example.com/v1"),
                provider("b", base_url="not a url"),
                {"name": "c", "kind": "azure", "base_url": "http://h"},
            ],
            "gateway": {"port": 99999},
        },
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "xvckit: xvckit.yaml: gateway.port: Input should be less than or equal to 65535",
        "xvckit: xvckit.yaml: providers[0].base_url: must not hold user:password; put the key in api_keys "
        "or headers",
        "xvckit: xvckit.yaml: providers[1].base_url: must be an http:// or https:// URL with a host",
        "xvckit: xvckit.yaml: providers[2].kind: Input should be 'openai' or 'anthropic'",
    ]
    assert "pw-4f9a2c" not in done.stderr


def test_config_check_lists_every_broken_reference(tmp_path):
    routes = [
        {"name": "a", "provider": "nope", "fallbacks": ["missing"]},
        {"name": "b", "provider": "other"},
    ]
    done = check(tmp_path, {"providers": [provider("p", "sk-x")], "models": routes})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "xvckit: xvckit.yaml: models[0].fallbacks[0]: no model route matches 'missing'",
        "xvckit: xvckit.yaml: models[0].provider: unknown provider 'nope' (known: p)",
        "xvckit: xvckit.yaml: models[1].provider: unknown provider 'other' (known: p)",
    ]


def test_config_check_resolves_secret_references(tmp_path):
    from test_sec_start import cli_env, run_cli

    check(tmp_path, {})  # writes xvckit.yaml with the store beside it
    args = ("secrets", "set", "openai-prod", "--config", "xvckit.yaml")
    stored = run_cli(tmp_path, *args, env=cli_env(tmp_path), stdin="sk-x")
    assert stored.returncode == 0, stored.stderr
    keys = ["secret:openai-prod", "secret:openai-typo", "sk-literal", "secret:gone"]
    done = check(tmp_path, {"providers": [provider("openai", *keys)]})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"xvckit: xvckit.yaml: providers[0].api_keys[{i}]: no secret named '{name}' in the store "
        f"(add it with: xvckit secrets set {name})"
        for i, name in ((1, "openai-typo"), (3, "gone"))
    ]
    done = check(tmp_path, {"providers": [provider("openai", "secret:openai-prod")]})
    assert done.returncode == 0 and done.stdout.startswith("ok: xvckit.yaml: 1 provider(s)"), done.stderr


def test_config_check_names_unknown_doctor_thresholds(tmp_path):
    thresholds = {"network.latency": {"optimal": 20}, "network.latencyy": {"optimal": 20}, "nope": {}}
    done = check(tmp_path, {"doctor": {"thresholds": thresholds}})
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert [line.split(" (known:")[0] for line in lines] == [
        "xvckit: xvckit.yaml: doctor.thresholds.network.latencyy: no such threshold",
        "xvckit: xvckit.yaml: doctor.thresholds.nope: no such threshold",
    ]
    assert "network.latency" in lines[0]  # the known ids are listed
    assert check(tmp_path, {"doctor": {"thresholds": {"network.latency": {"optimal": 20}}}}).returncode == 0


# --- the master key: at least 32 characters wherever it comes from ------------------------------


SHORT = "xvc-master-short-key"  # 20 characters


def test_a_short_master_key_is_refused_from_the_environment(tmp_path):
    done = check(tmp_path, {}, XVCKIT_MASTER_KEY=SHORT)
    assert done.returncode == 2 and done.stderr.startswith(
        "xvckit: XVCKIT_MASTER_KEY: too short (20 characters; at least 32)"
    )
    assert SHORT not in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_short_master_key_is_refused_from_the_file(tmp_path):
    done = check(tmp_path, {"admin": {"master_key": SHORT}})
    assert done.returncode == 2
    assert done.stderr.startswith(
        "xvckit: xvckit.yaml: admin.master_key: too short (20 characters; at least 32)"
    )
    assert SHORT not in done.stderr
    assert check(tmp_path, {"admin": {"master_key": SHORT + "-0123456789ab"}}).returncode == 0


def test_a_short_master_key_file_is_refused_at_start(tmp_path):
    from test_sec_start import cli_env, run_cli

    data = tmp_path / "data"
    data.mkdir()
    (data / "master.key").write_text(SHORT + "\n")
    done = run_cli(tmp_path, "up", "--port", "0", "--data-dir", str(data), env=cli_env(tmp_path))
    assert done.returncode == 2 and SHORT not in done.stderr
    assert done.stderr.startswith(f"xvckit: {data}/master.key: too short (20 characters; at least 32)")
