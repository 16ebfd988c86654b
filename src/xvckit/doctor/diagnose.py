"""One doctor run: every section's checks concurrently under the deadline, then bandwidth
(which would skew the latency probes if it ran beside them), then the report."""

from __future__ import annotations

import asyncio
import socket
import time

from xvckit.doctor import api_tier, bandwidth, compute, devenv, network, tuning
from xvckit.doctor.report import SECTIONS, Report
from xvckit.doctor.runner import run_jobs
from xvckit.doctor.setup import Setup
from xvckit.errors import UserError

JOBS = {
    "network": network.jobs,
    "compute": compute.jobs,
    "tools": devenv.jobs,
    "tuning": tuning.jobs,
    "api": api_tier.jobs,
}


def parse_sections(text: str | None) -> tuple[str, ...]:
    """`--only network,compute` as sections in report order; all of them for None."""
    if text is None:
        return SECTIONS
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = asked - set(SECTIONS)
    if unknown or not asked:
        named = ", ".join(sorted(unknown)) or "(none)"
        raise UserError(f"--only: unknown section(s) {named}; choose from {','.join(SECTIONS)}")
    return tuple(name for name in SECTIONS if name in asked)


def check_ids(setup: Setup) -> list[str]:
    """The id of every check a full run makes with this configuration."""
    jobs = [job for name in SECTIONS for job in JOBS[name](setup)] + bandwidth.jobs(setup)
    return [promise.id for job in jobs for promise in job.promises]


def diagnose(setup: Setup, sections: tuple[str, ...] = SECTIONS) -> Report:
    return asyncio.run(_diagnose(setup, sections))


async def _diagnose(setup: Setup, sections: tuple[str, ...]) -> Report:
    started_at, started = time.time(), time.perf_counter()
    jobs = [job for name in sections for job in JOBS[name](setup)]
    checks = await run_jobs(jobs, setup.judge, setup.settings.deadline_s)
    if "network" in sections:
        for job in bandwidth.jobs(setup):
            checks += await run_jobs([job], setup.judge, bandwidth.cap_s(setup))
    return Report(started_at, time.perf_counter() - started, socket.gethostname(), sections, checks)
