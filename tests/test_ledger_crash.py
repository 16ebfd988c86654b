"""Kill the gateway with SIGKILL right after its clients got their answers: every one of
those answers is in the ledger, once."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import yaml

from test_gateway_e2e import HI, sim_providers
from xvckit.gateway.token_estimate import estimate_parts
from xvckit.providers.prices import DEFAULT as DEFAULT_PRICES
from xvckit.store import Store, local_dir
from xvckit.store.journal import journal_dir
from xvckit.store.keys import Limits, create_key
from xvckit.store.ledger import ledger_records

MASTER = "xvc-crash-test-master-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gateway(config_path, port: int) -> subprocess.Popen:
    env = {**os.environ, "XVCKIT_MASTER_KEY": MASTER}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xvckit",
            "gateway",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"gateway did not start: {process.stderr.read().decode()[-2000:]}")


def test_sigkill_loses_no_completed_request(sim, tmp_path, store_url):
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({**sim_providers(sim), "storage": {"url": store_url}}))
    port = _free_port()
    gateway = _start_gateway(config, port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0)

    def call(i: int) -> str:
        request_id = f"crash-{i}"
        if i % 3 == 0:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=HI, stream=True, extra_headers={"x-request-id": request_id}
            ):
                pass
        else:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=HI, extra_headers={"x-request-id": request_id}
            )
        return request_id

    try:
        with ThreadPoolExecutor(8) as pool:
            completed = set(pool.map(call, range(60)))
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
    restarted = _start_gateway(config, port)
    try:
        call(1000)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    store = Store.open(store_url)
    ids = [record.client_request_id for record in ledger_records(store)]
    store.close()
    assert len(ids) == len(set(ids)), "a record was written twice"
    assert set(ids) == completed | {"crash-1000"}


def _writer_pid(gateway: subprocess.Popen) -> int:
    """The gateway's ledger writer: its one child process."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{gateway.pid}/task/{gateway.pid}/children") as children:
            pids = children.read().split()
        if pids:
            return int(pids[0])
        time.sleep(0.05)
    pytest.fail("the gateway started no ledger writer")


def test_a_budget_read_after_a_crash_counts_the_rows_left_in_the_journal(sim, tmp_path, store_url):
    """Gateway and writer both killed with a request journaled but not committed: the next
    gateway's first budget read must wait for the new writer to commit it, or the key could
    spend its budget twice. The test holds the left segment locked until a second after the
    new gateway is up, so its writer cannot take the segment over before that read."""
    question = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 16}
    input_tokens, output_tokens = estimate_parts(question, "gpt-4o-mini")
    estimate = DEFAULT_PRICES.estimate_usd("gpt-4o-mini", input_tokens, output_tokens)
    store = Store.open(store_url)
    # one request, not two: what the first leaves pays for no output of a second (which would
    # otherwise be cut to what is left)
    limits = Limits(budget_usd=estimate, budget_period="day")
    key = create_key(store, "crash", "test", limits=limits)[1]
    store.close()
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({**sim_providers(sim), "storage": {"url": store_url}}))
    port = _free_port()
    gateway = _start_gateway(config, port)
    writer = _writer_pid(gateway)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    try:
        os.kill(writer, signal.SIGSTOP)  # the row stays in the journal
        client.chat.completions.create(**question)
    finally:
        os.kill(writer, signal.SIGKILL)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
    [left] = journal_dir(local_dir(store_url), store_url).glob("segment-*.jsonl")
    with open(left, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        restarted = _start_gateway(config, port)
        threading.Timer(1.0, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        try:
            with pytest.raises(openai.RateLimitError, match="budget exhausted"):
                client.chat.completions.create(**question)
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
