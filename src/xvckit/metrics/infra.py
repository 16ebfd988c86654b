"""Continuous infrastructure monitoring, as the guide's stack asks (network, compute, API): every
`monitor.interval_s` the gateway samples this host's CPU, memory, disk and network I/O
(psutil), probes each configured provider (a fresh connection and a GET: DNS, TCP, TLS and
first byte, `doctor.http_probe`; any HTTP answer is reachable) and reads its pacing queues; the
values go to the store (store/infra.py: minute and hour buckets, each kept as configured) and
the latest ones to /metrics.

The gateway does not import this module: `xvckit.stack` hands a `Monitor` to it as a
background service with Prometheus families (gateway/extensions.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from xvckit.background import while_open
from xvckit.config.schema import MonitorSettings, Provider
from xvckit.doctor.http_probe import Endpoint, ProbeError, probe, resolve
from xvckit.store import Store, infra

log = logging.getLogger("xvckit.monitor")

DAY = 86400
PRUNE_EVERY_S = 3600.0

# series: (Prometheus name, help); every value is a gauge of the latest sample
HOST_SERIES = {
    "cpu_percent": ("xvckit_host_cpu_percent", "CPU busy, all cores, since the previous sample (%)"),
    "load1": ("xvckit_host_load1", "Load average over one minute"),
    "memory_percent": ("xvckit_host_memory_percent", "Memory in use (%)"),
    "memory_used_bytes": ("xvckit_host_memory_used_bytes", "Memory in use (bytes)"),
    "disk_read_bytes_s": ("xvckit_host_disk_read_bytes_per_second", "Disk reads since the previous sample"),
    "disk_write_bytes_s": (
        "xvckit_host_disk_write_bytes_per_second",
        "Disk writes since the previous sample",
    ),
    "net_recv_bytes_s": ("xvckit_host_network_receive_bytes_per_second", "Network bytes received"),
    "net_sent_bytes_s": ("xvckit_host_network_transmit_bytes_per_second", "Network bytes sent"),
    "gateway_rss_bytes": ("xvckit_gateway_resident_memory_bytes", "The gateway process's resident memory"),
}
PROVIDER_SERIES = {
    "provider_up": ("xvckit_provider_up", "1 when the provider's last probe got an HTTP answer, else 0"),
    "probe_ms": ("xvckit_provider_probe_seconds", "The provider's last probe: DNS, connect, TLS, first byte"),
}

Pacing = Callable[[], list[dict]]  # the gateway's pacer snapshot: lane, queued, waits, waited_s


class Monitor:
    """Samples on an interval while the gateway runs (`running`); `sample` takes one now."""

    def __init__(
        self,
        store: Store,
        providers: list[Provider],
        settings: MonitorSettings,
        pacing: Pacing | None = None,
        host: str | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.settings = settings
        self.pacing = pacing  # set by the stack once the gateway exists
        self.host = host or socket.gethostname()
        self.latest: dict[str, dict[str, float]] = {}  # series -> label -> value
        self.pacing_totals: dict[str, tuple[int, float]] = {}  # lane -> waits, waited_s (cumulative)
        self.sampled_at: float | None = None
        self._io: tuple[float, psutil._common.sdiskio | None, psutil._common.snetio | None] | None = None
        self._process = psutil.Process(os.getpid())
        self._pruned_at = 0.0
        self._prime()

    def _prime(self) -> None:
        """The counters the first sample measures from (CPU busy time, disk and network bytes)."""
        psutil.cpu_percent(interval=None)
        self._io = (time.monotonic(), _disk(), _net())

    def running(self) -> AbstractAsyncContextManager[None]:
        """Sample every `interval_s` until the gateway stops (nothing when it is 0)."""
        return while_open(self._loop() if self.settings.interval_s > 0 else None)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await self.sample()
            except Exception:  # a store that is away: the next sample tries again
                log.exception("infrastructure sample failed")

    async def sample(self, now: float | None = None) -> list[infra.Sample]:
        """One sampling: compute, providers, pacing; stored and kept for /metrics."""
        now = time.time() if now is None else now
        values = await asyncio.to_thread(self._compute)
        values += await self._probes()
        values += self._pacing()
        latest: dict[str, dict[str, float]] = {}
        for series, label, value in values:
            latest.setdefault(series, {})[label] = value
        self.latest, self.sampled_at = latest, now
        await asyncio.to_thread(self._store, now, values)
        return values

    def _store(self, now: float, values: list[infra.Sample]) -> None:
        infra.add(self.store, now, self.host, values)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            settings = self.settings
            keep = {
                infra.MINUTE: settings.minute_retention_days * DAY,
                infra.HOUR: settings.hour_retention_days * DAY,
            }
            infra.prune(self.store, now, keep)
            self._pruned_at = now

    def _compute(self) -> list[infra.Sample]:
        """CPU, load, memory, disk and network rates since the previous sample (blocking calls)."""
        memory = psutil.virtual_memory()
        values = [
            ("cpu_percent", "", psutil.cpu_percent(interval=None)),
            ("load1", "", os.getloadavg()[0]),
            ("memory_percent", "", memory.percent),
            ("memory_used_bytes", "", float(memory.total - memory.available)),
            ("gateway_rss_bytes", "", float(self._process.memory_info().rss)),
        ]
        then, disk_before, net_before = self._io  # type: ignore[misc]
        moment, disk, net = time.monotonic(), _disk(), _net()
        seconds = max(moment - then, 1e-3)
        if disk is not None and disk_before is not None:
            values.append(
                ("disk_read_bytes_s", "", max(0, disk.read_bytes - disk_before.read_bytes) / seconds)
            )
            values.append(
                ("disk_write_bytes_s", "", max(0, disk.write_bytes - disk_before.write_bytes) / seconds)
            )
        if net is not None and net_before is not None:
            values.append(("net_recv_bytes_s", "", max(0, net.bytes_recv - net_before.bytes_recv) / seconds))
            values.append(("net_sent_bytes_s", "", max(0, net.bytes_sent - net_before.bytes_sent) / seconds))
        self._io = (moment, disk, net)
        return values

    async def _probes(self) -> list[infra.Sample]:
        found = await asyncio.gather(*(self._probe(p) for p in self.providers))
        return [value for values in found for value in values]

    async def _probe(self, provider: Provider) -> list[infra.Sample]:
        """Reachable and how fast: a fresh connection and a GET of the base URL (no key sent)."""
        timeout = self.settings.probe_timeout_s
        endpoint = Endpoint.parse(provider.base_url)
        started = time.perf_counter()
        try:
            addresses = await resolve(endpoint.host, endpoint.port, timeout)
            timing = await probe(endpoint, addresses[0], timeout, None)
        except ProbeError as exc:
            log.info("provider %s: probe failed: %s", provider.name, exc)
            return [("provider_up", provider.name, 0.0)]
        if timing.error is not None:
            log.info("provider %s: probe failed: %s", provider.name, timing.error)
            return [("provider_up", provider.name, 0.0)]
        elapsed_ms = (time.perf_counter() - started) * 1000
        return [("provider_up", provider.name, 1.0), ("probe_ms", provider.name, elapsed_ms)]

    def _pacing(self) -> list[infra.Sample]:
        """Each lane's queue now, and the waits since the previous sample (lanes with any)."""
        if self.pacing is None:
            return []
        values = []
        for lane in self.pacing():
            name, waits, waited = lane["lane"], lane["waits"], lane["waited_s"]
            before_waits, before_waited = self.pacing_totals.get(name, (0, 0.0))
            self.pacing_totals[name] = (waits, waited)
            if lane["queued"] or waits > before_waits:
                values.append(("pacing_queued", name, float(lane["queued"])))
                values.append(("pacing_waits", name, float(waits - before_waits)))
                values.append(("pacing_wait_s", name, waited - before_waited))
        return values

    def metrics(self) -> list[Metric]:
        """The latest sample as Prometheus families (made on the event loop: a few dozen values)."""
        families: list[Metric] = []
        for series, (name, text) in {**HOST_SERIES, **PROVIDER_SERIES}.items():
            values = self.latest.get(series)
            if not values:
                continue
            scale = 0.001 if series == "probe_ms" else 1.0
            family = GaugeMetricFamily(name, text, labels=[] if series in HOST_SERIES else ["provider"])
            for label, value in values.items():
                family.add_metric([] if series in HOST_SERIES else [label], value * scale)
            families.append(family)
        if self.sampled_at is not None:
            stamp = GaugeMetricFamily(
                "xvckit_monitor_sampled_timestamp_seconds", "When the monitor last sampled"
            )
            stamp.add_metric([], self.sampled_at)
            families.append(stamp)
        families.extend(self._pacing_families())
        return families

    def _pacing_families(self) -> Iterator[Metric]:
        if not self.pacing_totals:
            return
        waits = CounterMetricFamily(
            "xvckit_pacing_waits", "Calls that waited in a pacing queue", labels=["lane"]
        )
        waited = CounterMetricFamily(
            "xvckit_pacing_wait_seconds", "Time calls waited in pacing queues", labels=["lane"]
        )
        for lane, (count, seconds) in self.pacing_totals.items():
            waits.add_metric([lane], count)
            waited.add_metric([lane], seconds)
        yield waits
        yield waited


def _disk():
    try:
        return psutil.disk_io_counters()
    except (OSError, RuntimeError):  # no disks the kernel reports (some containers)
        return None


def _net():
    try:
        return psutil.net_io_counters()
    except (OSError, RuntimeError):
        return None
