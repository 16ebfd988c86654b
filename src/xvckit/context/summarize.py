"""Summaries of the older part of a conversation within a token allowance: extractive by
default (offline and deterministic: the same conversation gives the same summary), or written
by a model through the xvckit gateway (`--summarize-model`)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from xvckit.context.conversation import Tokenizer, blocks, call_id
from xvckit.errors import UserError
from xvckit.providers.message_text import json_text

TOOL_OUTPUT_CHARS = 2_000  # the head of a tool output is what a summary can use of it
PIECE_CHARS = 300  # an extracted line or sentence is cut to this
GATEWAY_TIMEOUT_S = 120


CALL_WEIGHT, OUTPUT_WEIGHT = -1, -2  # what was said outranks what was called and returned


@dataclass(frozen=True)
class Entry:
    """One thing said or done in the transcript a summary is made from."""

    speaker: str  # "user", "assistant", "read_file returned"
    text: str
    weight: int = 0


@dataclass(frozen=True)
class Summarizer:
    """A way to summarize (`name` goes in the summary's header and the report) and its function
    of the transcript and a token allowance."""

    name: str
    summarize: Callable[[list[Entry], int, Tokenizer], str]

    def summary(
        self, messages: list[dict], names: dict[str, str], tokens: int, allowance: int, tokenizer: Tokenizer
    ) -> str:
        """A text block of at most `allowance` tokens standing for `messages` (`tokens` long):
        a header saying what it replaces, then the summary; "" if not even the header fits."""
        header = f"[Summary of the {len(messages)} earlier messages ({tokens:,} tokens), {self.name}]"
        room = allowance - tokenizer.count(header) - 1
        if room <= 0:
            return ""
        body = self.summarize(transcript(messages, names), room, tokenizer)
        return tokenizer.clamp(f"{header}\n{body}".rstrip(), allowance)


def transcript(messages: list[dict], names: dict[str, str]) -> list[Entry]:
    """What was said and done in `messages`, in order; tool outputs cut to their head."""
    entries = []
    for message in messages:
        if message["role"] == "tool":
            entries.append(_output(message, names))
            continue
        content = message.get("content")
        said = [content] if isinstance(content, str) else []
        calls = []
        for block in blocks(message):
            kind = block.get("type")
            if kind == "text":
                said.append(block.get("text") or "")
            elif kind == "tool_use":
                calls.append(_call(block.get("name"), json_text(block.get("input"))))
            elif kind == "tool_result":
                entries.append(_output(block, names))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            calls.append(_call(function.get("name"), function.get("arguments", "")))
        text = "\n".join(part for part in said if part.strip())
        entries += [Entry(message["role"], text)] if text else []
        entries += calls
    return entries


def _call(name: str | None, arguments: str) -> Entry:
    return Entry("assistant", f"called {name}({arguments})", CALL_WEIGHT)


def _output(output: dict, names: dict[str, str]) -> Entry:
    content = output.get("content")
    text = content if isinstance(content, str) else "\n".join(b.get("text") or "" for b in blocks(output))
    return Entry(f"{names.get(call_id(output), 'tool')} returned", text[:TOOL_OUTPUT_CHARS], OUTPUT_WEIGHT)


_PATH = re.compile(
    r"\w[\w.-]*/[\w./-]+|\b[\w-]+\.(?:py|js|ts|tsx|go|rs|java|c|h|cc|cpp|hpp|md|json|ya?ml|toml|sh|sql)\b"
)
_IDENTIFIER = re.compile(r"`[^`]+`|\b[a-z]\w*_\w+\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][a-z]+[A-Z]\w*\b|\b\w+\(")
_DECISION = re.compile(
    r"\b(?:decid\w*|agreed?|chose|choose|will|must|should|instead|fix\w*|because|plan\w*|next|todo|never|always)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")


@dataclass(frozen=True)
class _Piece:
    score: int
    order: int
    line: str


def extractive(entries: list[Entry], allowance: int, tokenizer: Tokenizer) -> str:
    """The most informative lines and sentences, in conversation order, one per line: those
    stating decisions, each message's first sentence, those naming file paths and code
    identifiers; tool calls and outputs weigh less. Ties go to the earlier piece, so the result
    is deterministic."""
    ranked = sorted(_pieces(entries), key=lambda piece: (-piece.score, piece.order))
    chosen: list[_Piece] = []
    spent = 0
    for piece in ranked:
        cost = tokenizer.count(piece.line) + 1
        if spent + cost <= allowance:
            chosen.append(piece)
            spent += cost
    while chosen:  # joining can tokenize differently from the pieces alone
        text = "\n".join(piece.line for piece in sorted(chosen, key=lambda piece: piece.order))
        if tokenizer.count(text) <= allowance:
            return text
        chosen.pop()
    return ""


EXTRACTIVE = Summarizer("extractive", extractive)


def _pieces(entries: list[Entry]) -> list[_Piece]:
    pieces, seen = [], set()
    for entry in entries:
        first = True
        for line in entry.text.splitlines():
            for sentence in _SENTENCE_END.split(line.strip()):
                sentence = sentence[:PIECE_CHARS]
                if sentence in seen or (len(sentence.split()) < 2 and not _IDENTIFIER.search(sentence)):
                    continue
                seen.add(sentence)
                score = _score(sentence, first) + entry.weight
                if score > 0:  # a piece with none of the signals is filler, however much room is left
                    pieces.append(_Piece(score, len(pieces), f"{entry.speaker}: {sentence}"))
                first = False
    return pieces


def _score(sentence: str, first: bool) -> int:
    return (
        2 * first
        + 2 * bool(_PATH.search(sentence))
        + bool(_IDENTIFIER.search(sentence))
        + 3 * bool(_DECISION.search(sentence))
    )


_INSTRUCTIONS = (
    "Summarize the conversation below for the assistant that continues it, in at most {tokens} "
    "tokens. Keep what was decided and why, file paths, code identifiers, commands, results of "
    "tool calls that still matter, and open questions. Write plain text; no preamble."
)


def through_gateway(model: str, base_url: str, api_key: str) -> Summarizer:
    """Summaries by `model` through an OpenAI-compatible gateway (POST
    {base_url}/chat/completions); a gateway that fails is a one-line user error."""
    url = f"{base_url.rstrip('/')}/chat/completions"

    def summarize(entries: list[Entry], allowance: int, tokenizer: Tokenizer) -> str:
        body = {
            "model": model,
            "max_tokens": allowance,
            "messages": [
                {"role": "system", "content": _INSTRUCTIONS.format(tokens=allowance)},
                {"role": "user", "content": "\n\n".join(f"{e.speaker}: {e.text}" for e in entries)},
            ],
        }
        request = urllib.request.Request(
            url,
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=GATEWAY_TIMEOUT_S) as response:
                reply = orjson.loads(response.read())
            text = reply["choices"][0]["message"]["content"] or ""
        except urllib.error.HTTPError as exc:
            raise UserError(
                f"summarizing with {model} at {url} failed: HTTP {exc.code}: {_reason(exc)}"
            ) from exc
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise UserError(f"summarizing with {model} at {url} failed: {exc}") from exc
        return tokenizer.clamp(text.strip(), allowance)

    return Summarizer(model, summarize)


def _reason(error: urllib.error.HTTPError) -> str:
    """The gateway's error message, on one line."""
    try:
        message = orjson.loads(error.read())["error"]["message"]
    except (OSError, ValueError, KeyError, TypeError):  # not the gateway's JSON error body
        message = error.reason
    return " ".join(str(message).split())
