"""Context recall benchmark (`make bench-context`, issue 6): does a pack hold the files a change needed?

For the last N non-merge commits of a git repository that touch 1 to 5 source files (files
in the languages xvckit's context indexer parses, SOURCE_SUFFIXES), the commit message is
the task and the source files the commit modified or deleted (the ones that exist in its
parent) are the answer. The parent revision is fetched into a new repository (`git init`,
`git fetch REPO PARENT`), so neither the files nor the git history a packer reads know the
change. At each budget (8k, 16k, 32k tokens), in the same run:

- xvckit: `xvckit context pack TASK --repo CLONE --budget N --format json`;
- bm25: the SWE-bench baseline: the source files ranked by BM25 (bm25s) of the task against
  path and text, taken whole in that order while they fit the budget (tiktoken);
- aider: aider's repo map, from aider-chat in its own venv (bench/.work/aider-venv),
  personalized by the task as aider's chat does (bench/context_recall_aider.py).

Recall of the changed files, averaged over tasks: "present" is any level but `path` (aider:
listed with its definition lines), "with code" a body of the file or of one of its chunks
(xvckit: level full/partial, or a chunk kept full/stripped; BM25: every file it packs;
aider: never, its map shows definition lines only); and, stricter than the issue asks,
"hunks": the share of the commit's changed hunks (parent-side lines) inside a body the pack
shows, since one kept chunk makes a file "with code". The first budget of each method runs
on a fresh clone with empty caches (cold); the later budgets reuse them (warm). One table
per repository, then the issue's targets at 16k as PASS/FAIL. It is not a test: missing a
target exits 0 unless --strict (then 3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lib import ROOT, WORK_DIR, BenchError, fmt, say, table

# The languages of xvckit's context indexer (issue 6; SUFFIXES in xvckit/context/languages.py):
# Python, JavaScript/TypeScript, Go, Rust, Java, C/C++ and Markdown. A commit's "source
# files" are the paths it touches with one of these suffixes; anything else it touches
# (YAML, TOML, Makefile, ...) is ignored.
SOURCE_SUFFIXES = frozenset(
    {".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".go", ".rs", ".java"}
    | {".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp"}
    | {".md", ".markdown", ".mdx"}
)
MAX_TOUCHED = 5
CODE_LEVELS = frozenset({"full", "partial"})  # a file level that includes bodies
BODY_CHUNK_LEVELS = frozenset({"full", "stripped"})  # a chunk level that is a body
METHODS = ("bm25", "aider", "xvckit")
TARGET_BUDGET = 16000
AIDER_SPEC = "aider-chat==0.86.2"
AIDER_VENV = WORK_DIR / "aider-venv"
AIDER_DRIVER = Path(__file__).resolve().parent / "context_recall_aider.py"
CLONES_DIR = WORK_DIR / "context-clones"
PACK_TIMEOUT_S = 900


Span = tuple[int, int]  # first and last line, 1-based, inclusive


@dataclass
class Task:
    sha: str
    parent: str
    message: str
    targets: list[str]  # changed source files that exist in the parent
    touched: int  # source files the commit touches (1..MAX_TOUCHED)
    hunks: dict[str, list[Span]]  # per target, the parent's lines the commit changed

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


@dataclass
class Pack:
    """What one method put in one pack, reduced to the sets recall needs."""

    budget: int
    seconds: float
    tokens: int
    present: set[str] = field(default_factory=set)  # any level but path
    bodies: dict[str, list[Span] | None] = field(default_factory=dict)  # lines shown whole (None: all)
    named: set[str] = field(default_factory=set)  # mentioned at all, path level included
    error: str | None = None

    @property
    def code(self) -> set[str]:
        """The files with a body in the pack."""
        return set(self.bodies)

    def shows(self, path: str, hunk: Span) -> bool:
        """Whether a body in the pack overlaps the hunk's lines."""
        if path not in self.bodies:
            return False
        spans = self.bodies[path]
        return spans is None or any(first <= hunk[1] and hunk[0] <= last for first, last in spans)


# --------------------------------------------------------------------------- tasks


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def is_source(path: str) -> bool:
    return Path(path).suffix.lower() in SOURCE_SUFFIXES


def task_for(repo: Path, sha: str) -> Task | None:
    """The commit as a task, or None when it touches no or too many source files or none
    of them exists in its parent (only new files: nothing to find)."""
    parents = git(repo, "rev-list", "--parents", "-n1", sha).split()[1:]
    if len(parents) != 1:
        return None
    # --no-renames: a rename is its old path deleted (a target) and its new path added.
    status = git(repo, "diff-tree", "-r", "--no-renames", "--name-status", parents[0], sha)
    touched = [line.split("\t", 1) for line in status.splitlines() if line]
    source = [(kind, path) for kind, path in touched if is_source(path)]
    targets = sorted(path for kind, path in source if kind != "A")
    if not 1 <= len(source) <= MAX_TOUCHED or not targets:
        return None
    message = git(repo, "log", "-1", "--format=%B", sha).strip()
    hunks = {path: changed_lines(repo, parents[0], sha, path) for path in targets}
    return Task(sha, parents[0], message, targets, len(source), hunks)


def changed_lines(repo: Path, parent: str, sha: str, path: str) -> list[Span]:
    """The parent-side line ranges of the diff's hunks in `path`; a pure insertion is the
    line it follows (`@@ -10,0 +11,3 @@`: line 10)."""
    spans = []
    diff = git(repo, "diff", "-U0", "--no-renames", parent, sha, "--", path)
    for line in diff.splitlines():
        if line.startswith("@@ "):
            old = line.split()[1].lstrip("-")
            start, _, count = old.partition(",")
            first, size = int(start), int(count or 1)
            spans.append((max(first, 1), max(first + size - 1, first, 1)))
    return spans


def select_tasks(repo: Path, count: int) -> tuple[list[Task], int]:
    """The newest `count` qualifying non-merge commits, and how many commits were looked at."""
    tasks: list[Task] = []
    scanned = 0
    for sha in git(repo, "rev-list", "--no-merges", "HEAD").split():
        scanned += 1
        task = task_for(repo, sha)
        if task:
            tasks.append(task)
            if len(tasks) == count:
                break
    return tasks, scanned


def parent_clone(repo: Path, parent: str, dest: Path) -> Path:
    """A repository holding the parent and its ancestors only: a clone would bring every
    ref, and the packer ranks with git history, so fetch exactly that commit."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    git(dest, "init", "-q")
    git(dest, "fetch", "-q", "--no-tags", str(repo.resolve()), parent)
    git(dest, "checkout", "-q", "-B", "main", parent)
    (dest / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
    # Packers list untracked files too: keep aider's tag cache out of everyone's view.
    (dest / ".git" / "info" / "exclude").write_text(".aider*\n")
    return dest


# --------------------------------------------------------------------------- methods


def encoder(name: str):
    import tiktoken

    return tiktoken.get_encoding(name)


def source_files(clone: Path) -> list[str]:
    return [p for p in git(clone, "ls-files", "-z").split("\0") if p and is_source(p)]


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def bm25_pack(clone: Path, task: str, budget: int, enc) -> Pack:
    """SWE-bench's retrieval baseline: rank whole files by BM25, then fill the budget in
    rank order, skipping a file that no longer fits (as SWE-bench's make_datasets does)."""
    try:
        import bm25s
    except ImportError as exc:
        raise BenchError("bm25s is not installed in this venv (pip install bm25s)") from exc

    began = time.perf_counter()
    paths, docs = [], []
    for path in source_files(clone):
        text = read_text(clone / path)
        if text is not None:
            paths.append(path)
            docs.append(f"{path}\n{text}")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    query = bm25s.tokenize([task], stopwords="en", return_ids=False, show_progress=False)
    order, _ = retriever.retrieve(query, k=len(docs), show_progress=False)
    used, packed = 0, set()
    for index in order[0]:
        cost = len(enc.encode(f"{paths[index]}\n```\n{docs[index]}\n```\n", disallowed_special=()))
        if used + cost <= budget:
            used += cost
            packed.add(paths[index])
    seconds = time.perf_counter() - began
    return Pack(budget, seconds, used, present=packed, bodies=dict.fromkeys(packed), named=set(packed))


def xvckit_exe() -> Path:
    return Path(sys.executable).with_name("xvckit")


def xvckit_available() -> str | None:
    """None when `xvckit context pack` exists, else why not."""
    exe = xvckit_exe()
    if not exe.exists():
        return f"{exe} not found (make installs the project into .venv)"
    proc = subprocess.run([str(exe), "context", "pack", "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"`xvckit context pack --help` exits {proc.returncode}: the command does not exist yet"
    return None


def startup_seconds() -> float:
    """What any xvckit command costs before it does anything (its s/pack includes this)."""
    began = time.perf_counter()
    subprocess.run([str(xvckit_exe()), "context", "pack", "--help"], capture_output=True)
    return time.perf_counter() - began


def xvckit_files(pack_json: dict) -> tuple[set[str], dict[str, list[Span] | None], set[str]]:
    """(present, bodies, named) from the JSON of one pack: a file at level full shows all its
    lines; otherwise its chunks kept full or stripped show theirs."""
    present, bodies, named = set(), {}, set()
    for entry in pack_json.get("files", []):
        path, level = entry["path"], entry["level"]
        named.add(path)
        if level != "path":
            present.add(path)
        chunks = [tuple(c["lines"]) for c in entry.get("chunks", []) if c.get("level") in BODY_CHUNK_LEVELS]
        if level == "full":
            bodies[path] = None
        elif chunks or level in CODE_LEVELS:
            bodies[path] = chunks
    return present, bodies, named


def run_packer(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess | None, float, str]:
    """(process or None if it timed out, seconds, why it failed or ""): a hung or broken
    packer costs its packs, not the run."""
    began = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PACK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - began, f"no answer in {PACK_TIMEOUT_S} s"
    seconds = time.perf_counter() - began
    return proc, seconds, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}" if proc.returncode else ""


def xvckit_pack(clone: Path, task: str, budget: int, env: dict[str, str]) -> Pack:
    argv = [str(xvckit_exe()), "context", "pack", task, "--repo", str(clone)]
    argv += ["--budget", str(budget), "--format", "json"]
    proc, seconds, error = run_packer(argv, env)
    if proc is None or error:
        return Pack(budget, seconds, 0, error=error)
    data = json.loads(proc.stdout)
    present, bodies, named = xvckit_files(data)
    return Pack(budget, seconds, int(data.get("tokens", 0)), present, bodies, named)


def aider_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = "import importlib.metadata as m, aider.repomap; print(m.version('aider-chat'))"
    proc = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_aider(spec: str, allow_install: bool) -> tuple[Path | None, str]:
    """The python of aider's venv, installing `spec` on first use; (None, why) if it can't."""
    python = AIDER_VENV / "bin" / "python"
    have = aider_version(python)
    if have and spec.endswith(f"=={have}"):
        return python, f"aider-chat {have} from {AIDER_VENV.relative_to(ROOT)}"
    if not allow_install:
        return None, "aider left out: not installed and --no-install given"
    say(f"installing {spec} into {AIDER_VENV.relative_to(ROOT)} (once, a few minutes) ...")
    log = WORK_DIR / "aider-install.log"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(AIDER_VENV)],
        [str(python), "-m", "pip", "install", "-q", spec],
    ]
    with open(log, "w") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=out, timeout=1800).returncode != 0:
                return None, f"aider left out: `{' '.join(step[-2:])}` failed, see {log}"
    have = aider_version(python)
    return (python, f"aider-chat {have} installed") if have else (None, f"aider left out: see {log}")


def aider_env() -> dict[str, str]:
    """Offline and self-contained: aider's home (model-info cache) under bench/.work."""
    home = WORK_DIR / "aider-home"
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def map_files(text: str, files: set[str]) -> tuple[set[str], set[str]]:
    """(listed with definitions, named) from an aider map: a file with definitions is a
    `path:` line followed by its lines, a file without is a bare `path` line."""
    with_defs, named = set(), set()
    for line in text.splitlines():
        if line.endswith(":") and line[:-1] in files:
            with_defs.add(line[:-1])
            named.add(line[:-1])
        elif line in files:
            named.add(line)
    return with_defs, named


def aider_packs(
    python: Path, clone: Path, task: str, budgets: list[int], enc
) -> tuple[list[Pack], float | None]:
    """All budgets in one driver process (cold first, then warm); also its start-up seconds."""
    task_file = clone.parent / f"{clone.name}.task.txt"
    task_file.write_text(task)
    argv = [str(python), str(AIDER_DRIVER), str(clone), str(task_file), *map(str, budgets)]
    proc, _, error = run_packer(argv, aider_env())
    lines = proc.stdout.splitlines() if proc else []
    line = next((ln for ln in lines if ln.startswith("AIDER_JSON ")), None)
    if line is None:
        return [Pack(b, 0.0, 0, error=error or "no AIDER_JSON line") for b in budgets], None
    data = json.loads(line.removeprefix("AIDER_JSON "))
    files = set(git(clone, "ls-files", "-z").split("\0"))
    packs = []
    for each in data["packs"]:
        with_defs, named = map_files(each["map"], files)
        tokens = len(enc.encode(each["map"], disallowed_special=()))
        packs.append(Pack(each["budget"], each["seconds"], tokens, present=with_defs, named=named))
    return packs, data["startup_s"]


# --------------------------------------------------------------------------- one repository


@dataclass
class TaskResult:
    task: Task
    packs: dict[str, list[Pack]] = field(default_factory=dict)  # method -> one per budget
    aider_startup: float | None = None  # seconds before aider's first map (imports, Coder)


def run_task(task: Task, repo: Path, args: argparse.Namespace, methods: dict, enc) -> TaskResult:
    """Fresh parent clone and empty caches, then every method at every budget."""
    work = CLONES_DIR / repo.name / task.sha[:12]
    clone = parent_clone(repo, task.parent, work / "repo")
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}  # xvckit's index starts cold
    result = TaskResult(task)
    try:
        if "bm25" in methods:
            result.packs["bm25"] = [bm25_pack(clone, task.message, b, enc) for b in args.budgets]
        if "xvckit" in methods:
            result.packs["xvckit"] = [xvckit_pack(clone, task.message, b, env) for b in args.budgets]
        if "aider" in methods:
            packs, startup = aider_packs(methods["aider"], clone, task.message, args.budgets, enc)
            result.packs["aider"] = packs
            result.aider_startup = startup
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def recall(found: set[str], targets: list[str]) -> float:
    return sum(path in found for path in targets) / len(targets)


def hunk_recall(pack: Pack, task: Task) -> float:
    """Share of the commit's changed hunks that a body in the pack shows."""
    hunks = [(path, hunk) for path, spans in task.hunks.items() for hunk in spans]
    return sum(pack.shows(path, hunk) for path, hunk in hunks) / len(hunks) if hunks else 0.0


@dataclass
class Row:
    method: str
    budget: int
    cache: str
    present: float
    code: float
    hunks: float
    named: float
    tokens: float
    seconds: float
    errors: int
    present_vs_bm25: float | None = None
    code_vs_bm25: float | None = None


def summarize(results: list[TaskResult], budgets: list[int]) -> list[Row]:
    """Mean over tasks per method and budget; a failed pack counts as recall 0."""
    rows: list[Row] = []
    for position, budget in enumerate(budgets):
        for method in METHODS:
            packs = [(r.task, r.packs[method][position]) for r in results if method in r.packs]
            if not packs:
                continue
            cache = "-" if method == "bm25" else ("cold" if position == 0 else "warm")
            rows.append(
                Row(
                    method=method,
                    budget=budget,
                    cache=cache,
                    present=statistics.fmean(recall(p.present, t.targets) for t, p in packs),
                    code=statistics.fmean(recall(p.code, t.targets) for t, p in packs),
                    hunks=statistics.fmean(hunk_recall(p, t) for t, p in packs),
                    named=statistics.fmean(recall(p.named, t.targets) for t, p in packs),
                    tokens=statistics.fmean(p.tokens for _, p in packs),
                    seconds=statistics.fmean(p.seconds for _, p in packs),
                    errors=sum(p.error is not None for _, p in packs),
                )
            )
    add_ratios(rows)
    return rows


def add_ratios(rows: list[Row]) -> None:
    base = {row.budget: row for row in rows if row.method == "bm25"}
    for row in rows:
        ref = base.get(row.budget)
        if ref:
            row.present_vs_bm25 = row.present / ref.present if ref.present else None
            row.code_vs_bm25 = row.code / ref.code if ref.code else None


def needs(share: float) -> str:
    """1.5 x BM25's recall, saying so when that is out of reach (above 1)."""
    return f"{share:.2f}" + (" (out of reach: above 1)" if share > 1 else "")


def checks(rows: list[Row]) -> list[tuple[str, str]]:
    """The issue's targets at 16k: (status, line) pairs."""
    at = {row.method: row for row in rows if row.budget == TARGET_BUDGET}
    xvckit, bm25, aider = at.get("xvckit"), at.get("bm25"), at.get("aider")
    if xvckit is None or bm25 is None:
        return [("SKIP", f"targets need the xvckit and bm25 rows at {TARGET_BUDGET} tokens")]
    out = []
    need = 1.5 * bm25.present
    line = f"present at 16k: xvckit {xvckit.present:.2f} >= 1.5 x BM25 = {needs(need)}"
    ok = xvckit.present >= need
    if aider is not None:
        line += f" and >= aider {aider.present:.2f}"
        ok = ok and xvckit.present >= aider.present
    else:
        line += " (aider: no row, not compared)"
    out.append(("PASS" if ok else "FAIL", line))
    need = 1.5 * bm25.code
    line = f"with code at 16k: xvckit {xvckit.code:.2f} >= 1.5 x BM25 = {needs(need)}"
    out.append(("PASS" if xvckit.code >= need else "FAIL", line))
    return out


def render(rows: list[Row]) -> str:
    headers = ["method", "budget", "cache", "present", "with code", "hunks", "named", "tokens", "s/pack"]
    headers += ["present/BM25", "code/BM25", "failed"]
    body = [
        [
            r.method,
            r.budget,
            r.cache,
            fmt(r.present),
            fmt(r.code),
            fmt(r.hunks),
            fmt(r.named),
            round(r.tokens),
            fmt(r.seconds),
            fmt(r.present_vs_bm25, suffix="x"),
            fmt(r.code_vs_bm25, suffix="x"),
            r.errors,
        ]
        for r in rows
    ]
    return table(headers, body, align="lrl" + "r" * 9)


def run_repo(repo: Path, args: argparse.Namespace, methods: dict, enc) -> dict:
    tasks, scanned = select_tasks(repo, args.commits)
    targets = sum(len(t.targets) for t in tasks)
    say(f"{repo}: {len(tasks)} tasks from the last {scanned} non-merge commits, {targets} target files")
    results = []
    for number, task in enumerate(tasks, 1):
        say(f"  [{number}/{len(tasks)}] {task.sha[:10]} {task.subject[:70]}")
        results.append(run_task(task, repo, args, methods, enc))
    rows = summarize(results, args.budgets) if results else []
    return {
        "repo": str(repo),
        "scanned": scanned,
        "tasks": [asdict(t) for t in tasks],
        "rows": rows,
        "checks": checks(rows) if rows else [],
        "results": results,
    }


# --------------------------------------------------------------------------- report


def print_repo(report: dict) -> None:
    tasks = report["tasks"]
    print(
        f"\n== {report['repo']}: {len(tasks)} tasks (last {report['scanned']} non-merge commits scanned), "
        f"{sum(len(t['targets']) for t in tasks)} changed files to find"
    )
    if not report["rows"]:
        print("no commit touches 1 to 5 source files that exist in its parent")
        return
    print(render(report["rows"]))
    startups = [r.aider_startup for r in report["results"] if r.aider_startup is not None]
    if startups:
        startup = statistics.fmean(startups)
        print(f"aider: s/pack is get_repo_map() alone; its process start took {startup:.1f} s more")
    for r in report["results"]:
        for method, packs in r.packs.items():
            for p in packs:
                if p.error:
                    print(f"{method} failed on {r.task.sha[:10]} at {p.budget}: {p.error}")
    for status, line in report["checks"]:
        print(f"{status}  {line}")


def to_json(reports: list[dict], notes: list[str], args: argparse.Namespace) -> dict:
    def pack_json(task: Task, p: Pack) -> dict:
        hits = {name: sorted(set(task.targets) & getattr(p, name)) for name in ("present", "code", "named")}
        hunks = hunk_recall(p, task)
        return {
            "budget": p.budget,
            "seconds": p.seconds,
            "tokens": p.tokens,
            "error": p.error,
            "hunks": hunks,
            **hits,
        }

    return {
        "budgets": args.budgets,
        "encoding": args.encoding,
        "notes": notes,
        "repos": [
            {
                "repo": rep["repo"],
                "scanned": rep["scanned"],
                "rows": [asdict(row) for row in rep["rows"]],
                "checks": rep["checks"],
                "tasks": [
                    {
                        **asdict(r.task),
                        "aider_startup_s": r.aider_startup,
                        "packs": {m: [pack_json(r.task, p) for p in ps] for m, ps in r.packs.items()},
                    }
                    for r in rep["results"]
                ],
            }
            for rep in reports
        ],
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--repo", type=Path, action="append", help="a git repository (repeatable; default: this one)"
    )
    p.add_argument("--commits", type=int, default=30, help="tasks per repository (30)")
    p.add_argument("--budgets", default="8000,16000,32000", help="token budgets (8000,16000,32000)")
    p.add_argument(
        "--encoding", default="o200k_base", help="tiktoken encoding for BM25 and aider (o200k_base)"
    )
    p.add_argument("--no-aider", action="store_true", help="leave aider out")
    p.add_argument("--no-install", action="store_true", help="use aider only if already installed")
    p.add_argument("--aider-spec", default=AIDER_SPEC, help=f"what pip installs for aider ({AIDER_SPEC})")
    p.add_argument("--keep", action="store_true", help=f"keep the parent clones in {CLONES_DIR}")
    p.add_argument("--strict", action="store_true", help="exit 3 if a target is missed")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every number to FILE")
    args = p.parse_args(argv)
    args.budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    args.repo = [r.resolve() for r in (args.repo or [ROOT])]
    return args


def shared_tiktoken_cache() -> None:
    """Use the workplace's tiktoken files when nothing else is set (no network here)."""
    shared = ROOT.parent / "shared" / "tiktoken-cache"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and shared.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(shared)


def pick_methods(args: argparse.Namespace, notes: list[str]) -> dict:
    """Method name -> its runner's argument (aider: its python), leaving out what can't run."""
    methods: dict = {"bm25": None}
    missing = xvckit_available()
    if missing:
        notes.append(f"xvckit left out: {missing}")
    else:
        methods["xvckit"] = None
        notes.append(f"xvckit's s/pack includes its process start ({startup_seconds():.1f} s for --help)")
    if args.no_aider:
        notes.append("aider left out (--no-aider)")
    else:
        python, note = ensure_aider(args.aider_spec, not args.no_install)
        notes.append(note)
        if python:
            methods["aider"] = python
    return methods


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shared_tiktoken_cache()
    notes: list[str] = []
    methods = pick_methods(args, notes)
    for note in notes:
        say(note)
    enc = encoder(args.encoding)
    began = time.perf_counter()
    try:
        reports = [run_repo(repo, args, methods, enc) for repo in args.repo]
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        print_repo(report)
    print(f"\n{len(args.repo)} repositories in {time.perf_counter() - began:.0f} s")
    print("\n".join(f"note: {note}" for note in notes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(reports, notes, args), indent=2, default=sorted))
    missed = any(status == "FAIL" for rep in reports for status, _ in rep["checks"])
    return 3 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
