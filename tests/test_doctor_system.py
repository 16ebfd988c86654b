"""`xvckit doctor` on this machine and on fake /proc, /sys and /etc trees: compute and tuning
figures equal to what the OS reports, the disk kind, the tools, the fixes applied to
temporary directories (never /etc), thresholds, the velocity verdict and the deadline."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import time
from pathlib import Path

import pytest

from xvckit.config import from_mapping
from xvckit.doctor import Setup, SystemPaths, diagnose, fix
from xvckit.doctor import disk as disk_module
from xvckit.doctor.checks import Judge
from xvckit.doctor.devenv import required_toolchains
from xvckit.doctor.disk import block_device, disk_kind, is_virtual
from xvckit.doctor.report import headline
from xvckit.doctor.runner import Job, Promise, run_jobs
from xvckit.doctor.thresholds import THRESHOLDS, Status, judge, with_overrides
from xvckit.doctor.verdict import verdict
from xvckit.errors import UserError

GUIDE = 134217728  # the guide's rmem_max / wmem_max / tcp_*mem ceiling


def setup_for(root: Path, paths: SystemPaths | None = None, **doctor) -> Setup:
    config = from_mapping({"storage": {"url": f"sqlite:///{root}/xvckit.db"}, "doctor": doctor})
    return Setup(config, root, paths=paths or SystemPaths())


def by_id(report) -> dict:
    return {check.id: check for check in report.checks}


# --- compute ----------------------------------------------------------------------------------


def test_compute_figures_equal_what_proc_and_os_report(tmp_path):
    found = by_id(diagnose(setup_for(tmp_path), ("compute",)))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert (
        found["compute.cpu_cores"].value
        == os.cpu_count()
        == len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    )
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)[1])
    assert found["compute.ram"].value == round(mem_kb * 1024 / 1e9, 1)
    fs = os.statvfs(tmp_path)
    assert found["compute.storage_size"].value == round(fs.f_blocks * fs.f_frsize / 1e9, 1)
    assert abs(found["compute.storage_free"].value - fs.f_bavail * fs.f_frsize / 1e9) < 0.5
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.exists():
        assert found["compute.cpu_clock"].value == round(int(max_freq.read_text()) / 1e6, 2)
    else:  # the current clock: it moves between two reads, within the CPUs' range
        mhz = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)]
        assert min(mhz) * 0.9 / 1000 <= found["compute.cpu_clock"].value <= max(mhz) * 1.1 / 1000
    kind = found["compute.storage_type"]
    if kind.status is not Status.UNKNOWN:
        disk = kind.detail.split(":")[0].removeprefix("/dev/")
        rotational = Path(f"/sys/block/{disk}/queue/rotational").read_text().strip()
        said = "nvme" if disk.startswith("nvme") else "hdd" if rotational == "1" else "ssd"
        if said == "hdd" and is_virtual(disk, Path("/sys")):  # the write check decides
            speeds = (found["compute.disk_fsync"], found["compute.disk_write"])
            said = "ssd" if any(c.status in (Status.MINIMUM, Status.OPTIMAL) for c in speeds) else "hdd"
        assert kind.value == said
    assert found["compute.os"].value == "linux" and found["compute.os"].status is Status.OPTIMAL
    assert found["compute.disk_fsync"].value > 0 and found["compute.disk_write"].value > 0
    assert not list(tmp_path.glob(".xvckit-doctor-*"))  # the scratch file is gone


def _fake_disk(sys_root: Path, disk: str, rotational: str, partition: str | None = None) -> Path:
    """/sys/devices/<disk>[/<partition>], /sys/block/<disk> and /sys/class/block links; the
    device directory holding the file system."""
    device = sys_root / "devices" / disk
    (device / "queue").mkdir(parents=True)
    (device / "queue" / "rotational").write_text(rotational + "\n")
    for name, target in ((disk, device), *(((partition, device / partition),) if partition else ())):
        for parent in (sys_root / "class" / "block", *((sys_root / "block",) if name == disk else ())):
            parent.mkdir(parents=True, exist_ok=True)
            (parent / name).symlink_to(target)
    if partition:
        (device / partition).mkdir()
        (device / partition / "partition").write_text("2\n")
        return device / partition
    return device


def _mount(sys_root: Path, directory: Path, device: Path) -> None:
    dev = os.stat(directory).st_dev
    (sys_root / "dev" / "block").mkdir(parents=True, exist_ok=True)
    (sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").symlink_to(device)


@pytest.mark.parametrize(
    ("disk", "rotational", "partition", "expected"),
    [("nvme0n1", "0", "nvme0n1p2", "nvme"), ("sda", "1", "sda1", "hdd"), ("sdb", "0", None, "ssd")],
)
def test_storage_kind_from_the_block_device_under_the_directory(
    tmp_path, disk, rotational, partition, expected
):
    sys_root = tmp_path / "sys"
    _mount(sys_root, tmp_path, _fake_disk(sys_root, disk, rotational, partition))
    name = block_device(tmp_path, sys_root, tmp_path / "proc")
    assert name == disk and disk_kind(name, sys_root) == expected


def test_storage_kind_under_device_mapper_and_from_mountinfo(tmp_path):
    sys_root = tmp_path / "sys"
    _fake_disk(sys_root, "sdc", "0", "sdc3")
    mapper = _fake_disk(sys_root, "dm-0", "0")
    (mapper / "slaves").mkdir()
    (mapper / "slaves" / "sdc3").symlink_to(sys_root / "devices" / "sdc" / "sdc3")
    _mount(sys_root, tmp_path, mapper)
    assert block_device(tmp_path, sys_root, tmp_path / "proc") == "sdc"

    # btrfs and others: an anonymous st_dev, so the mount's source names the device.
    other = tmp_path / "other"
    _fake_disk(other, "nvme1n1", "0", "nvme1n1p1")
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        "27 1 0:31 / / rw,relatime - btrfs /dev/nvme1n1p1 rw\n28 27 0:5 / /proc rw - proc proc rw\n"
    )
    assert block_device(tmp_path, other, tmp_path / "proc") == "nvme1n1"


# Thresholds that put whatever this disk measures above (FAST) or below (SLOW) the minimum:
# the test, not this machine's speed, decides which side each speed lands on.
FAST_FSYNC = {"compute.disk_fsync": {"minimum": 1e6}}
SLOW_FSYNC = {"compute.disk_fsync": {"minimum": 1e-9, "optimal": 1e-10}}
FAST_WRITE = {"compute.disk_write": {"minimum": 1e-6}}
SLOW_WRITE = {"compute.disk_write": {"minimum": 1e9, "optimal": 1e10}}


@pytest.mark.parametrize(
    ("disk", "vendor", "speeds", "expected"),
    [
        ("vda", None, FAST_FSYNC | SLOW_WRITE, "ssd"),  # virtio, throttled to a plan's write rate
        ("sda", "QEMU    \n", SLOW_FSYNC | FAST_WRITE, "ssd"),  # a hypervisor's SCSI disk, by its vendor
        ("vda", None, SLOW_FSYNC | SLOW_WRITE, "hdd"),  # both slow: the flag stands
        ("sda", "ATA     \n", FAST_FSYNC | FAST_WRITE, "hdd"),  # a physical disk's flag is its own word
    ],
)
def test_a_virtual_disk_that_says_rotational_is_judged_by_its_write_check(
    tmp_path, disk, vendor, speeds, expected
):
    sys_root = tmp_path / "sys"
    device = _fake_disk(sys_root, disk, "1")
    if vendor:
        (device / "device").mkdir()
        (device / "device" / "vendor").write_text(vendor)
    _mount(sys_root, tmp_path, device)
    setup = setup_for(tmp_path, SystemPaths(sys=sys_root, proc=tmp_path / "proc"), thresholds=speeds)
    kind = by_id(diagnose(setup, ("compute",)))["compute.storage_type"]
    assert kind.value == expected, kind.detail
    virtual = disk == "vda" or "QEMU" in (vendor or "")
    assert ("a virtual disk that says rotational" in kind.detail) is virtual
    if expected == "ssd":
        assert kind.status is Status.MINIMUM and kind.detail.endswith(": SSD-class")
        assert "fsync latency" in kind.detail and "sequential write" in kind.detail


def test_a_virtual_disk_that_says_rotational_without_a_write_check_is_unknown(tmp_path, monkeypatch):
    sys_root = tmp_path / "sys"
    _mount(sys_root, tmp_path, _fake_disk(sys_root, "vda", "1"))

    def refused(*_args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(disk_module, "write_check", refused)
    setup = setup_for(tmp_path, SystemPaths(sys=sys_root, proc=tmp_path / "proc"))
    report = diagnose(setup, ("compute",))
    kind = by_id(report)["compute.storage_type"]
    assert kind.status is Status.UNKNOWN and kind.value is None
    assert "says rotational" in kind.detail and "Permission denied" in kind.detail
    assert kind in report.verdict.not_measured and report.verdict.bottleneck is not kind


# --- tuning -------------------------------------------------------------------------------------


def test_tuning_figures_equal_proc_sys_and_the_process_limit(tmp_path):
    found = by_id(diagnose(setup_for(tmp_path), ("tuning",)))
    for check_id, name in (
        ("tuning.rmem_max", "net/core/rmem_max"),
        ("tuning.wmem_max", "net/core/wmem_max"),
        ("tuning.tcp_rmem", "net/ipv4/tcp_rmem"),
        ("tuning.tcp_wmem", "net/ipv4/tcp_wmem"),
    ):
        fields = [int(f) for f in Path("/proc/sys", name).read_text().split()]
        assert found[check_id].value == (fields[0] if len(fields) == 1 else fields)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = Path("/proc/self/limits").read_text()
    assert found["tuning.nofile"].value == soft == int(re.search(r"Max open files\s+(\d+)", limits)[1])


def fake_system(root: Path) -> SystemPaths:
    """/proc/sys with untuned values, two CPUs with governors, empty /etc directories."""
    paths = SystemPaths(
        proc=root / "proc",
        sys=root / "sys",
        sysctl_dir=root / "etc" / "sysctl.d",
        limits_dir=root / "etc" / "security" / "limits.d",
        tmpfiles_dir=root / "etc" / "tmpfiles.d",
    )
    for name, value in (
        ("net/core/rmem_max", f"{GUIDE}"),
        ("net/core/wmem_max", "212992"),
        ("net/ipv4/tcp_rmem", "4096\t131072\t6291456"),
        ("net/ipv4/tcp_wmem", "4096\t16384\t4194304"),
    ):
        path = paths.proc / "sys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    for cpu, governor in (("cpu0", "powersave"), ("cpu1", "performance")):
        path = paths.sys / "devices" / "system" / "cpu" / cpu / "cpufreq" / "scaling_governor"
        path.parent.mkdir(parents=True)
        path.write_text(governor + "\n")
    return paths


def test_tuning_on_a_fake_system_judges_against_the_guide_script(tmp_path):
    paths = fake_system(tmp_path)
    (paths.proc / "sys" / "net" / "ipv4" / "tcp_wmem").unlink()
    found = by_id(diagnose(setup_for(tmp_path, paths), ("tuning",)))
    assert found["tuning.rmem_max"].status is Status.OPTIMAL and found["tuning.rmem_max"].fix is None
    assert found["tuning.wmem_max"].status is Status.MINIMUM
    assert found["tuning.wmem_max"].fix == f"sudo sysctl -w net.core.wmem_max={GUIDE}"
    assert found["tuning.tcp_rmem"].value == [4096, 131072, 6291456]
    assert found["tuning.tcp_rmem"].fix == f'sudo sysctl -w net.ipv4.tcp_rmem="4096 131072 {GUIDE}"'
    assert (
        found["tuning.tcp_wmem"].status is Status.UNKNOWN
        and "does not exist" in found["tuning.tcp_wmem"].detail
    )
    governor = found["tuning.cpu_governor"]
    assert governor.value == "performance,powersave" and governor.status is Status.MINIMUM
    assert governor.minimum is None and governor.optimal == ["performance"]


def test_fix_prints_commands_then_apply_persists_merges_and_measures_again(tmp_path):
    paths = fake_system(tmp_path)
    paths.sysctl_dir.mkdir(parents=True)
    (paths.sysctl_dir / fix.CONF).write_text("vm.swappiness = 10\nnet.core.wmem_max = 1\n")
    paths.limits_dir.mkdir(parents=True)
    (paths.limits_dir / fix.CONF).write_text("@dev soft nproc 100\n* soft nofile 1024\n")
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The open-file limit falls short of whatever this process has, so it is in the plan.
    setup = setup_for(tmp_path, paths, thresholds={"tuning.nofile": {"optimal": soft + 1}})
    report = diagnose(setup, ("tuning",))
    plan = fix.plan(report.checks, setup)
    assert plan.sysctls == {
        "net.core.wmem_max": GUIDE,
        "net.ipv4.tcp_rmem": (4096, 131072, GUIDE),  # the system's higher default is kept
        "net.ipv4.tcp_wmem": (4096, 65536, GUIDE),
    }
    assert (plan.nofile, plan.governor) == (soft + 1, "performance")
    commands = fix.commands(plan, paths)
    assert commands[:4] == [
        f"sudo sysctl -w net.core.wmem_max={GUIDE}",
        f'sudo sysctl -w net.ipv4.tcp_rmem="4096 131072 {GUIDE}"',
        f'sudo sysctl -w net.ipv4.tcp_wmem="4096 65536 {GUIDE}"',
        "sudo cpupower frequency-set -g performance",
    ]
    assert any(f"| sudo tee {paths.sysctl_dir / fix.CONF}" in line for line in commands)
    needs = fix.needs(plan, paths)
    assert needs.startswith("--apply needs root: it writes") and str(paths.limits_dir / fix.CONF) in needs

    done = fix.apply(plan, paths)
    assert not [line for line in done if line.startswith("failed")], done
    assert (paths.proc / "sys" / "net" / "core" / "wmem_max").read_text() == f"{GUIDE}\n"
    assert (paths.sysctl_dir / fix.CONF).read_text() == (
        f"vm.swappiness = 10\nnet.core.wmem_max = {GUIDE}\nnet.ipv4.tcp_rmem = 4096 131072 {GUIDE}\n"
        f"net.ipv4.tcp_wmem = 4096 65536 {GUIDE}\n"
    )
    nofile = soft + 1
    assert (paths.limits_dir / fix.CONF).read_text() == (
        f"@dev soft nproc 100\n* soft nofile {nofile}\n* hard nofile {nofile}\n"
        f"root soft nofile {nofile}\nroot hard nofile {nofile}\n"
    )
    glob = paths.sys / "devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"
    assert (paths.tmpfiles_dir / fix.GOVERNOR_CONF).read_text() == f"w {glob} - - - - performance\n"
    again = by_id(diagnose(setup, ("tuning",)))
    for check_id in ("tuning.wmem_max", "tuning.tcp_rmem", "tuning.tcp_wmem", "tuning.cpu_governor"):
        assert again[check_id].status is Status.OPTIMAL, again[check_id]
    assert fix.plan(list(again.values()), setup).sysctls == {}


def test_apply_reports_what_it_could_not_write(tmp_path):
    paths = fake_system(tmp_path)
    paths.sysctl_dir.parent.mkdir(parents=True)
    paths.sysctl_dir.write_text("a file where the directory should be")
    setup = setup_for(tmp_path, paths)
    done = fix.apply(fix.plan(diagnose(setup, ("tuning",)).checks, setup), paths)
    assert any(line.startswith(f"failed: write {paths.sysctl_dir / fix.CONF}") for line in done), done
    assert any(line.startswith("set net.core.wmem_max") for line in done)


# --- tools --------------------------------------------------------------------------------------


def test_toolchains_come_from_the_repository_files(tmp_path):
    for name in ("package.json", "pnpm-lock.yaml", "Cargo.toml", "Makefile", "app.csproj"):
        (tmp_path / name).write_text("")
    assert required_toolchains(tmp_path) == ["node", "pnpm", "cargo", "make", "dotnet"]


def test_tools_found_on_path_and_missing_ones_with_their_fix(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, output in (
        ("git", "git version 2.45.1"),
        ("tmux", "tmux 3.4"),
        ("nvim", "NVIM v0.10.0"),
        ("claude", "1.2.3 (Claude Code)"),
        ("make", "GNU Make 4.3"),
    ):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho '{output}'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    (tmp_path / "Makefile").write_text("")
    (tmp_path / "go.mod").write_text("")
    found = by_id(diagnose(setup_for(tmp_path), ("tools",)))
    assert found["tools.git"].value == "2.45.1" and found["tools.git"].status is Status.OPTIMAL
    assert found["tools.git_lfs"].value == "missing" and found["tools.git_lfs"].status is Status.BELOW_MINIMUM
    assert "git lfs install" in found["tools.git_lfs"].fix
    assert found["tools.editor"].value == ["nvim"] and found["tools.multiplexer"].value == ["tmux"]
    assert found["tools.ai_tools"].value == ["claude"] and found["tools.ai_tools"].status is Status.OPTIMAL
    chains = found["tools.toolchains"]
    assert chains.value == {"go": "missing", "make": "4.3"} and chains.status is Status.BELOW_MINIMUM
    assert chains.fix == "install: go"


# --- thresholds, verdict, deadline ------------------------------------------------------------


def test_judging_numbers_words_triples_and_no_minimum():
    assert judge(THRESHOLDS["network.latency"], 40) is Status.OPTIMAL
    assert judge(THRESHOLDS["network.latency"], 200) is Status.MINIMUM
    assert judge(THRESHOLDS["network.latency"], 201) is Status.BELOW_MINIMUM
    assert judge(THRESHOLDS["compute.ram"], 16.6) is Status.MINIMUM
    assert judge(THRESHOLDS["compute.storage_type"], "hdd") is Status.BELOW_MINIMUM
    assert judge(THRESHOLDS["compute.storage_type"], "nvme") is Status.OPTIMAL
    assert judge(THRESHOLDS["tuning.tcp_rmem"], (4096, 131072, GUIDE)) is Status.OPTIMAL
    assert judge(THRESHOLDS["tuning.tcp_rmem"], (4096, 131072, 6291456)) is Status.MINIMUM
    assert judge(THRESHOLDS["tuning.nofile"], 1024) is Status.MINIMUM  # the script has no minimum


def test_thresholds_are_overridable_in_the_config_and_bad_overrides_are_named(tmp_path):
    table = with_overrides(
        from_mapping(
            {
                "doctor": {
                    "thresholds": {
                        "compute.cpu_cores": {"minimum": 1},
                        "compute.storage_type": {"minimum": ["hdd", "ssd", "nvme"]},
                        "tuning.tcp_wmem": {"optimal": [4096, 16384, 4194304]},
                    }
                }
            }
        ).doctor.thresholds
    )
    assert table["compute.cpu_cores"].minimum == 1 and table["compute.cpu_cores"].optimal == 8
    assert judge(table["compute.storage_type"], "hdd") is Status.MINIMUM
    assert judge(table["tuning.tcp_wmem"], (4096, 16384, 4194304)) is Status.OPTIMAL
    with pytest.raises(UserError, match=r"doctor.thresholds.network.nope: no such threshold"):
        setup_for(tmp_path, thresholds={"network.nope": {"minimum": 1}})
    with pytest.raises(UserError, match=r"doctor.thresholds.compute.storage_type.minimum: 3"):
        setup_for(tmp_path, thresholds={"compute.storage_type": {"minimum": 3}})


def _checks(*rows: tuple[str, str, object]) -> list:
    judge_ = Judge(dict(THRESHOLDS))
    return [judge_.measured(check_id, check_id, key, value, fix="fix it") for check_id, key, value in rows]


def test_verdict_takes_the_lowest_band_and_names_what_set_it():
    good = _checks(("network.ttfb.p", "network.latency", 30.0), ("compute.ram", "compute.ram", 64.0))
    assert (verdict(good).band.velocity, verdict(good).bottleneck) == ("10x+", None)
    slow_api = [*good, *_checks(("api.tier.p", "api.tier", "professional"))]
    assert verdict(slow_api).band.velocity == "7-10x" and verdict(slow_api).bottleneck.id == "api.tier.p"
    poor = [*slow_api, *_checks(("compute.cpu_cores", "compute.cpu_cores", 2))]
    assert verdict(poor).band.name == "poor" and verdict(poor).bottleneck.id == "compute.cpu_cores"
    unreachable = Judge(dict(THRESHOLDS)).missing(
        "network.ttfb.q", "q", "network.latency", "DNS: cannot resolve", Status.UNREACHABLE
    )
    assert verdict([*poor, unreachable]).bottleneck.id == "network.ttfb.q"  # network first
    unknown = Judge(dict(THRESHOLDS)).missing("tuning.cpu_governor", "g", "tuning.cpu_governor", "no cpufreq")
    assert verdict([*good, unknown]).not_measured == [unknown] and verdict([unknown]).band is None


def test_an_unknown_check_is_named_never_the_bottleneck_and_the_band_is_a_ceiling():
    judge_ = Judge(dict(THRESHOLDS))
    unknown = judge_.missing("network.bandwidth_down", "bandwidth down", "network.bandwidth", "no server")
    good = _checks(("network.ttfb.p", "network.latency", 30.0), ("compute.ram", "compute.ram", 20.0))
    found = verdict([unknown, *good])
    assert (found.band.name, found.bottleneck.id, found.judged) == ("good", "compute.ram", 2)
    assert headline(found) == (
        "velocity band (guide's estimate): good, 5-7x at best; bottleneck: compute.ram (compute.ram: "
        "20 GB, minimum); not measured: network.bandwidth_down"
    )
    assert headline(verdict(good)).endswith("bottleneck: compute.ram (compute.ram: 20 GB, minimum)")
    assert headline(verdict([unknown]), ("network",)) == (
        "velocity band, network only: unknown (not measured: network.bandwidth_down)"
    )


def test_a_hanging_or_failing_job_costs_only_its_own_checks():
    judge_ = Judge(dict(THRESHOLDS))

    async def hangs(deliver):
        await asyncio.sleep(60)

    async def fails(deliver):
        raise RuntimeError("boom")

    async def works(deliver):
        deliver(judge_.measured("compute.ram", "RAM", "compute.ram", 64.0, fix=None))

    jobs = [
        Job([Promise("network.ttfb.p", "ttfb", "network.latency")], hangs),
        Job([Promise("compute.cpu_cores", "cores", "compute.cpu_cores")], fails),
        Job([Promise("compute.ram", "RAM", "compute.ram")], works),
    ]
    started = time.monotonic()
    checks = asyncio.run(run_jobs(jobs, judge_, 0.3))
    assert time.monotonic() - started < 1
    assert [c.id for c in checks] == ["network.ttfb.p", "compute.cpu_cores", "compute.ram"]
    assert checks[0].status is Status.UNKNOWN and "deadline (0.3 s)" in checks[0].detail
    assert checks[1].detail == "the check failed: RuntimeError: boom"
    assert checks[2].status is Status.OPTIMAL


def test_a_hanging_tool_is_cut_off_at_the_deadline_with_its_children(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    child = tmp_path / "child.pid"
    sleep = shutil.which("sleep")
    (bin_dir / "git").write_text(f"#!/bin/sh\n{sleep} 30 &\necho $! > {child}\nwait\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    started = time.monotonic()
    found = by_id(diagnose(setup_for(tmp_path, deadline_s=1), ("tools",)))
    assert time.monotonic() - started < 2
    assert found["tools.git"].status is Status.UNKNOWN and "deadline" in found["tools.git"].detail
    stat = Path(f"/proc/{int(child.read_text())}/stat")
    for _ in range(50):  # killed with the script's process group: gone, or a zombie not yet reaped
        if not stat.exists() or stat.read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.02)
    else:
        pytest.fail("the hanging tool's child is still running")
