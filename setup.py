"""The build: everything is in pyproject.toml; this compiles the modules it lists under
`tool.xvckit.compiled` with mypyc.

Admission runs for every request of a key with limits; compiled, it takes about a third
less CPU (docs/architecture.md, "Compiled admission"). The same source runs as plain
Python where the build has no C compiler or Python headers, or with XVCKIT_PURE_PYTHON=1.
"""

import os
import shutil
import sysconfig
import tomllib
from pathlib import Path

from setuptools import setup

PYPROJECT = Path(__file__).parent / "pyproject.toml"
COMPILED = tomllib.loads(PYPROJECT.read_text())["tool"]["xvckit"]["compiled"]


def can_compile() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.exists()


def remove_built() -> None:
    """An editable install builds in place: an earlier build's extensions would otherwise stay
    (imported instead of the source, or unused beside the new ones). Every extension under src/
    comes from this build."""
    for built in Path("src").rglob("*.so"):
        built.unlink()


def extensions() -> list:
    remove_built()
    if os.environ.get("XVCKIT_PURE_PYTHON") or not can_compile():
        print("xvckit: building without compiled modules (pure Python)")
        return []
    from mypyc.build import mypycify

    # Imports outside the compiled modules are typed Any: only these modules must type-check.
    return mypycify(["--follow-imports=skip", "--ignore-missing-imports", *COMPILED], opt_level="3")


setup(ext_modules=extensions())
