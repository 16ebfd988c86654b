"""A pytest plugin (`-p pure_python`): the modules setup.py compiles are imported from their
Python source instead, as they run where nothing was compiled."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

_PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
COMPILED = tuple(
    path.removeprefix("src/").removesuffix(".py").replace("/", ".")
    for path in tomllib.loads(_PYPROJECT.read_text())["tool"]["xvckit"]["compiled"]
)


class SourceFinder:
    @staticmethod
    def find_spec(name, path, target=None):
        if name not in COMPILED or not path:
            return None
        source = Path(next(iter(path))) / f"{name.rpartition('.')[2]}.py"
        return importlib.util.spec_from_file_location(name, source)


sys.meta_path.insert(0, SourceFinder)


def pytest_sessionstart(session) -> None:
    for name in COMPILED:
        module = importlib.import_module(name)
        assert module.__file__.endswith(".py"), f"{name} still loads from {module.__file__}"
