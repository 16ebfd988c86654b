"""A conversation fitted into a token budget (`xvckit context window`), in the format it came in.

The guide's answer to context overflow is windowing and summarization. What gives way, in
order, until the conversation fits:
1. tool outputs of the older turns (all but the `keep_turns` most recent), oldest first, each
   replaced by a marker naming the tool and the size pruned;
2. the oldest turns, summarized into one text block at the head of the first turn kept (a
   user prompt, so Anthropic's alternation and "user first" hold); as few turns as fit;
3. fewer recent turns kept verbatim, down to the last one, its summary shrinking last;
4. tool outputs of the last turn, oldest first, except those answering its latest step.
The system part (OpenAI's leading system messages, Anthropic's `system`) and tool definitions
are never touched. A turn runs from one user prompt to the next, so a tool call and its result
are always kept, pruned or summarized together. If the system part and the last turn, even
pruned, exceed the budget, that is an error saying how many tokens they need.

Tokens are counted exactly with tiktoken as the provider reads the messages: each message's
text, tool calls and tool results, 4 tokens of framing per message, images at a flat rate,
tool definitions as JSON, and 3 tokens priming the reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from itertools import chain
from typing import Any

from xvckit.context.conversation import (
    Conversation,
    Tokenizer,
    pruned,
    tool_outputs,
    with_leading_text,
)
from xvckit.context.summarize import EXTRACTIVE, Summarizer
from xvckit.errors import UserError

DEFAULT_KEEP_TURNS = 2
SUMMARY_SHARE = 8  # a summary takes at most 1/8 of the budget by default ...
SUMMARY_MAX_TOKENS = 1_000  # ... and no more than this


@dataclass
class WindowReport:
    """What `fit` did, for the stderr line or `--json-report`."""

    format: str
    encoding: str
    budget: int
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    turns_kept_verbatim: int = 0  # 0: nothing needed windowing
    tool_outputs_pruned: int = 0  # messages whose tool outputs became markers
    turns_summarized: int = 0
    messages_summarized: int = 0
    summary_tokens: int = 0
    summarized_by: str | None = None

    def line(self) -> str:
        """The report as one line for stderr."""
        text = f"{self.tokens_before:,} -> {self.tokens_after:,} tokens (budget {self.budget:,})"
        if self.tool_outputs_pruned:
            text += f"; {_counted(self.tool_outputs_pruned, 'tool output')} pruned"
        if self.turns_summarized:
            messages = _counted(self.messages_summarized, "message")
            text += f"; {_counted(self.turns_summarized, 'turn')} ({messages}) "
            if self.summary_tokens:
                text += f"summarized ({self.summarized_by}, {self.summary_tokens:,} tokens)"
            else:
                text += "dropped (no room for a summary)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def count_tokens(conversation: Any, model: str | None = None) -> int:
    """A conversation's tokens as `fit` counts them."""
    tokenizer = Tokenizer(model)
    chat = Conversation.read(conversation)
    return chat.fixed_tokens(tokenizer) + sum(tokenizer.message(message) for message in chat.messages)


def fit(
    conversation: Any,
    budget: int,
    *,
    model: str | None = None,
    keep_turns: int = DEFAULT_KEEP_TURNS,
    summary_tokens: int | None = None,
    summarizer: Summarizer = EXTRACTIVE,
) -> tuple[Any, WindowReport]:
    """`conversation` (OpenAI or Anthropic, as parsed JSON) within `budget` tokens of `model`'s
    encoding, in the same format, and what was done to it. `summary_tokens` caps the summary
    (default: 1/8 of the budget, at most 1,000). Raises UserError when even the system part and
    the last turn cannot fit."""
    tokenizer = Tokenizer(model)
    chat = Conversation.read(conversation)
    names = chat.tool_names()
    costs = _Costs.of(chat, names, tokenizer)
    fixed = chat.fixed_tokens(tokenizer)
    before = fixed + sum(costs.full)
    count = len(chat.messages)
    report = WindowReport(chat.format, tokenizer.name, budget, before, before, count, count)
    if before <= budget:
        return conversation, report

    turns = chat.turns()
    if not turns:
        raise _does_not_fit(before, budget)
    cap = summary_tokens or min(SUMMARY_MAX_TOKENS, budget // SUMMARY_SHARE)
    prunable_last = _before_latest_step(chat.messages, turns[-1])
    last_least = sum(costs.full[i] for i in turns[-1]) - sum(costs.saving(i) for i in prunable_last)
    keep, summarized, allowance = _plan(costs.per_turn(turns), last_least, budget - fixed, keep_turns, cap)
    kept = range(turns[summarized].start, count)
    old = chat.messages[: kept.start]
    summary = (
        summarizer.summary(old, names, sum(costs.full[: kept.start]), allowance, tokenizer) if old else ""
    )
    excess = fixed + tokenizer.count(summary) + sum(costs.full[i] for i in kept) - budget
    older = range(kept.start, turns[-keep].start)
    lean = costs.to_prune(chain(older, prunable_last), excess)
    total = budget + excess - sum(costs.saving(i) for i in lean)
    if total > budget:
        raise _does_not_fit(total, budget)

    messages = [costs.lean_messages[i] if i in lean else chat.messages[i] for i in kept]
    if summary:
        messages[0] = with_leading_text(messages[0], summary)
    done = replace(
        report,
        tokens_after=total,
        messages_after=len(messages),
        turns_kept_verbatim=keep,
        tool_outputs_pruned=len(lean),
        turns_summarized=summarized,
        messages_summarized=kept.start,
        summary_tokens=tokenizer.count(summary),
        summarized_by=summarizer.name if summarized else None,
    )
    return chat.with_messages(messages), done


@dataclass
class _Costs:
    """Each message's tokens verbatim (`full`) and with its tool outputs pruned (`lean`)."""

    full: list[int]
    lean: list[int]
    lean_messages: list[dict]

    @classmethod
    def of(cls, chat: Conversation, names: dict[str, str], tokenizer: Tokenizer) -> _Costs:
        full = [tokenizer.message(message) for message in chat.messages]
        lean_messages = [pruned(m, names, tokenizer) if tool_outputs(m) else m for m in chat.messages]
        lean = [
            tokenizer.message(lean_message) if lean_message is not message else cost
            for lean_message, message, cost in zip(lean_messages, chat.messages, full, strict=True)
        ]
        return cls(full, lean, lean_messages)

    def per_turn(self, turns: list[range]) -> list[tuple[int, int]]:
        return [(sum(self.full[i] for i in turn), sum(self.lean[i] for i in turn)) for turn in turns]

    def saving(self, message: int) -> int:
        return self.full[message] - self.lean[message]

    def to_prune(self, candidates: Iterable[int], excess: int) -> set[int]:
        """The first candidates whose pruning saves `excess` tokens (every prunable one if none do)."""
        chosen = set()
        for i in candidates:
            if excess <= 0:
                break
            if self.saving(i):
                chosen.add(i)
                excess -= self.saving(i)
        return chosen


def _plan(
    turns: list[tuple[int, int]], last_least: int, room: int, keep_turns: int, cap: int
) -> tuple[int, int, int]:
    """(turns kept verbatim, oldest turns summarized, tokens allowed for the summary) for turns
    of (full, lean) tokens: as many recent turns as asked and as few summarized as fit with
    every older tool output pruned; failing that, the last turn alone (`last_least` tokens
    once pruned as far as it may be) and everything before it summarized into what room is
    left. A summary takes at most half of what it replaces once pruned, so each turn
    summarized saves tokens."""
    n = len(turns)
    for keep in range(min(keep_turns, n), 0, -1):
        older = n - keep
        needed = sum(full for full, _ in turns[older:]) + sum(lean for _, lean in turns[:older])
        replaced = 0
        for summarized in range(older + 1):
            allowance = min(cap, replaced // 2)
            if needed - replaced + allowance <= room:
                return keep, summarized, allowance
            if summarized < older:
                replaced += turns[summarized][1]
    before_last = sum(lean for _, lean in turns[:-1])
    return 1, n - 1, max(0, min(cap, before_last // 2, room - last_least))


def _before_latest_step(messages: list[dict], turn: range) -> range:
    """The part of the last turn whose tool outputs may go: all before its latest assistant
    message, so the outputs that message's calls produced stay."""
    latest = max((i for i in turn if messages[i]["role"] == "assistant"), default=turn.start)
    return range(turn.start, latest)


def _does_not_fit(need: int, budget: int) -> UserError:
    return UserError(
        f"the system part and the last turn need {need:,} tokens even with older tool outputs pruned; "
        f"the budget is {budget:,}"
    )
