"""What a review asks the model for one file, and the shape of the answer.

The prompt puts what is the same for every file first (the instructions, the answer's shape),
then the context pack, then the file's diff with the new file's line numbers in a column of
their own, so the model names lines the review can check. Models that take a JSON schema get
FINDINGS_SCHEMA as structured output (OpenAI's `response_format`, Anthropic's
`output_config.format`); the others are asked for the same JSON in words, and the answer is
parsed leniently (review_findings.parse_answer).
"""

from __future__ import annotations

import re

from xvckit.batch.requests import ANTHROPIC, Dialect
from xvckit.batch.review_git import ADDED, DELETED, FileDiff

SCHEMA_NAME = "review_findings"
FINDINGS_SCHEMA = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": ["integer", "null"]},
                    "severity": {"type": "string", "enum": ["error", "warning", "note"]},
                    "category": {"type": "string"},
                    "reason": {"type": "string"},
                    "suggestion": {"type": ["string", "null"]},
                },
                "required": ["line", "severity", "category", "reason", "suggestion"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["findings"],
    "additionalProperties": False,
}

# Models that take a JSON schema for their answer (by name prefix, a `provider/` prefix ignored):
# OpenAI's from gpt-4o-2024-08-06 on (not o1-mini or o1-preview), Anthropic's from Opus 4.1 and
# the 4.5 family on.
_SCHEMA_MODELS = re.compile(
    r"(gpt-4o-mini|gpt-4o(?!-2024-05-13)|gpt-4\.1|gpt-5|o1(?!-mini|-preview)|o3|o4-mini"
    r"|claude-(opus-4-[1-9]|sonnet-4-[5-9]|haiku-4-[5-9]|(opus|sonnet|haiku)-[5-9])(?!\d))"
)

_TASK = """\
Review one file of a change, as a careful senior engineer would before it merges.

Report the problems the change brings in or leaves broken: bugs, security holes, wrong error \
handling, races, resource leaks, performance traps, broken compatibility, missing or wrong tests \
and docs for changed behaviour. Say nothing a formatter or linter would settle, and do not praise. \
An empty list is the right answer when nothing deserves a reviewer's time.
"""

_ANSWER = """\
Answer with one JSON object and nothing else:
{"findings": [{"line": 12, "severity": "warning", "category": "bug", "reason": "...", "suggestion": null}]}
- line: a line of the new file, from the number column of the diff (an added or unchanged \
line); null when the finding is about the file as a whole or about removed lines only.
- severity: error (must be fixed before it merges), warning (should be fixed), note (worth knowing).
- category: one word, or words joined by hyphens: bug, security, performance, concurrency, \
error-handling, compatibility, tests, docs, maintainability.
- reason: what is wrong and why it matters, in one to three sentences.
- suggestion: the fix in a sentence or a short snippet, or null.
"""


def wants_schema(model: str, asked: str) -> bool:
    """Whether to send the schema: `asked` is auto (by the model), on or off."""
    if asked != "auto":
        return asked == "on"
    return _SCHEMA_MODELS.match(model.lower().rsplit("/", 1)[-1]) is not None


def body_extra(dialect: Dialect, schema: bool) -> dict | None:
    """The request body's structured-output field in `dialect`, or None."""
    if not schema:
        return None
    if dialect is ANTHROPIC:
        return {"output_config": {"format": {"type": "json_schema", "schema": FINDINGS_SCHEMA}}}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": FINDINGS_SCHEMA},
        }
    }


def render(diff: FileDiff, instructions: str, context: str) -> str:
    """The prompt for one file: the task, the repository's instructions, the answer's shape,
    the context pack (when there is one) and the file's diff."""
    parts = [_TASK]
    if instructions.strip():
        parts.append(f"Instructions from this repository:\n{instructions.strip()}\n")
    parts.append(_ANSWER)
    if context:
        parts.append(
            "Context from the repository, for reference (review the change, not this):\n"
            f"<context>\n{context.rstrip()}\n</context>\n"
        )
    parts.append(f"The change to {diff.path} ({describe(diff)}):\n{numbered(diff)}")
    return "\n".join(parts)


def describe(diff: FileDiff) -> str:
    if diff.status == DELETED:
        return "deleted in the branch: every line below is removed; give findings line null"
    if diff.status == ADDED:
        return "a new file"
    if diff.old_path:
        return f"{diff.status} from {diff.old_path}"
    return diff.status


def numbered(diff: FileDiff) -> str:
    """The hunks in a fence, each line with its number in the new file (blank when removed)."""
    rows = []
    for hunk in diff.hunks:
        rows.append(f"@@ {hunk.heading}".rstrip())
        rows.extend(f"{_number(line.new):>6} {line.kind} {line.text}" for line in hunk.lines)
    body = "\n".join(rows)
    fence = "`" * max(3, _longest_backticks(body) + 1)
    return f"{fence}diff\n{body}\n{fence}\n"


def _number(line: int | None) -> str:
    return "" if line is None else str(line)


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
