"""Run folders: `.xvckit/batch/<run-id>/` under the folder a run starts in.

A run's id comes from what it does (template, items, model, outputs, folder), not from when it
started, so the same command finds its own journal again after a crash. The folder holds
`run.db` (the journal, with the run's spec in it, never the key), `lock` (held by the process
running it; the kernel lets go when the process dies, even by SIGKILL) and `originals/` (files
as they were before `--apply-edits` changed them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from xvckit.batch.journal import Journal
from xvckit.errors import UserError

RUNS_DIR = Path(".xvckit") / "batch"
LIVE, PROVIDER_BATCH = "live", "provider-batch"
JOURNAL = "run.db"
RUNNING, DONE, INCOMPLETE, CANCELLED, INTERRUPTED = (
    "running",
    "done",
    "incomplete",
    "cancelled",
    "interrupted",
)


@dataclass
class RunSpec:
    """What a run does and how; paths are absolute. The identity fields name the run."""

    template: str
    model: str
    dialect: str | None  # None: by the model's name
    root: str  # the folder the run started in: items, outputs and edits are under it
    files: list[str] = field(default_factory=list)
    input: str | None = None
    out: str | None = None
    name: str | None = None
    results: str | None = None
    apply_edits: bool = False
    context_budget: int | None = None
    repo: str | None = None
    # how, not what: a re-run may change these and still be the same run
    max_tokens: int = 2048
    temperature: float | None = None
    concurrency: str = "auto"
    max_cost: float | None = None
    gateway: str | None = None
    max_attempts: int = 5
    timeout_s: float = 600.0
    mode: str = LIVE  # or PROVIDER_BATCH: through the provider's batch API
    poll_s: float = 60.0  # between two polls of a provider batch

    IDENTITY = (
        "template",
        "model",
        "dialect",
        "root",
        "files",
        "input",
        "out",
        "name",
        "results",
        "apply_edits",
    )

    @property
    def run_id(self) -> str:
        identity = orjson.dumps(
            {name: getattr(self, name) for name in self.IDENTITY}, option=orjson.OPT_SORT_KEYS
        )
        return f"{Path(self.template).stem}-{hashlib.sha256(identity).hexdigest()[:10]}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        return cls(**data)


class Run:
    """A run folder: its journal, and the lock of the process that runs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.id = folder.name
        self.journal = Journal(folder / JOURNAL)
        self._lock: int | None = None

    @classmethod
    def create(cls, runs_dir: Path, spec: RunSpec) -> Run:
        folder = runs_dir / spec.run_id
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # answers and copies of the files edits changed: the owner's only
        run = cls(folder)
        if run.journal.get("created") is None:
            run.journal.set("created", time.time())
        return run

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        self.journal.close()

    @property
    def spec(self) -> RunSpec:
        data = self.journal.get("spec")
        if data is None:
            raise UserError(f"run {self.id}: no spec in its journal")
        return RunSpec.from_dict(data)

    def lock(self) -> None:
        """Own the run for this process; UserError when another process runs it."""
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"run {self.id} is running in another process (`xvckit batch cancel {self.id}`)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd

    def running_elsewhere(self) -> bool:
        if self._lock is not None:
            return False
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @property
    def state(self) -> str:
        state = self.journal.get("state", INCOMPLETE)
        if state == RUNNING and not self._lock and not self.running_elsewhere():
            return INTERRUPTED
        return state

    def overview(self) -> dict:
        """The run as `batch list` shows it."""
        spec = self.journal.get("spec") or {}
        totals = self.journal.totals()
        return {
            "run": self.id,
            "state": self.state,
            "template": spec.get("template"),
            "model": spec.get("model"),
            "items": totals["items"],
            "done": totals["states"]["done"],
            "failed": totals["states"]["failed"],
            "cost_usd": round(totals["cost_usd"], 6),
            "created": self.journal.get("created"),
            "updated": self.journal.get("updated"),
        }


def runs_dir(option: Path | None) -> Path:
    return option if option is not None else Path.cwd() / RUNS_DIR


def all_runs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / JOURNAL).is_file())


def find(folder: Path, ref: str) -> Run:
    """The run named `ref` (its id, or the start of one id)."""
    runs = all_runs(folder)
    exact = [p for p in runs if p.name == ref]
    matches = exact or [p for p in runs if p.name.startswith(ref)]
    if len(matches) == 1:
        return Run(matches[0])
    if not matches:
        known = ", ".join(p.name for p in runs) or "none"
        raise UserError(f"no run {ref!r} in {folder} (runs: {known})")
    raise UserError(f"{ref!r} names {len(matches)} runs: {', '.join(p.name for p in matches)}")


@contextlib.contextmanager
def opened(folder: Path, ref: str):
    run = find(folder, ref)
    try:
        yield run
    finally:
        run.close()
