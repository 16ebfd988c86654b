"""What a commit message says: its Conventional Commit type, whether it reverts, fixes up or
squashes another commit, and whether an AI tool co-wrote it.

AI co-authorship comes from one table of signatures (SIGNATURES): `Co-authored-by` trailers
naming a tool, the lines tools add to their messages ("Generated with Claude Code"), aider's
"aider: " subject prefix and "(aider)" author suffix, and bot authors. Adding a tool is adding
a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# bits of a commit's flags
MERGE = 1
AI = 2
REVERT = 4
FIXUP = 8
SQUASH = 16
FOLLOW_UP = 32  # touches lines another commit added within a day (set by the line tracker)
BREAKING = 64

_CONVENTIONAL = re.compile(r"(?P<type>[A-Za-z]+)(?:\([^()\r\n]*\))?(?P<breaking>!)?: ?\S")
# the Conventional Commit types (Angular's list), and other spellings of some; a subject such as
# "Pacing: ..." names a component, not a type
TYPES = frozenset(
    {"feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert"}
)
_ALIASES = {"feature": "feat", "bugfix": "fix", "hotfix": "fix", "tests": "test", "doc": "docs"}
_REVERTS = re.compile(r"^This reverts commit [0-9a-f]{7,40}", re.MULTILINE)
_COAUTHOR = re.compile(r"^co-authored-by:[ \t]*(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Signature:
    tool: str
    where: str  # "coauthor" (a Co-authored-by value), "author" (name <email>), "subject", "body"
    pattern: re.Pattern[str]


_FLAGS = re.IGNORECASE | re.MULTILINE


def _sig(tool: str, where: str, pattern: str) -> Signature:
    return Signature(tool, where, re.compile(pattern, _FLAGS))


SIGNATURES: tuple[Signature, ...] = (
    _sig("claude-code", "body", r"generated with \[?claude code"),
    _sig("claude", "coauthor", r"noreply@anthropic\.com|^claude\b"),
    _sig("aider", "subject", r"^aider: "),
    _sig("aider", "coauthor", r"\baider\b|noreply@aider\.chat"),
    _sig("aider", "author", r"\(aider\) <"),
    _sig("copilot", "coauthor", r"\bcopilot\b"),
    _sig("copilot", "author", r"^copilot <|copilot-swe-agent"),
    _sig("codex", "coauthor", r"\bcodex\b|chatgpt-codex-connector"),
    _sig("codex", "author", r"chatgpt-codex-connector|^codex <"),
    _sig("cursor", "coauthor", r"cursoragent@cursor\.com|^cursor agent\b"),
    _sig("devin", "author", r"devin-ai-integration"),
    _sig("devin", "coauthor", r"devin-ai-integration"),
    _sig("gemini", "coauthor", r"gemini-code-assist|^gemini\b"),
    _sig("jules", "author", r"google-labs-jules"),
    _sig("openhands", "coauthor", r"\bopenhands\b"),
)


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # the Conventional Commit type, lower case; "" when the subject has none
    flags: int  # AI, REVERT, FIXUP, SQUASH, BREAKING
    ai_tool: str  # the first signature's tool; "" when none matched


def classify(message: str, author: str) -> Message:
    """What `message` (subject and body) written by `author` ("name <email>") says."""
    subject, _, body = message.partition("\n")
    subject = subject.strip()
    flags = 0
    if subject.startswith("fixup! "):
        flags |= FIXUP
    elif subject.startswith(("squash! ", "amend! ")):
        flags |= SQUASH
    if subject.startswith('Revert "') or _REVERTS.search(body):
        flags |= REVERT
    tool = ai_tool(subject, body, author)
    if tool:
        flags |= AI
    plain = subject.removeprefix("aider: ")
    kind = ""
    match = _CONVENTIONAL.match(plain)
    if match:
        kind = match["type"].lower()
        kind = _ALIASES.get(kind, kind)
        if kind not in TYPES:
            kind = ""
        elif match["breaking"]:
            flags |= BREAKING
    if kind == "revert":
        flags |= REVERT
    if _BREAKING_FOOTER.search(body):
        flags |= BREAKING
    return Message(kind, flags, tool)


# every signature of one place in one pattern: most commits match none, and are told so in
# one search per place
_ANY = {
    where: re.compile("|".join(f"(?:{s.pattern.pattern})" for s in SIGNATURES if s.where == where), _FLAGS)
    for where in ("coauthor", "author", "subject", "body")
}


def ai_tool(subject: str, body: str, author: str) -> str:
    """The AI tool a commit's signatures name, or ""."""
    places = {"author": [author], "subject": [subject], "body": [body], "coauthor": _COAUTHOR.findall(body)}
    if not any(_ANY[where].search(text) for where, texts in places.items() for text in texts):
        return ""
    for sig in SIGNATURES:
        if any(sig.pattern.search(text) for text in places[sig.where]):
            return sig.tool
    return ""
