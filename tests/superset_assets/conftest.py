"""A generated shop built through both dbt projects, and a Superset with the bundle (both dashboards) imported,
serving it. A test module may override `shop` with a shop of its own (test_customers_dashboard.py does)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tshop import clients, dashboard
from tshop.config import REPO_ROOT, Settings
from tshop.services._process import free_port

WAREHOUSE = "wh_dashboard"
# the last Monday before today (a week ago when today is a Monday) and the three days before it
_MONDAY = dt.date.today() - dt.timedelta(days=dt.date.today().weekday() or 7)
SHOP_DAYS = [_MONDAY - dt.timedelta(days=days) for days in (3, 2, 1, 0)]


@pytest.fixture(scope="module")
def shop(pg_dsn: str, build_shop, test_settings: Settings) -> Iterator[Settings]:
    """Four generated days (Friday to Monday: corrections, renames and repricing included) in a warehouse of
    their own, built into the test ClickHouse's `cdm`, with their web events and reviews loaded into
    `events` and the funnel marts; the settings of a Superset on a free port.

    The days are the last Friday to Monday before today, inside the dashboard's default date filter (the
    month up to yesterday), so the dashboard opens on all of them."""
    config = build_shop(
        WAREHOUSE, SHOP_DAYS[0], len(SHOP_DAYS), 10_000, events=True, TSHOP_SUPERSET_PORT=str(free_port())
    )
    client = clients.clickhouse(config)
    yield config
    client.command("drop database if exists cdm")
    client.close()


@dataclass
class SupersetApi:
    """Superset's REST API, logged in as the admin of this install."""

    base_url: str
    http: httpx.Client

    def get(self, path: str, **params) -> dict:
        answer = self.http.get(f"{self.base_url}{path}", params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:1000])
        return answer.json()

    def charts(self, slug: str = dashboard.DASHBOARD_SLUG) -> dict[str, int]:
        """{chart name: id} of the charts on one of the bundle's dashboards (T-Shop sales unless named)."""
        charts = self.get(f"/api/v1/dashboard/{slug}/charts")["result"]
        return {chart["slice_name"]: chart["id"] for chart in charts}

    def chart_data(self, chart_id: int) -> list[dict]:
        """What the chart-data API returns for the chart's saved query: its rows."""
        return self.get(f"/api/v1/chart/{chart_id}/data/", format="json")["result"][0]["data"]


@pytest.fixture(scope="module")
def superset(shop: Settings) -> Iterator[Settings]:
    """Superset's metadata initialised, the bundle imported, the web app running."""
    dashboard.import_dashboard(shop)
    dashboard.start_web_app(shop)
    yield shop
    dashboard.web_app(shop).stop()


@pytest.fixture(scope="module")
def superset_api(superset: Settings) -> Iterator[SupersetApi]:
    base_url = f"http://127.0.0.1:{superset.superset_port}"
    with httpx.Client(timeout=120) as http:
        login = http.post(
            f"{base_url}/api/v1/security/login",
            json={
                "username": superset.superset_user,
                "password": superset.superset_password,
                "provider": "db",
                "refresh": False,
            },
        )
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield SupersetApi(base_url, http)


ARTIFACTS = REPO_ROOT / ".state" / "test" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium in a container: no sandbox, no GPU, nothing fetched from the internet
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class RenderedDashboard:
    """What a browser showed of a dashboard once every chart had drawn."""

    names: list[str]  # the charts' names, sorted
    texts: dict[str, str]  # {chart name: the text it shows}
    at_row_limit: list[str]  # charts whose header warns that the query hit its row limit
    filter_bar: str
    heights: dict[str, float]  # {chart name: height in pixels}
    screenshot: str


@pytest.fixture
def browse_dashboard(superset: Settings):
    """browse_dashboard(slug, charts, screenshot, login=None): log in to Superset in Debian's Chromium (as the
    admin, or as `login`, a (user, password)), open the dashboard, wait until its `charts` charts have drawn (a
    canvas or svg, a number, a table cell or a template) and save a full-page screenshot `screenshot` in
    .state/test/artifacts."""

    def browse(
        slug: str, charts: int, screenshot: str, login: tuple[str, str] | None = None
    ) -> RenderedDashboard:
        from pathlib import Path

        from playwright.sync_api import sync_playwright

        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
        base_url = f"http://127.0.0.1:{superset.superset_port}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(f"{base_url}/login/")
            user, password = login or (superset.superset_user, superset.superset_password)
            page.fill("#username", user)
            page.fill("#password", password)
            page.keyboard.press("Enter")
            page.wait_for_url("**/superset/welcome/**")

            page.goto(f"{base_url}/superset/dashboard/{slug}/")
            grid = page.locator("[data-test='chart-grid-component']")
            # checked again after the drawing animation: once the filters' state reaches the URL
            # (native_filters_key) the page may mount its grid anew (seen once: an empty grid after a full one)
            for _ in range(2):
                page.wait_for_function(
                    """count => {
                        const charts = document.querySelectorAll("[data-test='chart-grid-component']");
                        return charts.length === count && [...charts].every(chart =>
                            !chart.querySelector("[data-test='loading-indicator'], .loading") &&
                            (chart.querySelector("canvas, svg, .header-line, td, [role='alert']") ||
                             chart.innerText.includes("of items sold")));
                    }""",
                    arg=charts,
                    timeout=120_000,
                )
                page.wait_for_timeout(2000)  # the charts' drawing animation, so the picture shows them whole
            path = ARTIFACTS / screenshot
            page.screenshot(path=str(path), full_page=True)
            names = [grid.nth(i).get_attribute("data-test-chart-name") for i in range(grid.count())]
            texts = {name: grid.nth(i).inner_text() for i, name in enumerate(names)}
            at_row_limit = page.evaluate(
                """() => [...document.querySelectorAll("[data-test='dashboard-component-chart-holder']")]
                    .filter(holder => holder.querySelector("[data-test='slice-header'] [aria-label='warning']"))
                    .map(holder => holder.querySelector("[data-test='slice-header']").innerText.split("\\n")[0])"""
            )
            filter_bar = page.locator("[data-test='filter-bar']").inner_text()
            heights = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll("[data-test='chart-grid-component']")]
                    .map(chart => [chart.getAttribute("data-test-chart-name"),
                                   chart.getBoundingClientRect().height]))"""
            )
            browser.close()
        return RenderedDashboard(sorted(names), texts, at_row_limit, filter_bar, heights, str(path))

    return browse
