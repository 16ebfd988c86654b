"""Aider's repo map for bench/context_recall.py, run by the python of aider's own venv.

Usage: python context_recall_aider.py ROOT TASK_FILE BUDGET [BUDGET ...]

Builds the map the way aider's chat does for a message with no files in the chat: a Coder
on the repository at ROOT (map_tokens = the budget, map_mul_no_files = 1), the task as the
current message, then Coder.get_repo_map(), which derives the mentioned file names and
identifiers from the message (get_file_mentions, get_ident_mentions,
get_ident_filename_matches) and personalizes RepoMap's PageRank with them. Using aider's
own Coder rather than a copy of that logic keeps the baseline what aider really sends.

Prints one JSON object: {"startup_s", "packs": [{"budget", "seconds", "map"}, ...]}; the
budgets run in the given order on one Coder, so the first pack pays for parsing every file
(aider's tag cache in ROOT/.aider.tags.cache.v*) and the later ones find the cache warm.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

started = time.perf_counter()


def seed_model_info() -> None:
    """Aider fetches litellm's model table from GitHub unless ~/.aider/caches has a fresh
    copy; hand it litellm's bundled one so nothing goes to the network."""
    import litellm

    bundled = Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json"
    cache = Path.home() / ".aider" / "caches" / "model_prices_and_context_window.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundled, cache)  # a fresh mtime keeps it inside aider's 24 h TTL


def main() -> None:
    root, task_file, *budgets = sys.argv[1:]
    os.chdir(root)  # aider's GitRepo finds the repository from the working directory
    seed_model_info()
    from aider.coders import Coder
    from aider.io import InputOutput
    from aider.models import Model

    io = InputOutput(pretty=False, yes=True, fancy_input=False)
    coder = Coder.create(
        main_model=Model("gpt-4o"),
        io=io,
        fnames=[],
        map_tokens=int(budgets[0]),
        map_mul_no_files=1,
        auto_commits=False,
        suggest_shell_commands=False,
        detect_urls=False,
        auto_lint=False,
    )
    coder.cur_messages = [{"role": "user", "content": Path(task_file).read_text()}]
    startup = time.perf_counter() - started
    packs = []
    for budget in map(int, budgets):
        coder.repo_map.max_map_tokens = budget
        began = time.perf_counter()
        text = coder.get_repo_map() or ""
        packs.append({"budget": budget, "seconds": time.perf_counter() - began, "map": text})
    sys.stdout.write("\nAIDER_JSON " + json.dumps({"startup_s": startup, "packs": packs}) + "\n")


if __name__ == "__main__":
    main()
