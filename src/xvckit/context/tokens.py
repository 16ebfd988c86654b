"""Token counts as the model will see them: tiktoken encodings and the models' context windows.

Packs are fitted by counting the rendered text with the encoding of the model it is for.
o200k_base (gpt-4o's) is the default when no model is named; a model's encoding and
context window come from `providers.models`, the table the gateway's estimates use too.
"""

from __future__ import annotations

from functools import cache

from xvckit.errors import UserError
from xvckit.providers.models import model_info

__all__ = ["DEFAULT_ENCODING", "count", "encoding", "model_info", "truncate"]

DEFAULT_ENCODING = "o200k_base"


@cache
def encoding(name: str = DEFAULT_ENCODING):
    """The tiktoken encoding `name` (loaded once per process). tiktoken downloads an encoding
    on first use: without a network or a cache that is a one-line error, not a traceback."""
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:
        raise UserError(
            f"tiktoken's {name} encoding is neither cached nor downloadable ({type(exc).__name__}); "
            "set TIKTOKEN_CACHE_DIR to a cache that holds it"
        ) from None


def count(text: str, encoding_name: str = DEFAULT_ENCODING) -> int:
    """Tokens in `text`; special-token strings in code count as ordinary text."""
    return len(encoding(encoding_name).encode_ordinary(text))


def truncate(text: str, limit: int, encoding_name: str = DEFAULT_ENCODING) -> str:
    """The longest prefix of `text` (cut at a token) that counts at most `limit` tokens."""
    enc = encoding(encoding_name)
    ids = enc.encode_ordinary(text)
    if len(ids) <= limit:
        return text
    cut = enc.decode(ids[: max(limit, 0)])
    while cut and count(cut, encoding_name) > limit:  # a decode can merge differently: shrink
        cut = cut[:-1]
    return cut
