"""Which chunks a pack keeps, and how compressed: a greedy knapsack by relevance per token.

Every chunk can be kept full, stripped (no comments, docstrings or blank lines), as its
signature (body elided), or left out; a file can also be named in the outline with its
symbols. Each step up costs tokens and is worth the chunk's score times the level's share
(LEVEL_VALUE). Steps are taken best value-per-token first, over the upper convex hull of
each chunk's options, so the most relevant code ends up whole and the rest shrinks to
signatures or an outline line instead of vanishing. The first code of a file pays for its
header, and gives back the outline line the file no longer needs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise

from xvckit.context.chunking import FULL, SIGNATURE, STRIPPED
from xvckit.context.index import ChunkMeta

# What a level is worth, as a share of the chunk's score: the full text carries comments and
# docstrings; the stripped text keeps all the code; a signature says what exists and how to
# call it. An outline line (the file's path and symbols) is worth OUTLINE_VALUE of its file.
LEVEL_VALUE = {FULL: 1.0, STRIPPED: 0.9, SIGNATURE: 0.3}
OUTLINE_VALUE = 0.25


@dataclass
class Candidate:
    """A file the planner may spend tokens on."""

    key: int  # the caller's file id
    score: float
    chunks: tuple[ChunkMeta, ...]
    chunk_scores: list[float]
    header_cost: int  # tokens of the file's heading and fences when it shows code
    outline_cost: int | None  # tokens of its outline line; None: already outlined elsewhere

    @cached_property
    def steps(self) -> list[list[tuple[str, int, float]]]:
        return [hull(meta, score) for meta, score in zip(self.chunks, self.chunk_scores, strict=True)]


@dataclass
class Plan:
    levels: dict[int, list[str | None]] = field(default_factory=dict)  # file -> level of each chunk
    outlined: list[int] = field(default_factory=list)  # files named in the outline only
    cost: int = 0

    def has_code(self, key: int) -> bool:
        return any(level is not None for level in self.levels.get(key, ()))


def hull(meta: ChunkMeta, score: float) -> list[tuple[str, int, float]]:
    """The chunk's levels worth taking, cheapest first: (level, extra tokens, extra value)."""
    options = [(meta.signature + 1, LEVEL_VALUE[SIGNATURE] * score, SIGNATURE)] if meta.signature else []
    options += [(meta.stripped + 1, LEVEL_VALUE[STRIPPED] * score, STRIPPED)]
    options += [(meta.full + 1, LEVEL_VALUE[FULL] * score, FULL)]
    options.sort()
    points: list[tuple[int, float, str]] = [(0, 0.0, "")]
    for cost, value, level in options:
        if value <= points[-1][1]:
            continue
        while len(points) > 1:  # drop a point under the line from its predecessor to this one
            (c0, v0, _), (c1, v1, _) = points[-2], points[-1]
            if (v1 - v0) * (cost - c0) <= (value - v0) * (c1 - c0):
                points.pop()
            else:
                break
        points.append((cost, value, level))
    return [(level, c - pc, v - pv) for (pc, pv, _), (c, v, level) in pairwise(points)]


def plan(candidates: list[Candidate], budget: int) -> Plan:
    """The best levels for `candidates` within `budget` tokens (greedy by value per token)."""
    result = Plan()
    left = budget
    steps: dict[tuple[int, int], list[tuple[str, int, float]]] = {}
    heap: list[tuple[float, int, int, int]] = []  # (-ratio, tiebreak, file, chunk); chunk -1: outline
    opened: set[int] = set()
    outlined: set[int] = set()
    by_key = {c.key: c for c in candidates}

    def cost_of(cand: Candidate, chunk: int, extra: int) -> int:
        if chunk < 0:
            return extra
        if cand.key in opened:
            return extra
        refund = cand.outline_cost if cand.key in outlined and cand.outline_cost else 0
        return extra + cand.header_cost - refund

    def push(cand: Candidate, chunk: int) -> None:
        queue = steps.get((cand.key, chunk))
        if not queue:
            return
        _, extra, value = queue[0]
        if value <= 0:
            return
        heapq.heappush(heap, (-value / max(cost_of(cand, chunk, extra), 1), len(heap), cand.key, chunk))

    for cand in candidates:
        result.levels[cand.key] = [None] * len(cand.chunks)
        if cand.outline_cost is not None:
            steps[(cand.key, -1)] = [("outline", cand.outline_cost, OUTLINE_VALUE * cand.score)]
            push(cand, -1)
        for i, chunk_steps in enumerate(cand.steps):
            steps[(cand.key, i)] = list(chunk_steps)
            push(cand, i)
    while heap and left > 0:
        _, _, key, chunk = heapq.heappop(heap)
        cand = by_key[key]
        queue = steps[(key, chunk)]
        level, extra, _ = queue[0]
        cost = cost_of(cand, chunk, extra)
        if cost > left:
            continue
        queue.pop(0)
        left -= cost
        if chunk < 0:
            outlined.add(key)
            continue
        opened.add(key)
        result.levels[key][chunk] = level
        push(cand, chunk)
    result.outlined = sorted((k for k in outlined if k not in opened), key=lambda k: -by_key[k].score)
    result.cost = budget - left
    return result
