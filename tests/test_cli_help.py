"""CLI conventions: `--version`, `-h` as `--help` on every command, and help text without
Typer's raw tokens (`--json <bool>`, `{name}`, `<list[str]>`)."""

from __future__ import annotations

import re

import pytest
import typer

from test_cli_data_dir import xvckit
from xvckit import __version__
from xvckit.cli.app import app


def command_paths(group, path=()):
    """Every command and group, as the words that name it."""
    yield path
    for name, sub in getattr(group, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


ALL = list(command_paths(typer.main.get_command(app)))


def test_version(monkeypatch, capsys):
    assert xvckit(monkeypatch, capsys, "--version") == (0, f"{__version__}\n", "")


@pytest.mark.parametrize("path", ALL, ids=lambda path: " ".join(path) or "xvckit")
def test_every_command_takes_h_and_its_help_has_no_raw_tokens(monkeypatch, capsys, path):
    code, out, err = xvckit(monkeypatch, capsys, *path, "-h")
    assert (code, err) == (0, "") and out.startswith(f"Usage: xvckit {' '.join(path)}".rstrip())
    assert "-h, --help" in out
    assert not re.search(r"<bool>|\{\w+\}|<list\[", out), out


def test_an_argument_is_written_as_other_tools_write_it(monkeypatch, capsys):
    _, out, _ = xvckit(monkeypatch, capsys, "secrets", "set", "-h")
    assert out.startswith("Usage: xvckit secrets set [OPTIONS] NAME\n")  # no hidden stray values
    _, out, _ = xvckit(monkeypatch, capsys, "config", "init", "-h")
    assert out.startswith("Usage: xvckit config init [OPTIONS] [PATH]\n")
