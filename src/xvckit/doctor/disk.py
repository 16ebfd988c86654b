"""The disk under the repository: what kind the OS says it is, and a short write check.

Kind: the block device of the directory's file system (st_dev, else the mount's source in
mountinfo), its parent disk if it is a partition, the disk under a device-mapper or RAID
device; `nvme*` is NVMe, else queue/rotational says HDD (1) or SSD (0). A virtual disk
(virtio, Xen) reports what the hypervisor chose, so the write check is the better witness.

Write check: fsync latency is the median of 4 KiB writes each followed by fsync; the
sequential rate writes 1 MiB blocks of random bytes up to a size or time cap and includes
the final fsync, so the page cache cannot flatter it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

VIRTUAL_PREFIXES = ("vd", "xvd")  # virtio, Xen
# What hypervisors' emulated SCSI/ATA disks give as vendor or model (QEMU, VMware, Hyper-V's
# "Msft Virtual Disk", VirtualBox's "VBOX HARDDISK", Google's "PersistentDisk").
VIRTUAL_MAKERS = ("qemu", "vmware", "virtual", "vbox", "msft", "persistentdisk")


def block_device(directory: Path, sys_root: Path, proc_root: Path) -> str | None:
    """The name of the disk (not partition) holding `directory`, e.g. "nvme0n1", "sda"."""
    dev = os.stat(directory).st_dev
    node = sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
    if node.exists():
        device = node.resolve()
    else:
        source = _mount_source(directory, proc_root / "self" / "mountinfo")
        if source is None or not (sys_root / "class" / "block" / source).exists():
            return None
        device = (sys_root / "class" / "block" / source).resolve()
    if (device / "partition").exists():
        device = device.parent
    slaves = sorted((device / "slaves").glob("*")) if (device / "slaves").is_dir() else []
    if slaves:  # device-mapper, md: the first disk underneath
        under = (sys_root / "class" / "block" / slaves[0].name).resolve()
        return (under.parent if (under / "partition").exists() else under).name
    return device.name


def _mount_source(directory: Path, mountinfo: Path) -> str | None:
    """The /dev name of the file system mounted deepest above `directory` (btrfs and others
    give their files an anonymous st_dev)."""
    target = str(directory.resolve())
    best: tuple[int, str] | None = None
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        source = fields[fields.index("-") + 2]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and source.startswith("/dev/") and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), os.path.basename(os.path.realpath(source)))
    return best[1] if best else None


def disk_kind(name: str, sys_root: Path) -> str:
    if name.startswith("nvme"):
        return "nvme"
    rotational = (sys_root / "block" / name / "queue" / "rotational").read_text().strip()
    return "hdd" if rotational == "1" else "ssd"


def is_virtual(name: str, sys_root: Path) -> bool:
    """A disk a hypervisor provides: by its driver's name, or its vendor or model."""
    if name.startswith(VIRTUAL_PREFIXES):
        return True
    device = sys_root / "block" / name / "device"
    for field in ("vendor", "model"):
        try:
            text = (device / field).read_text().lower()
        except OSError:
            continue
        if any(maker in text for maker in VIRTUAL_MAKERS):
            return True
    return False


@dataclass(frozen=True, slots=True)
class WriteCheck:
    fsync_ms: float
    fsyncs: int
    write_mb_s: float
    written_mb: float


def write_check(directory: Path, max_mb: float, max_s: float = 2.0, fsyncs: int = 20) -> WriteCheck:
    """Measure in a temporary file in `directory` (removed afterwards); OSError if not writable."""
    with tempfile.TemporaryDirectory(prefix=".xvckit-doctor-", dir=directory) as scratch:
        path = Path(scratch) / "probe"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            small = os.urandom(4096)
            times = []
            for _ in range(fsyncs):
                started = time.perf_counter()
                os.write(fd, small)
                os.fsync(fd)
                times.append((time.perf_counter() - started) * 1000)
            block = os.urandom(1 << 20)
            written = 0
            started = time.perf_counter()
            while written < max_mb * 1e6 and time.perf_counter() - started < max_s:
                written += os.write(fd, block)
            os.fsync(fd)
            seconds = time.perf_counter() - started
        finally:
            os.close(fd)
    return WriteCheck(statistics.median(times), fsyncs, written / 1e6 / seconds, written / 1e6)
