"""`make compat`: real AI clients, each driven through `xvckit up` as a user would point it there.

Installs the clients once (install.py), starts `xvckit up` on a free port with a data folder of
its own (no provider configured: the built-in simulator answers), creates a member key, and runs
every case of every driver (drivers/*.py) in a process of its own with a timeout, with the four
variables `xvckit up` prints in its environment. Prints client | version | exercised | result as
a Markdown table and exits 1 if a case failed; below the table, each failure with the gateway's
access-log lines of its case. The run is kept in $TMPDIR/xvckit-compat/ (outside the repository,
which Claude Code, Codex and aider would otherwise take for the project they work on): the
gateway's log, and each case's folder (its HOME and working directory) with the client's output.

    python compat/run.py [--reinstall] [--only DRIVER ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import install

HERE = Path(__file__).resolve().parent
RUN = Path(tempfile.gettempdir()) / "xvckit-compat"
# driver module -> the venv it runs in (None: this Python, enough for drivers of npm clients)
DRIVERS = {
    "claude_code": None,
    "codex_cli": None,
    "aider_cli": "aider",
    "llm_cli": "sdk",
    "openai_sdk": "sdk",
    "anthropic_sdk": "sdk",
    "openai_agents_sdk": "sdk",
    "langchain_clients": "sdk",
    "litellm_sdk": "sdk",
}
XVCKIT = (sys.executable, "-m", "xvckit")
CASE_TIMEOUT_S = 180
START_TIMEOUT_S = 30
# passed on to the clients from this environment when set (tiktoken's files, so that no client
# tries to download them)
PASSED_ON = ("TIKTOKEN_CACHE_DIR", "LANG", "TERM")


@dataclass
class Result:
    client: str
    version: str
    exercised: str
    ok: bool
    detail: str
    log: list[str]  # the gateway's log lines while the case ran


class Gateway:
    """`xvckit up` as a process, its log in a file to read each case's lines from."""

    def __init__(self, folder: Path) -> None:
        self.log_path = folder / "gateway.log"
        self.data_dir = folder / "data"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [*XVCKIT, "up", "--port", "0", "--data-dir", str(self.data_dir)],
                cwd=folder,  # not one with an xvckit.yaml: the simulator answers
                env={k: v for k, v in os.environ.items() if not k.startswith("XVCKIT_")},
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        banner = self.process.stdout.readline()
        found = re.match(r"# xvckit gateway on (http://\S+),", banner)
        if not found:
            self.stop()
            raise SystemExit(f"xvckit up did not start: {banner!r}; see {self.log_path}")
        self.url = found.group(1)

    def create_key(self) -> str:
        done = subprocess.run(
            [*XVCKIT, "keys", "create", "--name", "compat", "--json", "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )
        return json.loads(done.stdout)[0]["key"]

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> list[str]:
        with open(self.log_path) as log:
            log.seek(offset)
            return log.read().splitlines()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def running_gateway(folder: Path):
    gateway = Gateway(folder)
    try:
        yield gateway
    finally:
        gateway.stop()


def client_env(gateway: Gateway, key: str) -> dict[str, str]:
    """What a user has after pasting `xvckit up`'s lines, with a member key, and nothing else."""
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    node = shutil.which("node")
    env |= {
        "PATH": os.pathsep.join(
            dict.fromkeys([*([str(Path(node).parent)] if node else []), "/usr/bin", "/bin"])
        ),
        "PYTHONPATH": str(HERE),
        "XVCKIT_COMPAT_URL": gateway.url,
        "OPENAI_BASE_URL": f"{gateway.url}/v1",
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": key,
    }
    return env


def python_for(driver: str) -> str:
    group = DRIVERS[driver]
    return sys.executable if group is None else str(install.python_of(group))


def run_driver(driver: str, gateway: Gateway, env: dict[str, str]) -> list[Result]:
    script = str(HERE / "drivers" / f"{driver}.py")
    listing = subprocess.run(
        [python_for(driver), script], env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT_S
    )
    if listing.returncode != 0:
        reason = (listing.stderr.strip().splitlines() or ["no output"])[-1]
        return [Result(driver, "?", "import", False, reason, [])]
    about = json.loads(listing.stdout.strip().splitlines()[-1])
    results = []
    for name, exercised in about["cases"]:
        folder = RUN / "cases" / f"{driver}.{name}"
        offset = gateway.log_size()
        started = time.monotonic()
        outcome = run_case([python_for(driver), script, name], env, folder, about["timeout"])
        seconds = time.monotonic() - started
        results.append(
            Result(
                about["client"],
                about["version"],
                exercised,
                outcome["ok"],
                f"{outcome['detail']} ({seconds:.0f} s)",
                gateway.log_since(offset),
            )
        )
        print(f"  {'pass' if outcome['ok'] else 'FAIL'}  {about['client']}: {exercised}", file=sys.stderr)
    return results


def run_case(argv: list[str], env: dict[str, str], folder: Path, timeout_s: int) -> dict:
    """One case's outcome, run in `folder` (its HOME too). Its whole process group is killed at
    the end (a CLI the driver started, and whatever that left running)."""
    folder.mkdir(parents=True)
    result = folder / "result.json"
    env = env | {"HOME": str(folder), "XVCKIT_COMPAT_WORK": str(folder), "XVCKIT_COMPAT_RESULT": str(result)}
    with open(folder / "output.log", "w") as output:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "detail": f"timed out after {timeout_s} s"}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if not result.exists():
        return {"ok": False, "detail": f"exit {code} without a result; see {folder / 'output.log'}"}
    return json.loads(result.read_text())


def table(results: list[Result]) -> str:
    """The Markdown table; a client and its version are written on its first row only."""
    rows = ["| client | version | exercised | result |", "|---|---|---|---|"]
    previous = None
    for result in results:
        named = "| | |" if result.client == previous else f"| {result.client} | {result.version} |"
        previous = result.client
        verdict = "pass" if result.ok else f"**fail**: {cell(result.detail, 120)}"
        rows.append(f"{named} {cell(result.exercised)} | {verdict} |")
    return "\n".join(rows)


def cell(text: str, limit: int = 200) -> str:
    line = " ".join(text.split()).replace("|", "\\|")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failures(results: list[Result]) -> str:
    parts = []
    for result in results:
        if not result.ok:
            access = [line for line in result.log if " xvckit.access " in line] or result.log
            parts.append(f"\n{result.client}: {result.exercised}\n  {result.detail}")
            parts.extend(f"  | {line}" for line in access[-12:])
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reinstall", action="store_true", help="install the newest clients again")
    parser.add_argument("--only", nargs="+", choices=list(DRIVERS), help="run these drivers only")
    args = parser.parse_args()
    try:
        install.ensure_all(args.reinstall, say=lambda line: print(line, file=sys.stderr))
    except install.InstallError as exc:
        print(f"compat: {exc}", file=sys.stderr)
        return 2
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir()
    results = []
    started = time.monotonic()
    with running_gateway(RUN) as gateway:
        env = client_env(gateway, gateway.create_key())
        for driver in args.only or DRIVERS:
            print(f"{driver} ...", file=sys.stderr)
            results += run_driver(driver, gateway, env)
    print(table(results))
    print(f"{len(results)} cases in {time.monotonic() - started:.0f} s", file=sys.stderr)
    failed = [result for result in results if not result.ok]
    if failed:
        print(
            f"\n{len(failed)} of {len(results)} cases failed (the run is kept in {RUN}):{failures(results)}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
