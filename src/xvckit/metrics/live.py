"""The repository KPIs of `xvckit metrics` kept fresh while the gateway runs, for the dashboard's
delivery panel and /metrics: every `metrics.refresh_s`, `xvckit metrics --json --no-ledger` over
the configured repository, JUnit, coverage and incident files, in a process of its own (a cold
history read keeps a core busy for seconds: not in the gateway's process, whose event loop
would share the interpreter lock with it). The ledger's KPIs are not asked for there: the
dashboard reads them from the rollups, per team."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from xvckit.background import while_open
from xvckit.config.schema import MetricsSettings

log = logging.getLogger("xvckit.metrics")

MAX_OUTPUT = 16 * 1024 * 1024  # a report is a few tens of KiB


class RepositoryKpis:
    """The latest report (`document`, `xvckit.metrics/1`), or why there is none (`problem`)."""

    def __init__(self, settings: MetricsSettings, timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.document: dict[str, Any] | None = None
        self.problem: str | None = None if settings.repo else "no repository configured (metrics.repo)"
        self.measured_at: float | None = None

    def command(self) -> list[str]:
        settings = self.settings
        argv = [sys.executable, "-m", "xvckit", "metrics", "--json", "--no-ledger"]
        argv += ["--repo", str(settings.repo), "--since", f"{settings.period_days:g}d"]
        for pattern in settings.junit:
            argv += ["--junit", pattern]
        for pattern in settings.coverage:
            argv += ["--coverage", pattern]
        if settings.incidents is not None:
            argv += ["--incidents", str(settings.incidents)]
        return argv

    async def refresh(self) -> None:
        """Measure now; on failure keep the previous report and say why."""
        process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=MAX_OUTPUT,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            self.problem = f"xvckit metrics took more than {self.timeout_s:g} s"
            return
        if process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            self.problem = f"xvckit metrics failed: {lines[-1] if lines else process.returncode}"[:300]
            log.warning("repository KPIs: %s", self.problem)
            return
        self.document, self.problem, self.measured_at = orjson.loads(out), None, time.time()

    def running(self) -> AbstractAsyncContextManager[None]:
        """Measure at start, then every `refresh_s`, while the gateway runs."""
        return while_open(self._loop() if self.settings.repo else None)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except (OSError, ValueError) as exc:
                self.problem = f"xvckit metrics: {exc}"[:300]
                log.warning("repository KPIs: %s", self.problem)
            await asyncio.sleep(self.settings.refresh_s)

    def metrics(self) -> list[Metric]:
        """Each numeric KPI of the latest report, this period's and the previous one's."""
        if self.document is None:
            return []
        family = GaugeMetricFamily(
            "xvckit_kpi", "The repository's KPIs (xvckit metrics; docs/metrics.md)", labels=["id", "period"]
        )
        for kpi in self.document["kpis"]:
            for period, value in (("current", kpi["value"]), ("previous", kpi["previous"])):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    family.add_metric([kpi["id"], period], value)
        stamp = GaugeMetricFamily(
            "xvckit_kpi_measured_timestamp_seconds", "When the repository KPIs were measured"
        )
        stamp.add_metric([], self.measured_at or 0.0)
        return [family, stamp]
