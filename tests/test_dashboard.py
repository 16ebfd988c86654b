"""Issue 23: the dashboard at /ui, the infrastructure monitor and the repository KPIs, through a
real gateway (`stack.gateway_app`, as `xvckit up` serves it) in front of the simulator, with a
ledger of known content (two teams, each its own latency, spend and errors), a real request
from the OpenAI SDK, monitor samples probing the simulator, doctor runs and a git repository.

Each panel's JSON is checked against the raw ledger (the panels read only rollups), the roles
and bounds of every endpoint, /metrics, and, in Debian's chromium driven by Playwright, the page
as an admin and as a team-admin: every panel drawn with data, no console error, no other team's
numbers, screenshots at laptop and phone sizes under the test's folder."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from conftest import MASTER_KEY, require_service
from git_repo import Git
from test_gateway_e2e import sim_providers
from xvckit.metrics.infra import Monitor
from xvckit.metrics.live import RepositoryKpis
from xvckit.store.doctor_runs import save_run
from xvckit.store.keys import Limits, create_key, create_team
from xvckit.store.ledger import HOUR, UsageRecord, usage_report_raw, write_records
from xvckit.web import panels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOW = time.time()
WEEK = 7 * 86400


def rows(
    team_id: str, key_id: str, n: int, latency: float, cost: float, ago_h: float, errors: int, kind: str
):
    """n requests of one key, an hour apart from `ago_h` hours ago; the first `errors` failed."""
    out = []
    for i in range(n):
        failed = i < errors
        out.append(
            UsageRecord(
                request_id=f"{key_id}-{ago_h}-{i}",
                endpoint="chat",
                ts=NOW - (ago_h + i) * HOUR,
                key_id=key_id,
                team_id=team_id,
                model="gpt-4o-mini",
                status=(429 if kind == "rate_limit_error" else 500) if failed else 200,
                error_type=kind if failed and kind != "http_500" else None,
                input_tokens=1000,
                output_tokens=250,
                cost_usd=cost,
                latency_ms=latency,
                ttft_ms=latency / 4,
                cache_hit=not failed and i == n - 1,
                cost_saved_usd=0.01 if not failed and i == n - 1 else 0.0,
            )
        )
    return out


class Dash:
    """The gateway and what the tests know about its data."""

    def __init__(self, gw, keys: dict[str, str], teams: dict[str, str], key_ids: dict[str, str]) -> None:
        self.gw, self.url, self.store = gw, gw.url, gw.store
        self.keys, self.teams, self.key_ids = keys, teams, key_ids
        services = gw.gateway.extensions.services
        self.monitor = next(s for s in services if isinstance(s, Monitor))
        self.kpis = next(s for s in services if isinstance(s, RepositoryKpis))

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.gw._loop).result(60)

    def get(self, path: str, who: str | None = "admin", **params) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)

    def panel(self, name: str, who: str = "admin", **params) -> dict:
        answer = self.get(f"/ui/api/{name}", who, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def dash(make_module_gateway, sim_factory, tmp_path_factory) -> Dash:
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    repo = Git(tmp_path_factory.mktemp("repo"))
    day = 86400
    for i, (message, who) in enumerate(
        [
            ("feat: a", "alice"),
            ("fix: a", "bob"),
            ("feat: b", "alice"),
            ("docs: b", "carol"),
            ("feat: c", "bob"),
        ]
    ):
        repo.commit(message, {f"f{i}.py": f'"""F{i}."""\nx = {i}\n'}, who, NOW - (20 - 3 * i) * day)
    config = {
        **sim_providers(sim),
        "monitor": {"interval_s": 0, "probe_timeout_s": 5},
        "metrics": {"repo": str(repo.path), "refresh_s": 3600},
    }
    gw = make_module_gateway(config, everything=True)
    store = gw.store
    teams = {name: create_team(store, name, Limits(), "test").id for name in ("red", "blue")}
    keys, key_ids = {"admin": MASTER_KEY}, {}
    for name, role, team in (
        ("boss", "admin", None),
        ("red-lead", "team-admin", "red"),
        ("blue-lead", "team-admin", "blue"),
        ("red-dev", "member", "red"),
        ("blue-dev", "member", "blue"),
    ):
        key, raw = create_key(store, name, "test", team=team, role=role)
        keys[name], key_ids[name] = raw, key.id
    write_records(
        store,
        rows(teams["red"], key_ids["red-dev"], 10, 100.0, 0.125, 1, 1, "rate_limit_error")
        + rows(teams["blue"], key_ids["blue-dev"], 20, 2000.0, 0.375, 2, 2, "http_500")
        + rows(teams["red"], key_ids["red-dev"], 5, 300.0, 0.5, 200, 0, "-"),  # the week before
    )
    for hours_ago, band in ((30, "good"), (2, "optimal")):
        save_run(
            store,
            {
                "started_at": NOW - hours_ago * HOUR,
                "host": "devbox",
                "velocity_band": {"band": band},
                "bottleneck": {"id": "network.latency"},
                "statuses": {"optimal": 6, "minimum": 2, "below": 1, "unknown": 3},
            },
        )
    d = Dash(gw, keys, teams, key_ids)
    answer = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=keys["red-dev"], max_retries=0)
    answer.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    d.run(gw.gateway.ledger.flush())
    d.run(d.monitor.sample())  # the first sample measures from the start's counters
    d.run(d.monitor.sample())
    d.run(d.kpis.refresh())
    return d


def window() -> panels.Window:
    return panels.Window.last(WEEK, time.time())


def expected(store, team: str | None, w: panels.Window | None = None) -> dict:
    w = w or window()
    return usage_report_raw(store, None, w.since, w.until, team_id=team)[0]


def cards(data: dict) -> dict:
    return {card["id"]: card for card in data["cards"]}


# ---------------------------------------------------------------- files and access


def test_the_page_and_its_files_need_no_key_and_allow_no_other_origin(dash):
    page = dash.get("/ui", None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "http" not in policy
    assert re.findall(r'src="([^"]+)"', page.text) == ["/ui/static/plotly.min.js", "/ui/static/app.js"]
    for name in ("app.js", "style.css"):
        assert dash.get(f"/ui/static/{name}", None).status_code == 200
    plotly = httpx.get(f"{dash.url}/ui/static/plotly.min.js", headers={"accept-encoding": "gzip"})
    shipped = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    assert plotly.headers["content-encoding"] == "gzip" and plotly.content == shipped  # httpx unzips
    assert int(plotly.headers["content-length"]) < len(shipped) / 2
    raw = httpx.get(f"{dash.url}/ui/static/plotly.min.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == shipped
    for path in ("/ui/static/../../etc/passwd", "/ui/static/missing.js", "/ui/nothing"):
        assert dash.get(path, None).status_code in (401, 404)
    assert httpx.post(f"{dash.url}/ui", content=b"x").status_code == 405


def test_the_panels_need_an_admin_or_a_team_admin_key(dash):
    for panel in ("me", "overview", "api", "delivery", "infrastructure"):
        assert dash.get(f"/ui/api/{panel}", None).status_code == 401
        assert dash.get(f"/ui/api/{panel}", "red-dev").status_code == 403
        answer = httpx.get(f"{dash.url}/ui/api/{panel}", headers={"authorization": "Bearer xvc-not-a-key"})
        assert answer.status_code == 401
        ok = dash.get(f"/ui/api/{panel}", "red-lead")
        assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert dash.panel("me", "boss")["role"] == "admin"
    me = dash.panel("me", "red-lead")
    assert me == {
        "role": "team-admin",
        "key": "red-lead",
        "team": {"id": dash.teams["red"], "name": "red"},
        "teams": [{"id": dash.teams["red"], "name": "red"}],
        "repository": True,
    }


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"range": "0h"}, 400, "range"),
        ({"range": "367d"}, 400, "range"),
        ({"range": "yesterday"}, 400, "range"),
        ({"since": "7d"}, 400, "unknown parameter 'since'"),
        ({"range": "x" * 600}, 400, "over 512 bytes"),
        ({"team": "nobody"}, 404, "no team"),
    ],
)
def test_bad_parameters_are_refused_with_what_is_wrong(dash, params, status, says):
    answer = dash.get("/ui/api/api", **params)
    assert answer.status_code == status and says in answer.json()["error"]["message"]


def test_a_parameter_twice_and_an_unknown_panel_are_refused(dash):
    answer = httpx.get(
        f"{dash.url}/ui/api/overview?range=7d&range=30d", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert answer.status_code == 400 and "twice" in answer.json()["error"]["message"]
    assert dash.get("/ui/api/secrets").status_code == 404
    assert dash.get("/ui/api/delivery", range="7d").status_code == 400  # delivery takes none


def test_a_team_admin_sees_its_own_team_only(dash):
    assert dash.get("/ui/api/overview", "red-lead", team="blue").status_code == 403
    assert dash.get("/ui/api/api", "red-lead", team=dash.teams["blue"]).status_code == 403
    own = dash.panel("overview", "red-lead", team="red")
    assert own == dash.panel("overview", "red-lead")
    red = expected(dash.store, dash.teams["red"])
    got = cards(own)
    assert got["requests"]["value"] == red["requests"] == 11  # 10 written + the SDK's request
    assert got["spend"]["value"] == pytest.approx(red["cost_usd"])
    api = dash.panel("api", "red-lead")
    assert "team" not in api["spend"]
    assert {row["name"] for row in api["spend"]["key"]} == {"red-dev"}
    assert api["errors"].keys() == {"rate_limit_error"}
    everything = json.dumps([own, api])
    for secret in ("blue", dash.teams["blue"], dash.key_ids["blue-dev"], "http_500"):
        assert secret not in everything


# ---------------------------------------------------------------- figures


def test_the_overview_cards_hold_the_ledgers_figures(dash):
    data = dash.panel("overview")
    got, whole = cards(data), expected(dash.store, None)
    before = expected(dash.store, None, window().previous())
    assert (
        got["requests"]["value"] == whole["requests"] == 31
        and got["requests"]["previous"] == before["requests"] == 5
    )
    assert got["requests"]["trend"] == "up"
    assert got["error_rate"]["value"] == pytest.approx(3 / 31) and got["error_rate"]["previous"] == 0
    assert got["error_rate"]["assessment"] == "worse"
    assert got["spend"]["value"] == pytest.approx(whole["cost_usd"]) and got["spend"][
        "previous"
    ] == pytest.approx(2.5)
    assert got["cache_saved"]["value"] == pytest.approx(0.02)
    # successful upstream answers: 8 red at 100 ms, the SDK's, 17 blue at 2000 ms
    assert got["latency_p50"]["value"] == pytest.approx(2000, rel=0.05)
    assert got["latency_p95"]["value"] == pytest.approx(2000, rel=0.05)
    assert got["latency_p50"]["previous"] == pytest.approx(300, rel=0.05)
    assert len(got["requests"]["spark"]) == len(data["times"]) == 168 or len(data["times"]) == 169
    assert sum(v or 0 for v in got["requests"]["spark"]) == 31
    assert got["velocity.features_per_day"]["value"] == pytest.approx(3 / 30, abs=1e-3)
    red = cards(dash.panel("overview", team="red"))
    assert red["latency_p50"]["value"] == pytest.approx(100, rel=0.05)


def test_the_api_panel_breaks_spend_down_by_team_key_and_model(dash):
    data = dash.panel("api", range="30d")
    assert data["window"]["span"] == 86400
    by_team = {row["name"]: row["cost_usd"] for row in data["spend"]["team"]}
    assert by_team["blue"] == pytest.approx(7.5)
    assert by_team["red"] == pytest.approx(
        expected(dash.store, dash.teams["red"], window())["cost_usd"] + 2.5
    )
    assert {row["name"] for row in data["spend"]["key"]} == {"red-dev", "blue-dev"}
    assert [row["name"] for row in data["spend"]["model"]] == ["gpt-4o-mini"]
    assert sum(v or 0 for v in data["errors"]["http_500"]) == 2
    assert sum(v or 0 for v in data["errors"]["rate_limit_error"]) == 1
    assert sum(v or 0 for v in data["cache"]["hits"]) == 3
    assert max(v or 0 for v in data["latency_ms"]["p95"]) == pytest.approx(2000, rel=0.05)
    assert set(data["pacing"]) == {"waits", "wait_s"}


def test_the_delivery_panel_is_the_repositorys_report(dash):
    data = dash.panel("delivery", "red-lead")
    assert data["available"] and data["problem"] is None
    assert list(data["categories"]) == list(panels.DELIVERY)
    velocity = {k["id"]: k for k in data["categories"]["velocity"]}
    assert velocity["velocity.commits_per_day"]["value"] == pytest.approx(5 / 30, abs=1e-3)
    docs = data["categories"]["docs"][0]
    assert docs["value"] == 1.0  # every module has its docstring


def test_the_infrastructure_panel_has_compute_providers_and_doctor_runs(dash):
    data = dash.panel("infrastructure", range="24h")
    host = dash.monitor.host
    cpu = data["compute"]["cpu_percent"][host]
    assert len(cpu) == len(data["times"]) and any(v is not None for v in cpu)
    assert {p["name"]: (p["availability"], p["probes"]) for p in data["providers"]} == {
        "sim-an": (1.0, 2),
        "sim-oa": (1.0, 2),
    }
    assert [run["band"] for run in data["doctor"]] == ["good", "optimal"]
    assert data["doctor"][0]["checks_met_share"] == pytest.approx(8 / 9)


def test_an_unreachable_provider_is_sampled_as_down(dash):
    """A provider whose port answers nothing: reachability 0, no probe time."""
    from xvckit.config.schema import Provider

    monitor = Monitor(
        dash.store,
        [Provider(name="gone", kind="openai", base_url="http://127.0.0.1:9")],
        dash.monitor.settings,
    )
    values = dash.run(monitor.sample(NOW))
    assert [v for v in values if v[1] == "gone"] == [("provider_up", "gone", 0.0)]


def test_pacing_waits_are_sampled_as_differences(dash):
    monitor = Monitor(dash.store, [], dash.monitor.settings, host="pacing-test")
    snapshot = [{"lane": "sim-oa#0/gpt-4o-mini", "queued": 0, "waits": 3, "waited_s": 1.5}]
    monitor.pacing = lambda: snapshot
    first = [v for v in dash.run(monitor.sample(NOW)) if v[0].startswith("pacing")]
    assert first == [
        ("pacing_queued", "sim-oa#0/gpt-4o-mini", 0.0),
        ("pacing_waits", "sim-oa#0/gpt-4o-mini", 3.0),
        ("pacing_wait_s", "sim-oa#0/gpt-4o-mini", 1.5),
    ]
    snapshot[0] = {**snapshot[0], "waits": 5, "waited_s": 2.0}
    second = [v for v in dash.run(monitor.sample(NOW + 60)) if v[0] == "pacing_waits"]
    assert second == [("pacing_waits", "sim-oa#0/gpt-4o-mini", 2.0)]
    snapshot[0] = {**snapshot[0], "queued": 0}
    assert not [v for v in dash.run(monitor.sample(NOW + 120)) if v[0].startswith("pacing")]  # idle: nothing
    api = dash.panel("api", range="24h")
    assert sum(v or 0 for v in api["pacing"]["waits"]) == 5


def test_metrics_exports_the_infrastructure_series_and_the_repository_kpis(dash):
    text = dash.get("/metrics").text
    assert re.search(r"^xvckit_host_cpu_percent [0-9.e+-]+$", text, re.M)
    assert re.search(r'^xvckit_provider_up\{provider="sim-oa"\} 1\.0$', text, re.M)
    probe = re.search(r'^xvckit_provider_probe_seconds\{provider="sim-an"\} ([0-9.e+-]+)$', text, re.M)
    assert probe and 0 < float(probe[1]) < 5
    commits = re.search(
        r'^xvckit_kpi\{id="velocity.commits_per_day",period="current"\} ([0-9.e+-]+)$', text, re.M
    )
    assert commits and float(commits[1]) == pytest.approx(5 / 30, abs=1e-3)
    assert dash.get("/metrics", "red-lead").status_code == 403


def test_the_grafana_rows_read_series_the_gateway_exports(dash):
    dashboard = json.loads(
        (Path(__file__).parents[1] / "deploy" / "grafana" / "xvckit-gateway.json").read_text()
    )
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert {r["title"] for r in rows} >= {"Infrastructure", "Repository KPIs"}
    exported = dash.get("/metrics").text
    used = set(re.findall(r"xvckit_[a-z_0-9]+", json.dumps(dashboard))) - {"xvckit_gateway"}
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    missing = {name for name in families if f"# TYPE {name} " not in exported}
    assert not missing, f"the dashboard queries series the gateway does not export: {missing}"


# ---------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        require_service("chromium", "no chromium on this machine (apt-get install chromium)")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


PANELS = ("overview", "api", "delivery", "infrastructure")
SIZES = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def visit(dash, browser, who: str, size: str, shots: Path) -> str:
    """Sign in with `who`'s key, open every panel, screenshot each; the text the page showed."""
    refused, problems = [], []

    def only_loopback(route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1)
    page = context.new_page()
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.route("**/*", only_loopback)
    seen = []
    try:
        page.goto(f"{dash.url}/ui")
        page.fill("#key", dash.keys[who])
        page.click("#signin button[type=submit]")
        for panel in PANELS:
            page.click(f"#tabs button[data-tab={panel}]")
            page.wait_for_selector(f"section#{panel}[data-state=ready]", timeout=30_000)
            charts = page.locator(f"section#{panel} .chart:visible")
            for i in range(charts.count()):
                chart = charts.nth(i)
                assert chart.locator(".main-svg").count() > 0, f"{panel}: a chart was not drawn"
            page.screenshot(path=str(shots / f"{who}-{size}-{panel}.png"), full_page=True)
            seen.append(page.locator(f"section#{panel}").inner_text())
        if size == "phone":  # readable: nothing wider than the screen
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= SIZES[size]["width"] + 1, f"the page is {width}px wide on a phone"
    finally:
        context.close()
    assert not refused, refused
    assert not problems, problems
    return "\n".join(seen)


@pytest.mark.parametrize("size", list(SIZES))
def test_an_admin_sees_every_panel_drawn_with_data(dash, browser, tmp_path, size):
    text = visit(dash, browser, "boss", size, tmp_path)
    assert "31" in text and "blue" in text and "red" in text  # requests card; the spend by team
    assert "sim-oa" in text and "optimal" in text  # providers and doctor history
    assert "commits per day" in text
    assert len(list(tmp_path.glob("boss-*.png"))) == len(PANELS)


def test_a_team_admin_sees_only_its_teams_numbers_in_the_page(dash, browser, tmp_path):
    text = visit(dash, browser, "red-lead", "laptop", tmp_path)
    red = expected(dash.store, dash.teams["red"])
    assert f"{red['requests']}" in text
    for other in ("blue", "blue-dev", "blue-lead", dash.teams["blue"]):
        assert other not in text
    assert len(list(tmp_path.glob("red-lead-*.png"))) == len(PANELS)
