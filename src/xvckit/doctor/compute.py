"""The compute section: cores, clock, RAM, storage and OS as the OS reports them (psutil,
/proc, /sys, os), and a short disk write check in the repository's file system, which
outranks the kind a virtual disk reports."""

from __future__ import annotations

import os
import platform

import psutil

from xvckit.doctor import disk
from xvckit.doctor.checks import Check
from xvckit.doctor.report import show_value
from xvckit.doctor.runner import Deliver, Job, Promise, in_thread
from xvckit.doctor.setup import Setup
from xvckit.doctor.thresholds import Status

FACTS = [
    Promise("compute.cpu_cores", "CPU cores"),
    Promise("compute.cpu_clock", "CPU clock"),
    Promise("compute.ram", "RAM"),
    Promise("compute.storage_size", "storage size"),
    Promise("compute.storage_free", "storage free"),
    Promise("compute.os", "operating system"),
]
STORAGE_TYPE = Promise("compute.storage_type", "storage type")
DISK_CHECKS = [
    Promise("compute.disk_fsync", "fsync latency"),
    Promise("compute.disk_write", "sequential write"),
]
STORAGE_FIX = "keep the repository on an SSD, better NVMe (the guide: 250 GB SSD minimum, 1 TB NVMe optimal)"
UPGRADE = "a machine with more {what} (the guide: {minimum} minimum, {optimal} optimal)"


def jobs(setup: Setup) -> list[Job]:
    return [
        Job(FACTS, lambda deliver: in_thread(_facts, setup, deliver)),
        Job([STORAGE_TYPE, *DISK_CHECKS], lambda deliver: in_thread(_disk, setup, deliver)),
    ]


def _facts(setup: Setup, deliver: Deliver) -> None:
    for promise, measure in zip(FACTS, (_cores, _clock, _ram, _size, _free, _os), strict=True):
        try:
            deliver(measure(setup, promise))
        except (OSError, ValueError, AttributeError) as exc:
            reason = f"the OS did not tell: {getattr(exc, 'strerror', None) or exc}"
            deliver(setup.judge.missing(promise.id, promise.title, promise.threshold, reason))


def _upgrade(setup: Setup, promise: Promise, what: str) -> str:
    row = setup.judge.table[promise.threshold]
    return UPGRADE.format(
        what=what, minimum=f"{row.minimum:g} {row.unit}", optimal=f"{row.optimal:g} {row.unit}"
    )


def _cores(setup: Setup, promise: Promise) -> Check:
    logical = os.cpu_count()
    if logical is None:
        raise ValueError("no CPU count")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    detail = f"{psutil.cpu_count(logical=False) or '?'} physical; {usable} usable by this process"
    return setup.judge.measured(
        promise.id,
        promise.title,
        promise.threshold,
        logical,
        fix=_upgrade(setup, promise, "CPU cores"),
        detail=detail,
    )


def _clock(setup: Setup, promise: Promise) -> Check:
    freq = psutil.cpu_freq()
    if freq is None:
        raise ValueError("no CPU frequency")
    if freq.max:
        ghz, detail = freq.max / 1000, f"maximum from cpufreq; now {freq.current / 1000:.2f} GHz"
    else:
        ghz, detail = freq.current / 1000, "current clock (/proc/cpuinfo); no cpufreq to give the maximum"
    fix = _upgrade(setup, promise, "CPU speed")
    return setup.judge.measured(
        promise.id, promise.title, promise.threshold, round(ghz, 2), fix=fix, detail=detail
    )


def _ram(setup: Setup, promise: Promise) -> Check:
    memory = psutil.virtual_memory()
    detail = f"{memory.total / 2**30:.1f} GiB; {memory.available / 1e9:.1f} GB available"
    fix = _upgrade(setup, promise, "RAM")
    value = round(memory.total / 1e9, 1)
    return setup.judge.measured(promise.id, promise.title, promise.threshold, value, fix=fix, detail=detail)


def _size(setup: Setup, promise: Promise) -> Check:
    usage = psutil.disk_usage(str(setup.root))
    fix = _upgrade(setup, promise, "storage")
    detail = f"the file system holding {setup.root}"
    value = round(usage.total / 1e9, 1)
    return setup.judge.measured(promise.id, promise.title, promise.threshold, value, fix=fix, detail=detail)


def _free(setup: Setup, promise: Promise) -> Check:
    usage = psutil.disk_usage(str(setup.root))
    fix = f"free space on the disk holding {setup.root} (old builds, caches, docker images)"
    value = round(usage.free / 1e9, 1)
    detail = f"{usage.percent:.0f}% used"
    return setup.judge.measured(promise.id, promise.title, promise.threshold, value, fix=fix, detail=detail)


def _os(setup: Setup, promise: Promise) -> Check:
    system = platform.system()
    if system == "Linux":
        try:
            name = platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
        except OSError:
            name = "Linux"
        value, detail = "linux", f"{name}, kernel {platform.release()}"
    elif system == "Darwin":
        value, detail = "macos", f"macOS {platform.mac_ver()[0]}"
    elif system == "Windows":
        major = platform.release().split(".")[0]
        value = "windows 10+" if major.isdigit() and int(major) >= 10 else "windows"
        detail = f"Windows {platform.release()}"
    else:
        value, detail = system.lower(), f"{system} {platform.release()}"
    fix = "Linux or macOS (the guide's optimal; Windows 10+ is its minimum)"
    return setup.judge.measured(promise.id, promise.title, promise.threshold, value, fix=fix, detail=detail)


def _disk(setup: Setup, deliver: Deliver) -> None:
    """The write check, then the storage type, which it may correct."""
    speeds = _write_check(setup)
    for check in speeds:
        deliver(check)
    try:
        deliver(_storage_type(setup, speeds))
    except (OSError, ValueError) as exc:
        reason = f"the OS did not tell: {getattr(exc, 'strerror', None) or exc}"
        deliver(setup.judge.missing(STORAGE_TYPE.id, STORAGE_TYPE.title, STORAGE_TYPE.threshold, reason))


def _write_check(setup: Setup) -> list[Check]:
    """fsync latency and sequential write, measured or `unknown` with the reason."""
    fsync, write = DISK_CHECKS
    try:
        found = disk.write_check(setup.root, setup.settings.disk_check_mb)
    except OSError as exc:
        reason = f"cannot write a scratch file in {setup.root}: {exc.strerror or exc}"
        return [setup.judge.missing(p.id, p.title, p.threshold, reason) for p in DISK_CHECKS]
    slow = f"the disk holding {setup.root} is slow: move the repository to an SSD/NVMe disk"
    return [
        setup.judge.measured(
            fsync.id,
            fsync.title,
            fsync.threshold,
            round(found.fsync_ms, 2),
            fix=slow,
            detail=f"median of {found.fsyncs} 4 KiB writes each followed by fsync",
        ),
        setup.judge.measured(
            write.id,
            write.title,
            write.threshold,
            round(found.write_mb_s),
            fix=slow,
            detail=f"{found.written_mb:.0f} MB of 1 MiB blocks, final fsync included",
        ),
    ]


def _storage_type(setup: Setup, speeds: list[Check]) -> Check:
    promise = STORAGE_TYPE
    name = disk.block_device(setup.root, setup.paths.sys, setup.paths.proc)
    if name is None:
        reason = f"no block device found under {setup.root} (network, overlay or virtual file system)"
        return setup.judge.missing(promise.id, promise.title, promise.threshold, reason)
    kind = disk.disk_kind(name, setup.paths.sys)
    detail = f"/dev/{name}"
    if disk.is_virtual(name, setup.paths.sys):
        if kind == "hdd":
            return _virtual_rotational(setup, detail, speeds)
        detail += ": a virtual disk, whose kind the hypervisor reports; see the write check"
    return setup.judge.measured(
        promise.id, promise.title, promise.threshold, kind, fix=STORAGE_FIX, detail=detail
    )


def _virtual_rotational(setup: Setup, device: str, speeds: list[Check]) -> Check:
    """A virtual disk that says rotational, as hypervisors often do over SSDs: the write check
    decides. Either speed at least its minimum is SSD-class (an fsync quicker than a disk head
    seeks and turns, or a SATA SSD's write rate); the write rate alone can mislead, as virtual
    disks are throttled to a plan's rate (cloud SSD volumes to 125-250 MB/s)."""
    promise = STORAGE_TYPE
    said = f"{device}: a virtual disk that says rotational (its hypervisor's choice)"
    if any(check.value is None for check in speeds):
        reason = f"{said}; the write check could not tell: {speeds[0].detail}"
        return setup.judge.missing(promise.id, promise.title, promise.threshold, reason)
    measured = ", ".join(f"{check.title} {show_value(check)}" for check in speeds)
    if any(check.status in (Status.MINIMUM, Status.OPTIMAL) for check in speeds):
        kind, detail = "ssd", f"{said}, but {measured}: SSD-class"
    else:
        kind, detail = "hdd", f"{said}, and {measured} agree"
    return setup.judge.measured(
        promise.id, promise.title, promise.threshold, kind, fix=STORAGE_FIX, detail=detail
    )
