"""`xvckit batch run --mode provider-batch` through a real gateway and `xvckit sim`: the run
submitted to the provider's batch API (OpenAI's files and batches, Anthropic's message
batches), polled, collected into the same outputs at half price; re-runs, expiry, a run killed
while its batch runs, `batch show` and `batch cancel`."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from conftest import MASTER_KEY
from test_batch import SUMMARIZE, batch, run_json
from test_batch_resume import wait_for
from test_gateway_keys import flush_ledger
from test_provider_batches import PRICES, batch_config
from test_sec_start import cli_env
from xvckit.gateway.batch_ledger import request_id
from xvckit.store.ledger import ledger_records

DEADLINE_S = 30


@pytest.fixture(scope="module")
def module_gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    server = make_module_gateway(batch_config(sim))
    server.sim = sim
    return server


@pytest.fixture
def gw(module_gw):
    module_gw.sim.reset()
    return module_gw


@pytest.fixture
def project(tmp_path, request, tiktoken_encodings):
    """Two source files whose text is the test's own, a template, the test's prices."""
    (tmp_path / "src").mkdir()
    for name in ("a", "b"):
        (tmp_path / "src" / f"{name}.py").write_text(f"# {request.node.name}\ndef {name}():\n    return 1\n")
    (tmp_path / "summarize.j2").write_text(SUMMARIZE)
    (tmp_path / "xvckit.yaml").write_text(yaml.safe_dump({"prices": PRICES}))
    return tmp_path


def args(model: str, *extra: str) -> list[str]:
    return [
        "summarize.j2",
        "--files",
        "src/*.py",
        "--model",
        model,
        "--mode",
        "provider-batch",
        "--out",
        "docs",
        "--name",
        "{stem}.md",
        "--poll",
        "0.05",
        *extra,
    ]


def show(monkeypatch, capsys, project) -> dict:
    (run,) = (project / ".xvckit" / "batch").iterdir()
    code, out, err = batch(monkeypatch, capsys, project, "show", run.name, "--items", "--json")
    assert code == 0, err
    return orjson.loads(out)


@pytest.mark.parametrize(("model", "api"), [("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")])
def test_a_run_through_the_providers_batch_api_at_half_price(monkeypatch, capsys, project, gw, model, api):
    result = run_json(monkeypatch, capsys, project, *args(model), gw=gw)
    assert (result["state"], result["done"], result["failed"]) == ("done", 2, 0)
    assert (project / "docs" / "a.md").read_text().startswith("Re: Summarize src/a.py (python):")
    assert (project / "docs" / "b.md").read_text().startswith("Re: Summarize src/b.py (python):")
    live = ("chat_completions", "messages")
    assert [gw.sim.count(route) for route in live] == [0, 0]  # nothing went to the live endpoints

    shown = show(monkeypatch, capsys, project)
    (made,) = shown["provider_batches"]
    assert (shown["mode"], made["api"], made["open"], made["requests"]) == ("provider-batch", api, False, 2)
    assert made["status"] == ("completed" if api == "openai" else "ended")
    price = PRICES[model]
    for row in shown["item_rows"]:
        half = (row["input_tokens"] * price["input"] + row["output_tokens"] * price["output"]) / 1e6 / 2
        assert row["cost_usd"] == pytest.approx(half)
    # the gateway ledgered the same requests at the same price
    ids = {request_id(made["id"], h) for h in _hashes(project)}
    flush_ledger(gw)
    ledgered = [r for r in ledger_records(gw.store) if r.request_id in ids]
    assert len(ledgered) == 2
    assert sum(r.cost_usd for r in ledgered) == pytest.approx(result["cost_total_usd"])

    again = run_json(monkeypatch, capsys, project, *args(model), gw=gw)
    assert (again["state"], again["done"], again["done_before"]) == ("done", 0, 2)
    assert len(show(monkeypatch, capsys, project)["provider_batches"]) == 1  # no second batch


def _hashes(project: Path) -> list[str]:
    (journal,) = (project / ".xvckit" / "batch").glob("*/run.db")
    with sqlite3.connect(journal) as db:
        return [h for (h,) in db.execute("SELECT hash FROM items")]


def test_the_dry_run_prices_a_provider_batch_at_half(monkeypatch, capsys, project, gw):
    def most(*extra: str) -> float:
        code, out, err = batch(
            monkeypatch, capsys, project, "run", *args("gpt-4o-mini", *extra), "--dry-run", "--json"
        )
        assert code == 0, err
        return orjson.loads(out)["models"][0]["cost_max_usd"]

    assert most() == pytest.approx(most("--mode", "live") / 2)
    assert gw.sim.stats() == {}


def test_expired_requests_fail_and_a_rerun_sends_them_again(monkeypatch, capsys, project, gw):
    first = run_json(monkeypatch, capsys, project, *args("expiring-mini"), gw=gw)
    assert (first["state"], first["done"], first["failed"]) == ("incomplete", 1, 1)
    assert "expired at the provider" in first["failures"][0]["error"]
    again = run_json(monkeypatch, capsys, project, *args("expiring-mini"), gw=gw)
    assert (again["done_before"], again["failed"]) == (1, 1)  # a batch of one expires with none done
    batches = show(monkeypatch, capsys, project)["provider_batches"]
    assert [(b["status"], b["requests"]) for b in batches] == [("expired", 2), ("expired", 1)]


def start(project: Path, gw, model: str) -> subprocess.Popen:
    env = cli_env(project, OPENAI_BASE_URL=f"{gw.url}/v1", OPENAI_API_KEY=MASTER_KEY)
    command = [sys.executable, "-m", "xvckit", "batch", "run", *args(model), "--json"]
    return subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def open_batches(project: Path) -> list[str]:
    """The run's open provider batches, read from its journal as another process would."""
    found = list((project / ".xvckit" / "batch").glob("*/run.db"))
    if not found:
        return []
    with sqlite3.connect(found[0], timeout=5) as db:
        try:
            return [i for (i,) in db.execute("SELECT id FROM provider_batches WHERE open = 1")]
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def test_a_run_killed_while_its_batch_runs_collects_that_batch_when_run_again(
    monkeypatch, capsys, project, gw
):
    process = start(project, gw, "soon-mini")  # its batches take 1.5 s
    wait_for(lambda: open_batches(project))
    shown = show(monkeypatch, capsys, project)
    (made,) = shown["provider_batches"]
    assert (made["open"], made["status"] in ("validating", "in_progress")) == (True, True)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=DEADLINE_S)

    # a live run of it would send the requests of the open batch again
    code, _, err = batch(monkeypatch, capsys, project, "run", *args("soon-mini", "--mode", "live"), gw=gw)
    assert code == 2 and "has a provider batch open" in err

    result = run_json(monkeypatch, capsys, project, *args("soon-mini"), gw=gw)
    assert (result["state"], result["done"]) == ("done", 2)
    batches = show(monkeypatch, capsys, project)["provider_batches"]
    assert [(b["id"], b["open"]) for b in batches] == [(made["id"], False)]  # the same batch, collected


def test_batch_cancel_cancels_the_batch_at_the_provider(monkeypatch, capsys, project, gw):
    process = start(project, gw, "slow-mini")  # its batches take a minute
    wait_for(lambda: open_batches(project))
    (run,) = (project / ".xvckit" / "batch").iterdir()
    code, out, err = batch(monkeypatch, capsys, project, "cancel", run.name, gw=gw)
    assert code == 0, err
    assert "cancelling" in out and "cancel requested" in out
    out, err = process.communicate(timeout=DEADLINE_S)
    result = orjson.loads(out)
    assert (process.returncode, result["state"], result["done"], result["skipped"]) == (1, "cancelled", 0, 2)

    shown = show(monkeypatch, capsys, project)
    assert [(b["status"], b["open"]) for b in shown["provider_batches"]] == [("cancelled", False)]
    assert shown["states"]["pending"] == 2  # a resume sends them again
