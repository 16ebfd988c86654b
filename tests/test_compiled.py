"""setup.py compiles admission with mypyc where the build can. The suite runs against what
was built; these check that it is built from the current source, and run the admission tests
once more on the Python source, which is what runs where nothing was compiled."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pure_python import COMPILED

TESTS = Path(__file__).parent


def compiled(name: str) -> Path | None:
    """The extension a module loads from; None when it runs from its source."""
    path = Path(importlib.import_module(name).__file__)
    return None if path.suffix == ".py" else path


def test_the_compiled_modules_are_built_from_the_current_source():
    built = {name: compiled(name) for name in COMPILED}
    if not any(built.values()):
        pytest.skip("admission runs as plain Python here (no compiler at install, or XVCKIT_PURE_PYTHON)")
    for name, extension in built.items():
        assert extension is not None, f"{name} is not compiled while the others are: reinstall (make)"
        source = extension.parent / f"{name.rpartition('.')[2]}.py"
        assert extension.stat().st_mtime >= source.stat().st_mtime, (
            f"{extension.name} is older than {source.name}: rebuild it (make, or pip install -e .)"
        )


def test_the_compiled_modules_pass_their_tests_as_plain_python_too():
    if not any(compiled(name) for name in COMPILED):
        pytest.skip("admission already runs as plain Python in this suite")
    paths = [str(TESTS), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    files = [str(TESTS / "test_window_log.py"), str(TESTS / "test_admission.py")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "pure_python", "-p", "no:cacheprovider", *files],
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS.parent,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
