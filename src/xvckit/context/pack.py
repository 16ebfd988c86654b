"""A context pack: the repository's guidance, its outline and the task's code within a budget.

The budget splits as the guide says (20k core, 60k working, 20k buffer of 100k by default;
`context:` in xvckit.yaml changes the ratios). `--budget N` is what the pack may use (core +
working); with `--model` the pack gets the model's window less the buffer. Core is planned
first; what it leaves goes to the working part.

Order, for provider prompt caches: core (the same for every task), then the repository
outline (files in path order, by importance until its share is spent: the same for every
task at a budget), then the task's code and related files. The rendered text is counted with
the model's encoding and re-planned until it fits: `tokens <= budget` always.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from xvckit.config.schema import ContextSettings
from xvckit.context import render
from xvckit.context.chunking import FULL, STRIPPED, Chunked
from xvckit.context.compress import Candidate, Plan, plan
from xvckit.context.files import SECRET, reason_by_name
from xvckit.context.index import Index, IndexedFile, build, rebuild
from xvckit.context.languages import language_for
from xvckit.context.ranking import Ranking, rank
from xvckit.context.tokens import DEFAULT_ENCODING, count, model_info
from xvckit.errors import UserError

MAX_CANDIDATES = 400  # files the planner considers for code, best first
FIT_ATTEMPTS = 8
MAX_SUGGESTED_BUDGET = 1 << 24  # an empty pack's error suggests a budget up to this
NOTES_SHARE = 0.25  # of the core part, at most, for notes (knowledge-base entries)


@dataclass(frozen=True)
class Note:
    """Text a caller hands the pack for its core part (the knowledge base's entries relevant
    to the task, best first): kept whole or left out, within NOTES_SHARE of the core."""

    name: str  # shown as the block's path, e.g. kb/retry-on-busy
    text: str
    score: float = 0.0


@dataclass
class Budget:
    total: int  # what the pack may use
    core: int  # the core part's allowance (what it leaves goes to working)
    buffer: int  # kept for the response, outside the pack
    encoding: str


@dataclass
class FileEntry:
    path: str
    section: str  # core, outline, working
    level: str  # full, partial, signatures, outline, path
    tokens: int
    score: float
    chunks: list[dict] = field(default_factory=list)


@dataclass
class Pack:
    budget: Budget
    blocks: list[tuple[str, str]]  # (name, text): core, outline, task; the text is their concatenation
    files: list[FileEntry]
    excluded: dict[str, int]
    indexed: int
    parsed: int
    core_tokens: int
    outline_tokens: int

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.blocks)

    @property
    def tokens(self) -> int:
        return count(self.text, self.budget.encoding)

    def as_dict(self) -> dict:
        """The JSON form: budget, tokens, sections, files, what was left out, and the text in
        blocks whose stable ones carry Anthropic `cache_control` breakpoints."""
        tokens = self.tokens
        return {
            "budget": self.budget.total,
            "tokens": tokens,
            "encoding": self.budget.encoding,
            "buffer": self.budget.buffer,
            "sections": {
                "core": {"budget": self.budget.core, "tokens": self.core_tokens},
                "working": {
                    "budget": self.budget.total - self.core_tokens,
                    "tokens": tokens - self.core_tokens,
                    "outline_tokens": self.outline_tokens,
                },
            },
            "files": [asdict(entry) for entry in self.files],
            "indexed_files": self.indexed,
            "parsed_files": self.parsed,
            "excluded": {k: v for k, v in self.excluded.items() if k != SECRET},
            "secrets_excluded": self.excluded.get(SECRET, 0),
            "blocks": [
                {"type": "text", "text": text}
                | ({"cache_control": {"type": "ephemeral"}} if name != "task" else {})
                for name, text in self.blocks
                if text
            ],
        }

    def summary(self) -> str:
        code = sum(1 for e in self.files if e.level in ("full", "partial", "signatures"))
        return (
            f"{self.tokens:,} of {self.budget.total:,} tokens, {code} files with code, "
            f"{len(self.files) - code} outlined, {self.excluded.get(SECRET, 0)} secret-looking files left out"
        )


def resolve_budget(settings: ContextSettings, budget: int | None, model: str | None) -> Budget:
    """The pack's budget from --budget, --model or the configured window, split as configured."""
    shares = settings.core + settings.working
    encoding = settings.encoding
    window = settings.window
    if model:
        info = model_info(model)
        if info is None:
            raise UserError(f"--model {model}: unknown context window; give --budget instead")
        encoding, window = info
    if budget is not None and budget <= 0:
        raise UserError(f"--budget {budget}: must be more than 0")
    total = budget if budget is not None else int(window * shares)
    buffer = int(total * settings.buffer / shares) if budget is not None else window - total
    return Budget(total, int(total * settings.core / shares), buffer, encoding or DEFAULT_ENCODING)


def build_pack(
    task: str,
    repo: Path,
    settings: ContextSettings,
    *,
    budget: int | None = None,
    model: str | None = None,
    core: list[str] | None = None,
    fmt: str = "markdown",
    notes: list[Note] | None = None,
) -> Pack:
    if not task.strip():
        raise UserError("the task is empty: say in words what the pack is for")
    if not repo.is_dir():
        raise UserError(f"--repo {repo}: not a directory")
    plan_budget = resolve_budget(settings, budget, model)
    index = build(repo, max_bytes=settings.max_file_kb * 1024, exclude=tuple(settings.exclude))
    if not index.files:
        raise UserError(f"--repo {repo}: no text files to pack")
    ranking = rank(index, task)
    core_files = _core_files(index, core, settings)
    packed = _Packer(index, ranking, settings, plan_budget, core_files, fmt, notes or []).fit()
    if not packed.text:
        raise UserError(_nothing_fits(index, ranking, settings, plan_budget, core_files, fmt))
    return packed


def _nothing_fits(
    index: Index, ranking: Ranking, settings: ContextSettings, budget: Budget, core: list[int], fmt: str
) -> str:
    """Why a pack came out empty, with a budget that holds something (doubling) if there is one."""
    trial = budget
    while trial.total < MAX_SUGGESTED_BUDGET:
        trial = replace(resolve_budget(settings, trial.total * 2, None), encoding=budget.encoding)
        if _Packer(index, ranking, settings, trial, core, fmt).fit().text:
            return (
                f"a budget of {budget.total:,} tokens is too small for anything in {index.repo}; "
                f"try --budget {trial.total}"
            )
    return f"nothing in {index.repo} to pack: no file matches the task, and the core and outline are empty"


def _core_files(index: Index, named: list[str] | None, settings: ContextSettings) -> list[int]:
    positions = {f.path: i for i, f in enumerate(index.files)}
    if named is not None:
        out = []
        for name in named:
            path = Path(name).as_posix().removeprefix("./")
            if path not in positions:
                why = "left out as a secret" if reason_by_name(path) == SECRET else "not an indexed text file"
                raise UserError(f"--core {name}: {why} in {index.repo}")
            out.append(positions[path])
        return out
    # Per pattern, the plainest name first: README.md before README.ja.md.
    top = sorted((f.path for f in index.files if "/" not in f.path), key=lambda path: (len(path), path))
    return [
        positions[path]
        for pattern in settings.core_files
        for path in top
        if fnmatch.fnmatch(path.lower(), pattern.lower())
    ]


class _Packer:
    def __init__(
        self,
        index: Index,
        ranking: Ranking,
        settings: ContextSettings,
        budget: Budget,
        core: list[int],
        fmt: str,
        notes: list[Note] | None = None,
    ) -> None:
        self.index, self.ranking, self.settings, self.budget, self.fmt = index, ranking, settings, budget, fmt
        self.core = list(dict.fromkeys(core))
        self.notes = [(n, render.file_block(n.name, n.text.strip(), "markdown", fmt)) for n in notes or []]
        self.enc = budget.encoding
        self._chunked: dict[int, Chunked | None] = {}
        self._lines: dict[int, str] = {}
        self._line_costs: dict[int, int] = {}
        self._candidates: dict[int, Candidate] = {}

    # --- the parts -----------------------------------------------------------------------

    def chunked(self, f: int) -> Chunked | None:
        if f not in self._chunked:
            indexed = self.index.files[f]
            try:
                data = (self.index.repo / indexed.path).read_bytes()
            except OSError:
                data = None
            chunked = rebuild(indexed.path, data, indexed.parse) if data is not None else None
            if chunked is not None and (not chunked.lines or chunked.chunks[-1].end > len(chunked.lines)):
                chunked = None  # changed since it was indexed
            self._chunked[f] = chunked
        return self._chunked[f]

    def outline_line(self, f: int) -> str:
        if f not in self._lines:
            indexed = self.index.files[f]
            self._lines[f] = render.outline_line(indexed.path, _symbols(indexed))
        return self._lines[f]

    def line_cost(self, f: int) -> int:
        if f not in self._line_costs:
            self._line_costs[f] = count(self.outline_line(f)) + 1
        return self._line_costs[f]

    def candidate(self, f: int, score: float, chunk_scores, outline_cost: int | None) -> Candidate:
        indexed = self.index.files[f]
        header = render.file_block(indexed.path, "", _language(indexed), self.fmt)
        return Candidate(f, score, indexed.parse.chunks, list(chunk_scores), count(header) + 2, outline_cost)

    def stable_outline(self, allowance: int) -> list[int]:
        """Files for the task-independent outline, most important first, within `allowance`."""
        chosen, left = [], allowance - 10
        core = set(self.core)
        for f in np.argsort(-self.ranking.importance, kind="stable"):
            if left <= 0:
                break
            if int(f) in core:
                continue
            cost = self.line_cost(int(f))
            if cost <= left:
                chosen.append(int(f))
                left -= cost
        return sorted(chosen, key=lambda f: self.index.files[f].path)

    def working_candidates(self, outlined: set[int]) -> list[Candidate]:
        corpus, corpus_scores = self.ranking.corpus, self.ranking.chunk_score
        skip = set(self.core)
        order = [int(f) for f in np.argsort(-self.ranking.file_score, kind="stable") if int(f) not in skip]
        out = []
        for f in order[:MAX_CANDIDATES]:
            score = float(self.ranking.file_score[f])
            if score <= 0:
                break
            cand = self._candidates.get(f)
            if cand is None:  # made once per pack: its chunk steps do not depend on the allowance
                lo, hi = int(corpus.first_doc[f]), int(corpus.first_doc[f + 1])
                worth = float(self.ranking.undemoted[f])  # a demoted file's outline line keeps its worth
                cand = self._candidates[f] = self.candidate(f, worth, corpus_scores[lo:hi], None)
            cand.outline_cost = None if f in outlined else self.line_cost(f)
            out.append(cand)
        return out

    def core_candidates(self) -> list[Candidate]:
        # Earlier core files and sections first: guidance files put what matters at the top.
        out = []
        for rank_, f in enumerate(self.core):
            n = len(self.index.files[f].parse.chunks)
            scores = [1.0 / (1 + rank_) / (1 + 0.02 * i) for i in range(n)]
            out.append(self.candidate(f, 1.0, scores, None))
        return out

    # --- fitting -------------------------------------------------------------------------

    def fit(self) -> Pack:
        total = self.budget.total
        core_allow = min(self.budget.core, total)
        work_allow: int | None = None
        best: Pack | None = None
        best_tokens = -1
        for _ in range(FIT_ATTEMPTS):
            packed = self.assemble(core_allow, work_allow)
            tokens = packed.tokens
            if best_tokens < tokens <= total:
                best, best_tokens = packed, tokens
            gap = total - tokens
            if 0 <= gap <= max(total // 100, 16):
                break
            current = work_allow if work_allow is not None else total - packed.core_tokens
            if gap < 0 and current <= 0:
                core_allow = max(core_allow + gap - 4, 0)
                work_allow = 0
                continue
            work_allow = max(current + (gap - 4 if gap < 0 else gap * 9 // 10), 0)
        if best is None:
            best = self.assemble(0, 0, empty=True)
        return best

    def assemble(self, core_allow: int, work_allow: int | None, empty: bool = False) -> Pack:
        fmt, enc = self.fmt, self.enc
        entries: dict[str, FileEntry] = {}
        note_parts = self.note_parts(int(core_allow * NOTES_SHARE), entries) if not empty else []
        notes_tokens = count("".join(note_parts), enc)
        core_plan = plan(self.core_candidates(), core_allow - notes_tokens) if not empty else Plan()
        core_parts = self.code_parts(core_plan, self.core, "core", entries) + note_parts
        core_text = render.section("Core context", "core", core_parts, fmt)
        core_tokens = count(core_text, enc)
        if work_allow is None:
            work_allow = self.budget.total - core_tokens
        share = self.settings.outline_share if not empty else 0
        outlined = self.stable_outline(int(work_allow * share)) if work_allow > 0 else []
        outline_lines = [self.outline_line(f) for f in outlined]
        outline_text = render.section("Repository outline", "outline", render.lines_part(outline_lines), fmt)
        outline_tokens = count(outline_text, enc) if outline_text else 0
        for f in outlined:
            self.entry(entries, f, "outline", "outline" if _symbols(self.index.files[f]) else "path")
        cands = self.working_candidates(set(outlined)) if not empty else []
        work_plan = plan(cands, max(work_allow - outline_tokens, 0))
        order = [c.key for c in cands if work_plan.has_code(c.key)]
        code_text = render.section(
            "Relevant code", "code", self.code_parts(work_plan, order, "working", entries), fmt
        )
        related = [f for f in work_plan.outlined if f not in set(outlined)]
        for f in related:
            self.entry(entries, f, "working", "outline")
        related_text = render.section(
            "Related files", "related", render.lines_part([self.outline_line(f) for f in related]), fmt
        )
        return Pack(
            self.budget,
            [("core", core_text), ("outline", outline_text), ("task", code_text + related_text)],
            list(entries.values()),
            dict(sorted(self.index.excluded.items())),
            len(self.index.files),
            self.index.parsed,
            core_tokens,
            outline_tokens,
        )

    def note_parts(self, allowance: int, entries: dict[str, FileEntry]) -> list[str]:
        """The notes that fit `allowance`, in the order given, each whole."""
        parts = []
        for note, block in self.notes:
            tokens = count(block, self.enc)
            if tokens <= allowance:
                parts.append(block)
                allowance -= tokens
                entries[note.name] = FileEntry(note.name, "core", "note", tokens, round(note.score, 4))
        return parts

    def entry(self, entries: dict[str, FileEntry], f: int, section: str, level: str) -> None:
        path = self.index.files[f].path
        if path not in entries:
            tokens = count(self.outline_line(f) if level == "outline" else path)
            entries[path] = FileEntry(
                path, section, level, tokens, round(float(self.ranking.file_score[f]), 4)
            )

    def code_parts(
        self, chosen: Plan, order: list[int], section: str, entries: dict[str, FileEntry]
    ) -> list[str]:
        parts = []
        for f in order:
            levels = chosen.levels.get(f)
            chunked = self.chunked(f)
            if not levels or chunked is None or not any(level is not None for level in levels):
                continue
            indexed = self.index.files[f]
            block = render.file_block(
                indexed.path, render.file_body(chunked, levels), _language(indexed), self.fmt
            )
            parts.append(block)
            entries[indexed.path] = FileEntry(
                indexed.path,
                section,
                _file_level(levels),
                count(block, self.enc),
                round(float(self.ranking.file_score[f]), 4),
                [
                    {
                        "name": meta.name,
                        "lines": [meta.start + 1, meta.end],
                        "level": level,
                        "tokens": getattr(meta, level),
                    }
                    for meta, level in zip(indexed.parse.chunks, levels, strict=True)
                    if level is not None
                ],
            )
        return parts


def _language(indexed: IndexedFile) -> str | None:
    lang = language_for(indexed.path)
    return lang.name if lang else None


def _symbols(indexed: IndexedFile) -> list[str]:
    """The names a file defines (Markdown: its headings), top-level first, for its outline line."""
    chunks = indexed.parse.chunks
    ordered = [m for m in chunks if m.parent < 0 and m.kind != "block"] + [
        m for m in chunks if m.parent >= 0 or m.kind == "block"
    ]
    names = (meta.defines or ((meta.name,) if meta.kind == "section" else ()) for meta in ordered)
    return list(dict.fromkeys(name for group in names for name in group))


def _file_level(levels: list[str | None]) -> str:
    bodies = [level in (FULL, STRIPPED) for level in levels]
    if all(bodies):
        return "full"
    if any(bodies):
        return "partial"
    return "signatures"
