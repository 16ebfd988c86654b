"""`xvckit context window`: conversations in the OpenAI and Anthropic formats fitted into a
token budget without breaking the protocol."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import orjson
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import MASTER_KEY
from xvckit.cli.context_window import window
from xvckit.context.conversation import Tokenizer
from xvckit.context.summarize import OUTPUT_WEIGHT, Entry, extractive, through_gateway
from xvckit.context.window import count_tokens, fit
from xvckit.errors import UserError

pytestmark = pytest.mark.usefixtures("tiktoken_encodings")

SYSTEM = "You are a careful coding assistant working in the xvckit repository."
FILLER = "The weather was mild and nothing of note happened in the meantime. "


def turn(number: int, steps: int = 1, output_words: int = 40, answer: str = "") -> list[dict]:
    """An abstract turn: a prompt, `steps` tool calls each with its output, an answer."""
    items: list[dict] = [
        {"kind": "prompt", "text": f"Task {number}: change gateway/proxy_{number}.py. {FILLER}"}
    ]
    for step in range(steps):
        call = f"call_{number}_{step}"
        items.append({"kind": "call", "id": call, "path": f"src/mod_{number}_{step}.py"})
        items.append(
            {"kind": "output", "id": call, "text": " ".join(f"line{i}" for i in range(output_words))}
        )
    if answer is not None:
        items.append(
            {
                "kind": "answer",
                "text": answer or f"Done {number}: we decided to use retry_budget. {FILLER * 8}",
            }
        )
    return items


def as_openai(turns: list[list[dict]], system: str | None = SYSTEM) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    for item in (item for t in turns for item in t):
        if item["kind"] == "prompt":
            messages.append({"role": "user", "content": item["text"]})
        elif item["kind"] == "call":
            arguments = json.dumps({"path": item["path"]})
            call = {
                "id": item["id"],
                "type": "function",
                "function": {"name": "read_file", "arguments": arguments},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif item["kind"] == "output":
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": item["text"]})
        else:
            messages.append({"role": "assistant", "content": item["text"]})
    return messages


def as_anthropic(turns: list[list[dict]], system: str = SYSTEM) -> dict:
    messages = []
    for item in (item for t in turns for item in t):
        if item["kind"] == "prompt":
            messages.append({"role": "user", "content": item["text"]})
        elif item["kind"] == "call":
            use = {"type": "tool_use", "id": item["id"], "name": "read_file", "input": {"path": item["path"]}}
            messages.append({"role": "assistant", "content": [{"type": "text", "text": "Reading."}, use]})
        elif item["kind"] == "output":
            result = {"type": "tool_result", "tool_use_id": item["id"], "content": item["text"]}
            messages.append({"role": "user", "content": [result]})
        else:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": item["text"]}]})
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "system": system, "messages": messages}


def assert_openai_protocol(messages: list[dict]) -> None:
    """Every tool call answered right after it; every tool message answers a call."""
    open_calls: set[str] = set()
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls, message
            open_calls.discard(message["tool_call_id"])
            continue
        assert not open_calls, f"unanswered tool calls {open_calls} before {message}"
        open_calls = {call["id"] for call in message.get("tool_calls") or ()}
    assert not open_calls


def assert_anthropic_protocol(messages: list[dict]) -> None:
    """User first, roles alternating, each tool_use answered in the very next user message."""
    assert messages[0]["role"] == "user"
    for previous, message in itertools.pairwise(messages):
        assert previous["role"] != message["role"], (previous, message)
    for i, message in enumerate(messages):
        results = {b["tool_use_id"] for b in _blocks(message) if b.get("type") == "tool_result"}
        calls_before = (
            {b["id"] for b in _blocks(messages[i - 1]) if b.get("type") == "tool_use"} if i else set()
        )
        assert results == (calls_before if message["role"] == "user" else set()), (i, message)


def _blocks(message: dict) -> list[dict]:
    return message["content"] if isinstance(message["content"], list) else []


def text_of(message: dict) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else "\n".join(b.get("text", "") for b in _blocks(message))


# --- windowing -----------------------------------------------------------------------------


def test_a_conversation_within_budget_comes_back_unchanged():
    conversation = as_openai([turn(1)])
    fitted, report = fit(conversation, 100_000)
    assert fitted == conversation
    assert report.tokens_before == report.tokens_after == count_tokens(conversation)
    assert (report.tool_outputs_pruned, report.turns_summarized) == (0, 0)


def test_openai_old_tool_outputs_are_pruned_first_oldest_first():
    conversation = as_openai([turn(n, output_words=300) for n in range(1, 5)])
    tokens = count_tokens(conversation)
    fitted, report = fit(conversation, tokens - 400)
    assert report.tool_outputs_pruned == 1 and report.turns_summarized == 0
    assert report.tokens_after == count_tokens(fitted) <= tokens - 400
    tool_messages = [m for m in fitted if m["role"] == "tool"]
    assert tool_messages[0]["content"].startswith(
        "[tool output pruned to fit the context window: read_file, "
    )
    assert tool_messages[0]["tool_call_id"] == "call_1_0"
    assert fitted[1:] != conversation[1:] and fitted[-8:] == conversation[-8:]  # two recent turns verbatim
    assert_openai_protocol(fitted)


def test_older_turns_are_summarized_once_pruning_is_not_enough():
    conversation = as_openai([turn(n) for n in range(1, 7)])
    budget = count_tokens(conversation) // 2
    fitted, report = fit(conversation, budget)
    assert report.turns_summarized >= 1 and report.summarized_by == "extractive"
    assert count_tokens(fitted) == report.tokens_after <= budget
    assert fitted[0] == conversation[0], "the system message stays verbatim"
    first = fitted[1]
    assert first["role"] == "user" and first["content"][0]["text"].startswith(
        f"[Summary of the {report.messages_summarized} earlier messages ("
    )
    assert first["content"][1] == {
        "type": "text",
        "text": conversation[1 + report.messages_summarized]["content"],
    }
    assert fitted[-4:] == conversation[-4:]
    assert_openai_protocol(fitted)


def test_anthropic_format_windowed_and_written_back_as_anthropic():
    conversation = as_anthropic([turn(n) for n in range(1, 7)])
    budget = count_tokens(conversation) // 2
    fitted, report = fit(conversation, budget)
    assert report.format == "anthropic" and report.turns_summarized >= 1
    assert count_tokens(fitted) == report.tokens_after <= budget
    assert {k: v for k, v in fitted.items() if k != "messages"} == {
        k: v for k, v in conversation.items() if k != "messages"
    }
    assert fitted["messages"][0]["content"][0]["text"].startswith("[Summary of the ")
    assert fitted["messages"][-4:] == conversation["messages"][-4:]
    assert_anthropic_protocol(fitted["messages"])


def test_a_tool_call_and_its_result_are_summarized_together():
    conversation = as_anthropic([turn(1, steps=3), turn(2, steps=0), turn(3, steps=0)])
    fitted, report = fit(conversation, count_tokens(conversation) // 2, keep_turns=2)
    assert report.messages_summarized == 8  # the whole first turn: prompt, 3 calls, 3 results, answer
    assert_anthropic_protocol(fitted["messages"])


def test_the_last_turn_loses_older_tool_outputs_but_not_the_latest_ones():
    loop = as_openai(
        [turn(1, steps=4, output_words=300, answer=None)]
    )  # an agent mid-task: the last output is fresh
    fitted, report = fit(loop, count_tokens(loop) - 600)
    outputs = [m["content"] for m in fitted if m["role"] == "tool"]
    assert outputs[0].startswith("[tool output pruned") and report.tool_outputs_pruned >= 1
    assert fitted[-1] == loop[-1]
    assert_openai_protocol(fitted)


def test_a_budget_below_the_system_and_last_turn_says_what_is_needed():
    conversation = as_openai([turn(1), turn(2, steps=0)])
    need = count_tokens([conversation[0], conversation[-2], conversation[-1]])
    with pytest.raises(UserError, match=f"need {need:,} tokens.*budget is 50$"):
        fit(conversation, 50)


def test_formats_are_detected_and_their_shape_kept():
    bare = as_openai([turn(n) for n in range(1, 4)], system=None)
    fitted, report = fit(bare, 900)
    assert isinstance(fitted, list) and report.format == "openai"
    wrapped = {"model": "gpt-4o", "messages": bare, "temperature": 0}
    fitted, _ = fit(wrapped, 900)
    assert list(fitted) == ["model", "messages", "temperature"]
    anthropic_without_system = {k: v for k, v in as_anthropic([turn(1)]).items() if k != "system"}
    assert fit(anthropic_without_system, 100_000)[1].format == "anthropic"


def test_tool_definitions_and_system_blocks_count_as_fixed_tokens():
    conversation = as_anthropic([turn(1)])
    tools = [{"name": "read_file", "description": "Read a file " * 50, "input_schema": {"type": "object"}}]
    with_tools = {**conversation, "tools": tools}
    assert count_tokens(with_tools) > count_tokens(conversation) + 100


def test_model_picks_the_encoding():
    text = [{"role": "user", "content": "Übersetzung: 東京都の天気は晴れ、気温は二十度です。" * 20}]
    assert count_tokens(text) == count_tokens(text, "gpt-4o") == count_tokens(text, "o200k_base")
    assert count_tokens(text, "gpt-4") == count_tokens(text, "cl100k_base") != count_tokens(text)


def test_not_a_conversation_is_a_user_error():
    with pytest.raises(UserError, match="messages"):
        fit({"prompt": "hi"}, 100)
    with pytest.raises(UserError, match="message 1 has no role"):
        fit([{"role": "user", "content": "hi"}, {"content": "x"}], 100)


# --- extractive summary ---------------------------------------------------------------------


def test_extractive_summary_is_deterministic_and_keeps_what_matters():
    entries = [
        Entry("user", f"Please look at the failing import. {FILLER}{FILLER}It happens at startup."),
        Entry(
            "assistant", f"{FILLER}We decided to move load_config into src/xvckit/config/loader.py instead."
        ),
        Entry("read_file returned", "x = 1\n" * 50, weight=OUTPUT_WEIGHT),
    ]
    tokenizer = Tokenizer()
    summary = extractive(entries, 40, tokenizer)
    assert summary == extractive(entries, 40, tokenizer)
    assert tokenizer.count(summary) <= 40
    assert "src/xvckit/config/loader.py" in summary and "Please look at the failing import." in summary
    assert FILLER.strip() not in summary
    assert summary.index("user:") < summary.index("assistant:"), "pieces keep the conversation's order"
    assert extractive(entries, 3, tokenizer) == ""


# --- property: the budget always holds -------------------------------------------------------

turn_shapes = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 120), st.booleans()), min_size=1, max_size=6
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=turn_shapes, anthropic=st.booleans(), share=st.floats(0, 1.1), keep=st.integers(1, 3))
def test_the_budget_always_holds_and_the_protocol_never_breaks(shapes, anthropic, share, keep):
    last = len(shapes) - 1  # only the last turn may lack an answer (an agent mid-task)
    turns = [
        turn(n, steps, words, "" if answered or n < last else None)
        for n, (steps, words, answered) in enumerate(shapes)
    ]
    conversation = as_anthropic(turns) if anthropic else as_openai(turns)
    budget = int(count_tokens(conversation) * share)
    try:
        fitted, report = fit(conversation, budget, keep_turns=keep)
    except UserError as exc:
        need = int(str(exc).split("need ")[1].split(" tokens")[0].replace(",", ""))
        assert need > budget and fit(conversation, need)[1].tokens_after <= need  # exactly what it needs
        return
    assert count_tokens(fitted) == report.tokens_after <= budget
    messages = fitted["messages"] if anthropic else fitted
    original = conversation["messages"] if anthropic else conversation
    if anthropic:
        assert fitted["system"] == SYSTEM
        assert_anthropic_protocol(messages)
    else:
        assert messages[0] == original[0]
        assert_openai_protocol(messages)
    assert text_of(original[-1]) in text_of(messages[-1]) or messages[-1]["role"] == "tool"


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def run_window():
    """The command as a one-command Typer app, so it runs whether or not `context` registers it."""
    app = typer.Typer()
    app.command()(window)

    def run(*args: str, conversation: object = None):
        return CliRunner().invoke(
            app, list(args), input=None if conversation is None else orjson.dumps(conversation)
        )

    return run


def test_command_reads_stdin_writes_stdout_and_reports_on_stderr(run_window):
    conversation = as_openai([turn(n) for n in range(1, 6)])
    result = run_window("--budget", "700", conversation=conversation)
    assert result.exit_code == 0, result.output
    fitted = orjson.loads(result.stdout)
    assert count_tokens(fitted) <= 700
    assert result.stderr.startswith(f"context window: {count_tokens(conversation):,} -> ")
    assert "summarized (extractive" in result.stderr


def test_command_files_and_json_report(run_window, tmp_path):
    source, out = tmp_path / "in.json", tmp_path / "out.json"
    source.write_bytes(orjson.dumps(as_anthropic([turn(n) for n in range(1, 6)])))
    result = run_window("--budget", "700", "--in", str(source), "--out", str(out), "--json-report")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stderr)
    assert report["tokens_after"] == count_tokens(orjson.loads(out.read_bytes())) <= 700
    assert report["format"] == "anthropic" and report["encoding"] == "o200k_base"


def test_command_rejects_what_is_not_json(run_window):
    result = run_window("--budget", "100", conversation=None)
    assert isinstance(result.exception, UserError) and "not JSON" in str(result.exception)


# --- summaries through the gateway -------------------------------------------------------------


@pytest.fixture
def gateway(sim, make_gateway):
    server = make_gateway(
        {
            "providers": [
                {"name": "sim", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["sk-up"]}
            ],
            "models": [{"name": "gpt-4o-mini", "provider": "sim"}],
        }
    )
    server.sim = sim
    return server


def test_summarize_model_asks_the_gateway_once(gateway, run_window, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", gateway.url)  # without /v1: the command adds it
    monkeypatch.setenv("OPENAI_API_KEY", MASTER_KEY)
    conversation = as_anthropic([turn(n) for n in range(1, 6)])
    result = run_window("--budget", "700", "--summarize-model", "gpt-4o-mini", conversation=conversation)
    assert result.exit_code == 0, result.output
    fitted = orjson.loads(result.stdout)
    summary = fitted["messages"][0]["content"][0]["text"]
    assert summary.startswith("[Summary of the ") and "gpt-4o-mini]\nRe: " in summary  # the simulator's reply
    assert count_tokens(fitted) <= 700
    assert gateway.sim.count("chat_completions", "200") == 1


def test_a_failing_gateway_is_a_one_line_user_error(gateway, sim):
    conversation = as_openai([turn(n) for n in range(1, 6)])
    wrong_key = through_gateway("gpt-4o-mini", f"{gateway.url}/v1", "xvc-wrong")
    with pytest.raises(UserError, match=r"^summarizing with gpt-4o-mini at .* failed: HTTP 401: [^\n]+$"):
        fit(conversation, 700, summarizer=wrong_key)
    nobody = through_gateway("gpt-4o-mini", "http://127.0.0.1:9/v1", "key")
    with pytest.raises(UserError, match=r"failed: .*refused"):
        fit(conversation, 700, summarizer=nobody)


def test_summarize_model_without_a_gateway_says_how_to_name_one(run_window, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = run_window("--budget", "100", "--summarize-model", "m", conversation=[])
    assert "pass --gateway URL or set OPENAI_BASE_URL" in str(result.exception)


def test_xvckit_context_window_end_to_end():
    conversation = orjson.dumps(as_openai([turn(n) for n in range(1, 6)]))
    command = [sys.executable, "-m", "xvckit", "context", "window", "--budget"]
    done = subprocess.run([*command, "700"], input=conversation, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert count_tokens(orjson.loads(done.stdout)) <= 700 and done.stderr.startswith(b"context window: ")
    failed = subprocess.run([*command, "30"], input=conversation, capture_output=True, timeout=60)
    assert failed.returncode == 2 and failed.stdout == b""
    assert failed.stderr.startswith(b"xvckit: the system part and the last turn need ")
    assert failed.stderr.count(b"\n") == 1


@pytest.mark.parametrize("command", [["window", "--budget", "700"], ["pack", "fit the conversation"]])
def test_an_unknown_model_is_an_error_in_window_as_in_pack(command):
    conversation = orjson.dumps(as_openai([turn(1)]))
    argv = [sys.executable, "-m", "xvckit", "context", *command, "--model", "gpt-nonesuch"]
    done = subprocess.run(argv, input=conversation, capture_output=True, timeout=60)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.startswith(b"xvckit: --model gpt-nonesuch: unknown ") and done.stderr.count(b"\n") == 1
    with pytest.raises(UserError, match=r"^--model gpt-nonesuch: unknown model"):
        fit(as_openai([turn(1)]), 700, model="gpt-nonesuch")
