"""OpenAI's legacy completions in the simulator (`POST /v1/completions`), in OpenAI's wire format
(https://platform.openai.com/docs/api-reference/completions).

A completion is `{id: "cmpl-...", object: "text_completion", created, model, choices: [{text,
index, logprobs: null, finish_reason: stop | length}], usage: {prompt_tokens,
completion_tokens, total_tokens}}`; a stream is the same object per `data:` event, each with
the next piece of a choice's `text` and `finish_reason` null until its last (empty) piece,
then `data: [DONE]`; with `stream_options: {"include_usage": true}` every chunk has
`usage: null` and a chunk with `choices: []` and the usage comes before `[DONE]`.

As OpenAI does, it serves only completion models (`COMPLETION_MODELS`, and the names given with
`--model`): a chat model is a 404 that points to chat completions, an unknown one the usual
404. `prompt` is a string, a list of strings, a token array or a list of token arrays; each
prompt gets `n` choices (`index` = prompt * n + choice); `max_tokens` defaults to 16; `echo`
puts the prompt before the text. `logprobs` is read (0-5) but answered with null, `suffix`,
`stop`, `best_of` and the sampling fields are accepted and do not change the text. Words,
token counts, rate limits and timing are the chat route's (`sim/text.py`, the simulator's
limiter and delay).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from xvckit.sim import openai_routes
from xvckit.sim.exchange import Reply, Request, Route, Simulator
from xvckit.sim.text import DEFAULT_REPLY_TOKENS, estimate_tokens, pieces, reply_text

DEFAULT_MAX_TOKENS = 16  # the API's default
MAX_N = 128
MAX_LOGPROBS = 5
# The models OpenAI serves on /v1/completions, with their context windows (prompt and output).
COMPLETION_MODELS = {"gpt-3.5-turbo-instruct": 4_097, "davinci-002": 16_384, "babbage-002": 16_384}


def _prompts(value: Any) -> list[tuple[str, int]] | None:
    """Each prompt's text (a token array written as its numbers) and tokens; None if malformed."""
    if isinstance(value, str):
        return [(value, estimate_tokens(value))]
    if not isinstance(value, list) or not value:
        return None
    if all(type(token) is int for token in value):
        return [(" ".join(map(str, value)), len(value))]
    found = []
    for item in value:
        if isinstance(item, str):
            found.append((item, estimate_tokens(item)))
        elif isinstance(item, list) and item and all(type(token) is int for token in item):
            found.append((" ".join(map(str, item)), len(item)))
        else:
            return None
    return found


def _window(sim: Simulator, model: str) -> int | None:
    """The model's context window, None when this endpoint does not serve it."""
    window = next((size for name, size in COMPLETION_MODELS.items() if model.startswith(name)), None)
    if window is None:
        if model not in sim.settings.models:
            return None
        window = sim.catalog.limits(model).window
    cap = sim.settings.context_window
    return window if cap is None else min(window, cap)


def _refused(sim: Simulator, req: Request, body: dict[str, Any]) -> Reply | None:
    """The 400 OpenAI sends for a parameter out of its range, else None."""
    n = body.get("n")
    if n is not None and (type(n) is not int or not 1 <= n <= MAX_N):
        return req.fail(400, f"Invalid 'n': must be an integer from 1 to {MAX_N}.", "invalid_value", "n")
    logprobs = body.get("logprobs")
    if logprobs is not None and (type(logprobs) is not int or not 0 <= logprobs <= MAX_LOGPROBS):
        message = f"Invalid 'logprobs': must be an integer from 0 to {MAX_LOGPROBS}."
        return req.fail(400, message, "invalid_value", "logprobs")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 0):
        return req.fail(400, "Invalid 'max_tokens': integer below minimum value.", "integer_below_min_value")
    if body.get("echo") not in (None, True, False):
        return req.fail(400, "Invalid 'echo': expected a boolean.", "invalid_type", "echo")
    return None


async def completions(sim: Simulator, req: Request) -> Reply:
    body = req.json
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return req.fail(400, "you must provide a model parameter")
    prompts = _prompts(body.get("prompt"))
    if prompts is None:
        message = "'prompt' must be a string, array of strings, array of tokens, or array of token arrays"
        return req.fail(400, message, param="prompt")
    refused = _refused(sim, req, body)
    if refused:
        return refused
    window = _window(sim, model)
    if window is None:
        unknown = sim.unknown_model(req, model)
        if unknown:
            return unknown
        message = (
            "This is a chat model and not supported in the v1/completions endpoint. "
            "Did you mean to use v1/chat/completions?"
        )
        return req.fail(404, message, param="model")
    max_tokens = body.get("max_tokens")
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    for _, tokens in prompts:
        if tokens + max_tokens > window:
            message = (
                f"This model's maximum context length is {window} tokens, however you requested "
                f"{tokens + max_tokens} tokens ({tokens} in your prompt; {max_tokens} for the completion). "
                "Please reduce your prompt; or completion length."
            )
            return req.fail(400, message, "context_length_exceeded", "prompt")

    wanted = req.control(b"x-sim-output-tokens")
    wanted = DEFAULT_REPLY_TOKENS if wanted is None else wanted
    made = min(wanted, max_tokens)
    finish = "length" if wanted > max_tokens else "stop"
    echo = body.get("echo") is True
    choices = []
    for text, _ in prompts:
        answer = reply_text(text, made)
        choices += [(f"{text}{answer}" if echo else answer, finish)] * (body.get("n") or 1)
    prompt_tokens = sum(tokens for _, tokens in prompts)
    completion_tokens = made * len(choices)
    refusal = sim.admit(req, model, prompt_tokens + completion_tokens)
    if refusal:
        return refusal
    await sim.delay(req)
    head = {
        "id": sim.new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return Reply(200, _chunks(head, choices, usage if include_usage else None), True, completion_tokens)
    listed = [_choice(index, text, why) for index, (text, why) in enumerate(choices)]
    return Reply(200, [orjson.dumps({**head, "choices": listed, "usage": usage})], tokens=completion_tokens)


def _choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def _chunks(head: dict[str, Any], choices: list[tuple[str, str]], usage: dict | None) -> list[bytes]:
    """The stream's events, choice after choice; `usage` given means include_usage was asked for."""
    base = {**head, "usage": None} if usage is not None else head

    def event(listed: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": listed, **extra}) + b"\n\n"

    events = []
    for index, (text, finish) in enumerate(choices):
        events += [event([_choice(index, piece, None)]) for piece in pieces(text)]
        events.append(event([_choice(index, "", finish)]))
    if usage is not None:
        events.append(event([], usage=usage))
    events.append(b"data: [DONE]\n\n")
    return events


COMPLETIONS = Route("completions", openai_routes.DIALECT, completions)
ROUTES = {("POST", "/v1/completions"): COMPLETIONS}
