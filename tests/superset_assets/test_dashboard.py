"""The dashboard as code (superset_assets/): it renders in a real browser, every chart shows what CONTRACT
section 3 defines, the bundle survives export and import unchanged, and a wrong ClickHouse password at import
changes nothing."""

from __future__ import annotations

import datetime as dt
import filecmp
import shutil
from pathlib import Path

import pytest

from tshop import clients, dashboard, metrics
from tshop.config import REPO_ROOT, Settings, settings

pytestmark = pytest.mark.slow

ARTIFACTS = REPO_ROOT / ".state" / "test" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium in a container: no sandbox, no GPU, nothing fetched from the internet
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_the_dashboard_renders_every_chart_in_a_real_browser(superset: Settings):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    base_url = f"http://127.0.0.1:{superset.superset_port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"{base_url}/login/")
        page.fill("#username", superset.superset_user)
        page.fill("#password", superset.superset_password)
        page.keyboard.press("Enter")
        page.wait_for_url("**/superset/welcome/**")

        page.goto(f"{base_url}/superset/dashboard/{dashboard.DASHBOARD_SLUG}/")
        charts = page.locator("[data-test='chart-grid-component']")
        # rendered: a chart holds a canvas or svg (the ECharts charts) or its number or table cell
        page.wait_for_function(
            """count => {
                const charts = document.querySelectorAll("[data-test='chart-grid-component']");
                return charts.length === count && [...charts].every(chart =>
                    !chart.querySelector("[data-test='loading-indicator'], .loading") &&
                    chart.querySelector("canvas, svg, .header-line, td, [role='alert']"));
            }""",
            arg=len(dashboard.CHART_METRICS),
            timeout=120_000,
        )
        page.wait_for_timeout(2000)  # the charts' drawing animation, so the picture shows the whole lines
        page.screenshot(path=str(ARTIFACTS / "superset_dashboard.png"), full_page=True)
        names = sorted(charts.nth(i).get_attribute("data-test-chart-name") for i in range(charts.count()))
        texts = {
            charts.nth(i).get_attribute("data-test-chart-name"): charts.nth(i).inner_text()
            for i in range(charts.count())
        }
        # Superset's warning in a chart's header: the query returned as many rows as its row limit,
        # so the chart may show only part of its data
        at_row_limit = page.evaluate(
            """() => [...document.querySelectorAll("[data-test='dashboard-component-chart-holder']")]
                .filter(holder => holder.querySelector("[data-test='slice-header'] [aria-label='warning']"))
                .map(holder => holder.querySelector("[data-test='slice-header']").innerText.split("\\n")[0])"""
        )
        browser.close()

    assert names == sorted(dashboard.CHART_METRICS)
    for name, text in texts.items():
        assert "error" not in text.lower(), (name, text)
        assert "no results" not in text.lower(), (name, text)
    assert at_row_limit == [], f"charts at their row limit, maybe showing part of their data: {at_row_limit}"
    assert (ARTIFACTS / "superset_dashboard.png").stat().st_size > 10_000


def _chart_rows(metric: str, data: list[dict]) -> list[tuple]:
    """The chart-data API's rows in the shape of the metric's definition (dates as dates, series unpivoted)."""

    def day(value) -> dt.date:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).date()

    if metric == "revenue per day":
        return sorted((day(row["sale_date"]), row["revenue"]) for row in data)
    if metric == "revenue per day and category":
        # the chart pivots categories into series: one column per category, null where it sold nothing
        return sorted(
            (day(row["sale_date"]), category, value)
            for row in data
            for category, value in row.items()
            if category != "sale_date" and value is not None
        )
    if metric == "revenue by age band":
        return sorted((row["age_band"], row["revenue"]) for row in data)
    (row,) = data
    return [(row[metric.replace(" ", "_")],)]  # a single number or size: the metric of that name


def test_every_chart_shows_its_metric_as_the_contract_defines_it(shop: Settings, superset_api):
    charts = superset_api.charts()
    assert sorted(charts) == sorted(dashboard.CHART_METRICS)
    client = clients.clickhouse(shop)
    try:
        for chart, metric in dashboard.CHART_METRICS.items():
            definition = metrics.DEFINITIONS[metric].format(mart=metrics.MART["clickhouse"])
            expected = sorted(client.query(definition).result_rows)
            assert expected, metric
            shown = _chart_rows(metric, superset_api.chart_data(charts[chart]))
            assert metrics.normalised(shown) == metrics.normalised(expected), chart
    finally:
        client.close()


def test_export_import_export_gives_the_same_files(superset: Settings, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(dashboard.BUNDLE, first)
    shutil.copytree(dashboard.BUNDLE, second)
    dashboard.export_dashboard(superset, first)
    dashboard.import_dashboard(superset, first)
    dashboard.export_dashboard(superset, second)

    def files(bundle: Path) -> list[str]:
        return sorted(path.relative_to(bundle).as_posix() for path in bundle.rglob("*.yaml"))

    assert files(first) == files(second) == files(dashboard.BUNDLE)
    # the committed bundle is the export itself: importing it and exporting changes no file
    for name in files(first):
        assert filecmp.cmp(first / name, second / name, shallow=False), name
        assert filecmp.cmp(first / name, dashboard.BUNDLE / name, shallow=False), name


def test_the_files_hold_no_password_and_no_local_address():
    database = next((dashboard.BUNDLE / "databases").glob("*.yaml")).read_text()
    assert "clickhousedb://default:XXXXXXXXXX@clickhouse:8123/cdm" in database
    for path in dashboard.BUNDLE.rglob("*.yaml"):
        assert "127.0.0.1" not in path.read_text(), path


def test_a_wrong_clickhouse_password_fails_clearly_and_the_dashboard_keeps_working(
    superset: Settings, superset_api
):
    wrong = settings({**superset.env, "TSHOP_CLICKHOUSE_URL": superset.clickhouse_url.replace("@", "x@", 1)})
    # the URL's password is the last thing before "@": appending to it makes it wrong
    assert wrong.clickhouse_url != superset.clickhouse_url

    with pytest.raises(
        dashboard.DashboardError, match=r"ClickHouse at .* refused the dashboard's database login"
    ):
        dashboard.import_dashboard(wrong)

    charts = superset_api.charts()
    assert superset_api.chart_data(charts["Revenue"])[0]["revenue"] > 0
