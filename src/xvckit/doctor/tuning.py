"""The tuning section: the guide's "Environment Optimization" script (§4), read back from the
running system: the open-file limit (resource), four network sysctls (/proc/sys) and the CPU
frequency governor (/sys). `fix.py` turns the checks that fall short into commands."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from xvckit.doctor.checks import Check
from xvckit.doctor.runner import Deliver, Job, Promise, in_thread
from xvckit.doctor.setup import Setup
from xvckit.doctor.thresholds import describe

SysctlValue = int | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Sysctl:
    check_id: str
    name: str  # net.core.rmem_max

    def path(self, proc: Path) -> Path:
        return proc / "sys" / self.name.replace(".", "/")

    def read(self, proc: Path) -> SysctlValue:
        fields = tuple(int(f) for f in self.path(proc).read_text().split())
        return fields[0] if len(fields) == 1 else fields


SYSCTLS = (
    Sysctl("tuning.rmem_max", "net.core.rmem_max"),
    Sysctl("tuning.wmem_max", "net.core.wmem_max"),
    Sysctl("tuning.tcp_rmem", "net.ipv4.tcp_rmem"),
    Sysctl("tuning.tcp_wmem", "net.ipv4.tcp_wmem"),
)
NOFILE = Promise("tuning.nofile", "open-file limit")
GOVERNOR = Promise("tuning.cpu_governor", "CPU frequency governor")
GOVERNOR_GLOB = "devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"
PROMISES = [NOFILE, *(Promise(s.check_id, s.name) for s in SYSCTLS), GOVERNOR]


def target(current: SysctlValue, optimal) -> SysctlValue:
    """What to set: the guide's value, keeping any field the system already has higher."""
    if isinstance(current, tuple):
        return tuple(max(int(c), int(o)) for c, o in zip(current, optimal, strict=True))
    return max(int(current), int(optimal))


def sysctl_text(value: SysctlValue) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def sysctl_command(name: str, value: SysctlValue) -> str:
    text = sysctl_text(value)
    return f'sudo sysctl -w {name}="{text}"' if " " in text else f"sudo sysctl -w {name}={text}"


def governor_paths(sys_root: Path) -> list[Path]:
    return sorted(sys_root.glob(GOVERNOR_GLOB))


def jobs(setup: Setup) -> list[Job]:
    return [Job(PROMISES, lambda deliver: in_thread(measure, setup, deliver))]


def measure(setup: Setup, deliver: Deliver) -> None:
    deliver(_nofile(setup))
    for sysctl in SYSCTLS:
        deliver(_sysctl(setup, sysctl))
    deliver(_governor(setup))


def _nofile(setup: Setup) -> Check:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = int(setup.judge.table[NOFILE.threshold].optimal)
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        fix = f"ulimit -n {wanted} (in your shell profile; the hard limit allows it)"
    else:
        fix = (
            f"xvckit doctor --fix --apply as root (hard limit {hard}), then ulimit -n {wanted} in a new login"
        )
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else hard
    return setup.judge.measured(
        NOFILE.id,
        NOFILE.title,
        NOFILE.threshold,
        soft,
        fix=fix,
        detail=f"this process's soft limit; hard {hard_text}",
    )


def _sysctl(setup: Setup, sysctl: Sysctl) -> Check:
    path = sysctl.path(setup.paths.proc)
    try:
        value = sysctl.read(setup.paths.proc)
    except FileNotFoundError:
        return setup.judge.missing(
            sysctl.check_id, sysctl.name, sysctl.check_id, f"{path} does not exist here"
        )
    except (OSError, ValueError) as exc:
        reason = f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        return setup.judge.missing(sysctl.check_id, sysctl.name, sysctl.check_id, reason)
    optimal = setup.judge.table[sysctl.check_id].optimal
    fix = sysctl_command(sysctl.name, target(value, optimal))
    return setup.judge.measured(
        sysctl.check_id, sysctl.name, sysctl.check_id, describe(value), measure=value, fix=fix
    )


def _governor(setup: Setup) -> Check:
    paths = governor_paths(setup.paths.sys)
    if not paths:
        reason = (
            "no cpufreq governor in /sys (a VM or a CPU driver without frequency scaling): nothing to tune"
        )
        return setup.judge.missing(GOVERNOR.id, GOVERNOR.title, GOVERNOR.threshold, reason)
    try:
        governors = sorted({path.read_text().strip() for path in paths})
    except OSError as exc:
        reason = f"cannot read {paths[0]}: {exc.strerror or exc}"
        return setup.judge.missing(GOVERNOR.id, GOVERNOR.title, GOVERNOR.threshold, reason)
    value = governors[0] if len(governors) == 1 else ",".join(governors)
    fix = "sudo cpupower frequency-set -g performance"
    detail = f"{len(paths)} CPUs"
    return setup.judge.measured(
        GOVERNOR.id, GOVERNOR.title, GOVERNOR.threshold, value, fix=fix, detail=detail
    )
