"""`xvckit doctor`'s network and API checks against servers whose delay and rate are known:
latency through a relay that adds a known one-way delay, bandwidth from a rate-capped server,
and the faults (DNS failure, refused, hanging provider, deadline), each reported on its own."""

from __future__ import annotations

import socket
import time

import pytest

from doctor_servers import ServerProcess, self_signed
from xvckit.config import from_mapping
from xvckit.doctor import Setup, diagnose
from xvckit.doctor import network as network_section
from xvckit.doctor.packet_loss import NoIcmp
from xvckit.doctor.thresholds import THRESHOLDS, Status, judge

ROUND_TRIP_MS = {"plain": 60.0, "secure": 40.0}
BANDWIDTH_RATE = 2_500_000  # bytes/s: 20 Mbit/s


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Every server these tests use, in one process of their own: name -> port, and `tls`,
    a client context that trusts the TLS server's certificate."""
    cert, key, client_tls = self_signed(tmp_path_factory.mktemp("tls"))
    names = [
        ("plain", {"rate": 1e9}),
        ("secure", {"rate": 1e9, "cert": str(cert), "key": str(key)}),
        ("plain_relay_0", {"relay": 0, "one_way_s": 0}),
        ("secure_relay_0", {"relay": 1, "one_way_s": 0}),
        ("plain_relay", {"relay": 0, "one_way_s": ROUND_TRIP_MS["plain"] / 2000}),
        ("secure_relay", {"relay": 1, "one_way_s": ROUND_TRIP_MS["secure"] / 2000}),
        ("capped", {"rate": BANDWIDTH_RATE}),
        ("silent", {"silent": True}),
    ]
    with ServerProcess([spec for _, spec in names]) as process:
        ports = dict(zip((name for name, _ in names), process.ports, strict=True))
        yield {**ports, "tls": client_tls}


def setup_for(tmp_path, providers=(), ssl_context=None, models=(), **doctor) -> Setup:
    settings = {"bandwidth_url": None, "bandwidth_upload_url": None, "probe_timeout_s": 1.0, **doctor}
    config = from_mapping(
        {
            "storage": {"url": f"sqlite:///{tmp_path}/xvckit.db"},
            "providers": list(providers),
            "models": list(models),
            "doctor": settings,
        }
    )
    return Setup(config, tmp_path, ssl_context=ssl_context)


def by_id(report) -> dict:
    return {check.id: check for check in report.checks}


def within(measured: float, expected: float) -> bool:
    """The accuracy the issue asks of latency: 10% of the injected round trip, plus 2 ms."""
    return abs(measured - expected) <= 0.1 * expected + 2


def test_latency_through_a_delaying_relay_matches_the_injected_round_trip(servers, tmp_path, figures):
    """The same servers are measured through relays without delay (what the relay, the server
    and the TLS handshake's own computing cost here), then through relays adding a known
    delay: the difference must be the injected round trip, within 10% + 2 ms. Compared on the
    minimum over the probes: a busy machine's scheduling only ever adds time, so the minimum
    is the estimate it disturbs least (the median, the check's value, is recorded beside it)."""

    def measure(suffix: str) -> dict:
        providers = [
            {
                "name": "plain",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{servers['plain' + suffix]}/v1",
            },
            {
                "name": "secure",
                "kind": "anthropic",
                "base_url": f"https://127.0.0.1:{servers['secure' + suffix]}",
            },
        ]
        return by_id(diagnose(setup_for(tmp_path, providers, servers["tls"], probes=15), ("network",)))

    phases = {"network.ttfb.plain": "plain", "network.tls.secure": "secure", "network.ttfb.secure": "secure"}

    def one_round() -> tuple[dict, dict[str, float]]:
        """The delayed paths, and what the delay added to each phase's minimum. The undelayed
        paths are measured before and after, and the lower taken: a burst of load from
        elsewhere can sit on the few milliseconds one undelayed run takes."""
        before, found, after = measure("_relay_0"), measure("_relay"), measure("_relay_0")
        base = {
            check_id: min(before[check_id].samples["min"], after[check_id].samples["min"])
            for check_id in phases
        }
        return found, {check_id: found[check_id].samples["min"] - base[check_id] for check_id in phases}

    def accurate(added: dict[str, float]) -> bool:
        return all(within(added[check_id], ROUND_TRIP_MS[name]) for check_id, name in phases.items())

    rounds = 0
    while True:  # a shared machine may be busy for a whole round: up to three
        rounds += 1
        found, added = one_round()
        if accurate(added) or rounds == 3:
            break
    figures.record(
        "doctor latency: injected round trip -> added to the minimum over 15 probes",
        **{
            check_id: f"{ROUND_TRIP_MS[name]:g} ms -> {added[check_id]:.1f} ms"
            for check_id, name in phases.items()
        },
        connect=f"loopback, median {found['network.connect.plain'].value} ms",
        rounds=rounds,
    )
    assert accurate(added), added
    # The relay cannot delay the TCP handshake (the kernel completes it before accept):
    # connect is loopback's, near zero.
    assert found["network.connect.plain"].value < 2 and found["network.connect.secure"].value < 2
    assert "network.tls.plain" not in found  # no TLS on http://
    for check in found.values():
        if check.id.startswith(("network.connect", "network.tls", "network.ttfb")):
            assert check.status is judge(THRESHOLDS["network.latency"], check.value)
            assert check.samples["count"] == 15 and check.samples["min"] <= check.value
            assert (check.unit, check.minimum, check.optimal) == ("ms", 200, 50)
    loss = found["network.packet_loss"]
    assert loss.value == 0 and loss.status is Status.OPTIMAL
    assert loss.detail.startswith(("ICMP echo", "no ICMP"))  # the method is named either way


def test_bandwidth_down_and_up_match_the_server_cap(servers, tmp_path, figures):
    port = servers["capped"]
    setup = setup_for(
        tmp_path,
        bandwidth_url=f"http://127.0.0.1:{port}/download?bytes=3000000",
        bandwidth_upload_url=f"http://127.0.0.1:{port}/upload",
        bandwidth_max_mb=2.5,
        bandwidth_max_s=5,
    )
    found = by_id(diagnose(setup, ("network",)))
    down, up = found["network.bandwidth_down"], found["network.bandwidth_up"]
    figures.record(
        "doctor bandwidth against a 20 Mbit/s cap", down=f"{down.value} Mbit/s", up=f"{up.value} Mbit/s"
    )
    assert abs(down.value - 20) <= 0.15 * 20, down
    assert up.value is not None and abs(up.value - 20) <= 0.15 * 20, up
    assert down.status is Status.MINIMUM and down.fix and "MB in" in down.detail


def test_faults_each_report_their_own_reason_and_the_rest_still_runs(servers, tmp_path):
    silent = servers["silent"]
    closed = _unused_port()
    providers = [
        {"name": "nodns", "kind": "openai", "base_url": "http://no-such-host.invalid/v1"},
        {"name": "refused", "kind": "openai", "base_url": f"http://127.0.0.1:{closed}/v1"},
        {"name": "hangs", "kind": "openai", "base_url": f"http://127.0.0.1:{silent}/v1"},
    ]
    started = time.monotonic()
    report = diagnose(setup_for(tmp_path, providers, probe_timeout_s=0.5), ("network", "tuning"))
    elapsed = time.monotonic() - started
    found = by_id(report)
    assert found["network.connect.nodns"].status is Status.UNREACHABLE
    assert found["network.connect.nodns"].detail.startswith("DNS:")
    assert found["network.connect.refused"].status is Status.UNREACHABLE
    assert "refused" in found["network.connect.refused"].detail.lower()
    # The hanging provider accepts connections: connect is measured, its silence is unreachable.
    assert found["network.connect.hangs"].status is Status.OPTIMAL
    assert found["network.ttfb.hangs"].status is Status.UNREACHABLE
    assert "no answer within 0.5 s" in found["network.ttfb.hangs"].detail
    assert found["tuning.rmem_max"].value is not None  # the other sections ran
    assert elapsed < 5, elapsed  # two unanswered probes, not five, then it gives up
    assert report.verdict.bottleneck.status is Status.UNREACHABLE


def _unused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_deadline_bounds_the_whole_doctor(servers, tmp_path):
    silent = servers["silent"]
    providers = [{"name": "hangs", "kind": "openai", "base_url": f"http://127.0.0.1:{silent}/v1"}]
    setup = setup_for(tmp_path, providers, probe_timeout_s=30, deadline_s=1.0)
    started = time.monotonic()
    found = by_id(diagnose(setup, ("network", "compute", "tuning")))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    ttfb = found["network.ttfb.hangs"]
    assert ttfb.status is Status.UNKNOWN and "deadline (1 s)" in ttfb.detail
    assert found["compute.cpu_cores"].status is not Status.UNKNOWN
    assert found["tuning.nofile"].value is not None


def test_packet_loss_without_icmp_falls_back_to_tcp_counters_and_says_so(tmp_path, monkeypatch):
    def no_icmp(*_args):
        raise NoIcmp("ICMP not permitted (test)")

    monkeypatch.setattr(network_section, "ping", no_icmp)
    providers = [{"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}]
    loss = by_id(diagnose(setup_for(tmp_path, providers), ("network",)))["network.packet_loss"]
    assert "no ICMP (ICMP not permitted (test))" in loss.detail
    assert "TCP retransmissions since boot" in loss.detail and "probes unanswered" in loss.detail


def test_packet_loss_counter_permission_denied_is_unknown_with_the_reason(tmp_path, monkeypatch):
    import pathlib

    real = pathlib.Path.read_text

    def read_text(path, *args, **kwargs):
        if path.name == "snmp":
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    loss = by_id(diagnose(setup_for(tmp_path), ("network",)))["network.packet_loss"]
    assert loss.status is Status.UNKNOWN and "Permission denied" in loss.detail


def probe_api(sim_factory, tmp_path, tier: str, kind: str, model: str | None = None, **provider) -> dict:
    """The api section with --probe-api against a simulator of the guide's `tier`."""
    sim = sim_factory(tier=tier, latency_ms=0)
    base_url = sim.openai_base_url if kind == "openai" else sim.anthropic_base_url
    providers = [
        {"name": "p", "kind": kind, "base_url": base_url, "api_keys": ["sk-secret-test"], **provider}
    ]
    model = model or ("gpt-4o" if kind == "openai" else "claude-sonnet-4-6")
    models = [{"name": model, "provider": "p"}]
    setup = setup_for(tmp_path, providers, models=models)
    setup.probe_api = True
    found = by_id(diagnose(setup, ("api",)))
    assert "sk-secret-test" not in repr(found)
    return found


@pytest.mark.parametrize(
    ("tier", "kind", "expected"),
    [("professional", "openai", "professional"), ("basic", "anthropic", "basic")],
)
def test_probe_api_reads_the_limits_and_maps_them_to_the_guide_tiers(
    sim_factory, tmp_path, tier, kind, expected
):
    found = probe_api(sim_factory, tmp_path, tier, kind)
    tier_check, response = found["api.tier.p"], found["api.response_time.p"]
    assert tier_check.value == expected, tier_check.detail
    assert response.value < 0.5 and response.status is Status.OPTIMAL
    assert "--probe-api" in response.detail


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_no_tier_is_concluded_from_missing_rate_limit_headers(sim_factory, tmp_path, kind):
    """The simulator's Enterprise tier has no limits and so sends no rate-limit headers, as a
    proxy or a local server would: that is no evidence of the guide's "no rate limits"."""
    found = probe_api(sim_factory, tmp_path, "enterprise", kind)
    tier_check, response = found["api.tier.p"], found["api.response_time.p"]
    assert tier_check.status is Status.UNKNOWN and tier_check.value is None, tier_check
    assert tier_check.detail.startswith("answered 200 without a request limit in its headers")
    assert "rpm in xvckit.yaml" in tier_check.detail
    assert response.status is Status.OPTIMAL  # what was measured still counts
    # A limit the user states in xvckit.yaml places it, as without --probe-api.
    found = probe_api(sim_factory, tmp_path, "enterprise", kind, rpm=500)
    assert found["api.tier.p"].value == "professional" and "rpm 500 set" in found["api.tier.p"].detail


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_model_the_provider_does_not_serve_is_named(sim_factory, tmp_path, kind):
    found = probe_api(sim_factory, tmp_path, "professional", kind, model="no-such-model")
    tier_check = found["api.tier.p"]
    assert tier_check.status is Status.UNKNOWN and "answered 404 for 'no-such-model'" in tier_check.detail


def test_what_could_not_be_measured_is_unknown_never_the_bottleneck(servers, tmp_path):
    """A bandwidth test server that cannot be reached and a provider that refuses --probe-api's
    request: not measured, so `unknown`, left out of the band and named in the headline."""
    closed = _unused_port()
    providers = [{"name": "p", "kind": "openai", "base_url": f"http://127.0.0.1:{closed}/v1"}]
    setup = setup_for(
        tmp_path,
        providers,
        models=[{"name": "m", "provider": "p"}],
        bandwidth_url=f"http://127.0.0.1:{closed}/download",
        deadline_s=5,
    )
    setup.probe_api = True
    report = diagnose(setup, ("tuning", "api"))
    found = by_id(report)
    assert (found["api.tier.p"].status, found["api.response_time.p"].status) == (Status.UNKNOWN,) * 2
    assert found["api.tier.p"].detail.startswith("--probe-api: ")
    assert report.verdict.bottleneck is None or report.verdict.bottleneck.section == "tuning"
    assert [c.id for c in report.verdict.not_measured][-2:] == ["api.tier.p", "api.response_time.p"]
    assert report.headline.startswith("velocity band (guide's estimate, tuning,api only): ")
    assert " at best; " in report.headline and "; not measured: " in report.headline
    assert report.headline.endswith("api.tier.p, api.response_time.p")
    only_api = diagnose(setup, ("api",))
    assert only_api.verdict.band is None
    assert only_api.headline == (
        "velocity band, api only: unknown (not measured: api.tier.p, api.response_time.p)"
    )

    report = diagnose(setup_for(tmp_path, bandwidth_url=f"http://127.0.0.1:{closed}/download"), ("network",))
    down = by_id(report)["network.bandwidth_down"]
    assert down.status is Status.UNKNOWN and "refused" in down.detail.lower()
    assert "doctor.bandwidth_url" in down.fix
    assert report.verdict.bottleneck is None or report.verdict.bottleneck.id != down.id
    assert report.to_dict()["not_measured"][-2:] == ["network.bandwidth_down", "network.bandwidth_up"]


def test_api_tier_without_history_or_probe_is_unknown_and_says_how_to_learn_it(tmp_path):
    providers = [
        {"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
        {"name": "q", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "rpm": 20},
    ]
    found = by_id(diagnose(setup_for(tmp_path, providers), ("api",)))
    assert found["api.tier.p"].status is Status.UNKNOWN
    assert "no ledger yet" in found["api.tier.p"].detail and "--probe-api" in found["api.tier.p"].detail
    # A limit set in xvckit.yaml is enough for the tier by rate limit (20 rpm: the guide's Basic).
    assert found["api.tier.q"].value == "basic" and found["api.tier.q"].status is Status.BELOW_MINIMUM
    assert found["api.response_time.q"].status is Status.UNKNOWN
