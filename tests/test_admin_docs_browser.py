"""Issue 21: /admin/docs renders in a real browser with no network beyond loopback (it loaded
Swagger UI from a CDN and was blank offline), and "Authorize" takes the key: a headless
chromium (Debian's, driven by Playwright) against the real gateway. Skips where chromium is
missing (`apt-get install chromium`; .ci/run installs it) and fails so in CI."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

from playwright import sync_api

from conftest import MASTER_KEY, require_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_swagger_ui_renders_offline_and_authorizes(make_gateway):
    if CHROMIUM is None:
        require_service("chromium", "no chromium on this machine (apt-get install chromium)")
    gw = make_gateway({})
    requested, refused = [], []

    def only_loopback(route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{gw.url}/admin/docs")
            summary = page.get_by_text("Create a key; the response is the only time it is shown")
            summary.wait_for(timeout=20_000)
            assert summary.is_visible()
            page.get_by_role("button", name="Authorize").first.click()
            field = page.locator(".modal-ux input").first
            field.fill(MASTER_KEY)
            page.locator(".modal-ux button.authorize").first.click()
            page.locator(".modal-ux button.close-modal").first.click()
            # "Try it out" on the list of teams, with the key Swagger UI now sends
            page.get_by_text("List teams", exact=True).click()
            page.get_by_role("button", name="Try it out").click()
            with page.expect_response(lambda r: r.url.endswith("/admin/teams")) as answer:
                page.get_by_role("button", name="Execute").click()
            assert answer.value.status == 200
        finally:
            browser.close()
    assert not refused, refused
    assert any(url.endswith("/admin/docs/static/swagger-ui-bundle.js") for url in requested)
