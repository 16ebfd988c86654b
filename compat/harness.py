"""What every driver shares. A driver is a module with a client's name, its version and a list of
cases; `run.py` starts it once with no argument (it prints what it has) and then once per case in
a process of its own, so that a client that hangs is killed by the case's timeout and one that
crashes fails only its case. Standard library only: drivers run in the clients' own venvs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

# The key and the base URLs are in the four variables `xvckit up` prints; this is for clients
# configured in a file of their own.
GATEWAY = os.environ.get("XVCKIT_COMPAT_URL", "")  # http://127.0.0.1:PORT, no path
OPENAI_URL = f"{GATEWAY}/v1"
CLIENTS = Path(__file__).resolve().parent / ".clients"
WORK = Path(os.environ.get("XVCKIT_COMPAT_WORK", "."))  # this case's own folder

# A case's docstring says what it exercises (the table's column); it returns what it saw, in a
# few words, and raises on a failure.
Case = Callable[[], str]


class CaseFailed(Exception):
    pass


def check(condition: object, reason: str) -> None:
    if not condition:
        raise CaseFailed(reason)


def version_of(distribution: str) -> str:
    return metadata.version(distribution)


def npm_version(package: str) -> str:
    manifest = CLIENTS / "npm" / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"]


def short(text: object, limit: int = 60) -> str:
    """A reply in a table cell: one line, cut."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run(argv: list[str], **env: str) -> str:
    """A command-line client run to its end; its stdout. What it printed goes to this case's log,
    and a non-zero exit fails the case with its last line."""
    done = subprocess.run(
        argv, env=os.environ | env, cwd=WORK, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    print(f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}", flush=True)
    last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
    check(done.returncode == 0, f"exit {done.returncode}: {last}")
    return done.stdout


def main(client: str, version: Callable[[], str], cases: list[Case], timeout_s: int = 180) -> None:
    """No argument: the client, its version, the cases (name, what it exercises) and their
    timeout as JSON. One argument: run that case and write its outcome to $XVCKIT_COMPAT_RESULT
    (stdout is the client's)."""
    by_name = {case.__name__: case for case in cases}
    if len(sys.argv) == 1:
        names = [[name, case.__doc__.strip()] for name, case in by_name.items()]
        print(json.dumps({"client": client, "version": version(), "cases": names, "timeout": timeout_s}))
        return
    try:
        outcome = {"ok": True, "detail": by_name[sys.argv[1]]()}
    except CaseFailed as exc:
        outcome = {"ok": False, "detail": str(exc)}
    except Exception as exc:  # the client's own error is the case's result
        outcome = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    Path(os.environ["XVCKIT_COMPAT_RESULT"]).write_text(json.dumps(outcome))
