"""Gateway overhead benchmark (`make bench`).

In one run on this machine, wrk sends small non-streaming chat completions to the
simulator (`xvckit sim`) directly, through the xvckit gateway, and through LiteLLM's proxy,
at 1 and 16 connections, and prints what the gateways add as differences and ratios
against the direct path, then checks the targets of the gateway-overhead issue. It also
reads the gateway's RSS after 10k and after 100k requests. See bench/README.md.

This is a benchmark, not a test: it exits 1 only when something broke (a server did not
start, a run saw errors); targets that are missed print FAIL (exit 3 with --strict).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lib import (
    ROOT,
    WORK_DIR,
    BenchError,
    Response,
    Service,
    WrkResult,
    fmt,
    free_port,
    http_request,
    local_env,
    median_result,
    run_wrk,
    say,
    stop_services,
    table,
    wrk_path,
)

MODEL = "gpt-4o-mini"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
CHAT_PATH = "/v1/chat/completions"
SIM_KEY = "sim-key"
CONNECTIONS = (1, 16)
THREADS = {1: 1, 16: 2}
TARGETS = ("direct", "xvckit", "litellm")

# Pinned on purpose: litellm 1.82.7 and 1.82.8 on PyPI were malicious (March 2026 supply-chain
# compromise, removed since), and an unpinned install runs whatever is newest. 1.82.6 is the
# last release before that incident. Override with --litellm-spec.
LITELLM_SPEC = "litellm[proxy]==1.82.6"
LITELLM_VENV = WORK_DIR / "litellm-venv"

# Issue targets.
MAX_ADDED_P50_MS = 1.0
MIN_THROUGHPUT_VS_DIRECT = 0.5
MIN_THROUGHPUT_VS_LITELLM = 10.0
MAX_RSS_GROWTH = 0.10
RSS_MARKS = (10_000, 100_000)


@dataclass
class Target:
    name: str
    service: Service
    key: str
    runs: dict[int, list[WrkResult]] = field(default_factory=dict)
    rss_kib_after: int | None = None

    @property
    def url(self) -> str:
        return self.service.url + CHAT_PATH

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def result(self, connections: int) -> WrkResult:
        return median_result(self.runs[connections])


# --------------------------------------------------------------------------- set-up


def xvckit_exe() -> str:
    beside = Path(sys.executable).with_name("xvckit")
    found = str(beside) if beside.exists() else shutil.which("xvckit")
    if not found:
        raise BenchError("the xvckit command is not installed (pip install -e . in the project venv)")
    return found


def sim_argv(args: argparse.Namespace, port: int, extra: Sequence[str] = ()) -> list[str]:
    """`extra` options follow the defaults, so they override them (e.g. `--latency-ms 500`)."""
    if getattr(args, "sim_cmd", None):
        return shlex.split(args.sim_cmd.format(port=port, python=sys.executable, root=ROOT)) + list(extra)
    # The enterprise tier has no rate limit, so the simulator spends nothing on a limiter
    # and the direct baseline is as fast as it gets.
    argv = [xvckit_exe(), "sim", "--port", str(port), "--tier", "enterprise", "--latency-ms", "0"]
    return argv + list(extra)


def chat_ok(url: str, key: str) -> Response:
    """One chat completion; raises unless it is a 200 with an assistant message."""
    resp = http_request(
        "POST",
        url + CHAT_PATH,
        json.dumps(REQUEST).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    if resp.status != 200:
        raise BenchError(f"POST {url}{CHAT_PATH} answered {resp.status}: {resp.body[:500]!r}")
    try:
        content = resp.json()["choices"][0]["message"]["content"]  # type: ignore[index]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(f"POST {url}{CHAT_PATH}: not a chat completion: {resp.body[:500]!r}") from None
    if not isinstance(content, str) or not content:
        raise BenchError(f"POST {url}{CHAT_PATH}: empty message: {resp.body[:500]!r}")
    return resp


def get_ok(url: str) -> bool:
    return http_request("GET", url, timeout=5).status == 200


def start_checked(
    service: Service, what: str, ready_url: str | None, key: str, timeout: float, warm: bool = True
) -> None:
    """Wait for the service, then require a correct chat completion through it (unless `warm`
    is false: a rate-limited target must start its run with nothing counted against it)."""
    took = service.wait_ready((lambda: get_ok(ready_url)) if ready_url else None, timeout=timeout)
    if not warm:
        say(f"  {what} ready on {service.url} after {took:.1f}s (pid {service.pid}; no request sent)")
        return
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                chat_ok(service.url, key)
                break
            except (BenchError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    except (BenchError, OSError) as exc:
        raise service.fail(f"does not answer the benchmark request: {exc}") from None
    say(f"  {what} ready on {service.url} after {took:.1f}s (pid {service.pid})")


def start_sim(args: argparse.Namespace, tmp: Path, extra: Sequence[str] = (), name: str = "sim") -> Service:
    """The simulator; `extra`: more `xvckit sim` options (see `sim_argv`)."""
    port = free_port()
    argv = sim_argv(args, port, extra)
    say(f"starting simulator: {shlex.join(argv)}")
    env = local_env()
    env.pop("XVCKIT_SIM_API_KEY", None)  # it would restrict the keys the simulator accepts
    sim = Service.start(name, argv, port=port, log_dir=tmp, env=env)
    start_checked(sim, "simulator", None, SIM_KEY, timeout=30)
    return sim


def start_gateway(
    name: str,
    sim: Service,
    tmp: Path,
    key: str,
    extra_yaml: str = "",
    *,
    provider: str = "sim",
    provider_yaml: str = "",
    warm: bool = True,
    command: Sequence[str] = (),
) -> Service:
    """A gateway routing MODEL to `sim`. `extra_yaml` is appended to its config; `provider_yaml`
    goes into the provider's mapping (e.g. `rpm: 300`); `warm`: see `start_checked`; `command`:
    what runs `xvckit` (default the installed command; e.g. under valgrind)."""
    run_dir = tmp / name
    run_dir.mkdir()
    config = run_dir / "xvckit.yaml"
    more = f", {provider_yaml}" if provider_yaml else ""
    upstream = f"kind: openai, base_url: {sim.url}/v1, api_keys: [{SIM_KEY}]{more}"
    config.write_text(
        f"providers: [{{name: {provider}, {upstream}}}]\n"
        f"models: [{{name: {MODEL}, provider: {provider}}}]\n"
        f"storage: {{url: 'sqlite:///{run_dir}/xvckit.db'}}\n"
        + (extra_yaml.rstrip() + "\n" if extra_yaml else "")
    )
    port = free_port()
    argv = [*(command or [xvckit_exe()]), "gateway", "serve", "--config", str(config), "--port", str(port)]
    argv += ["--log-level", "warning"]
    env = local_env({"XVCKIT_MASTER_KEY": key})
    env.pop("XVCKIT_CONFIG", None)
    say(f"starting xvckit gateway ({name}): {shlex.join(argv)}")
    gateway = Service.start(name, argv, port=port, log_dir=tmp, env=env, cwd=run_dir)
    start_checked(
        gateway, "xvckit gateway", gateway.url + "/healthz", key, timeout=180 if command else 60, warm=warm
    )
    return gateway


def litellm_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_litellm(spec: str, venv: Path, allow_install: bool) -> tuple[Path | None, str]:
    """LiteLLM's CLI in its own venv, installing `spec` there when missing or another
    version. Returns (path or None, a note saying what happened)."""
    exe = venv / "bin" / "litellm"
    pinned = re.search(r"==\s*([\w.]+)", spec)
    have = litellm_version(venv)
    if exe.exists() and have and (pinned is None or pinned.group(1) == have):
        return exe, f"LiteLLM {have} from {venv.relative_to(ROOT)}"
    if not allow_install:
        return None, f"LiteLLM not installed in {venv.relative_to(ROOT)} and --no-install given"
    say(f"installing {spec} into {venv.relative_to(ROOT)} (once; about a minute) ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "litellm-install.log"
    try:
        with open(log, "w") as out:
            if not (venv / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out, stderr=out)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", spec],
                check=True,
                stdout=out,
                stderr=out,
                timeout=1800,
                env=local_env(),
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return None, f"LiteLLM skipped: installing {spec} failed ({exc}); see {log}"
    have = litellm_version(venv)
    if not exe.exists() or not have:
        return None, f"LiteLLM skipped: {spec} installed no litellm command; see {log}"
    # The malicious 1.82.8 hid its payload in a litellm_init.pth that runs on any start-up.
    suspicious = [p.name for p in venv.glob("lib/python*/site-packages/*.pth") if "litellm" in p.name.lower()]
    if suspicious:
        return None, f"LiteLLM skipped: unexpected start-up hooks {suspicious} in {venv}; not running it"
    return exe, f"LiteLLM {have} installed into {venv.relative_to(ROOT)}"


UVICORN_QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        # xvckit runs without an access log; so does LiteLLM here.
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}


def start_litellm(
    exe: Path,
    sim: Service,
    tmp: Path,
    key: str,
    timeout: float,
    *,
    name: str = "litellm",
    params_yaml: str = "",
    extra_yaml: str = "",
    warm: bool = True,
) -> Service:
    """LiteLLM's proxy routing MODEL to `sim`. `params_yaml`: more lines of the model's
    litellm_params (e.g. `rpm: 300`); `extra_yaml`: appended to the config; `warm`: see
    `start_checked`."""
    run_dir = tmp / name
    run_dir.mkdir()
    config = run_dir / "litellm.yaml"
    params = "".join(f"      {line.strip()}\n" for line in params_yaml.splitlines() if line.strip())
    model = (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {sim.url}/v1\n"
        f"      api_key: {SIM_KEY}\n"
    )
    settings = "litellm_settings:\n  telemetry: false\n"
    config.write_text(model + params + settings + (extra_yaml.rstrip() + "\n" if extra_yaml else ""))
    log_config = run_dir / "uvicorn-logging.json"
    log_config.write_text(json.dumps(UVICORN_QUIET_LOGGING))
    port = free_port()
    argv = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log_config", str(log_config), "--telemetry", "False"]
    env = local_env(
        {
            "LITELLM_MASTER_KEY": key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it fetches the cost map from GitHub at start-up
        }
    )
    for variable in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        env.pop(variable, None)  # no database, no cache: the proxy as `litellm --config` runs it
    say(f"starting LiteLLM proxy: {shlex.join(argv)}")
    proxy = Service.start(name, argv, port=port, log_dir=tmp, env=env, cwd=run_dir)
    start_checked(proxy, "LiteLLM proxy", proxy.url + "/health/liveliness", key, timeout=timeout, warm=warm)
    return proxy


# --------------------------------------------------------------------------- measuring


def wrk_checked(target: Target, body: Path, connections: int, seconds: int, label: str) -> WrkResult:
    cpu_before = target.service.cpu_seconds()
    result = run_wrk(
        target.url,
        connections=connections,
        threads=THREADS.get(connections, 2),
        duration_s=seconds,
        body_file=body,
        headers=target.headers,
    )
    if result.requests:
        cpu = target.service.cpu_seconds() - cpu_before
        result.server_cpu_us_per_request = round(cpu / result.requests * 1e6, 1)
    problems = result.problems()
    if problems:
        detail = ""
        try:
            probe = http_request("POST", target.url, body.read_bytes(), target.headers, timeout=30)
            detail = f"\none more request now answers {probe.status}: {probe.body[:500]!r}"
        except OSError as exc:
            detail = f"\none more request now fails: {exc}"
        raise BenchError(
            f"{label}: {', '.join(problems)} out of {result.requests} requests "
            f"(p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms){detail}\n"
            f"--- last lines of {target.service.log_path} ---\n{target.service.log_tail()}"
        )
    return result


def measure(targets: list[Target], body: Path, args: argparse.Namespace) -> None:
    for round_no in range(1, args.rounds + 1):
        for connections in CONNECTIONS:
            for target in targets:
                label = f"round {round_no}/{args.rounds}, {target.name}, {connections} connection(s)"
                if args.warmup > 0:
                    wrk_checked(target, body, connections, args.warmup, label + " (warm-up)")
                result = wrk_checked(target, body, connections, args.duration, label)
                target.runs.setdefault(connections, []).append(result)
                say(
                    f"  {label}: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"{result.rps:,.0f} req/s"
                )


def rss_growth(gateway: Service, target_key: str, body: Path) -> dict[str, object]:
    """Send requests at 16 connections in wrk runs of whole seconds, sized from the
    throughput seen so far, until each mark in RSS_MARKS is passed; read VmRSS there."""
    target = Target("xvckit-rss", gateway, target_key)
    samples = [{"requests": 0, "rss_kib": gateway.rss_kib()}]
    total = 0
    rps = 0.0
    for mark in RSS_MARKS:
        while total < mark:
            # The first run (2 s) calibrates: a fresh process may be faster or slower than the last.
            seconds = max(1, min(15, math.ceil((mark - total) * 1.03 / rps))) if rps else 2
            result = wrk_checked(target, body, 16, seconds, f"RSS run towards {mark:,} requests")
            total += result.requests
            rps = max(result.rps, 50.0)
        rss = gateway.rss_kib()
        samples.append({"requests": total, "rss_kib": rss})
        say(f"  gateway RSS after {total:,} requests: {rss / 1024:.1f} MiB")
    first, last = samples[1]["rss_kib"], samples[-1]["rss_kib"]
    return {
        "method": "fresh gateway process; wrk -t2 -c16 runs of whole seconds until the request count "
        "(from wrk's summaries) passes each mark; VmRSS from /proc/PID/status after each mark",
        "samples": samples,
        "growth": last / first - 1,  # type: ignore[operator]
    }


# --------------------------------------------------------------------------- report


def percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def ratio(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def report(
    targets: dict[str, Target], rss: dict[str, object] | None, notes: list[str], args: argparse.Namespace
) -> tuple[dict[str, object], bool]:
    direct = targets["direct"]
    d1, d16 = direct.result(1), direct.result(16)
    xv16 = targets["xvckit"].result(16)
    rows = []
    numbers: dict[str, object] = {}
    for name in TARGETS:
        if name not in targets:
            rows.append([name, *([None] * 9)])
            continue
        t = targets[name]
        r1, r16 = t.result(1), t.result(16)
        added_p50 = r1.p50_ms - d1.p50_ms
        added_p99 = r1.p99_ms - d1.p99_ms
        vs_direct = r16.rps / d16.rps if d16.rps else math.nan
        xvckit_over = xv16.rps / r16.rps if r16.rps else math.nan
        rows.append(
            [
                name,
                fmt(r1.p50_ms),
                fmt(r1.p99_ms),
                None if name == "direct" else fmt(added_p50, signed=True),
                None if name == "direct" else fmt(added_p99, signed=True),
                f"{r16.rps:,.0f}",
                percent(vs_direct),
                ratio(xvckit_over),
                fmt(r16.server_cpu_us_per_request, 0),
                fmt(t.rss_kib_after / 1024, 1) if t.rss_kib_after else None,
            ]
        )
        numbers[name] = {
            "c1": r1.to_dict(),
            "c16": r16.to_dict(),
            "c1_runs": [r.to_dict() for r in t.runs[1]],
            "c16_runs": [r.to_dict() for r in t.runs[16]],
            "added_p50_ms_c1": None if name == "direct" else added_p50,
            "added_p99_ms_c1": None if name == "direct" else added_p99,
            "throughput_vs_direct_c16": vs_direct,
            "xvckit_throughput_over_this_c16": xvckit_over,
            "rss_kib_after_runs": t.rss_kib_after,
        }

    headers = [
        "target",
        "p50 c1 ms",
        "p99 c1 ms",
        "+p50 c1 ms",
        "+p99 c1 ms",
        "req/s c16",
        "vs direct",
        "xvckit/this",
        "CPU us/req",
        "RSS MiB",
    ]
    runs = "1 run" if args.rounds == 1 else f"median of {args.rounds} runs"
    print(
        f"Gateway overhead: POST {CHAT_PATH} ({MODEL}, max_tokens 16, not streamed) to the simulator "
        "directly, through xvckit, through LiteLLM"
    )
    print(
        f"wrk -t1 -c1 (c1) and -t2 -c16 (c16); {args.warmup}s warm-up + {args.duration}s measured per run; "
        f"{runs}"
    )
    print(
        "+p50/+p99: added vs direct; CPU us/req: CPU time of the row's own server process per request "
        "at c16 (direct: the simulator; xvckit, litellm: the gateway alone); RSS: after all runs"
    )
    print()
    print(table(headers, rows))
    print()

    checks: list[tuple[str, str, str, str]] = []  # (status, what, measured, target)
    xv1 = targets["xvckit"].result(1)
    added = xv1.p50_ms - d1.p50_ms
    checks.append(
        (
            "PASS" if added <= MAX_ADDED_P50_MS else "FAIL",
            "xvckit added p50 at 1 connection",
            f"{added:+.3f} ms",
            f"<= {MAX_ADDED_P50_MS:g} ms",
        )
    )
    share = xv16.rps / d16.rps
    checks.append(
        (
            "PASS" if share >= MIN_THROUGHPUT_VS_DIRECT else "FAIL",
            "xvckit throughput at 16 connections vs direct",
            f"{share:.0%}",
            f">= {MIN_THROUGHPUT_VS_DIRECT:.0%}",
        )
    )
    if "litellm" in targets:
        over = xv16.rps / targets["litellm"].result(16).rps
        checks.append(
            (
                "PASS" if over >= MIN_THROUGHPUT_VS_LITELLM else "FAIL",
                "xvckit throughput at 16 connections vs LiteLLM",
                f"{over:.1f}x",
                f">= {MIN_THROUGHPUT_VS_LITELLM:g}x",
            )
        )
    else:
        checks.append(("SKIP", "xvckit throughput at 16 connections vs LiteLLM", "LiteLLM not run", ">= 10x"))
    if rss is not None:
        samples = rss["samples"]
        growth = float(rss["growth"])  # type: ignore[arg-type]
        first, last = samples[1], samples[-1]  # type: ignore[index]
        measured = (
            f"{growth:+.1%} ({first['rss_kib'] / 1024:.1f} MiB after {first['requests']:,} requests, "
            f"{last['rss_kib'] / 1024:.1f} MiB after {last['requests']:,})"
        )
        checks.append(
            (
                "PASS" if growth <= MAX_RSS_GROWTH else "FAIL",
                "xvckit RSS growth 10k -> 100k requests",
                measured,
                f"<= {MAX_RSS_GROWTH:.0%}",
            )
        )
    else:
        checks.append(("SKIP", "xvckit RSS growth 10k -> 100k requests", "--no-rss given", "<= 10%"))

    print("Targets:")
    print(table(["", "check", "measured", "target"], checks, align="llll"))
    for note in notes:
        print(f"note: {note}")

    failed = any(status == "FAIL" for status, *_ in checks)
    summary = {
        "results": numbers,
        "rss": rss,
        "checks": [dict(zip(("status", "check", "measured", "target"), c, strict=True)) for c in checks],
        "notes": notes,
    }
    return summary, failed


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=5, help="seconds of each measured wrk run (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run (default 2)")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over all targets; the table shows medians (default 3)",
    )
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument("--no-install", action="store_true", help="use LiteLLM only if already installed")
    p.add_argument("--litellm-spec", default=LITELLM_SPEC, help=f"what pip installs (default {LITELLM_SPEC})")
    p.add_argument("--no-rss", action="store_true", help="skip the 100k-request RSS measurement")
    p.add_argument(
        "--sim-cmd",
        help="run this instead of `xvckit sim` ({port}, {python}, {root} are filled in); for development",
    )
    p.add_argument(
        "--gateway-yaml",
        default="",
        metavar="YAML",
        help="append this to the gateway's config, e.g. 'ledger: {enabled: false}' (for diagnosis)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all numbers to FILE")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = p.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("--duration and --rounds must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_path()
    notes: list[str] = []
    litellm_exe = None
    if args.no_litellm:
        notes.append("LiteLLM left out (--no-litellm)")
    else:
        litellm_exe, note = ensure_litellm(args.litellm_spec, LITELLM_VENV, not args.no_install)
        say(note)
        notes.append(note)

    tmp = Path(tempfile.mkdtemp(prefix="xvckit-bench-"))
    master_key = "sk-bench-" + secrets.token_hex(16)  # LiteLLM wants "sk-" and 32+ characters
    body = tmp / "request.json"
    body.write_bytes(json.dumps(REQUEST, separators=(",", ":")).encode())
    services: list[Service] = []
    started = time.time()
    try:
        sim = start_sim(args, tmp)
        services.append(sim)
        gateway = start_gateway("xvckit", sim, tmp, master_key, args.gateway_yaml)
        services.append(gateway)
        targets = {
            "direct": Target("direct", sim, SIM_KEY),
            "xvckit": Target("xvckit", gateway, master_key),
        }
        if litellm_exe is not None:
            try:
                proxy = start_litellm(litellm_exe, sim, tmp, master_key, timeout=180)
            except BenchError as exc:
                say(f"LiteLLM skipped: {exc}")
                notes.append(f"LiteLLM skipped: it did not start or answer ({str(exc).splitlines()[0]})")
            else:
                services.append(proxy)
                targets["litellm"] = Target("litellm", proxy, master_key)

        say(f"measuring ({args.rounds} round(s); load average {os.getloadavg()[0]:.2f}) ...")
        order = [targets[name] for name in TARGETS if name in targets]
        measure(order, body, args)
        for target in order:
            target.rss_kib_after = target.service.rss_kib()

        rss = None
        if not args.no_rss:
            if "litellm" in targets:
                targets["litellm"].service.stop()  # give its CPU back for the long RSS run
            say("measuring gateway RSS over 100k requests on a fresh gateway ...")
            fresh = start_gateway("xvckit-rss", sim, tmp, master_key, args.gateway_yaml)
            services.append(fresh)
            rss = rss_growth(fresh, master_key, body)
            fresh.stop()

        summary, failed = report(targets, rss, notes, args)
        if args.gateway_yaml:
            print(f"note: gateway config had extra YAML: {args.gateway_yaml!r}")
        if args.json:
            summary["meta"] = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1),
                "machine": {
                    "cpus": os.cpu_count(),
                    "loadavg_at_end": os.getloadavg(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "request": REQUEST,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "targets": {
                    "max_added_p50_ms_c1": MAX_ADDED_P50_MS,
                    "min_throughput_vs_direct_c16": MIN_THROUGHPUT_VS_DIRECT,
                    "min_throughput_vs_litellm_c16": MIN_THROUGHPUT_VS_LITELLM,
                    "max_rss_growth_10k_100k": MAX_RSS_GROWTH,
                },
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
            say(f"wrote {args.json}")
        return 3 if failed and args.strict else 0
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_services(services, tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
