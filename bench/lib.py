"""Small helpers shared by the benchmarks in bench/.

Servers in subprocesses (start, wait until they answer, read their RSS, stop), wrk runs
parsed into numbers, one-off HTTP requests, and aligned plain-text tables. Standard
library only, so a benchmark runs with any interpreter that has the project installed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"  # gitignored: venvs and scratch files of the benchmarks
WRK_SCRIPT = BENCH_DIR / "wrk_json.lua"


class BenchError(RuntimeError):
    """A benchmark cannot go on (a server did not start, a run had errors, ...)."""


def stop_services(services: Sequence[Service], tmp: Path, keep: bool = False) -> None:
    """Stop what a benchmark started, last first, then keep or remove its work folder."""
    for service in reversed(services):
        service.stop()
    if keep:
        say(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def say(message: str = "") -> None:
    """Progress on stderr, so stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual small race is acceptable here)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def local_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with loopback traffic kept away from any HTTP proxy."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        current = env.get(name, "")
        env[name] = ",".join(part for part in (current, "127.0.0.1,localhost") if part)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request over a fresh connection, never through a proxy (unlike urllib)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc/PID/status (VmRSS, in KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid} (a zombie?)")


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (from /proc/PID/task/*/children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    todo.append(int(child))
    return found


def tree_rss_kib(pid: int) -> int:
    """RSS of a process plus all its descendants (shared pages are counted more than once)."""
    total = 0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError, BenchError):
            total += rss_kib(each)
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, all its threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process plus its live descendants."""
    total = 0.0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):
            total += cpu_seconds(each)
    return total


@dataclass
class Service:
    """A server in its own process group; output goes to a log file in `log_dir`."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    port: int = 0

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log_dir: Path,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log_path = log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else local_env(),
                cwd=cwd,
                start_new_session=True,  # its own process group: stop() ends its children too
            )
        return cls(name, list(argv), log_path, proc, host, port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, why: str) -> BenchError:
        return BenchError(f"{self.name}: {why}\n--- last lines of {self.log_path} ---\n{self.log_tail()}")

    def wait_ready(
        self,
        check: Callable[[], bool] | None = None,
        timeout: float = 60.0,
        interval: float = 0.1,
    ) -> float:
        """Wait until the port accepts connections and `check()` (if given) returns true.

        Returns the seconds it took; raises with the log's tail if the process exits or the
        time runs out. Exceptions from `check` count as "not yet".
        """
        started = time.monotonic()
        deadline = started + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if not self.running():
                raise self.fail(f"exited with status {self.proc.returncode} while starting")
            if port_open(self.host, self.port):
                if check is None:
                    return time.monotonic() - started
                try:
                    if check():
                        return time.monotonic() - started
                    last_error = "check returned false"
                except Exception as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(interval)
        raise self.fail(f"not ready after {timeout:.0f}s ({last_error or 'port closed'})")

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, then SIGKILL if it is still there after `timeout`."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """One wrk run. Latencies in milliseconds."""

    connections: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    # CPU time the server under test used during the run, per request (set by the caller).
    server_cpu_us_per_request: float | None = None

    @property
    def failed_requests(self) -> int:
        return sum(self.errors.values())

    def problems(self) -> list[str]:
        labels = {
            "status": "responses with status >= 400",
            "connect": "connect errors",
            "read": "read errors",
            "write": "write errors",
            "timeout": "timeouts",
        }
        return [f"{count} {labels.get(kind, kind)}" for kind, count in self.errors.items() if count]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def run_wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    duration_s: int,
    method: str = "POST",
    body_file: Path | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: int = 10,
    script: Path = WRK_SCRIPT,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    """Run wrk with bench/wrk_json.lua and parse the line its done() hook prints.

    wrk takes whole seconds only; `threads` is capped at `connections` as wrk requires.
    """
    threads = max(1, min(threads, connections))
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, int(duration_s))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
        "--",
        method,
        str(body_file) if body_file else "-",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_s + timeout_s + 30,
        env=env and {**os.environ, **env},
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    lat = data["latency_us"]
    seconds = data["duration_us"] / 1e6
    return WrkResult(
        connections=connections,
        threads=threads,
        duration_s=round(seconds, 3),
        requests=data["requests"],
        rps=round(data["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=round(lat["mean"] / 1000, 3),
        max_ms=lat["max"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
    )


def median_result(results: Sequence[WrkResult]) -> WrkResult:
    """Per-field medians over repeated runs (requests and errors are summed)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    errors: dict[str, int] = {}
    for each in results:
        for kind, count in each.errors.items():
            errors[kind] = errors.get(kind, 0) + count

    def med(name: str) -> float:
        return statistics.median(getattr(r, name) for r in results)

    cpu = [r.server_cpu_us_per_request for r in results if r.server_cpu_us_per_request is not None]

    return WrkResult(
        connections=first.connections,
        threads=first.threads,
        duration_s=round(sum(r.duration_s for r in results), 3),
        requests=sum(r.requests for r in results),
        rps=round(med("rps"), 1),
        p50_ms=med("p50_ms"),
        p90_ms=med("p90_ms"),
        p99_ms=med("p99_ms"),
        mean_ms=round(med("mean_ms"), 3),
        max_ms=max(r.max_ms for r in results),
        errors=errors,
        server_cpu_us_per_request=statistics.median(cpu) if cpu else None,
    )


# --------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """Aligned plain-text table. `align` has one letter per column, l or r (default:
    first column left, the rest right). None prints as '-'."""
    text_rows = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        out = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in text_rows)])


def fmt(value: float | None, digits: int = 2, suffix: str = "", signed: bool = False) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return f"{value:+.{digits}f}{suffix}" if signed else f"{value:.{digits}f}{suffix}"
