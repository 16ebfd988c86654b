"""Words for lexical ranking: identifiers split on case and underscores, the same for code and task.

`parseHTTPResponse_v2` gives the parts `parse`, `http`, `response`, `v2` and the whole word
`=parsehttpresponse_v2`. Parts let "parse the response" find it; whole words (marked with `=`
so they never collide with a part) are how references meet definitions in the symbol graph.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
WHOLE = "="

# English glue words and keywords shared by most languages: frequent, so they rank nothing.
_STOPWORDS = """a an and are as at be but by can do does for from has have if in into is it its not of on or
    so than that the their then there these this to was we were when which while will with you your
    def class return self cls import none true false null nil let const var new this void int
    static public private protected func fn pub use mut struct impl end else elif try except
    finally raise throw throws catch async await yield pass break continue lambda"""
STOPWORDS = frozenset(_STOPWORDS.split())


def split_identifier(word: str) -> list[str]:
    """Lower-cased parts of an identifier, split at underscores and case changes."""
    return [p.lower() for piece in word.split("_") if piece for p in _PARTS.findall(piece)]


def words(text: str) -> Counter[str]:
    """Term counts of `text`: identifier parts (stopwords left out) and whole identifiers."""
    counts: Counter[str] = Counter()
    for word, n in Counter(_WORD.findall(text)).items():
        for term in _terms(word):
            counts[term] += n
    return counts


@lru_cache(maxsize=1 << 16)
def _terms(word: str) -> tuple[str, ...]:
    parts = split_identifier(word)
    terms = [p for p in parts if len(p) > 1 and p not in STOPWORDS]
    if len(parts) > 1 or (len(word) > 2 and word.lower() not in STOPWORDS):
        terms.append(WHOLE + word.lower())
    return tuple(terms)


def whole(symbol: str) -> str:
    """The whole-word term of a defined symbol."""
    return WHOLE + symbol.lower()
