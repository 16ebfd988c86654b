"""What every section of the doctor works from: settings, thresholds, where the system's
files are (injectable, so tests read and write temporary trees instead of /proc and /etc)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from xvckit.config import Config
from xvckit.config.schema import DoctorSettings
from xvckit.doctor.checks import Judge
from xvckit.doctor.history import History
from xvckit.doctor.thresholds import with_overrides


@dataclass(frozen=True, slots=True)
class SystemPaths:
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    sysctl_dir: Path = Path("/etc/sysctl.d")
    limits_dir: Path = Path("/etc/security/limits.d")
    tmpfiles_dir: Path = Path("/etc/tmpfiles.d")


@dataclass(slots=True)
class Setup:
    config: Config
    root: Path  # the repository (or directory) the developer works in
    paths: SystemPaths = field(default_factory=SystemPaths)
    probe_api: bool = False
    ssl_context: ssl.SSLContext | None = None  # None: the system's trust store
    judge: Judge = field(init=False)
    history: History = field(init=False)

    def __post_init__(self) -> None:
        settings = self.config.doctor
        self.judge = Judge(with_overrides(settings.thresholds))
        self.history = History(
            self.config.storage.url, [p.name for p in self.config.providers], settings.history_days
        )

    @property
    def settings(self) -> DoctorSettings:
        return self.config.doctor
