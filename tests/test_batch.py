"""`xvckit batch run` through a real gateway and `xvckit sim`: templating, outputs, re-runs,
dry run, cost cap, pacing, the run commands (list, show, resume, cancel)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from batch_echo import ECHO_MODEL, echo_gateway
from conftest import MASTER_KEY
from test_cli_data_dir import xvckit
from test_gateway_e2e import sim_providers
from xvckit.batch.pacing import AUTO_START, Gate
from xvckit.context.tokens import count
from xvckit.providers.message_text import MESSAGE_OVERHEAD, REPLY_PRIMING
from xvckit.providers.prices import PRICES

# One output token costs $0.001 and input is free: an item's cost is its output tokens / 1000.
PRICED = {"prices": {"gpt-4o-mini": {"input": 0, "output": 1000}}}
SUMMARIZE = "Summarize {{ path }} ({{ language }}):\n{{ content }}"


@pytest.fixture(scope="module")
def module_gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    server = make_module_gateway({**sim_providers(sim), **PRICED})
    server.sim = sim
    return server


@pytest.fixture
def gw(module_gw):
    module_gw.sim.reset()
    return module_gw


@pytest.fixture(scope="module")
def echo_gw(make_module_gateway):
    yield from echo_gateway(make_module_gateway)


@pytest.fixture
def project(tmp_path, tiktoken_encodings):
    """A folder with three source files, a template and a config with the test's prices."""
    (tmp_path / "src").mkdir()
    for name, body in {"a.py": "def a():\n    return 1\n", "b.py": "def b():\n    return 2\n"}.items():
        (tmp_path / "src" / name).write_text(body)
    (tmp_path / "src" / "notes.md").write_text("# Notes\n")
    (tmp_path / "summarize.j2").write_text(SUMMARIZE)
    (tmp_path / "xvckit.yaml").write_text(yaml.safe_dump(PRICED))
    return tmp_path


def batch(monkeypatch, capsys, folder, *args, gw=None) -> tuple[int, str, str]:
    """`xvckit batch ARGS` run in `folder`, sent to `gw` with the master key."""
    monkeypatch.chdir(folder)
    extra = ["--gateway", gw.url, "--key", MASTER_KEY] if gw is not None else []
    return xvckit(monkeypatch, capsys, "batch", *args, *extra)


def summarize(files: str) -> tuple[str, ...]:
    """The arguments of a run of the summary template over `files` with gpt-4o-mini."""
    return ("summarize.j2", "--files", files, "--model", "gpt-4o-mini")


def run_json(monkeypatch, capsys, folder, *args, gw) -> dict:
    code, out, err = batch(monkeypatch, capsys, folder, "run", *args, "--json", gw=gw)
    assert code in (0, 1), err
    return orjson.loads(out)


# --- templating and outputs ----------------------------------------------------------------------


def test_one_file_per_item_then_a_rerun_sends_only_what_changed(monkeypatch, capsys, project, gw):
    args = (
        *summarize("src/*.py"),
        "--out",
        "docs",
        "--name",
        "{stem}.md",
    )
    first = run_json(monkeypatch, capsys, project, *args, gw=gw)
    assert (first["state"], first["done"], first["failed"]) == ("done", 2, 0)
    assert gw.sim.count("chat_completions", "200") == 2
    # the simulator's reply begins with the prompt's first words: the template was rendered
    assert (project / "docs" / "a.md").read_text().startswith("Re: Summarize src/a.py (python): def a():")
    assert (project / "docs" / "b.md").read_text().startswith("Re: Summarize src/b.py (python): def b():")

    again = run_json(monkeypatch, capsys, project, *args, gw=gw)
    assert (again["done"], again["done_before"]) == (0, 2)
    assert gw.sim.count("chat_completions") == 2

    (project / "src" / "b.py").write_text("def b():\n    return 3\n")
    changed = run_json(monkeypatch, capsys, project, *args, gw=gw)
    assert (changed["done"], changed["done_before"], changed["items"]) == (1, 1, 2)
    assert gw.sim.count("chat_completions") == 3
    assert "return 3" in (project / "docs" / "b.md").read_text()


def test_a_missing_variable_names_the_item_and_the_variable_and_nothing_is_sent(
    monkeypatch, capsys, project, gw
):
    (project / "owner.j2").write_text("Ask {{ owner }} about {{ path }}")
    code, out, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        "owner.j2",
        "--files",
        "src/a.py",
        "--model",
        "gpt-4o-mini",
        "--results",
        "r.jsonl",
        gw=gw,
    )
    assert (code, out) == (2, "")
    assert err.startswith(
        "xvckit: template owner.j2: item src/a.py: 'owner' is undefined (its variables: content,"
    )
    assert gw.sim.count("chat_completions") == 0
    assert not (project / ".xvckit").exists()


def test_a_template_syntax_error_names_its_line(monkeypatch, capsys, project, gw):
    (project / "bad.j2").write_text("line one\n{% if path %}never closed\n")
    code, _, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        "bad.j2",
        "--files",
        "src/a.py",
        "--model",
        "gpt-4o-mini",
        "--results",
        "r.jsonl",
        gw=gw,
    )
    assert code == 2 and err.startswith("xvckit: template ") and ", line 2: " in err


def test_jsonl_items_and_results_in_item_order(monkeypatch, capsys, project, gw):
    (project / "ask.j2").write_text("Question {{ id }}: {{ question }}")
    lines = [
        {"id": "q2", "question": "why"},
        {"id": "q1", "question": "how"},
        {"path": "src/a.py", "question": "x"},
    ]
    (project / "items.jsonl").write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    result = run_json(
        monkeypatch,
        capsys,
        project,
        "ask.j2",
        "--input",
        "items.jsonl",
        "--model",
        "claude-3-5-haiku-latest",
        "--results",
        "results.jsonl",
        gw=gw,
    )
    assert (result["state"], result["done"]) == ("done", 3)
    assert gw.sim.count("messages", "200") == 3  # a Claude model goes to /v1/messages
    rows = [orjson.loads(line) for line in (project / "results.jsonl").read_bytes().splitlines()]
    assert [row["id"] for row in rows] == ["q2", "q1", "src/a.py"]
    assert rows[0]["answer"].startswith("Re: Question q2: why")
    assert rows[2]["answer"].startswith("Re: Question src/a.py: x")  # no `id`: the path names it
    assert all(row["state"] == "done" and row["output_tokens"] > 0 for row in rows)


def test_outputs_beside_the_sources(monkeypatch, capsys, project, gw):
    (project / "top.py").write_text("top = 1\n")
    result = run_json(
        monkeypatch,
        capsys,
        project,
        "summarize.j2",
        "--files",
        "top.py",
        "src/a.py",
        "--model",
        "gpt-4o-mini",
        "--name",
        "{dir}/{stem}.md",
        gw=gw,
    )
    assert (result["state"], result["done"]) == ("done", 2)
    assert (project / "top.md").read_text().startswith("Re: Summarize top.py")
    assert (project / "src" / "a.md").read_text().startswith("Re: Summarize src/a.py")


def test_outputs_must_stay_in_their_folder_and_off_the_sources(monkeypatch, capsys, project, gw):
    common = ("summarize.j2", "--files", "src/*.py", "--model", "gpt-4o-mini")
    code, _, err = batch(
        monkeypatch, capsys, project, "run", *common, "--out", "docs", "--name", "../{stem}", gw=gw
    )
    assert code == 2 and "is not a file in" in err
    code, _, err = batch(monkeypatch, capsys, project, "run", *common, "--name", "{path}", gw=gw)
    assert code == 2 and "would overwrite a source" in err
    code, _, err = batch(
        monkeypatch, capsys, project, "run", *common, "--out", "d", "--name", "same.md", gw=gw
    )
    assert code == 2 and "both write" in err
    code, _, err = batch(
        monkeypatch, capsys, project, "run", *common, "--out", "d", "--name", "{owner}", gw=gw
    )
    assert code == 2 and "'owner'" in err
    code, _, err = batch(monkeypatch, capsys, project, "run", *common, gw=gw)
    assert code == 2 and "say where answers go" in err
    assert gw.sim.count("chat_completions") == 0


def test_secret_looking_and_binary_files_are_never_sent(monkeypatch, capsys, project, gw):
    (project / "src" / ".env").write_text("OPENAI_API_KEY=sk-proj-0123456789abcdefghijklmnop\n")
    (project / "src" / "logo.png").write_bytes(b"\x89PNG\0\0")
    result = run_json(
        monkeypatch,
        capsys,
        project,
        "summarize.j2",
        "--files",
        "src/*",
        "src/.env",
        "--model",
        "gpt-4o-mini",
        "--results",
        "r.jsonl",
        gw=gw,
    )
    assert result["items"] == 3 and result["left_out"] == {"secret": 1, "binary": 1}
    sent = [orjson.loads(line)["id"] for line in (project / "r.jsonl").read_bytes().splitlines()]
    assert sent == ["src/a.py", "src/b.py", "src/notes.md"]


def test_the_key_is_not_in_the_journal(monkeypatch, capsys, project, gw):
    run_json(
        monkeypatch,
        capsys,
        project,
        *summarize("src/a.py"),
        "--results",
        "r.jsonl",
        gw=gw,
    )
    (journal,) = (project / ".xvckit" / "batch").glob("*/run.db")
    assert MASTER_KEY.encode() not in journal.read_bytes()


def test_a_template_that_uses_context_gets_the_items_context_pack(monkeypatch, capsys, project, echo_gw):
    (project / "src" / "caller.py").write_text(
        "from src.callee import beta\n\n\ndef alpha():\n    return beta()\n"
    )
    (project / "src" / "callee.py").write_text("def beta():\n    return 2\n")
    (project / "doc.j2").write_text("Document {{ path }} with its context:\n{{ context }}")
    result = run_json(
        monkeypatch,
        capsys,
        project,
        "doc.j2",
        "--files",
        "src/caller.py",
        "--model",
        ECHO_MODEL,
        "--context-budget",
        "400",
        "--results",
        "r.jsonl",
        gw=echo_gw,
    )
    assert result["state"] == "done"
    (row,) = [orjson.loads(line) for line in (project / "r.jsonl").read_bytes().splitlines()]
    prompt = row["answer"]  # the echo upstream answers with the prompt it got
    assert prompt.startswith("Document src/caller.py with its context:\n")
    assert "def beta():" in prompt  # the code the item's file calls, from the pack
    assert count(prompt.split("\n", 1)[1]) <= 400


def test_context_packs_leave_out_the_runs_own_files_so_a_rerun_sends_nothing(
    monkeypatch, capsys, project, echo_gw
):
    """Answers written beside the sources, the journal and its lock file are not code to pack:
    were they, the second run's prompts would change with the first run's outputs."""
    subprocess.run(["git", "init", "-q", str(project)], check=True)  # files listed by git: .xvckit too
    (project / "doc.j2").write_text("Document {{ path }} with its context:\n{{ context }}")
    args = ("doc.j2", "--files", "src/*.py", "--model", ECHO_MODEL, "--name", "{dir}/{stem}.md",
            "--results", "r.jsonl", "--context-budget", "300")  # fmt: skip
    first = run_json(monkeypatch, capsys, project, *args, gw=echo_gw)
    assert (first["done"], (project / "src" / "a.md").read_text().startswith("Document src/a.py")) == (
        2,
        True,
    )
    again = run_json(monkeypatch, capsys, project, *args, gw=echo_gw)
    assert (again["done"], again["done_before"]) == (0, 2)
    prompt = orjson.loads((project / "r.jsonl").read_bytes().splitlines()[0])["answer"]
    assert "a.md" not in prompt and "r.jsonl" not in prompt and ".xvckit" not in prompt


def test_a_context_budget_needs_a_template_that_uses_context(monkeypatch, capsys, project, gw):
    code, _, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        *summarize("src/a.py"),
        "--context-budget",
        "100",
        "--results",
        "r.jsonl",
        gw=gw,
    )
    assert (code, err) == (
        2,
        "xvckit: --context-budget: the template summarize.j2 does not use {{ context }}\n",
    )


# --- dry run and cost cap ------------------------------------------------------------------------


def test_a_dry_run_counts_tokens_and_prices_them_and_sends_nothing(monkeypatch, capsys, project, gw):
    code, out, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        "summarize.j2",
        "--files",
        "src/*.py",
        "--model",
        "gpt-4o",
        "--max-tokens",
        "100",
        "--dry-run",
        "--json",
        gw=gw,
    )
    assert code == 0, err
    estimate = orjson.loads(out)
    prompts = [
        SUMMARIZE.replace("{{ path }}", f"src/{n}.py")
        .replace("{{ language }}", "python")
        .replace("{{ content }}", (project / f"src/{n}.py").read_text())
        for n in "ab"
    ]
    tokens = sum(count(p, "o200k_base") + MESSAGE_OVERHEAD + REPLY_PRIMING for p in prompts)
    price = PRICES["gpt-4o"]
    (row,) = estimate["models"]
    assert row == {
        "model": "gpt-4o",
        "items": 2,
        "input_tokens": tokens,
        "output_tokens_max": 200,
        "cost_min_usd": pytest.approx(tokens * price.input / 1e6),
        "cost_max_usd": pytest.approx((tokens * price.input + 200 * price.output) / 1e6),
    }
    assert gw.sim.count("chat_completions") == 0
    assert not (project / ".xvckit").exists()


def test_the_cost_cap_counts_requests_in_flight_at_their_worst(monkeypatch, capsys, project, gw):
    for n in range(5):
        (project / "src" / f"c{n}.py").write_text(f"c = {n}\n")
    # 10 output tokens at most per item: $0.01 each; the cap leaves room for three
    result = run_json(
        monkeypatch,
        capsys,
        project,
        *summarize("src/c*.py"),
        "--max-tokens",
        "10",
        "--max-cost",
        "0.035",
        "--concurrency",
        "4",
        "--results",
        "r.jsonl",
        "--config",
        "xvckit.yaml",
        gw=gw,
    )
    assert (result["state"], result["done"], result["skipped"]) == ("incomplete", 3, 2)
    assert result["cost_usd"] == pytest.approx(0.03)
    assert result["skipped_worst_usd"] == pytest.approx(0.02)
    assert result["stopped"].startswith("cost cap: $0.0300 spent, the next item could cost $0.0100")
    assert gw.sim.count("chat_completions") == 3
    # a higher cap continues the same run: the rest only
    more = run_json(
        monkeypatch,
        capsys,
        project,
        *summarize("src/c*.py"),
        "--max-tokens",
        "10",
        "--max-cost",
        "0.05",
        "--results",
        "r.jsonl",
        "--config",
        "xvckit.yaml",
        gw=gw,
    )
    assert (more["state"], more["done"], more["done_before"], more["run"]) == ("done", 2, 3, result["run"])
    assert more["cost_total_usd"] == pytest.approx(0.05)
    assert gw.sim.count("chat_completions") == 5


def test_a_cost_cap_needs_a_price(monkeypatch, capsys, project, gw):
    code, _, err = batch(
        monkeypatch,
        capsys,
        project,
        "run",
        "summarize.j2",
        "--files",
        "src/a.py",
        "--model",
        "my-local-model",
        "--max-cost",
        "1",
        "--results",
        "r.jsonl",
        gw=gw,
    )
    assert code == 2
    assert err == (
        "xvckit: --max-cost: my-local-model has no price; "
        "add it under prices: in xvckit.yaml to cap its cost\n"
    )


# --- the gateway's answers -----------------------------------------------------------------------


def test_a_refused_key_stops_the_run_at_once(monkeypatch, capsys, project, gw):
    monkeypatch.chdir(project)
    code, out, _ = xvckit(
        monkeypatch,
        capsys,
        "batch",
        "run",
        *summarize("src/*"),
        "--results",
        "r.jsonl",
        "--concurrency",
        "1",
        "--gateway",
        gw.url,
        "--key",
        "xvc-not-a-key",
        "--json",
    )
    result = orjson.loads(out)
    assert code == 1
    assert result["stopped"].startswith("the gateway refused the run: 401: ")
    assert (result["failed"], result["skipped"]) == (1, 2)
    assert gw.sim.count("chat_completions") == 0


def test_pacing_under_the_gateway_no_item_fails(monkeypatch, capsys, project, sim_factory, make_gateway):
    """A provider that allows 1,200 requests a minute, enforced over each second (20 a second),
    and a gateway that knows it: 40 items at --concurrency auto all pass, none refused."""
    sim = sim_factory(rpm=1200, tpm=100_000_000, rate_window_s=1)
    config = sim_providers(sim)
    config["providers"][0]["rpm"] = 1200
    paced = make_gateway(config)
    for n in range(40):
        (project / "src" / f"p{n:02}.py").write_text(f"p = {n}\n")
    result = run_json(
        monkeypatch,
        capsys,
        project,
        *summarize("src/p*.py"),
        "--results",
        "r.jsonl",
        gw=paced,
    )
    assert (result["state"], result["done"], result["failed"]) == ("done", 40, 0)
    assert sim.stats()["chat_completions"] == {"200": 40}  # no 429 upstream, nothing retried


def test_server_errors_are_retried_and_counted(monkeypatch, capsys, project, sim_factory):
    """Straight at a provider that fails a third of its requests with a 500 (no gateway to
    retry them): every item done, and the summary counts the items sent more than once."""
    flaky = sim_factory(rpm=10_000, tpm=100_000_000, fail_rate=0.35, seed=3)
    for n in range(8):
        (project / "src" / f"f{n}.py").write_text(f"f = {n}\n")
    result = run_json(
        monkeypatch, capsys, project, *summarize("src/f*.py"),
        "--results", "r.jsonl", "--concurrency", "1", gw=flaky,
    )  # fmt: skip
    faults = flaky.count("chat_completions", "500")
    assert (result["done"], result["failed"]) == (8, 0)
    assert faults > 0 and 0 < result["retried"] <= faults
    assert flaky.count("chat_completions", "200") == 8


def test_the_gate_grows_on_fast_answers_and_shrinks_on_queues_and_429s():
    gate = Gate(AUTO_START, adaptive=True)
    for _ in range(4):
        gate.answered({"x-xvckit-overhead-ms": "0.4"})
    assert gate.slots == AUTO_START + 4  # slow start: one more per fast answer
    gate.answered({"x-xvckit-overhead-ms": "800"})  # queued by the gateway: hold
    assert (gate.slots, gate.slow_start) == (AUTO_START + 4, False)
    gate.answered({"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "1"})
    assert gate.slots == AUTO_START + 4  # little left of the provider's limit: hold
    for _ in range(AUTO_START + 4):
        gate.answered({"x-xvckit-overhead-ms": "0.4"})
    assert gate.slots == AUTO_START + 4  # past slow start: 1/limit more per answer...
    gate.answered({"x-xvckit-overhead-ms": "0.4"})
    assert gate.slots == AUTO_START + 5  # ...about one more per round of answers
    gate.throttled(2.0)
    assert gate.slots == (AUTO_START + 5) // 2 and gate.paused_until > 0
    gate.throttled(2.0)  # the same burst of refusals: counted once per round
    assert gate.slots == (AUTO_START + 5) // 2
    gate.answered({"x-xvckit-overhead-ms": "9000"})
    assert gate.slots == (AUTO_START + 5) // 2  # still the same round
    fixed = Gate(3, adaptive=False)
    fixed.answered({"x-xvckit-overhead-ms": "0.1"})
    fixed.throttled(None)
    assert fixed.slots == 3


def test_the_readme_run_works_as_pasted(tmp_path, gw, tiktoken_encodings):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## xvckit batch\n") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    for n, folder in enumerate(("src", "src/pkg")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"m{n}.py").write_text(f"def m{n}():\n    return {n}\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPENAI_BASE_URL": f"{gw.url}/v1",
        "OPENAI_API_KEY": MASTER_KEY,
    }
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "dry run: nothing sent" in done.stdout and "docstring-" in done.stdout
    assert (
        (tmp_path / "docs/api/src/m0.md")
        .read_text()
        .startswith("Re: Write a short module docstring for src/m0.py")
    )
    assert (tmp_path / "docs/api/src/pkg/m1.md").is_file()
    assert gw.sim.count("chat_completions") == 2
    batched = [orjson.loads(line) for line in (tmp_path / "batch.jsonl").read_text().splitlines()]
    assert [(r["id"], r["state"]) for r in batched] == [("src/m0.py", "done"), ("src/pkg/m1.py", "done")]
    assert gw.sim.count("batches", "200") >= 2  # made, then read until it ended


# --- list, show, resume, cancel ------------------------------------------------------------------


def test_list_show_cancel_and_resume(monkeypatch, capsys, project, gw):
    args = (*summarize("src/*"), "--results", "r.jsonl")
    first = run_json(
        monkeypatch,
        capsys,
        project,
        *args,
        "--max-cost",
        "0.01",
        "--max-tokens",
        "10",
        "--concurrency",
        "1",
        "--config",
        "xvckit.yaml",
        gw=gw,
    )
    run_id = first["run"]
    assert (first["state"], first["done"]) == ("incomplete", 1)

    code, out, _ = batch(monkeypatch, capsys, project, "list", "--json")
    (listed,) = orjson.loads(out)
    assert (listed["run"], listed["state"], listed["items"], listed["done"]) == (run_id, "incomplete", 3, 1)

    code, out, _ = batch(monkeypatch, capsys, project, "show", run_id[:8], "--items", "--json")
    shown = orjson.loads(out)
    assert shown["states"] == {"pending": 2, "sending": 0, "answered": 0, "done": 1, "failed": 0}
    assert shown["outputs"] == {"results": str(project / "r.jsonl")}
    assert [(row["item"], row["state"]) for row in shown["item_rows"]] == [
        ("src/a.py", "done"),
        ("src/b.py", "pending"),
        ("src/notes.md", "pending"),
    ]

    code, out, _ = batch(monkeypatch, capsys, project, "cancel", run_id)
    assert code == 0 and "was not running: marked cancelled" in out
    assert orjson.loads(batch(monkeypatch, capsys, project, "list", "--json")[1])[0]["state"] == "cancelled"

    code, out, err = batch(monkeypatch, capsys, project, "resume", run_id, "--max-cost", "1", "--json", gw=gw)
    resumed = orjson.loads(out)
    assert (code, resumed["state"], resumed["done"], resumed["done_before"]) == (0, "done", 2, 1)
    assert gw.sim.count("chat_completions") == 3
    assert len((project / "r.jsonl").read_bytes().splitlines()) == 3

    code, _, err = batch(monkeypatch, capsys, project, "show", "nope")
    assert code == 2 and err.startswith(
        f"xvckit: no run 'nope' in {project / '.xvckit' / 'batch'} (runs: {run_id})"
    )
