"""``/docs`` works offline: Swagger UI's files come from the app, never from a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route, sync_playwright

from conftest import LiveServer
from test_web import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def chromium_offline() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        # No proxy answers on port 9: any request that is not to 127.0.0.1 fails, as offline.
        args = [
            *CHROMIUM_ARGS,
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
        ]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser
        browser.close()


def test_docs_page_renders_with_the_network_off(
    chromium_offline: object, live_server: LiveServer
) -> None:
    from playwright.sync_api import Browser

    assert isinstance(chromium_offline, Browser)
    context = chromium_offline.new_context()
    outside: list[str] = []

    def only_local(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host != "127.0.0.1":
            outside.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    # The network is off: every request that leaves the machine fails, as on an offline host.
    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    operations = page.locator(".swagger-ui .opblock").count()
    assert operations >= 10  # every route of the API is listed
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("mamamia")
    context.close()
    assert outside == []  # nothing was fetched from outside the server


def test_docs_assets_are_served_by_the_app(live_server: LiveServer) -> None:
    html = httpx.get(live_server.url + "/docs").text
    assert "cdn" not in html.lower() and "/docs/assets/swagger-ui-bundle.js" in html
    script = httpx.get(live_server.url + "/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
