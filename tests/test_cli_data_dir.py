"""The data folder: `--data-dir` and `XVCKIT_DATA_DIR` on every command that opens the store,
how they meet `storage.url`, and `XDG_DATA_HOME` read when used, not at import."""

from __future__ import annotations

import sys

import pytest
import typer
import yaml

from test_sec_start import cli_env, run_cli
from xvckit.cli.app import app, main
from xvckit.config import from_mapping, load
from xvckit.store import Store
from xvckit.store.secrets import SecretBox

# Commands that read the configuration for settings of their own, never the store.
WITHOUT_STORE = {"context pack", "context stats", "batch run", "batch resume", "review"}

# One command of each that opens the store (doctor: only `history` and `--save` do).
STORE_COMMANDS = [
    ("keys", "list"),
    ("teams", "list"),
    ("usage",),
    ("audit", "list"),
    ("audit", "verify"),
    ("secrets", "list"),
    ("db", "upgrade"),
    ("db", "current"),
    ("doctor", "history"),
]


@pytest.fixture(autouse=True)
def own_xdg(monkeypatch, tmp_path):
    """The default data folder of each test its own, to see that it stays unused."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def xvckit(monkeypatch, capsys, *args: str, **env: str) -> tuple[int, str, str]:
    """`xvckit ARGS` in this process, through the entry point users run (exit status, out, err)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["xvckit", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code or 0, out, err


def leaf_commands(group, path=()):
    for name, sub in getattr(group, "commands", {}).items():
        yield from leaf_commands(sub, (*path, name))
    if path and (not hasattr(group, "commands") or group.invoke_without_command):
        yield " ".join(path), group


def test_every_command_with_a_configuration_takes_the_data_dir():
    """Each command that opens the store (all that take --config but the context ones) takes
    --data-dir, `up` included: a new command that forgets it fails here."""
    commands = dict(leaf_commands(typer.main.get_command(app)))
    with_config = {name for name, cmd in commands.items() if any("--config" in p.opts for p in cmd.params)}
    with_data_dir = {
        name for name, cmd in commands.items() if any("--data-dir" in p.opts for p in cmd.params)
    }
    assert with_config - WITHOUT_STORE == with_data_dir
    assert {"up", "gateway serve", "keys create", "usage", "doctor", "doctor history"} <= with_data_dir


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("given", ["option", "environment"])
def test_the_store_is_made_in_the_data_dir(monkeypatch, capsys, tmp_path, args, given):
    folder = tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    if given == "option":
        code, _, err = xvckit(monkeypatch, capsys, *args, "--data-dir", "data")
    else:
        code, _, err = xvckit(monkeypatch, capsys, *args, XVCKIT_DATA_DIR=str(folder))
    assert code == 0, err
    assert (folder / "xvckit.db").is_file()
    assert not (tmp_path / "xdg").exists()


def test_the_option_wins_over_the_environment_and_over_a_sqlite_url(monkeypatch, capsys, tmp_path):
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path}/elsewhere/x.db"}}))
    env = {"XVCKIT_DATA_DIR": str(tmp_path / "env")}
    args = ("teams", "create", "platform", "--config", str(config))
    assert xvckit(monkeypatch, capsys, *args, "--data-dir", str(tmp_path / "flag"), **env)[0] == 0
    assert (tmp_path / "flag" / "xvckit.db").is_file() and (tmp_path / "flag" / "secret.key").is_file()
    assert not (tmp_path / "env").exists() and not (tmp_path / "elsewhere").exists()
    # Without the option, the variable wins over the file: a store of its own, no team yet.
    code, out, _ = xvckit(monkeypatch, capsys, "teams", "list", "--config", str(config), "--json", **env)
    assert code == 0 and out.strip() == "[]" and (tmp_path / "env" / "xvckit.db").is_file()
    # Neither: the file's store.
    monkeypatch.delenv("XVCKIT_DATA_DIR")
    assert load(config).storage.url == f"sqlite:///{tmp_path}/elsewhere/x.db"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_postgresql_store_stays_and_its_local_files_go_to_the_data_dir(tmp_path, store_url):
    config = tmp_path / "pg.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": store_url}}))
    loaded = load(config, data_dir=tmp_path / "data")
    assert loaded.storage.url == store_url and loaded.storage.data_dir == tmp_path / "data"
    store = Store.configured(loaded)
    try:
        assert SecretBox.for_store(store).source == str(tmp_path / "data" / "secret.key")
    finally:
        store.close()
    assert not (tmp_path / "xdg").exists()


def test_xdg_data_home_is_read_when_used_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "later"))
    storage = from_mapping({}).storage
    assert storage.url == f"sqlite:///{tmp_path}/later/xvckit/xvckit.db"
    assert storage.data_dir == tmp_path / "later" / "xvckit"


def test_config_init_honours_xdg_data_home(tmp_path):
    env = cli_env(tmp_path)  # XDG_DATA_HOME=tmp_path/xdg
    assert run_cli(tmp_path, "config", "init", env=env).returncode == 0
    env["XVCKIT_UPSTREAM_OPENAI_KEY"] = env["XVCKIT_UPSTREAM_ANTHROPIC_KEY"] = "sk-upstream-key"
    checked = run_cli(tmp_path, "config", "check", "--config", "xvckit.yaml", env=env)
    assert checked.returncode == 0, checked.stderr
    folder = tmp_path / "xdg" / "xvckit"
    assert checked.stdout.strip().endswith(f"store {folder}/xvckit.db, data folder {folder}")


def test_without_xdg_data_home_the_folder_is_under_home_written_out(tmp_path):
    env = cli_env(tmp_path, HOME=str(tmp_path / "home"))
    del env["XDG_DATA_HOME"]
    (tmp_path / "xvckit.yaml").write_text("{}\n")
    checked = run_cli(tmp_path, "config", "check", "--config", "xvckit.yaml", env=env)
    folder = tmp_path / "home" / ".local" / "share" / "xvckit"
    assert checked.stdout.strip().endswith(f"store {folder}/xvckit.db, data folder {folder}"), checked.stderr


@pytest.mark.parametrize(
    ("option", "env", "named"),
    [
        (["--data-dir", "afile"], {}, "--data-dir afile"),
        (["--data-dir", "afile/sub"], {}, "--data-dir afile/sub"),
        ([], {"XVCKIT_DATA_DIR": "afile"}, "XVCKIT_DATA_DIR=afile"),
        ([], {"XDG_DATA_HOME": "{tmp}/afile"}, "XDG_DATA_HOME={tmp}/afile"),
    ],
    ids=["option", "option-below", "environment", "xdg"],
)
def test_a_data_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path, option, env, named):
    (tmp_path / "afile").write_text("not a folder")
    env = cli_env(tmp_path, **{k: v.format(tmp=tmp_path) for k, v in env.items()})
    done = run_cli(tmp_path, "keys", "list", *option, env=env)
    expected = f"xvckit: {named.format(tmp=tmp_path)}: {tmp_path}/afile is a file, not a folder\n"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected)
