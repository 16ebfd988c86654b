"""`--fix`: the commands that bring the failing tuning checks to the guide's values.
`--apply` carries them out as root: the live values now (/proc/sys, /sys, as `sysctl -w`
and `cpupower` would), and files that keep them across reboots and logins (sysctl.d,
limits.d, tmpfiles.d), merged with what those files already say. Every path comes from
SystemPaths, so tests apply to temporary trees.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from xvckit.doctor.checks import Check
from xvckit.doctor.setup import Setup, SystemPaths
from xvckit.doctor.thresholds import Status
from xvckit.doctor.tuning import (
    GOVERNOR,
    GOVERNOR_GLOB,
    NOFILE,
    SYSCTLS,
    SysctlValue,
    governor_paths,
    sysctl_command,
    sysctl_text,
    target,
)

CONF = "90-xvckit.conf"
GOVERNOR_CONF = "90-xvckit-governor.conf"
LIMIT_DOMAINS = ("*", "root")  # pam_limits' "*" does not cover root


@dataclass(slots=True)
class Plan:
    sysctls: dict[str, SysctlValue] = field(default_factory=dict)  # net.core.rmem_max -> value
    nofile: int | None = None
    governor: str | None = None

    @property
    def empty(self) -> bool:
        return not self.sysctls and self.nofile is None and self.governor is None


def plan(checks: list[Check], setup: Setup) -> Plan:
    """What to change for the tuning checks short of optimal (unmeasured ones are left alone)."""
    failing = {
        c.id: c
        for c in checks
        if c.section == "tuning" and c.status in (Status.MINIMUM, Status.BELOW_MINIMUM)
    }
    table = setup.judge.table
    found = Plan()
    for sysctl in SYSCTLS:
        check = failing.get(sysctl.check_id)
        if check is not None:
            current = tuple(check.value) if isinstance(check.value, list) else check.value
            found.sysctls[sysctl.name] = target(current, table[sysctl.check_id].optimal)
    if NOFILE.id in failing:
        found.nofile = int(table[NOFILE.threshold].optimal)
    if GOVERNOR.id in failing:
        found.governor = sorted(table[GOVERNOR.threshold].optimal)[0]
    return found


def files(found: Plan, paths: SystemPaths) -> list[tuple[Path, str]]:
    """The persisted settings: each file's whole new content."""
    out = []
    if found.sysctls:
        path = paths.sysctl_dir / CONF
        keep = [line for line in _lines(path) if line.split("=", 1)[0].strip() not in found.sysctls]
        out.append((path, _text(keep + [f"{name} = {sysctl_text(v)}" for name, v in found.sysctls.items()])))
    if found.nofile is not None:
        path = paths.limits_dir / CONF
        keep = [line for line in _lines(path) if not _nofile_line(line)]
        mine = [f"{who} {kind} nofile {found.nofile}" for who in LIMIT_DOMAINS for kind in ("soft", "hard")]
        out.append((path, _text(keep + mine)))
    if found.governor is not None:
        line = f"w {paths.sys / GOVERNOR_GLOB} - - - - {found.governor}"
        out.append((paths.tmpfiles_dir / GOVERNOR_CONF, _text([line])))
    return out


def commands(found: Plan, paths: SystemPaths) -> list[str]:
    """The exact shell commands, live changes first, then the files that keep them."""
    lines = [sysctl_command(name, value) for name, value in found.sysctls.items()]
    if found.governor is not None:
        lines.append(f"sudo cpupower frequency-set -g {found.governor}")
    for path, content in files(found, paths):
        quoted = " ".join(shlex.quote(line) for line in content.splitlines())
        lines.append(f"printf '%s\\n' {quoted} | sudo tee {shlex.quote(str(path))} >/dev/null")
    if found.nofile is not None:
        lines.append(f"ulimit -n {found.nofile}   # in each new login shell (the limit above allows it)")
    return lines


def is_root() -> bool:
    return os.geteuid() == 0


def needs(found: Plan, paths: SystemPaths) -> str:
    """What --apply would touch, for the message to a user who is not root."""
    touched = [str(path) for path, _ in files(found, paths)]
    if found.sysctls:
        touched.insert(0, str(paths.proc / "sys"))
    return f"--apply needs root: it writes {', '.join(touched)}; run it with sudo, or run the commands above"


def apply(found: Plan, paths: SystemPaths) -> list[str]:
    """Carry the plan out; one line per change, saying what was done or why it failed."""
    done = []
    for name, value in found.sysctls.items():
        path = paths.proc / "sys" / name.replace(".", "/")
        done.append(_write(path, sysctl_text(value) + "\n", f"{name} = {sysctl_text(value)}"))
    if found.governor is not None:
        for path in governor_paths(paths.sys):
            done.append(
                _write(path, found.governor + "\n", f"{path.parent.parent.name} governor {found.governor}")
            )
    for path, content in files(found, paths):
        done.append(_persist(path, content))
    return done


def _write(path: Path, text: str, what: str) -> str:
    try:
        path.write_text(text)
    except OSError as exc:
        return f"failed: {what}: {exc.strerror or exc} ({path})"
    return f"set {what}"


def _persist(path: Path, content: str) -> str:
    """Write the whole file at once (a reader never sees half of it), mode 0644."""
    temporary = path.with_name(f".{path.name}.xvckit")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(content)
        temporary.chmod(0o644)
        os.replace(temporary, path)
    except OSError as exc:
        return f"failed: write {path}: {exc.strerror or exc}"
    return f"wrote {path}"


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:  # absent (or unreadable: the non-root user only prints the commands)
        return []


def _nofile_line(line: str) -> bool:
    fields = line.split()
    return len(fields) == 4 and fields[0] in LIMIT_DOMAINS and fields[2] == "nofile"


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
