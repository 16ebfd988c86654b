"""BM25 over the index's chunks and files, on flat numpy arrays of postings.

bm25s builds its matrix from per-document token lists in Python loops and keeps no way to
replace one document, so every pack after an edit would rebuild it over every chunk of the
repository. The index already holds each chunk's term counts: the postings are concatenated
with numpy and only the postings of the task's terms are scored, with the formula bm25s uses
by default (Lucene's idf, k1 = 1.5, b = 0.75).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xvckit.context.index import Index

K1 = 1.5
B = 0.75


@dataclass
class Corpus:
    """Postings of every indexed chunk: documents are chunks, numbered file by file."""

    term: np.ndarray  # int32 term id of each posting
    doc: np.ndarray  # int32 chunk (document) of each posting
    tf: np.ndarray  # float32 count of the term in the chunk
    doc_file: np.ndarray  # the file of each chunk
    first_doc: np.ndarray  # the first chunk of each file (and one past the last)
    doc_len: np.ndarray  # terms in each chunk
    n_terms: int

    @classmethod
    def of(cls, index: Index) -> Corpus:
        parses = [f.parse for f in index.files]
        n_chunks = np.array([len(p.chunks) for p in parses], dtype=np.int64)
        first_doc = np.zeros(len(parses) + 1, dtype=np.int64)
        np.cumsum(n_chunks, out=first_doc[1:])
        postings = np.array([len(p.docs) // 2 for p in parses], dtype=np.int64)
        term = np.frombuffer(b"".join(p.terms for p in parses), dtype=np.int32)
        local = np.frombuffer(b"".join(p.docs for p in parses), dtype=np.uint16).astype(np.int64)
        tf = np.frombuffer(b"".join(p.tfs for p in parses), dtype=np.uint16).astype(np.float32)
        doc = np.repeat(first_doc[:-1], postings) + local
        n_docs = int(first_doc[-1])
        doc_file = np.repeat(np.arange(len(parses)), n_chunks)
        doc_len = np.bincount(doc, weights=tf, minlength=n_docs).astype(np.float32)
        return cls(term, doc, tf, doc_file, first_doc, doc_len, len(index.vocab))

    @property
    def n_docs(self) -> int:
        return len(self.doc_len)

    @property
    def n_files(self) -> int:
        return len(self.first_doc) - 1


def _weights(tf, length, avg, df, n) -> np.ndarray:
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / max(avg, 1e-9)))


def bm25(corpus: Corpus, query: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """BM25 of every chunk and of every file (its chunks' text as one document) for `query`.

    `query` maps term ids to weights (how often the task says them, capped by the caller).
    """
    doc_scores = np.zeros(corpus.n_docs, dtype=np.float64)
    file_scores = np.zeros(corpus.n_files, dtype=np.float64)
    if not query or corpus.n_docs == 0:
        return doc_scores, file_scores
    qweight = np.zeros(corpus.n_terms, dtype=np.float64)
    ids = np.fromiter(query, dtype=np.int64)
    qweight[ids] = np.fromiter(query.values(), dtype=np.float64)
    hit = qweight[corpus.term] > 0
    term, doc, tf = corpus.term[hit], corpus.doc[hit], corpus.tf[hit]
    df = np.bincount(term, minlength=corpus.n_terms)[term]
    w = _weights(tf, corpus.doc_len[doc], corpus.doc_len.mean(), df, corpus.n_docs) * qweight[term]
    doc_scores += np.bincount(doc, weights=w, minlength=corpus.n_docs)
    # Files: sum the term's counts over the file's chunks, then score the file as one document.
    file_of = corpus.doc_file[doc]
    keys, inverse = np.unique(file_of.astype(np.int64) * corpus.n_terms + term, return_inverse=True)
    file_tf = np.bincount(inverse, weights=tf)
    key_file, key_term = keys // corpus.n_terms, keys % corpus.n_terms
    file_df = np.bincount(key_term, minlength=corpus.n_terms)[key_term]
    file_len = np.bincount(corpus.doc_file, weights=corpus.doc_len, minlength=corpus.n_files)
    fw = _weights(file_tf, file_len[key_file], file_len.mean(), file_df, corpus.n_files) * qweight[key_term]
    file_scores += np.bincount(key_file, weights=fw, minlength=corpus.n_files)
    return doc_scores, file_scores
