"""The definition/reference graph between files, and PageRank personalized toward the task.

File A points to file B when A's text uses a name B defines (a whole-identifier term of the
index; a name defined in many files says little, so its weight is shared among them and
names defined in more than MAX_DEFINERS files are ignored). The task's files spread their
rank to the code they use and, at REVERSE weight, to the code that uses them: a change to
a function often touches its callers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from xvckit.context.index import Index, cache_dir
from xvckit.context.lexical import Corpus
from xvckit.context.terms import whole

MAX_DEFINERS = 16
REVERSE = 0.5
DAMPING = 0.85
ITERATIONS = 30


@dataclass
class Graph:
    src: np.ndarray  # int64 file indices
    dst: np.ndarray
    weight: np.ndarray  # float64, normalized per source
    n: int

    @classmethod
    def of(cls, index: Index, corpus: Corpus) -> Graph:
        def_term, def_file = [], []
        for f, indexed in enumerate(index.files):
            names = {whole(name) for meta in indexed.parse.chunks for name in meta.defines if len(name) > 2}
            for name in names:
                tid = index.term_id(name)
                if tid is not None:
                    def_term.append(tid)
                    def_file.append(f)
        n = corpus.n_files
        if not def_term:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, np.zeros(0), n)
        def_term_a, def_file_a = np.array(def_term, dtype=np.int64), np.array(def_file, dtype=np.int64)
        definers = np.bincount(def_term_a, minlength=corpus.n_terms)
        usable = (definers > 0) & (definers <= MAX_DEFINERS)
        hit = usable[corpus.term]
        ref_term, ref_file = corpus.term[hit].astype(np.int64), corpus.doc_file[corpus.doc[hit]]
        ref_tf = corpus.tf[hit]
        # Join each reference with the files defining its term.
        order = np.argsort(def_term_a, kind="stable")
        def_term_a, def_file_a = def_term_a[order], def_file_a[order]
        lo = np.searchsorted(def_term_a, ref_term, "left")
        per = definers[ref_term]
        rows = np.repeat(np.arange(len(ref_term)), per)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(per) - per, per)
        src = ref_file[rows]
        dst = def_file_a[lo[rows] + offsets]
        w = np.sqrt(ref_tf[rows]) / per[rows]
        keep = src != dst
        src, dst, w = src[keep], dst[keep], w[keep]
        # Both directions, then one edge per pair, weights normalized per source.
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        w = np.concatenate([w, w * REVERSE])
        keys, inverse = np.unique(src * n + dst, return_inverse=True)
        w = np.bincount(inverse, weights=w)
        src, dst = keys // n, keys % n
        out = np.bincount(src, weights=w, minlength=n)
        return cls(src, dst, w / out[src], n)

    @classmethod
    def cached(cls, index: Index, corpus: Corpus) -> tuple[Graph, np.ndarray]:
        """The graph and its PageRank without a task, from the cache while the index is unchanged."""
        path = cache_dir(index.repo) / "graph.npz"
        try:
            with np.load(path) as stored:
                if str(stored["fingerprint"]) == index.fingerprint:
                    graph = cls(stored["src"], stored["dst"], stored["weight"], corpus.n_files)
                    return graph, stored["importance"]
        except (OSError, KeyError, ValueError, EOFError):
            pass
        graph = cls.of(index, corpus)
        importance = graph.pagerank(np.zeros(graph.n))
        tmp = path.with_name(f"graph.{os.getpid()}.npz")
        try:
            np.savez(
                tmp,
                fingerprint=index.fingerprint,
                src=graph.src,
                dst=graph.dst,
                weight=graph.weight,
                importance=importance,
            )
            os.replace(tmp, path)
        except OSError:
            pass
        return graph, importance

    def pagerank(self, personal: np.ndarray) -> np.ndarray:
        """PageRank with teleports to `personal` (any non-negative weights; uniform if all 0)."""
        total = personal.sum()
        p = personal / total if total > 0 else np.full(self.n, 1.0 / max(self.n, 1))
        rank = p.copy()
        has_out = np.bincount(self.src, minlength=self.n) > 0
        for _ in range(ITERATIONS):
            spread = np.bincount(self.dst, weights=self.weight * rank[self.src], minlength=self.n)
            dangling = rank[~has_out].sum()
            rank = (1 - DAMPING) * p + DAMPING * (spread + dangling * p)
        return rank
