"""Which of a key's or a team's model patterns no configured route can serve: the warning given
when a model list is set (a typo there makes the key refuse every request)."""

from __future__ import annotations

from xvckit.config import Config

_ANY = ""  # a token matching any one character: `?` and a `[...]` class (taken as any)


def unrouted(patterns: tuple[str, ...] | list[str] | None, config: Config) -> list[str]:
    """The patterns that match no model name a route of `config` serves. None when no provider
    is configured: `xvckit up` then serves every model from its simulator."""
    if not patterns or not config.providers:
        return []
    routes = [route.name for route in config.models]
    return [p for p in patterns if not any(overlap(p, route) for route in routes)]


def warnings(patterns: tuple[str, ...] | list[str] | None, config: Config) -> list[str]:
    return [f"model pattern {p!r} matches no configured route" for p in unrouted(patterns, config)]


def overlap(a: str, b: str) -> bool:
    """Is there a model name both fnmatch patterns match? (Exact for `*`, `?` and literals; a
    `[...]` class is taken as any character, so a class can only make this say yes.) A walk
    over the pairs of positions in the two patterns."""
    x, y = _tokens(a), _tokens(b)
    todo, seen = [(0, 0)], {(0, 0)}
    while todo:
        i, j = todo.pop()
        if (i, j) == (len(x), len(y)):
            return True
        steps = []
        if i < len(x) and x[i] == "*":
            steps += [(i + 1, j), (i, j + 1)] if j < len(y) else [(i + 1, j)]  # ends, or takes one
        if j < len(y) and y[j] == "*":
            steps += [(i, j + 1), (i + 1, j)] if i < len(x) else [(i, j + 1)]
        if i < len(x) and j < len(y) and "*" not in (x[i], y[j]) and (_ANY in (x[i], y[j]) or x[i] == y[j]):
            steps.append((i + 1, j + 1))
        for step in steps:
            if step not in seen:
                seen.add(step)
                todo.append(step)
    return False


def _tokens(pattern: str) -> tuple[str, ...]:
    """`*`, one literal character, or _ANY for `?` and a class, as fnmatch reads them."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j >= 0:
                out.append(_ANY)
                i = j + 1
                continue
        out.append(_ANY if c == "?" else c)
        i += 1
    return tuple(out)
