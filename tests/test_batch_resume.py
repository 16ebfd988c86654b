"""A batch run stopped halfway: killed (SIGKILL), interrupted (Ctrl-C), cancelled from another
shell; then run again. The CLI runs as a real process against a real gateway and `xvckit sim`,
whose statistics count what reached the provider."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from test_batch import SUMMARIZE, batch
from test_gateway_e2e import sim_providers
from test_sec_start import cli_env
from xvckit.batch import runner, runs
from xvckit.config import load

ITEMS = 20
LATENCY_MS = 300  # each answer takes this long: a run of 20 at 2 in flight lasts about 3 s, long
# enough to kill it halfway, or start a second process beside it, on a loaded machine
DEADLINE_S = 30


@pytest.fixture(scope="module")
def slow_gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000, latency_ms=LATENCY_MS)
    server = make_module_gateway(sim_providers(sim))
    server.sim = sim
    return server


@pytest.fixture
def gw(slow_gw):
    slow_gw.sim.reset()
    return slow_gw


@pytest.fixture
def project(tmp_path, request, tiktoken_encodings):
    """ITEMS source files whose text is the test's own, so no other test's request matches."""
    (tmp_path / "src").mkdir()
    for n in range(ITEMS):
        (tmp_path / "src" / f"m{n:02}.py").write_text(f"# {request.node.name}\nvalue = {n}\n")
    (tmp_path / "summarize.j2").write_text(SUMMARIZE)
    return tmp_path


def command(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "xvckit",
        "batch",
        "run",
        "summarize.j2",
        "--files",
        "src/*.py",
        "--model",
        "gpt-4o-mini",
        "--out",
        "docs",
        "--concurrency",
        "2",
        *extra,
    ]


def start(project: Path, gw, *extra: str) -> subprocess.Popen:
    env = cli_env(project, OPENAI_BASE_URL=f"{gw.url}/v1", OPENAI_API_KEY=MASTER_KEY)
    return subprocess.Popen(
        command(*extra), cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> tuple[int, dict]:
    out, err = process.communicate(timeout=DEADLINE_S)
    assert out, err
    return process.returncode, orjson.loads(out)


def states(project: Path) -> dict[str, int]:
    """Items per state in the run's journal, read as another process would."""
    found = list((project / ".xvckit" / "batch").glob("*/run.db"))
    if not found:
        return {}
    with sqlite3.connect(found[0], timeout=5) as db:
        try:
            return dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"))
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}


def wait_for(what, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_a_run_killed_halfway_sends_only_the_rest(project, gw):
    process = start(project, gw, "--json")
    wait_for(lambda: states(project).get("done", 0) >= ITEMS // 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=DEADLINE_S)
    at_kill = states(project)
    assert at_kill.get("sending", 0) > 0 and at_kill["done"] < ITEMS

    code, result = finish(start(project, gw, "--json"))
    assert (code, result["state"], result["done"] + result["done_before"]) == (0, "done", ITEMS)
    assert result["done_before"] == at_kill["done"]
    # the items in flight at the kill reached the gateway, which finished them: the re-run's
    # requests for them were answered from its Idempotency-Key records, not sent again
    assert 1 <= result["replayed"] <= at_kill["sending"]
    assert gw.sim.stats()["chat_completions"] == {"200": ITEMS}
    assert len(list((project / "docs" / "src").glob("*.md"))) == ITEMS


def test_an_item_in_flight_is_answered_from_the_gateways_record(monkeypatch, capsys, project, gw):
    """A first try still in flight at the gateway (a client that died, another process): the
    batch's request with the same Idempotency-Key waits for it and gets its answer."""
    spec = runs.RunSpec(
        template=str(project / "summarize.j2"),
        model="gpt-4o-mini",
        dialect=None,
        root=str(project),
        files=["src/m00.py"],
    )
    (request,) = runner.plan(spec, load(None).context).requests
    first: dict = {}

    def first_try() -> None:
        answer = httpx.post(
            f"{gw.url}/v1/chat/completions",
            content=request.body,
            headers={
                "authorization": f"Bearer {MASTER_KEY}",
                "content-type": "application/json",
                "idempotency-key": request.idempotency_key,
            },
            timeout=DEADLINE_S,
        )
        first["answer"] = answer.json()["choices"][0]["message"]["content"]

    thread = threading.Thread(target=first_try)
    thread.start()
    wait_for(lambda: b"xvckit_in_flight_requests 1.0" in _metrics(gw))
    code, out, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        "summarize.j2",
        "--files",
        "src/m00.py",
        "--model",
        "gpt-4o-mini",
        "--results",
        "r.jsonl",
        "--json",
        gw=gw,
    )
    thread.join(DEADLINE_S)
    result = orjson.loads(out)
    assert (code, result["done"], result["replayed"]) == (0, 1, 1), err
    assert gw.sim.count("chat_completions") == 1
    (row,) = [orjson.loads(line) for line in (project / "r.jsonl").read_bytes().splitlines()]
    assert row["answer"] == first["answer"] and row["output_tokens"] > 0


@pytest.mark.parametrize("how", ["cancel", "ctrl-c"])
def test_a_stopped_run_finishes_what_is_in_flight_and_resume_does_the_rest(
    monkeypatch, capsys, project, gw, how
):
    process = start(project, gw, "--json")
    wait_for(lambda: states(project).get("done", 0) >= 4)
    if how == "cancel":
        (run_dir,) = (project / ".xvckit" / "batch").iterdir()
        code, out, _ = batch(monkeypatch, capsys, project, "cancel", run_dir.name)
        assert (code, out) == (
            0,
            f"run {run_dir.name}: cancel requested; it stops once its requests in flight are answered\n",
        )
    else:
        process.send_signal(signal.SIGINT)
    code, result = finish(process)
    expected = "cancelled" if how == "cancel" else "incomplete"
    assert (code, result["state"]) == (1, expected)
    assert result["stopped"] == ("cancelled (batch cancel)" if how == "cancel" else "interrupted (SIGINT)")
    assert result["done"] + result["skipped"] == ITEMS and result["skipped"] > 0
    assert states(project) == {"done": result["done"], "pending": result["skipped"]}  # nothing left in flight
    assert gw.sim.count("chat_completions") == result["done"]

    code, out, _ = batch(monkeypatch, capsys, project, "resume", result["run"], "--json", gw=gw)
    resumed = orjson.loads(out)
    assert (code, resumed["state"], resumed["done"], resumed["replayed"]) == (0, "done", result["skipped"], 0)
    assert gw.sim.count("chat_completions") == ITEMS


def test_a_run_cannot_run_twice_at_once(monkeypatch, capsys, project, gw):
    process = start(project, gw, "--json")
    wait_for(lambda: states(project).get("done", 0) >= 1)
    second = subprocess.run(
        command("--json"),
        cwd=project,
        env=cli_env(project, OPENAI_BASE_URL=f"{gw.url}/v1", OPENAI_API_KEY=MASTER_KEY),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert second.returncode == 2 and "is running in another process" in second.stderr
    assert finish(process)[0] == 0
    assert os.path.exists(project / "docs")


def _metrics(gw) -> bytes:
    request = urllib.request.Request(f"{gw.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()
