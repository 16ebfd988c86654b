"""Instructions per request (`make bench-instructions`): the gateway's own CPU work, counted.

Wall-clock CPU time per request on this shared 2-core machine moves by +-10% between runs of
the same code, more than most single changes to the hot path save. Instruction counts do
not: this runs the gateway under `valgrind --tool=callgrind` with counting off, warms it up,
counts exactly `--requests` requests sent from 16 keep-alive connections, and repeats to
~0.1%. Three gateways, each in front of the same simulator: as `make bench` runs it (master
key, ledger on), without the ledger, and with a virtual key of a team, both with rpm, tpm and
budgets (issue 3's keyed case). System calls and cache misses are not counted: confirm a
saving with `gateway_overhead.py` before believing its size in time.

Needs valgrind (`apt-get install valgrind`); about a minute per gateway.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gateway_keys import make_keys
from gateway_overhead import CHAT_PATH, REQUEST, start_gateway, start_sim
from lib import BenchError, fmt, say, stop_services, table

CONNECTIONS = 16
WARM_UP = 600
MASTER = "sk-bench-master-key-0123456789abcdef"
GATEWAYS = (("plain", ""), ("ledger off", "ledger: {enabled: false}"), ("keyed", ""))
REQUEST_BYTES = json.dumps(REQUEST).encode()


def send(port: int, key: str, count: int) -> None:
    """Exactly `count` chat completions over CONNECTIONS keep-alive connections; all must be 200."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    left, failed, lock = [count], [], threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            conn.request("POST", CHAT_PATH, REQUEST_BYTES, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failed.append(response.status)

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise BenchError(f"{len(failed)} of {count} requests failed (statuses {sorted(set(failed))})")


def counted(pid: int, out: Path, port: int, key: str, requests: int) -> float:
    """Instructions per request over `requests` requests, counting on only around them."""
    send(port, key, WARM_UP)
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
    send(port, key, requests)
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(100):
        dumps = sorted(out.parent.glob(out.name + ".*"))
        totals = (
            [line for line in dumps[-1].read_text().splitlines() if line.startswith("totals:")]
            if dumps
            else []
        )
        if totals:
            return int(totals[0].split()[1]) / requests
        time.sleep(0.1)
    raise BenchError(f"no callgrind dump in {out.parent}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests counted per gateway (default 2000)"
    )
    parser.add_argument("--sim-cmd", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    tmp = Path(tempfile.mkdtemp(prefix="xvckit-instr-"))
    services = []
    results: dict[str, float] = {}
    try:
        sim = start_sim(args, tmp)
        services.append(sim)
        for name, extra in GATEWAYS:
            out = tmp / f"callgrind-{name.replace(' ', '-')}.out"
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
            command += [sys.executable, "-m", "xvckit"]
            gateway = start_gateway(name.replace(" ", "-"), sim, tmp, MASTER, extra, command=command)
            services.append(gateway)
            key = make_keys(gateway, 1)[0] if name == "keyed" else MASTER
            results[name] = counted(gateway.pid, out, gateway.port, key, args.requests)
            say(f"  {name}: {results[name]:,.0f} instructions per request")
            gateway.stop()
            services.remove(gateway)
    finally:
        stop_services(services, tmp)
    plain = results["plain"]
    rows = [(name, fmt(ir, 0), f"{ir / plain:.2f}x") for name, ir in results.items()]
    say()
    say(f"Gateway instructions per request (callgrind): {args.requests} requests, {CONNECTIONS} connections")
    say(table(["gateway", "instructions/req", "vs plain"], rows, "lrr"))


if __name__ == "__main__":
    main()
