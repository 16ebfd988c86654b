"""What git history says about relevance: files changed together, and files changed lately.

Read from `git log` (the last MAX_COMMITS non-merge commits, names only), cached per HEAD in
the index's cache directory. Commits touching more than MAX_FILES files (mass renames,
reformatting) say nothing about which files belong together and are skipped for co-change.
"""

from __future__ import annotations

import pickle
import subprocess
from collections.abc import Mapping
from pathlib import Path

MAX_COMMITS = 1000
MAX_FILES = 20
HALF_LIFE = 30  # commits: a file changed 30 commits ago counts half as recent as one changed now


def commits(repo: Path, cache: Path) -> list[list[str]]:
    """Paths each recent commit changed, newest first; [] outside git or without commits."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return []
    cached = cache / "history.pickle"
    try:
        with cached.open("rb") as f:
            stored_head, stored = pickle.load(f)
        if stored_head == head:
            return stored
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        pass
    out = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "log",
            "--no-merges",
            "--name-only",
            "--no-renames",
            "--format=%x00",
            f"-n{MAX_COMMITS}",
        ],
        capture_output=True,
        text=True,
        errors="surrogateescape",
    ).stdout
    result = [[p for p in block.split("\n") if p] for block in out.split("\0")[1:]]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump((head, result), f)
        tmp.replace(cached)
    except OSError:
        pass
    return result


def recency(history: list[list[str]]) -> dict[str, float]:
    """Per path: the sum over commits that changed it of 0.5 ** (age in commits / HALF_LIFE)."""
    scores: dict[str, float] = {}
    for age, paths in enumerate(history):
        weight = 0.5 ** (age / HALF_LIFE)
        for path in paths:
            scores[path] = scores.get(path, 0.0) + weight
    return scores


def cochange(history: list[list[str]], seeds: Mapping[str, float]) -> dict[str, float]:
    """Per path: how often it changed with the seed paths (weighted by seed), per commit size."""
    scores: dict[str, float] = {}
    for paths in history:
        if len(paths) < 2 or len(paths) > MAX_FILES:
            continue
        pull = sum(seeds.get(p, 0.0) for p in paths)
        if pull <= 0:
            continue
        for path in paths:
            share = (pull - seeds.get(path, 0.0)) / (len(paths) - 1)
            if share > 0:
                scores[path] = scores.get(path, 0.0) + share
    return scores
