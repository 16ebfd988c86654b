"""`xvckit doctor` with the store, on SQLite and PostgreSQL: provider uptime and API tier from
the ledger, `--save` and `doctor history`; and the command as a user types it (one JSON
object, Markdown, one-line errors with exit status 2, `--fix`, `--apply` as non-root and,
against temporary directories, as root)."""

from __future__ import annotations

import functools
import os
import sys
import time

import orjson
import pytest
import yaml

import xvckit.doctor
from test_doctor_system import GUIDE, fake_system
from xvckit.config import from_mapping
from xvckit.doctor import Setup, diagnose, fix
from xvckit.doctor.thresholds import Status
from xvckit.store import Store
from xvckit.store.doctor_runs import list_runs, save_run
from xvckit.store.ledger import UsageRecord, write_records
from xvckit.store.provider_stats import provider_stats

NOW = time.time()
MINUTE = NOW // 60 * 60 - 3600  # an hour ago, on a minute's start: the records share its minute


def record(n: int, deployment: str | None, status: int = 200, **fields) -> UsageRecord:
    fields.setdefault("ts", MINUTE + n)
    return UsageRecord(
        request_id=f"req-{n}",
        endpoint="chat",
        deployment=deployment,
        status=status,
        upstream_ms=100.0 * n,
        **fields,
    )


def ledger(url: str) -> None:
    """openai: 10 requests in one minute (7 answered at 100..700 ms, one unreachable, one 429,
    one refused for want of a key, not the provider's fault), a cache hit and a record older
    than the window; openai-eu (whose name starts like openai's): one answered request."""
    store = Store.open(url)
    write_records(
        store,
        [
            *(record(n, "openai/gpt-4o" if n % 2 else "openai/gpt-4o-mini") for n in range(1, 8)),
            record(8, "openai/gpt-4o", 502, error_type="upstream_unreachable"),
            record(9, "openai/gpt-4o", 429, error_type="upstream_429"),
            record(10, "openai/gpt-4o", 503, error_type="no_upstream_key"),
            record(11, "openai/gpt-4o", cache_hit=True),
            record(12, "openai/gpt-4o", ts=NOW - 30 * 86400),
            record(13, "openai-eu/gpt-4o"),
        ],
    )
    store.close()


def test_provider_stats_from_the_ledger(store_url):
    ledger(store_url)
    store = Store.open(store_url)
    try:
        stats = provider_stats(store, ["openai", "openai-eu", "idle"], NOW - 7 * 86400)
    finally:
        store.close()
    assert set(stats) == {"openai", "openai-eu"}
    openai = stats["openai"]
    assert (openai.requests, openai.failed, openai.rate_limited, openai.peak_rpm) == (10, 1, 1, 7)
    assert (openai.median_upstream_ms, openai.sampled) == (400.0, 7)
    assert stats["openai-eu"].requests == 1


def test_uptime_and_api_tier_come_from_the_ledger(store_url, tmp_path):
    ledger(store_url)
    config = from_mapping(
        {
            "storage": {"url": store_url},
            "providers": [
                {"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "rpm": 500},
                {"name": "idle", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
            ],
            "doctor": {"bandwidth_url": None, "bandwidth_upload_url": None, "probe_timeout_s": 0.5},
        }
    )
    found = {c.id: c for c in diagnose(Setup(config, tmp_path), ("network", "api")).checks}
    uptime = found["network.uptime.openai"]
    assert (
        uptime.value == 90.0 and uptime.status is Status.BELOW_MINIMUM and "9 of 10 requests" in uptime.detail
    )
    assert found["network.uptime.idle"].status is Status.UNKNOWN
    assert "no requests to idle" in found["network.uptime.idle"].detail
    response = found["api.response_time.openai"]
    assert response.value == 0.4 and response.status is Status.OPTIMAL and "ledger" in response.detail
    tier = found["api.tier.openai"]
    assert tier.value == "professional" and "rpm 500 set in xvckit.yaml" in tier.detail
    assert "busiest minute 7 requests answered; 1 of 10 requests answered 429" in tier.detail


def test_saved_runs_come_back_oldest_first(store_url):
    store = Store.open(store_url)
    try:
        first = save_run(
            store, {"started_at": 1.0, "host": "a", "velocity_band": {"band": "poor"}, "bottleneck": None}
        )
        second = save_run(
            store, {"started_at": 2.0, "host": "a", "velocity_band": None, "bottleneck": {"id": "x"}}
        )
        runs = list_runs(store, 10)
        assert [run["run"] for run in runs] == [first, second]
        assert [run["run"] for run in list_runs(store, 1)] == [second]
    finally:
        store.close()


# --- the command -------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`xvckit ARGV` in this process, as `main` runs it: exit status, stdout, stderr."""
    from xvckit.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["xvckit", *argv])
        with pytest.raises(SystemExit) as exited:
            main()
    out, err = capsys.readouterr()
    return exited.value.code or 0, out, err


def write_config(path, storage_url: str):
    settings = {"bandwidth_url": None, "bandwidth_upload_url": None}
    path.write_text(yaml.safe_dump({"storage": {"url": storage_url}, "doctor": settings}))
    return path


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "xvckit.yaml", f"sqlite:///{tmp_path}/xvckit.db")


def doctor(capsys, config, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "doctor", *args, "--config", str(config))


def test_json_is_one_object_with_a_section_per_layer_and_every_field(capsys, config):
    code, out, err = doctor(capsys, config, "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert list(report["sections"]) == ["network", "compute", "tools", "tuning", "api"]
    assert report["velocity_band"]["basis"].startswith("the guide's estimate, not a measurement")
    assert report["bottleneck"] is None or {"id", "status", "fix"} <= set(report["bottleneck"])
    ids = set()
    for checks in report["sections"].values():
        for check in checks:
            assert {"id", "value", "unit", "minimum", "optimal", "status", "fix"} <= set(check)
            assert check["status"] in {s.value for s in Status}
            ids.add(check["id"])
    assert {"compute.cpu_cores", "compute.ram", "tuning.nofile", "network.packet_loss", "tools.git"} <= ids


def test_markdown_only_and_the_user_errors(capsys, config):
    code, out, _ = doctor(capsys, config, "--markdown", "--only", "compute,tuning")
    assert (
        code == 0 and out.startswith("# xvckit doctor:") and "## compute" in out and "## network" not in out
    )
    assert "| CPU cores<br>`compute.cpu_cores`" in out and "the guide's estimate" in out
    assert "**velocity band (guide's estimate, compute,tuning only): " in out
    for args, message in (
        (("--only", "compute,gpu"), "xvckit: --only: unknown section(s) gpu; choose from"),
        (("--only", "nosuchcheck"), "xvckit: --only: unknown section(s) nosuchcheck; choose from network,"),
        (("history", "--check", "nosuchcheck"), "xvckit: --check nosuchcheck: no such check; choose from "),
        (("--json", "--markdown"), "xvckit: --json and --markdown: choose one"),
        (("--apply",), "xvckit: --apply goes with --fix"),
        (("--fix", "--json"), "xvckit: --fix prints commands for a shell"),
    ):
        code, out, err = doctor(capsys, config, *args)
        assert code == 2 and err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_history_keeps_only_runs_apart_and_trends_a_check(capsys, tmp_path, store_url):
    """A run made with --only has a band of some sections, not the machine's: `history` shows
    the full runs, `--partial` the others; a check's trend takes every run that measured it."""
    config = write_config(tmp_path / "xvckit.yaml", store_url)
    for args in (("--only", "compute,tuning"), (), ("--only", "tools"), ()):
        code, out, err = doctor(capsys, config, *args, "--save")
        assert code == 0 and "saved as run" in err
    code, out, err = doctor(capsys, config, "history", "--json")
    full = orjson.loads(out)
    assert code == 0 and len(full) == 2 and "sections" not in full[0]
    assert {"run", "started_at", "velocity", "bottleneck", "below_minimum", "optimal"} <= set(full[0])
    assert err == "2 run(s) made with --only not shown (a band of some sections): see --partial\n"
    code, out, err = doctor(capsys, config, "history", "--partial", "--json")
    partial = orjson.loads(out)
    assert [row["sections"] for row in partial] == ["compute,tuning", "tools"] and not err
    code, out, _ = doctor(capsys, config, "history", "--check", "compute.cpu_cores", "--json")
    trend = orjson.loads(out)
    assert [(row["value"], row["unit"]) for row in trend] == [(os.cpu_count(), "cores")] * 3
    assert [row["run"] for row in trend] == [partial[0]["run"], *(row["run"] for row in full)]
    code, out, _ = doctor(capsys, config, "history", "--limit", "1")
    assert code == 0 and "velocity" in out and "bottleneck" in out and str(full[1]["run"]) in out
    code, _out, err = doctor(capsys, config, "history", "--check", "tools.gitt")
    assert code == 2 and err.count("\n") == 1 and "compute.cpu_cores, " in err and "tools.git, " in err


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """The command's Setup reads and writes a fake system under tmp_path, never /proc or /etc."""
    paths = fake_system(tmp_path / "root")
    monkeypatch.setattr(xvckit.doctor, "Setup", functools.partial(Setup, paths=paths))
    return paths


def test_fix_prints_commands_and_apply_as_non_root_says_what_it_needs(capsys, config, fake_root, monkeypatch):
    monkeypatch.setattr(fix, "is_root", lambda: False)
    code, out, _ = doctor(capsys, config, "--only", "compute", "--fix")
    assert code == 0 and f"sudo sysctl -w net.core.wmem_max={GUIDE}" in out
    code, out, err = doctor(capsys, config, "--only", "tuning", "--fix", "--apply", "--yes")
    assert code == 2 and err.startswith("xvckit: --apply needs root: it writes")
    assert str(fake_root.sysctl_dir / fix.CONF) in err
    assert not fake_root.sysctl_dir.exists()


def test_apply_as_root_asks_first_then_persists_and_measures_again(capsys, config, fake_root, monkeypatch):
    monkeypatch.setattr(fix, "is_root", lambda: True)
    monkeypatch.setattr("sys.stdin", _Answers("n\n"))
    code, out, _ = doctor(capsys, config, "--only", "tuning", "--fix", "--apply")
    assert code == 1 and "Apply these changes now?" in out and not fake_root.sysctl_dir.exists()
    monkeypatch.setattr("sys.stdin", _Answers("y\n"))
    code, out, _ = doctor(capsys, config, "--only", "tuning", "--fix", "--apply")
    assert code == 0 and f"wrote {fake_root.sysctl_dir / fix.CONF}" in out and "Measured again:" in out
    assert (fake_root.proc / "sys" / "net" / "core" / "wmem_max").read_text() == f"{GUIDE}\n"


class _Answers:
    """What a user types at a prompt."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)

    def readline(self, *_args) -> str:
        return self.lines.pop(0) if self.lines else ""

    def isatty(self) -> bool:
        return False
