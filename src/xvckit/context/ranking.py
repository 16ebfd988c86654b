"""How relevant each file and chunk is to a task: lexical, path, symbol, graph and git signals.

A file's score is a weighted sum of signals, each scaled to [0, 1] by its maximum:

    lexical seed = bm25_file*BM25 of the file + bm25_chunk*best chunk BM25 + path*path words
                   + symbol*names the task says that the file defines + mention*path named in the task
    score        = seed + pagerank*PageRank personalized by the seed (definition/reference graph)
                   + cochange*changed together with the seed's top files + recency*changed lately

Changelogs, lock files and generated files (files.demoted) have their seed and score scaled
by DEMOTED, unless the task names them: by path or file name, as "CHANGELOG" (a capitalized
stem), as "the changelog", "release notes", "version 1.2.0", or as "the lock file". A
changelog matches any task about what it lists: undemoted, it took 37% of a 6k working budget
on httpx for a task about the redirect code, which was left out. Their outline lines keep
their worth (`undemoted`, the score before demotion): one line says the file exists and
matches, for a few tokens.

A chunk's score is its file's score times (CHUNK_FLOOR + (1 - CHUNK_FLOOR) * its share of the
file's best chunk relevance), so the chunks that match the task get most of the file's weight.
The weights are checked with bench/context_recall.py. On this repository's own history
(27 commits touching 1-5 source files, packed at 16k tokens on parent-only clones, one run):

    method   present  with code  s/pack (cold, process start included)
    bm25      0.52      0.52      0.26
    aider     0.56      0.00      4.37 (+4.2 s process start)
    xvckit    0.96      0.96      4.80

Both targets pass there (present >= aider and >= 1.5x BM25; with code >= 1.5x BM25). That
repository has ~160 files, so at 16k most files get some code and the weights barely
matter; no history of a larger repository was at hand (the sdists used for the speed test
carry none), so the weights are first guesses that this run did not contradict: lexical
signals first, the graph next, git history as a tie-breaker.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from xvckit.context import history
from xvckit.context.files import CHANGELOG, LOCK
from xvckit.context.graph import Graph
from xvckit.context.index import Index, cache_dir
from xvckit.context.lexical import Corpus, bm25
from xvckit.context.terms import WHOLE, words


@dataclass(frozen=True)
class Weights:
    bm25_file: float = 1.0
    bm25_chunk: float = 0.5
    path: float = 0.5
    symbol: float = 0.8
    mention: float = 2.0
    pagerank: float = 0.6
    cochange: float = 0.3
    recency: float = 0.2
    seeds: int = 8  # top seed files whose co-changes count


WEIGHTS = Weights()
CHUNK_FLOOR = 0.3
QUERY_CAP = 3  # a word said more often than this counts no more
DEMOTED = 0.05  # what a changelog, lock or generated file's score is scaled by (see above)
_PATHLIKE = re.compile(r"[\w./-]*\w\.\w+|[\w-]+/[\w./-]+")
_CAPITALIZED = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z]*\b")  # README, CHANGELOG, Makefile
_CALLED = {  # how a task names a demoted kind without naming the file
    CHANGELOG: re.compile(
        r"\bchange ?logs?\b|\brelease notes\b|\b(?:version|release) v?\d+\.\d", re.IGNORECASE
    ),
    LOCK: re.compile(r"\block ?files?\b", re.IGNORECASE),
}


@dataclass
class Ranking:
    file_score: np.ndarray  # per indexed file
    undemoted: np.ndarray  # per indexed file: the score before demotion (what an outline line is worth)
    chunk_score: np.ndarray  # per chunk, numbered as in the Corpus
    importance: np.ndarray  # PageRank without a task: what the stable outline shows first
    corpus: Corpus


def rank(index: Index, task: str, weights: Weights = WEIGHTS) -> Ranking:
    corpus = Corpus.of(index)
    task_words = words(task)
    query = {
        tid: float(min(n, QUERY_CAP)) for t, n in task_words.items() if (tid := index.term_id(t)) is not None
    }
    doc_bm25, file_bm25 = bm25(corpus, query)
    n = corpus.n_files
    has_chunks = corpus.first_doc[1:] > corpus.first_doc[:-1]
    best_chunk = np.zeros(n)
    if corpus.n_docs:
        best_chunk[has_chunks] = np.maximum.reduceat(doc_bm25, corpus.first_doc[:-1][has_chunks])
    doc_symbol = _symbols(index, corpus, task_words)
    file_symbol = (
        np.bincount(corpus.doc_file, weights=doc_symbol, minlength=n) if corpus.n_docs else np.zeros(n)
    )
    paths = [f.path for f in index.files]
    mentioned = _mentions(paths, task)
    seed = (
        weights.bm25_file * _unit(file_bm25)
        + weights.bm25_chunk * _unit(best_chunk)
        + weights.path * _unit(_path_scores(paths, task_words))
        + weights.symbol * _unit(file_symbol)
        + weights.mention * mentioned
    )
    kinds = [f.demoted for f in index.files]
    called = {kind for kind, pattern in _CALLED.items() if pattern.search(task)}
    demote = np.array(
        [DEMOTED if kind and kind not in called and not mentioned[i] else 1.0 for i, kind in enumerate(kinds)]
    )
    spread = seed * demote  # what the graph and the history spread from
    graph, importance = Graph.cached(index, corpus)
    score = seed + weights.pagerank * _unit(graph.pagerank(spread))
    commits = history.commits(index.repo, cache_dir(index.repo))
    if commits:
        top = np.argsort(-spread)[: weights.seeds]
        seeds = {paths[i]: float(spread[i]) for i in top if spread[i] > 0}
        co = history.cochange(commits, seeds)
        recent = history.recency(commits)
        score += weights.cochange * _unit(np.array([co.get(p, 0.0) for p in paths]))
        score += weights.recency * _unit(np.array([recent.get(p, 0.0) for p in paths]))
    undemoted, score = score, score * demote
    # Chunks: the file's score, shared out by how well each chunk matches the task.
    relevance = _unit(doc_bm25) + doc_symbol
    file_best = np.zeros(n)
    if corpus.n_docs:
        file_best[has_chunks] = np.maximum.reduceat(relevance, corpus.first_doc[:-1][has_chunks])
    share = np.divide(
        relevance,
        file_best[corpus.doc_file],
        out=np.zeros_like(relevance),
        where=file_best[corpus.doc_file] > 0,
    )
    chunk_score = score[corpus.doc_file] * (CHUNK_FLOOR + (1 - CHUNK_FLOOR) * share)
    return Ranking(score, undemoted, chunk_score, importance, corpus)


def _unit(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values, dtype=np.float64)


def _symbols(index: Index, corpus: Corpus, task_words: Counter[str]) -> np.ndarray:
    """Per chunk: the names it defines that the task says, rarer names counting more."""
    wanted = {t[len(WHOLE) :] for t in task_words if t.startswith(WHOLE)}
    scores = np.zeros(corpus.n_docs)
    if not wanted:
        return scores
    hits: dict[str, list[int]] = {}
    for f, indexed in enumerate(index.files):
        base = int(corpus.first_doc[f])
        for i, meta in enumerate(indexed.parse.chunks):
            for name in meta.defines:
                if name.lower() in wanted:
                    hits.setdefault(name.lower(), []).append(base + i)
    for docs in hits.values():
        scores[docs] += 1.0 / math.log2(1 + len(docs))
    return scores


def _path_scores(paths: list[str], task_words: Counter[str]) -> np.ndarray:
    """Per file: the task's words found in its path, rarer path words counting more."""
    path_words = [set(words(p)) for p in paths]
    df: Counter[str] = Counter(w for ws in path_words for w in ws)
    n = len(paths)
    return np.array(
        [sum(math.log(1 + n / df[w]) for w in ws if w in task_words) for ws in path_words], dtype=np.float64
    )


def _mentions(paths: list[str], task: str) -> np.ndarray:
    """Per file: 1 if the task names it by path, file name, dotted module name or a stem with a
    capital written as the file writes it (README, CHANGELOG, Makefile). Where one name fits
    several files, the shallowest get 1 and the deeper 0.5: "the README" is the top-level one."""
    named = set()
    for text in _PATHLIKE.findall(task):
        text = text.strip("./")
        named.add(text)
        if "/" not in text and text.count(".") > 1:  # package.module -> package/module.*
            named.add(text.replace(".", "/"))
    stems = {word for word in _CAPITALIZED.findall(task) if len(word) >= 4}
    out = np.zeros(len(paths))
    if not named and not stems:
        return out
    matches: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        stem = path.rsplit(".", 1)[0]
        for name in named:
            if path == name or path.endswith("/" + name) or stem == name or stem.endswith("/" + name):
                matches.setdefault(name, []).append(i)
        file_stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
        if file_stem in stems:
            matches.setdefault(file_stem, []).append(i)
    for found in matches.values():
        top = min(paths[i].count("/") for i in found)
        for i in found:
            out[i] = max(out[i], 1.0 if paths[i].count("/") == top else 0.5)
    return out
